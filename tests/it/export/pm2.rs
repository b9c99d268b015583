//! The export run by the real PM2 (npm package `pm2`, v7).
//!
//! PM2 comes from target/tools/node (./scripts/test installs it with npm). PM2 runs with `PM2_HOME` in a temporary directory (never `~/.pm2`), and is always
//! killed at the end, on failure too (a drop guard), after which no process of that daemon or
//! its apps may be left.
//!
//! Each app records what it was given: its arguments (NUL-separated), its environment
//! (`env -0`) and, as `nobody`, its uid. These are compared with what tend itself would give
//! the program: `ServiceSpec::instance(i)` for each instance.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tend::config::model::{Manifest, Program, ServiceSpec};
use tend::export::pm2::{FILE_NAME, export_pm2};

/// Arguments and environment values PM2 must pass on untouched.
const AWKWARD: &[&str] = &[
    "a b",
    "it's",
    "say \"hi\"",
    "$HOME",
    "${NOPE}",
    "$${x",
    "100%",
    "%s%d",
    "back\\slash",
    "\\n",
    "new\nline",
    "tab\there",
    "",
    "  ",
    "{braces}",
    "é☃",
    "-",
];

/// A TOML string holding `text` literally in a tend manifest (`${` escaped as `$${`).
fn t(text: &str) -> String {
    toml::Value::String(text.replace("${", "$${")).to_string()
}

fn t_list(items: &[String]) -> String {
    format!(
        "[{}]",
        items.iter().map(|s| t(s)).collect::<Vec<_>>().join(", ")
    )
}

/// `text` single-quoted for /bin/sh.
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Runs `pm2` with `PM2_HOME`, killed after `limit`.
struct Pm2 {
    bin: OsString,
    home: PathBuf,
    cwd: PathBuf,
}

