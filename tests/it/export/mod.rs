//! `tend export`: each target's output checked by that target's own tools, and the command
//! itself (stdout, `-o DIR`, the report of what was not mapped, bad arguments).

use std::path::PathBuf;

use crate::harness::{Project, text};

mod kubernetes_compose;
// PM2 ecosystem files: run by the real PM2, and imported back into the same manifest.
mod pm2;
mod pm2_roundtrip;
// supervisord.conf: run by the real supervisord, read by its own parser over generated
// manifests, and imported back into the same manifest.
mod supervisord;
mod supervisord_generate;
mod supervisord_oracle;
mod supervisord_roundtrip;
mod systemd;

/// A program from the test tools venv (target/tools, filled by ./scripts/test).
pub fn tool(name: &str) -> PathBuf {
    tool_at(&format!("bin/{name}"))
}

/// A file under target/tools (./scripts/test fills it: a Python venv, and npm packages in
/// node/).
pub fn tool_at(relative: &str) -> PathBuf {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/tools")
        .join(relative);
    assert!(
        path.exists(),
        "{} not found (./scripts/test installs the test tools into target/tools)",
        path.display()
    );
    path
}

const MANIFEST: &str = r#"
[services.db]
command = "/bin/sleep 1000"
readiness = { tcp = "127.0.0.1:5432" }
port_base = 5432

[services.api]
command = "/bin/sleep 1000"
depends_on = { db = "healthy" }

[services.other]
command = "/bin/sleep 1000"
"#;

