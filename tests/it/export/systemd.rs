//! systemd units for manifests, checked by the real `systemd-analyze verify`.

use std::path::Path;
use std::process::Command;

use tend::export::{Export, SystemdOptions, export_systemd, export_systemd_with};

/// Load `toml` as DIR/app/tend.toml.
fn manifest(dir: &Path, toml: &str) -> tend::config::model::Manifest {
    let app = dir.join("app");
    std::fs::create_dir_all(&app).unwrap();
    let path = app.join("tend.toml");
    std::fs::write(&path, toml).unwrap();
    tend::config::load(&path).unwrap_or_else(|e| panic!("manifest: {e:?}"))
}

fn write(dir: &Path, export: &Export) -> Vec<String> {
    let units = dir.join("units");
    let mut top = Vec::new();
    for (name, content) in &export.files {
        let p = units.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        if !name.contains('/') {
            top.push(p.display().to_string());
        }
    }
    top
}

/// Run verify on the files plus `extra` unit names (template instances), and return its
/// diagnostics; panics on a non-zero exit.
fn verify(dir: &Path, export: &Export, extra: &[&str]) -> String {
    let mut args = write(dir, export);
    let units = dir.join("units");
    for e in extra {
        args.push(units.join(e).display().to_string());
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&args)
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .output()
        .expect("systemd-analyze");
    if std::env::var_os("SHOW_VERIFY").is_some() {
        eprintln!(
            "verify {args:?}: {:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let listing: String = export
        .files
        .iter()
        .map(|(n, c)| format!("==> {n}\n{c}\n"))
        .collect();
    assert!(out.status.success(), "verify failed:\n{text}\n{listing}");
    text
}

/// Diagnostics that point at our files (verify also talks about the host's own units,
/// e.g. multi-user.target's dependencies in a container).
fn ours(text: &str, dir: &Path) -> Vec<String> {
    let units = dir.join("units").display().to_string();
    text.lines()
        .filter(|l| l.contains(&units) || l.contains("tend-app") || l.contains(".service"))
        .map(str::to_string)
        .collect()
}

const RICH: &str = r#"
[services.db]
command = "/bin/sleep 1000"
readiness = { notify = true }
watchdog = "30s"
user = "0"
group = "0"
umask = "027"
memory_max = "512MiB"
cpu_max = "150%"
pids_max = 100
stop_signal = "INT"
reload_signal = "HUP"
stop_timeout = "20s"
critical = true
[services.db.env]
PLAIN = "x"
SPACED = "a b  c"
QUOTES = "say \"hi\" it's"
BACKSLASH = 'a\b\\c'
DOLLAR = "$$HOME and $$$${x}"
PERCENT = "100% %i %n"
NEWLINE = "l1\nl2"
TAB = "a\tb"
UNICODE = "naïve ☃"

[services.migrate]
kind = "task"
args = ["/bin/sh", "-c", "echo 'migrating' \"$$1\" %s > /dev/null; exit 0", "sh", "arg with space"]
depends_on = { db = "healthy" }
exit_codes = [0, 3]

[services.web]
instances = 3
port_base = 8000
args = ["/bin/sleep", "1000", "--port={port}", "--id={instance}", "a b", "50%", "$$PATH", ";", ""]
env = { URL = "http://127.0.0.1:{port}/x", NAME = "web-{instance}" }
depends_on = { migrate = "completed", db = { condition = "started", on_unready = "restart" } }
readiness = { http = "http://127.0.0.1:{port}/health" }
liveness = { tcp = "127.0.0.1:{port}" }
backoff = { initial = "2s", max = "1m", factor = 3.0 }
max_restarts = 5
restart_window = "2m"
restart = "on-failure"
groups = ["front"]
priority = 5
max_memory = "1GB"
gpus = [0, 1]
gpus_per_instance = 1

[services.shell]
command = "echo \"a b\" | tr a-z A-Z && sleep 1000 # 100% \\ done"
shell = true
backoff = { initial = "1s", growth = "linear" }
autostart = false
logs = { stdout = "null", merge = true }
"#;

#[test]
fn rich_manifest_verifies_on_this_systemd() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), RICH);
    let export = export_systemd_with(
        &m,
        &[],
        &SystemdOptions {
            systemd_version: 252,
        },
    );
    let text = verify(
        dir.path(),
        &export,
        &["web@0.service", "web@1.service", "web@2.service"],
    );
    let ours = ours(&text, dir.path());
    assert!(ours.is_empty(), "verify diagnostics:\n{}", ours.join("\n"));
    let files: Vec<&str> = export.files.iter().map(|(n, _)| n.as_str()).collect();
    for f in [
        "db.service",
        "migrate.service",
        "web@.service",
        "web@0.service.d/tend-instance.conf",
        "shell.service",
        "tend-app.target",
    ] {
        assert!(files.contains(&f), "{f} missing from {files:?}");
    }
    let unmapped: Vec<String> = export
        .unmapped
        .iter()
        .map(|(s, k, _)| format!("{s}.{k}"))
        .collect();
    for u in [
        "web.readiness",
        "web.liveness",
        "web.groups",
        "web.max_memory",
        "shell.backoff.growth",
    ] {
        assert!(unmapped.iter().any(|x| x == u), "{u} not in {unmapped:?}");
    }
}