impl Pm2 {
    fn run(&self, args: &[&str], limit: Duration) -> (bool, String) {
        // Output to files, not pipes: `jlist` writes more than a pipe holds before it exits.
        let capture = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new(&self.bin)
            .args(args)
            .env("PM2_HOME", &self.home)
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(capture.reopen().unwrap())
            .stderr(capture.reopen().unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", self.bin));
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let text = std::fs::read_to_string(capture.path()).unwrap_or_default();
                return (status.success(), text);
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                return (false, format!("pm2 {args:?}: timed out after {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `pm2 jlist`: one entry per process.
    fn jlist(&self) -> Vec<Value> {
        let (ok, text) = self.run(&["jlist"], Duration::from_secs(30));
        assert!(ok, "pm2 jlist failed: {text}");
        let start = text.find('[').unwrap_or_else(|| panic!("no JSON: {text}"));
        let end = text.rfind(']').unwrap();
        serde_json::from_str(&text[start..=end]).unwrap_or_else(|e| panic!("{e}: {text}"))
    }
}

/// Kills the PM2 daemon (and so its apps) however the test ends, then any process of it that
/// is still there.
struct Guard<'a> {
    pm2: &'a Pm2,
    pids: Vec<u32>,
    /// Set once the test has killed PM2 itself: a second `pm2 kill` would start a daemon
    /// only to kill it.
    killed: bool,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if !self.killed {
            let (ok, text) = self.pm2.run(&["kill"], Duration::from_secs(60));
            if !ok {
                eprintln!("pm2 kill failed: {text}");
            }
        }
        for pid in daemon_pids(&self.pm2.home)
            .into_iter()
            .chain(self.pids.iter().copied())
        {
            if alive(pid) {
                eprintln!("killing leftover process {pid}");
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

/// Processes whose command line names this PM2_HOME (the daemon's title does).
fn daemon_pids(home: &Path) -> Vec<u32> {
    let output = Command::new("pgrep")
        .args(["-f", &home.to_string_lossy()])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Whether `pid` is a live process (a zombie is not).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z')
        }
        Err(_) => false,
    }
}

fn am_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .is_some_and(|ids| ids.split_whitespace().nth(1) == Some("0"))
}

/// NUL-separated fields of a file.
fn fields(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = String::from_utf8(bytes).unwrap();
    let mut fields: Vec<String> = text.split('\0').map(String::from).collect();
    assert_eq!(fields.pop().as_deref(), Some(""), "{}", path.display());
    fields
}

fn env_file(path: &Path) -> BTreeMap<String, String> {
    fields(path)
        .into_iter()
        .map(|entry| {
            let (k, v) = entry.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Waits until `done` holds, or fails with `what`.
fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The script every recording app runs (inline with `sh -c` or as a file): its arguments and
/// environment into `$OUT`, named by the service and its instance variable, then sleep.
fn recorder(instance: &str, with_zero: bool) -> String {
    // The count first: `printf` with no arguments would still write one empty field.
    let zero = if with_zero { "\"$0\" " } else { "" };
    format!(
        "printf '%s\\0' \"$#\" {zero}\"$@\" > \"$OUT/$TEND_SERVICE.argv.${instance}\"; pwd -P > \"$OUT/$TEND_SERVICE.cwd.${instance}\"; umask > \"$OUT/$TEND_SERVICE.umask.${instance}\"; env -0 > \"$OUT/$TEND_SERVICE.env.${instance}\"; exec sleep 600"
    )
}

#[test]
fn pm2_runs_the_export() {
    let bin = super::tool_at("node/node_modules/.bin/pm2").into_os_string();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let home = root.join("pm2-home");
    let out = root.join("out");
    std::fs::create_dir_all(out.join("logs")).unwrap();
    // `nobody` writes here too.
    Command::new("chmod")
        .args(["-R", "0777", &out.to_string_lossy()])
        .status()
        .unwrap();
    let bin_dir = root.join("bin dir");
    std::fs::create_dir(&bin_dir).unwrap();
    for name in ["prog", "prog.js"] {
        let path = bin_dir.join(name);
        std::fs::write(
            &path,
            format!("#!/bin/sh\n{}\n", recorder("TEND_INSTANCE", false)),
        )
        .unwrap();
        Command::new("chmod")
            .args(["0755", &path.to_string_lossy()])
            .status()
            .unwrap();
    }
    for i in 0..3 {
        std::fs::create_dir(root.join(format!("shard-{i}"))).unwrap();
    }
    let root_user = am_root();

    let awkward: Vec<String> = AWKWARD.iter().map(|s| s.to_string()).collect();
    let env_table = AWKWARD
        .iter()
        .enumerate()
        .map(|(i, v)| format!("W{i} = {}", t(v)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut argv_args = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        recorder("TEND_INSTANCE", true),
        "zero".to_string(),
    ];
    argv_args.extend(awkward.iter().cloned());
    let shell_line = format!(
        "printf '%s\\0' {} {} > \"$OUT/$TEND_SERVICE.argv.$TEND_INSTANCE\"; pwd -P > \"$OUT/$TEND_SERVICE.cwd.$TEND_INSTANCE\"; env -0 > \"$OUT/$TEND_SERVICE.env.$TEND_INSTANCE\"; exec sleep 600",
        awkward.len(),
        awkward
            .iter()
            .map(|a| sh_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut space_args = vec![bin_dir.join("prog").to_string_lossy().into_owned()];
    space_args.extend(awkward.iter().take(4).cloned());
    let mut js_args = vec![bin_dir.join("prog.js").to_string_lossy().into_owned()];
    js_args.extend(awkward.iter().skip(4).take(4).cloned());
    let out_s = out.to_string_lossy().into_owned();

    let mut manifest_text = format!(
        r#"
# Listed before its dependency: the export must put `db` first.
[services.web]
args = ["/bin/sh", "-c", {web}]
depends_on = ["db"]
stop_timeout = "2s"
env = {{ OUT = {out} }}

[services.db]
args = ["/bin/sh", "-c", {db}]
stop_timeout = "2s"
env = {{ OUT = {out} }}

[services.argv]
args = {argv}
instances = 2
stop_timeout = "2s"
env = {{ OUT = {out}, {env_table} }}

[services.shell]
shell = true
command = {shell}
stop_timeout = "2s"
env = {{ OUT = {out}, {env_table} }}

# Several instances whose arguments, cwd and environment differ beyond PM2's two numbered
# variables: the export wraps the program in /bin/sh to expand them.
[services.ports]
args = ["/bin/sh", "-c", {ports}, "--port={{port}}", "--shard={{instance}}", "it's {{instance}}", ""]
cwd = {shards}
instances = 3
port_base = 4100
stop_timeout = "2s"
env = {{ OUT = {out}, URL = "http://127.0.0.1:{{port}}/x", ME = "{{instance}}", W0 = {w0} }}

[services.single]
args = ["/bin/sh", "-c", {single}, "--id={{instance}}", "--port={{port}}"]
port_base = 5000
umask = "027"
stop_timeout = "2s"
env = {{ OUT = {out}, URL = "http://127.0.0.1:{{port}}/{{instance}}" }}

[services.spaced]
args = {spaced}
stop_timeout = "2s"
env = {{ OUT = {out} }}

[services.js]
args = {js}
stop_timeout = "2s"
env = {{ OUT = {out} }}

[services.logged]
args = ["/bin/sh", "-c", "echo to-out; echo to-err >&2; exec sleep 600"]
instances = 2
logs = {{ stdout = "out/logs/merged.log", merge = true, timestamp_format = "%Y-%m-%d:" }}
stop_timeout = "2s"

[services.task]
kind = "task"
args = ["/bin/sh", "-c", "printf done > \"$OUT/task.done\""]
env = {{ OUT = {out} }}

[services.off]
autostart = false
args = ["/bin/sh", "-c", "printf ran > \"$OUT/off.ran\"; exec sleep 600"]
env = {{ OUT = {out} }}
cron_restart = "0 3 29 2 *"
watch = ["watched"]
watch_debounce = "2s"

[services.flaky]
args = ["/bin/sh", "-c", "exit 1"]
restart = "on-failure"
restart_limit = "unstable"
max_restarts = 2
backoff = {{ initial = "0s" }}
"#,
        out = t(&out_s),
        web = t(&recorder("TEND_INSTANCE", false)),
        db = t(&recorder("TEND_INSTANCE", false)),
        argv = t_list(&argv_args),
        shell = t(&shell_line),
        ports = t(&recorder("TEND_INSTANCE", true)),
        shards = t(&format!("{}/shard-{{instance}}", root.to_string_lossy())),
        w0 = t(AWKWARD[0]),
        single = t(&recorder("TEND_INSTANCE", true)),
        spaced = t_list(&space_args),
        js = t_list(&js_args),
    );
    if root_user {
        manifest_text.push_str(&format!(
            r#"
[services.nobody]
args = ["/bin/sh", "-c", "id -u > \"$OUT/nobody.uid\"; printf %s \"$HOME\" > \"$OUT/nobody.home\"; exec sleep 600"]
user = "nobody"
stop_timeout = "2s"
env = {{ OUT = {out} }}
"#,
            out = t(&out_s)
        ));
    } else {
        eprintln!("not root: the `user` mapping is not run (PM2 needs root for uid)");
    }
    let manifest_path = root.join("tend.toml");
    std::fs::write(&manifest_path, &manifest_text).unwrap();
    let manifest: Manifest =
        tend::config::load(&manifest_path).unwrap_or_else(|e| panic!("{e}\n{manifest_text}"));

    let export = export_pm2(&manifest, &[]);
    let (name, json) = &export.files[0];
    assert_eq!(name, FILE_NAME);
    let eco_dir = root.join("eco");
    std::fs::create_dir(&eco_dir).unwrap();
    std::fs::write(eco_dir.join(name), json).unwrap();
    let noted = |service: &str, setting: &str| {
        export
            .unmapped
            .iter()
            .any(|(s, k, _)| s == service && k == setting)
    };

    let pm2 = Pm2 {
        bin,
        home: home.clone(),
        cwd: eco_dir.clone(),
    };
    let mut guard = Guard {
        pm2: &pm2,
        pids: Vec::new(),
        killed: false,
    };
    let (ok, text) = pm2.run(&["start", FILE_NAME], Duration::from_secs(120));
    assert!(ok, "pm2 start failed:\n{text}\n{json}");

    let running: Vec<&ServiceSpec> = manifest
        .services
        .iter()
        .filter(|s| s.autostart && !["task", "flaky"].contains(&s.name.as_str()))
        .map(|s| &**s)
        .collect();
    let instances_of = |list: &[Value], name: &str| -> Vec<Value> {
        list.iter().filter(|p| p["name"] == name).cloned().collect()
    };
    let mut list = Vec::new();
    wait_for("every app online", Duration::from_secs(60), || {
        list = pm2.jlist();
        guard.pids.extend(
            list.iter()
                .filter_map(|p| p["pid"].as_u64())
                .filter(|&pid| pid != 0)
                .map(|pid| pid as u32),
        );
        running.iter().all(|s| {
            let procs = instances_of(&list, &s.name);
            procs.len() == s.instances as usize
                && procs.iter().all(|p| p["pm2_env"]["status"] == "online")
        })
    });
    wait_for("flaky to give up", Duration::from_secs(30), || {
        instances_of(&pm2.jlist(), "flaky")
            .first()
            .is_some_and(|p| p["pm2_env"]["status"] == "errored")
    });
    // What each recording app writes, and where its arguments start in tend's argv.
    let recording = |name: &str| -> Option<(&'static str, usize)> {
        match name {
            "web" | "db" | "argv" | "single" | "ports" => Some(("TEND_INSTANCE", 3)),
            "spaced" | "js" => Some(("TEND_INSTANCE", 1)),
            "shell" => Some(("TEND_INSTANCE", 0)),
            _ => None,
        }
    };
    let mut expected_files = vec![out.join("task.done")];
    if root_user {
        expected_files.push(out.join("nobody.uid"));
        expected_files.push(out.join("nobody.home"));
    }
    for spec in &manifest.services {
        if let Some((var, _)) = recording(&spec.name) {
            for i in 0..spec.instances {
                let tag = &spec.instance(i).env[var];
                expected_files.push(out.join(format!("{}.argv.{tag}", spec.name)));
                expected_files.push(out.join(format!("{}.env.{tag}", spec.name)));
                expected_files.push(out.join(format!("{}.cwd.{tag}", spec.name)));
            }
        }
    }
    wait_for("every recording", Duration::from_secs(30), || {
        expected_files.iter().all(|f| f.exists())
    });
    // `exec sleep` follows the writes; give the last one a moment to be complete.
    std::thread::sleep(Duration::from_millis(500));
    let list = pm2.jlist();

    // PM2 takes the cron and watch keys as written (its schema would refuse others).
    let off = &instances_of(&list, "off")[0]["pm2_env"];
    assert_eq!(off["cron_restart"], "0 3 29 2 *", "{off}");
    let watched = manifest.base_dir().join("watched");
    assert_eq!(off["watch"], serde_json::json!([watched]), "{off}");
    assert_eq!(off["watch_delay"], 2000, "{off}");

    // Instances and states.
    for spec in &manifest.services {
        let procs = instances_of(&list, &spec.name);
        assert_eq!(procs.len(), spec.instances as usize, "{}", spec.name);
        let want = match spec.name.as_str() {
            "task" | "off" => "stopped",
            "flaky" => "errored",
            _ => "online",
        };
        for p in &procs {
            assert_eq!(p["pm2_env"]["status"], want, "{}", spec.name);
        }
    }
    // tend's max_restarts = 2 (restarts): PM2 gave up after exactly 2.
    let flaky = &instances_of(&list, "flaky")[0];
    assert_eq!(flaky["pm2_env"]["restart_time"], 2, "{flaky:#}");
    assert_eq!(instances_of(&list, "task")[0]["pm2_env"]["restart_time"], 0);
    assert!(!out.join("off.ran").exists());
    // File order is start order: db got its id before web.
    let id = |name: &str| instances_of(&list, name)[0]["pm_id"].as_u64().unwrap();
    assert!(id("db") < id("web"));

    // Arguments and environment, as tend would give them.
    for spec in &manifest.services {
        let Some((instance_var, from)) = recording(&spec.name) else {
            continue;
        };
        for i in 0..spec.instances {
            let want = spec.instance(i);
            let tag = want.env[instance_var].clone();
            let argv_path = out.join(format!("{}.argv.{tag}", spec.name));
            let mut got_args = fields(&argv_path);
            let count: usize = got_args.remove(0).parse().unwrap();
            assert!(count == got_args.len() || count + 1 == got_args.len());
            let want_args: Vec<String> = match (&want.program, spec.name.as_str()) {
                (_, "shell") => awkward.clone(),
                (Program::Exec(argv), _) => argv[from.min(argv.len())..].to_vec(),
                (Program::Shell(_), _) => unreachable!(),
            };
            assert_eq!(got_args, want_args, "{} instance {i} arguments", spec.name);
            let got_cwd =
                std::fs::read_to_string(out.join(format!("{}.cwd.{tag}", spec.name))).unwrap();
            let want_cwd = want
                .cwd
                .clone()
                .unwrap_or_else(|| manifest.base_dir().to_string_lossy().into_owned());
            assert_eq!(
                got_cwd.trim_end_matches('\n'),
                want_cwd,
                "{} instance {i} cwd",
                spec.name
            );
            let got_env = env_file(&out.join(format!("{}.env.{tag}", spec.name)));
            for (key, value) in &want.env {
                assert_eq!(
                    got_env.get(key),
                    Some(value),
                    "{} instance {i}: ${key}",
                    spec.name
                );
            }
        }
    }
    // Spelled out for the wrapped service: PORT from increment_var, TEND_INSTANCE from
    // instance_var, ME, URL and the arguments from the wrapper.
    for i in 0..3u32 {
        let env = env_file(&out.join(format!("ports.env.{i}")));
        assert_eq!(env["PORT"], (4100 + i).to_string());
        assert_eq!(env["ME"], i.to_string());
        assert_eq!(env["TEND_INSTANCE"], i.to_string());
        assert_eq!(env["URL"], format!("http://127.0.0.1:{}/x", 4100 + i));
        let mut args = fields(&out.join(format!("ports.argv.{i}")));
        args.remove(0);
        let shard = format!("--shard={i}");
        let its = format!("it's {i}");
        assert_eq!(
            args,
            [
                "--port=".to_string() + &(4100 + i).to_string(),
                shard,
                its,
                String::new()
            ]
        );
    }
    assert!(noted("ports", "command") && noted("ports", "env.URL"));
    let single = env_file(&out.join("single.env.0"));
    assert_eq!(single["URL"], "http://127.0.0.1:5000/0");
    let umask = std::fs::read_to_string(out.join("single.umask.0")).unwrap();
    assert_eq!(umask.trim(), "0027");

    // Logs: both streams of both instances in the one file, with the date before `: `.
    let merged = std::fs::read_to_string(out.join("logs/merged.log")).unwrap();
    for line in ["to-out", "to-err"] {
        let n = merged
            .lines()
            .filter(|l| l.ends_with(&format!(": {line}")))
            .count();
        assert_eq!(n, 2, "{line} in\n{merged}");
    }
    assert!(merged.lines().all(|l| l.as_bytes()[4] == b'-'), "{merged}");

    if root_user {
        let uid = std::fs::read_to_string(out.join("nobody.uid")).unwrap();
        assert_eq!(uid.trim(), "65534");
        // As tend sets it for the user.
        let home = std::fs::read_to_string(out.join("nobody.home")).unwrap();
        assert_eq!(home, "/nonexistent");
    }

    // Stop everything, then nothing of this PM2 may be left.
    let pids: Vec<u32> = pm2
        .jlist()
        .iter()
        .filter_map(|p| p["pid"].as_u64())
        .filter(|&pid| pid != 0)
        .map(|pid| pid as u32)
        .collect();
    guard.pids.extend(pids.iter().copied());
    let daemon: u32 = std::fs::read_to_string(home.join("pm2.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(daemon));
    let (ok, text) = pm2.run(&["kill"], Duration::from_secs(60));
    assert!(ok, "pm2 kill: {text}");
    guard.killed = true;
    wait_for(
        "PM2 and its apps to be gone",
        Duration::from_secs(10),
        || !alive(daemon) && daemon_pids(&home).is_empty() && !pids.iter().any(|&p| alive(p)),
    );
    // The daemon was detached (its parent is init): wait for init to reap it, so that not even
    // a zombie is left; that is init's business, so it is only said.
    let reaped = Instant::now();
    let gone = || !Path::new(&format!("/proc/{daemon}")).exists();
    while !gone() && reaped.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    if !gone() {
        eprintln!("the PM2 daemon ({daemon}) is dead but not reaped yet by its parent");
    }
}