#[test]
fn prints_every_file_and_reports_what_is_not_mapped() {
    let project = Project::new(MANIFEST);
    let out = project.tend(&["export", "systemd"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for name in ["db.service", "api.service", "other.service"] {
        assert!(stdout.contains(&format!("# ==> {name} <==\n")), "{stdout}");
    }
    assert!(stdout.contains("ExecStart=/bin/sleep 1000\n"), "{stdout}");
    // systemd has no TCP readiness probe: said on stderr, under the service.
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("not mapped, or mapped approximately"),
        "{stderr}"
    );
    assert!(stderr.contains("  db:\n    readiness: "), "{stderr}");
    // What holds for every service is said once, under all of their names.
    assert!(stderr.contains("  db, api, other:\n"), "{stderr}");
    assert_eq!(stderr.matches("backoff.jitter").count(), 1, "{stderr}");
}

#[test]
fn writes_into_a_directory_and_selects_with_dependencies() {
    let project = Project::new(MANIFEST);
    let dir = project.path().join("units");
    let dir_arg = dir.display().to_string();
    let out = project.tend(&["export", "systemd", "-o", &dir_arg, "api"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let mut written: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    // api needs db; other is left out.
    let target = format!(
        "tend-{}.target",
        project.path().file_name().unwrap().to_string_lossy()
    );
    let mut expected = vec!["api.service".to_string(), "db.service".into(), target];
    expected.sort();
    assert_eq!(written, expected);
    let api = std::fs::read_to_string(dir.join("api.service")).unwrap();
    assert!(api.contains("Requires=db.service\n"), "{api}");
}

#[test]
fn refuses_unknown_services_and_missing_image() {
    let project = Project::new(MANIFEST);
    let out = project.tend(&["export", "compose", "--image", "x", "ap"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("no service named \"ap\""), "{stderr}");
    assert!(stderr.contains("did you mean \"api\"?"), "{stderr}");
    assert!(out.stdout.is_empty());

    let out = project.tend(&["export", "kubernetes"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("needs --image"),
        "{}",
        text(&out.stderr)
    );

    let out = project.tend(&["export", "nomad"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn exports_a_foreign_file() {
    let project = Project::new("");
    std::fs::write(
        project.file("Procfile"),
        "web: /bin/sleep 1000\nworker: /bin/sleep 2000\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(["-c", "Procfile", "export", "k8s", "--image", "app:1"])
        .current_dir(project.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("name: \"web\""), "{stdout}");
    assert!(stdout.contains("name: \"worker\""), "{stdout}");
}

/// `systemd-analyze verify` on one unit file: its exit status and what it said about it.
fn verify_unit(path: &std::path::Path) -> (bool, String) {
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(path)
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .output()
        .expect("systemd-analyze");
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let about_ours: Vec<&str> = said.lines().filter(|l| l.contains(&name)).collect();
    (out.status.success(), about_ours.join("\n"))
}

#[test]
fn startup_prints_a_unit_that_verifies() {
    let project = Project::new(MANIFEST);
    let out = project.tend(&["startup", "--print"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let unit = text(&out.stdout);
    let manifest = project.manifest().display().to_string();
    assert!(unit.contains("Type=notify\n"), "{unit}");
    assert!(
        unit.contains(&format!(
            "ExecStart={} -c {manifest} up\n",
            env!("CARGO_BIN_EXE_tend")
        )),
        "{unit}"
    );
    assert!(
        unit.contains(&format!(
            "ExecReload={} -c {manifest} apply\n",
            env!("CARGO_BIN_EXE_tend")
        )),
        "{unit}"
    );
    // Only tend gets SIGTERM, so that it stops the services in order.
    assert!(unit.contains("KillMode=mixed\n"), "{unit}");
    assert!(unit.contains("WantedBy=multi-user.target\n"), "{unit}");
    let file = project.path().join("tend-test.service");
    std::fs::write(&file, &unit).unwrap();
    let (ok, said) = verify_unit(&file);
    assert!(ok && said.is_empty(), "verify: {said}\n{unit}");
}

#[test]
fn startup_writes_a_user_unit() {
    let project = Project::new(MANIFEST);
    let config = project.path().join("config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tend"))
        .arg("-c")
        .arg(project.manifest())
        .args(["startup", "--user"])
        .env("XDG_CONFIG_HOME", &config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir_name = project
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let name = format!("tend-{dir_name}.service");
    let file = config.join("systemd/user").join(&name);
    let unit = std::fs::read_to_string(&file).unwrap();
    assert!(unit.contains("WantedBy=default.target\n"), "{unit}");
    assert!(!unit.contains("User="), "{unit}");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "systemctl --user daemon-reload && systemctl --user enable --now {name}"
        )),
        "{stdout}"
    );
    let (ok, said) = verify_unit(&file);
    assert!(ok && said.is_empty(), "verify: {said}\n{unit}");
}

/// Datagrams from tend into `messages` until `done` holds of them (bounded).
fn receive_until(
    manager: &std::os::unix::net::UnixDatagram,
    messages: &mut Vec<String>,
    what: &str,
    done: &dyn Fn(&[String]) -> bool,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut buf = [0u8; 4096];
    while !done(messages) {
        assert!(
            std::time::Instant::now() < deadline,
            "no {what}; got {messages:?}"
        );
        if let Ok(n) = manager.recv(&mut buf) {
            messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
}

/// tend under a service manager: the manager's socket is a datagram socket bound here, as
/// systemd binds its own; tend must say READY=1 only once its services are ready, ping the
/// watchdog, and say STOPPING=1 when it stops.
#[test]
fn tells_its_service_manager_when_services_are_ready() {
    use std::os::unix::net::UnixDatagram;
    use std::time::Duration;

    let project = Project::new(
        r#"
[services.web]
command = "/bin/sleep 1000"
readiness = { exec = "test -e go", interval = "50ms" }
"#,
    );
    let socket_path = project.path().join("manager.sock");
    let manager = UnixDatagram::bind(&socket_path).unwrap();
    manager
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_tend"))
        .arg("-c")
        .arg(project.manifest())
        .arg("up")
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "200000")
        .current_dir(project.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut messages: Vec<String> = Vec::new();
    // The watchdog is pinged while the service is still getting ready...
    receive_until(&manager, &mut messages, "watchdog ping", &|m| {
        m.iter().any(|m| m == "WATCHDOG=1")
    });
    let _daemon = crate::harness::Daemon::attach(&project);
    project.wait_state("web", "running", Duration::from_secs(30));
    // Datagrams arrive in order: two more pings after the instance runs show that no
    // READY=1 was sent before them.
    let pings = |m: &[String]| m.iter().filter(|m| *m == "WATCHDOG=1").count();
    let seen = pings(&messages);
    receive_until(&manager, &mut messages, "more pings", &|m| {
        pings(m) >= seen + 2
    });
    assert!(
        !messages.iter().any(|m| m.contains("READY=1")),
        "READY before the service was ready: {messages:?}"
    );
    assert_eq!(project.instance("web")["ready"], false);
    // ...and READY=1 comes once it is.
    std::fs::write(project.file("go"), "").unwrap();
    receive_until(&manager, &mut messages, "READY=1", &|m| {
        m.iter().any(|m| m.starts_with("READY=1\n"))
    });
    assert_eq!(project.instance("web")["ready"], true);
    let ready = messages.iter().find(|m| m.starts_with("READY=1")).unwrap();
    assert!(ready.contains("STATUS=1 instance(s) ready"), "{ready}");
    let out = project.tend(&["down"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    receive_until(&manager, &mut messages, "STOPPING=1", &|m| {
        m.iter().any(|m| m.starts_with("STOPPING=1"))
    });
    crate::harness::finish(child, Duration::from_secs(30), "tend up");
}

#[test]
fn every_target_says_where_env_file_values_went_and_what_became_of_sockets() {
    let project = Project::new(
        r#"
[sockets.http]
listen = "tcp://127.0.0.1:8080"

[services.api]
command = "/bin/sleep 1000"
env_file = "secrets.env"
sockets = ["http"]
"#,
    );
    std::fs::write(project.file("secrets.env"), "TOKEN=s3cret\n").unwrap();
    let secrets = project.file("secrets.env").display().to_string();
    for format in ["systemd", "kubernetes", "compose", "pm2", "supervisord"] {
        let out = project.tend(&["export", format, "--image", "app:1"]);
        assert!(out.status.success(), "{format}: {}", text(&out.stderr));
        // The value is there (tend read it), and the report says from where.
        assert!(text(&out.stdout).contains("s3cret"), "{format}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "env_file: the values from {secrets} are written inline"
            )),
            "{format}: {stderr}"
        );
        // systemd passes sockets as tend does; the others cannot.
        let socket_note = stderr.contains("sockets: ") && stderr.contains("LISTEN_FDS");
        assert_eq!(socket_note, format != "systemd", "{format}: {stderr}");
    }
}

#[test]
fn every_target_says_what_became_of_autoscale() {
    let project = Project::new(
        r#"
[services.api]
command = "/bin/sleep 1000"
instances = 2
autoscale = { min = 2, max = 6, cpu = "60%" }
"#,
    );
    for (format, says) in [
        ("systemd", "systemd does not scale by load"),
        ("kubernetes", "HorizontalPodAutoscaler"),
        ("compose", "Compose does not scale by load"),
        ("pm2", "PM2 does not scale by CPU"),
        ("supervisord", "supervisord does not scale by load"),
    ] {
        let out = project.tend(&["export", format, "--image", "app:1"]);
        assert!(out.status.success(), "{format}: {}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("autoscale: ") && stderr.contains(says),
            "{format}: {stderr}"
        );
    }
}