#[test]
fn restart_steps_for_systemd_254() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), RICH);
    let export = export_systemd(&m, &["web".to_string()]);
    let web = &export
        .files
        .iter()
        .find(|(n, _)| n == "web@.service")
        .unwrap()
        .1;
    // 2s × 3^n reaches 60s after 4 steps.
    assert!(
        web.contains("RestartSteps=4\nRestartMaxDelaySec=60s\n"),
        "{web}"
    );
    // Dependencies come along: web needs db and migrate.
    assert!(export.files.iter().any(|(n, _)| n == "db.service"));
    assert!(export.files.iter().any(|(n, _)| n == "migrate.service"));
    assert!(!export.files.iter().any(|(n, _)| n == "shell.service"));
    // On 252 the new keys are only unknown-key warnings.
    let text = verify(dir.path(), &export, &["web@0.service"]);
    for line in ours(&text, dir.path()) {
        assert!(line.contains("Unknown key 'Restart"), "{line}");
    }
}

#[test]
fn quoting_reaches_the_unit_files() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), RICH);
    let export = export_systemd(&m, &[]);
    let get = |n: &str| &export.files.iter().find(|(f, _)| f == n).unwrap().1;
    let db = get("db.service");
    assert!(db.contains("Type=notify\n"), "{db}");
    assert!(db.contains("WatchdogSec=30s\n"));
    assert!(db.contains("KillSignal=SIGINT\n"));
    assert!(
        db.contains("ExecReload=/bin/kill -s HUP $MAINPID\n"),
        "{db}"
    );
    assert!(db.contains("TimeoutStopSec=20s\n"));
    assert!(db.contains("UMask=0027\n"));
    assert!(db.contains("MemoryMax=536870912\n"));
    assert!(db.contains("CPUQuota=150%\n"));
    assert!(db.contains("TasksMax=100\n"));
    assert!(
        db.contains(r#"Environment="PERCENT=100%% %%i %%n""#),
        "{db}"
    );
    assert!(
        db.contains(r#"Environment="DOLLAR=$$HOME and $$${x}""#),
        "{db}"
    );
    assert!(db.contains(r#"Environment="NEWLINE=l1\nl2""#), "{db}");
    assert!(
        db.contains(r#"Environment="QUOTES=say \"hi\" it's""#),
        "{db}"
    );
    assert!(db.contains(r#"Environment="BACKSLASH=a\\b\\\\c""#), "{db}");
    let web = get("web@.service");
    assert!(
        web.contains(
            r#"ExecStart=/bin/sleep 1000 --port=${PORT} --id=%i "a b" 50%% $$$$PATH \; """#
        ),
        "{web}"
    );
    assert!(web.contains("Environment=\"NAME=web-%i\"\n"), "{web}");
    assert!(web.contains("Environment=\"TEND_INSTANCE=%i\"\n"), "{web}");
    assert!(
        web.contains("After=migrate.service\nRequires=migrate.service\n"),
        "{web}"
    );
    assert!(web.contains("StartLimitBurst=6\n"));
    assert!(web.contains("StartLimitIntervalSec=120s\n"));
    let drop1 = get("web@1.service.d/tend-instance.conf");
    assert!(drop1.contains("Environment=\"PORT=8001\"\n"), "{drop1}");
    assert!(
        drop1.contains("Environment=\"URL=http://127.0.0.1:8001/x\"\n"),
        "{drop1}"
    );
    assert!(
        drop1.contains("Environment=\"CUDA_VISIBLE_DEVICES=1\"\n"),
        "{drop1}"
    );
    let migrate = get("migrate.service");
    assert!(migrate.contains("Type=oneshot\nRemainAfterExit=yes\n"));
    assert!(migrate.contains("SuccessExitStatus=3\n"));
    let shell = get("shell.service");
    assert!(
        shell.contains(
            r#"ExecStart=/bin/sh -c "echo \"a b\" | tr a-z A-Z && sleep 1000 # 100%% \\ done""#
        ),
        "{shell}"
    );
    let target = get("tend-app.target");
    assert!(target.contains("Wants=web@2.service\n"), "{target}");
    assert!(!target.contains("shell.service"), "{target}");
    assert!(target.contains("BindsTo=db.service\n"), "{target}");
    assert!(target.contains("WantedBy=multi-user.target\n"));
}

#[test]
fn small_manifests_verify() {
    for (i, toml) in [
        "[services.a]\ncommand = \"/bin/sleep 5\"\n",
        "[services.a]\ncommand = \"sleep 5\"\nrestart = \"never\"\n",
        "[services.t]\nkind = \"task\"\ncommand = \"/bin/true\"\nrestart = \"always\"\n\
         [services.b]\ncommand = \"/bin/sleep 5\"\ndepends_on = [\"t\"]\ninstances = 2\n",
        "[services.a]\ncommand = \"/bin/sleep 5\"\nbackoff = { initial = \"0s\" }\n\
         logs = { stdout = \"out.log\", stderr = \"null\" }\n",
    ]
    .iter()
    .enumerate()
    {
        let dir = tempfile::tempdir().unwrap();
        let m = manifest(dir.path(), toml);
        let export = export_systemd_with(
            &m,
            &[],
            &SystemdOptions {
                systemd_version: 252,
            },
        );
        let extra: &[&str] = if i == 2 {
            &["b@0.service", "b@1.service"]
        } else {
            &[]
        };
        let text = verify(dir.path(), &export, extra);
        let ours = ours(&text, dir.path());
        assert!(ours.is_empty(), "manifest {i}: {}", ours.join("\n"));
    }
}

const SOCKETS: &str = r#"
[sockets.http]
listen = "tcp://[::]:8080"
backlog = 128
reuse_port = true
[sockets.admin]
listen = "unix:run/admin.sock"
mode = "660"
owner = "0"
group = "0"
[sockets.spare]
listen = "tcp://127.0.0.1:9999"
[sockets.random]
listen = "tcp://127.0.0.1:0"

[services.web]
command = "/bin/sleep 1000"
instances = 2
sockets = ["http", "admin"]

[services.api]
command = "/bin/sleep 1000"
sockets = ["http", "random"]
"#;

#[test]
fn sockets_become_socket_units_shared_by_their_services() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), SOCKETS);
    let export = export_systemd_with(
        &m,
        &[],
        &SystemdOptions {
            systemd_version: 252,
        },
    );
    let text = verify(dir.path(), &export, &["web@0.service", "web@1.service"]);
    for line in ours(&text, dir.path()) {
        assert!(line.contains("Unknown key 'Restart"), "{line}");
    }
    let get = |n: &str| {
        &export
            .files
            .iter()
            .find(|(f, _)| f == n)
            .unwrap_or_else(|| panic!("no {n}"))
            .1
    };
    let http = get("http.socket");
    assert!(
        http.contains(
            "[Socket]\nListenStream=[::]:8080\nReusePort=yes\nBacklog=128\nFileDescriptorName=http\nService=web@0.service\n"
        ),
        "{http}"
    );
    let admin = get("admin.socket");
    let path = dir.path().join("app/run/admin.sock");
    assert!(
        admin.contains(&format!(
            "ListenStream={}\nSocketMode=0660\nSocketUser=0\nSocketGroup=0\nRemoveOnStop=yes\nBacklog=4096\nFileDescriptorName=admin\n",
            path.display()
        )),
        "{admin}"
    );
    let web = get("web@.service");
    assert!(
        web.contains(
            "Requires=http.socket\nAfter=http.socket\nRequires=admin.socket\nAfter=admin.socket\n"
        ),
        "{web}"
    );
    assert!(
        web.contains("Sockets=http.socket\nSockets=admin.socket\n"),
        "every instance of the template gets the same sockets: {web}"
    );
    let api = get("api.service");
    assert!(api.contains("Sockets=http.socket\n"), "{api}");
    assert!(!api.contains("random"), "{api}");
    let target = get("tend-app.target");
    assert!(
        target.contains("Wants=http.socket\nWants=admin.socket\n"),
        "{target}"
    );
    let files: Vec<&str> = export.files.iter().map(|(n, _)| n.as_str()).collect();
    assert!(!files.contains(&"spare.socket"), "{files:?}");
    assert!(!files.contains(&"random.socket"), "{files:?}");
    let unmapped: Vec<String> = export
        .unmapped
        .iter()
        .map(|(s, k, _)| format!("{s}.{k}"))
        .collect();
    for u in ["[sockets].spare", "api.sockets.random", "web.sockets"] {
        assert!(unmapped.iter().any(|x| x == u), "{u} not in {unmapped:?}");
    }

    // Exporting one service brings only its sockets, and names it as their service.
    let export = export_systemd(&m, &["api".to_string()]);
    let files: Vec<&str> = export.files.iter().map(|(n, _)| n.as_str()).collect();
    assert!(!files.contains(&"admin.socket"), "{files:?}");
    let http = &export
        .files
        .iter()
        .find(|(f, _)| f == "http.socket")
        .unwrap()
        .1;
    assert!(http.contains("Service=api.service\n"), "{http}");
}

#[test]
fn schedules_become_timers() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(
        dir.path(),
        r#"
[services.web]
command = "/bin/sleep 1000"
cron_restart = "0 3 * * *"
watch = ["src"]

[services.backup]
kind = "task"
command = "/bin/true"
schedule = "0 12 13 * fri"

[services.report]
kind = "task"
command = "/bin/true"
schedule = "*/15 9-17 * * mon-fri"
instances = 2
"#,
    );
    let export = export_systemd_with(
        &m,
        &[],
        &SystemdOptions {
            systemd_version: 252,
        },
    );
    let text = verify(
        dir.path(),
        &export,
        &[
            "report@0.service",
            "report@1.service",
            "report@0.timer",
            "report@1.timer",
        ],
    );
    let ours = ours(&text, dir.path());
    assert!(ours.is_empty(), "verify diagnostics:\n{}", ours.join("\n"));
    let get = |n: &str| {
        &export
            .files
            .iter()
            .find(|(f, _)| f == n)
            .unwrap_or_else(|| panic!("no {n}"))
            .1
    };
    let timer = get("backup.timer");
    assert!(
        timer.contains("OnCalendar=Fri *-*-* 12:00:00\nOnCalendar=*-*-13 12:00:00\nAccuracySec=1s\nUnit=backup.service\n"),
        "{timer}"
    );
    let backup = get("backup.service");
    assert!(backup.contains("Type=oneshot\n") && !backup.contains("RemainAfterExit"));
    let restart = get("web-cron-restart.service");
    assert!(
        restart.contains("ExecStart=systemctl try-restart web.service\n"),
        "{restart}"
    );
    assert!(get("web-cron-restart.timer").contains("OnCalendar=*-*-* 03:00:00\n"));
    let report = get("report@.timer");
    assert!(
        report.contains("OnCalendar=Mon..Fri *-*-* 09..17:00/15:00\n"),
        "{report}"
    );
    assert!(report.contains("Unit=report@%i.service\n"), "{report}");
    let target = get("tend-app.target");
    for want in [
        "Wants=web-cron-restart.timer\n",
        "Wants=backup.timer\n",
        "Wants=report@1.timer\n",
    ] {
        assert!(target.contains(want), "{want} in {target}");
    }
    assert!(
        !target.contains("Wants=backup.service"),
        "its timer starts it: {target}"
    );
    let unmapped: Vec<String> = export
        .unmapped
        .iter()
        .map(|(s, k, _)| format!("{s}.{k}"))
        .collect();
    assert!(unmapped.contains(&"web.watch".to_string()), "{unmapped:?}");
    assert!(
        !unmapped.contains(&"backup.autostart".to_string()),
        "{unmapped:?}"
    );
}
