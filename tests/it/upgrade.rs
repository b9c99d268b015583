//! `tend upgrade` (and SIGUSR2): the daemon executes a binary in place of itself. Its
//! children go on with the same pids, their output loses and doubles no line, its sockets
//! keep serving, restarts and `down` work after; a binary that cannot take over is refused,
//! and a new image that cannot take over hands everything back to the old binary.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;
use crate::reload::{SERVER, get};

/// Writes `line N end` for N = 1, 2, … in two writes each (so a partial line is often held
/// when capture pauses), with a short rest every 50 lines.
const COUNTER: &str = r#"
[services.counter]
args = ["sh", "-c", "i=0; while :; do i=$((i+1)); printf 'line %d' $i; printf ' end\n'; [ $((i % 50)) = 0 ] && sleep 0.01; done"]
min_uptime = "100ms"
"#;

const LIMIT: Duration = Duration::from_secs(30);

/// A second name for the tend binary, as an installed newer version would be: the daemon
/// runs it from this path after the upgrade.
fn next_binary(p: &Project) -> PathBuf {
    let next = p.file("tend-next");
    if fs::hard_link(BIN, &next).is_err() {
        fs::copy(BIN, &next).expect("copy the tend binary");
    }
    next
}

fn info(p: &Project) -> Value {
    p.http("GET", "/api/v1/info", "").json()
}

fn exe(pid: i32) -> PathBuf {
    fs::read_link(format!("/proc/{pid}/exe")).expect("the daemon's binary")
}

fn pids(p: &Project) -> Vec<(String, u64)> {
    p.status()
        .iter()
        .filter_map(|i| Some((i["name"].as_str()?.to_string(), i["pid"].as_u64()?)))
        .collect()
}

fn upgrade(p: &Project, args: &[&str]) -> std::process::Output {
    let mut all = vec!["upgrade"];
    all.extend_from_slice(args);
    p.tend(&all)
}

fn assert_upgraded(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "tend upgrade failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("upgraded in place"),
        "{}",
        text(&out.stdout)
    );
}

/// The counter's log lines so far.
fn counted(p: &Project) -> Vec<String> {
    fs::read_to_string(p.file(".tend/logs/counter.out.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Every line is `line N end` with N = 1, 2, … without a gap or a repeat; the very last
/// may have been cut by the stop.
fn assert_unbroken(lines: &[String]) {
    assert!(!lines.is_empty(), "no output");
    for (n, line) in lines.iter().enumerate() {
        let whole = format!("line {} end", n + 1);
        let last = n + 1 == lines.len();
        assert!(
            *line == whole || (last && whole.starts_with(line.as_str())),
            "line {} of the log is {line:?}, not {whole:?} (around it: {:?})",
            n + 1,
            &lines[n.saturating_sub(2)..(n + 3).min(lines.len())]
        );
    }
}

#[test]
fn children_go_on_with_their_pids_and_no_line_is_lost_or_doubled() {
    let p = Project::new(COUNTER);
    let d = p.up();
    let daemon = d.pid().expect("daemon pid");
    wait_until(LIMIT, "the counter to write", || counted(&p).len() > 300);
    let (mut follower, followed) = follow(&p);
    wait_until(LIMIT, "`logs -f` to follow", || {
        followed.lock().unwrap().len() > 10
    });
    let before = p.instance("counter");
    let next = next_binary(&p);
    let out = upgrade(&p, &["--binary", next.to_str().unwrap()]);
    assert_upgraded(&out);

    assert_eq!(d.pid(), Some(daemon), "the same daemon process");
    assert_eq!(exe(daemon), next, "running the new binary");
    let after = p.instance("counter");
    assert_eq!(after["pid"], before["pid"], "the same child: {after}");
    assert_eq!(after["restarts"], 0);
    assert!(
        after["uptime_ms"].as_u64() >= before["uptime_ms"].as_u64(),
        "the uptime goes on: {before} then {after}"
    );
    let info = info(&p);
    assert_eq!(info["pid"], daemon);
    assert_eq!(info["upgrades"], 1, "{info}");
    assert_eq!(info["last_upgrade"]["ok"], true, "{info}");
    assert_eq!(info["last_upgrade"]["binary"], next.to_str().unwrap());
    // The tail the old image kept is served by the new one.
    let tail = p.tend(&["logs", "-n", "5", "--no-prefix", "counter"]);
    assert_eq!(
        text(&tail.stdout).lines().count(),
        5,
        "{}",
        text(&tail.stdout)
    );

    let at_upgrade = counted(&p).len();
    wait_until(LIMIT, "the counter to write on", || {
        counted(&p).len() > at_upgrade + 300
    });
    // `logs -f` went on through the upgrade (from the tail the new image took over).
    wait_until(LIMIT, "`logs -f` to follow on", || {
        followed
            .lock()
            .unwrap()
            .last()
            .is_some_and(|n| *n > at_upgrade + 100)
    });
    let stop = p.tend(&["stop", "counter"]);
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    assert_unbroken(&counted(&p));
    // The history goes on: the old image's audit row, then the new one's.
    wait_until(LIMIT, "both images to be in the audit", || {
        let audit = p.http("GET", "/api/v1/audit", "").json();
        let rows: Vec<String> = audit
            .as_array()
            .unwrap()
            .iter()
            .filter(|row| row["action"] == "upgrade" && row["ok"] == true)
            .map(|row| row["result"].as_str().unwrap_or_default().to_string())
            .collect();
        rows.len() == 2 && rows[0].starts_with("executing") && rows[1].starts_with("taken over")
    });
    let _ = follower.kill();
    let _ = follower.wait();
    let seen = followed.lock().unwrap().clone();
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "`logs -f` printed no line twice and kept the order: {:?}",
        seen.windows(2).find(|w| w[0] >= w[1])
    );
}

/// `tend logs -f --no-prefix counter`, and the numbers of the lines it prints so far.
fn follow(p: &Project) -> (std::process::Child, Arc<std::sync::Mutex<Vec<usize>>>) {
    use std::io::BufRead;
    let mut child = p.spawn(&["logs", "-f", "-n", "1", "--no-prefix", "counter"]);
    let stdout = child.stdout.take().unwrap();
    let numbers = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = numbers.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line
                .strip_prefix("line ")
                .and_then(|rest| rest.strip_suffix(" end"))
                .and_then(|n| n.parse().ok())
            {
                seen.lock().unwrap().push(n);
            }
        }
    });
    (child, numbers)
}

#[test]
fn sockets_and_sd_notify_keep_working_across_an_upgrade() {
    let p = Project::new(
        r#"
[sockets.http]
listen = "tcp://127.0.0.1:0"

[services.web]
args = ["python3", "serve.py"]
instances = 2
sockets = ["http"]
readiness = { notify = true }
reload_timeout = "60s"
"#,
    );
    fs::write(p.file("serve.py"), SERVER).unwrap();
    let _d = p.up_ready();
    let address = info(&p)["sockets"][0]["address"]
        .as_str()
        .and_then(|a| a.strip_prefix("tcp://"))
        .expect("the socket's address")
        .to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let client = {
        let (stop, served, failures) = (stop.clone(), served.clone(), failures.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match get(&address) {
                    Ok(_) => served.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        failures.lock().unwrap().push(e);
                        0
                    }
                };
            }
        })
    };
    wait_until(LIMIT, "requests to be served", || {
        served.load(Ordering::Relaxed) > 20
    });
    let before = pids(&p);
    assert_upgraded(&upgrade(&p, &[]));
    let at_upgrade = served.load(Ordering::Relaxed);
    wait_until(LIMIT, "requests to be served after the upgrade", || {
        served.load(Ordering::Relaxed) > at_upgrade + 20
    });
    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();
    assert_eq!(*failures.lock().unwrap(), Vec::<String>::new());
    assert_eq!(pids(&p), before);
    assert!(
        p.status().iter().all(|i| i["ready"] == true),
        "still ready: {:?}",
        p.status()
    );
    // A reload after the upgrade: each replacement's READY=1 reaches the adopted sd_notify
    // socket, and the replacements take over.
    let reload = p.tend(&["reload", "web"]);
    assert!(
        reload.status.success(),
        "{}{}",
        text(&reload.stdout),
        text(&reload.stderr)
    );
    let reloaded = pids(&p);
    assert!(
        reloaded
            .iter()
            .all(|(_, pid)| !before.iter().any(|(_, b)| b == pid)),
        "new processes: {before:?} then {reloaded:?}"
    );
}

#[test]
fn a_child_that_dies_after_an_upgrade_is_restarted_and_down_leaves_nothing() {
    let p = Project::new(
        r#"
[services.worker]
command = "sleep 300"
instances = 2
min_uptime = "100ms"
backoff = { initial = "0s", max = "0s" }
"#,
    );
    let d = p.up_ready();
    let daemon = d.pid().expect("daemon pid");
    let run_id = d.run_id.clone().expect("run id");
    let scaled = p.tend(&["scale", "worker", "3"]);
    assert!(scaled.status.success(), "{}", text(&scaled.stderr));
    wait_until(LIMIT, "three workers to run", || {
        let status = p.status();
        status.len() == 3 && status.iter().all(|i| i["state"] == "running")
    });
    let before = pids(&p);
    assert_upgraded(&upgrade(&p, &[]));
    assert_eq!(pids(&p), before, "the scaled count and its processes go on");
    let diff = p.tend(&["diff"]);
    assert_eq!(
        diff.status.code(),
        Some(0),
        "the count set by scale is still kept: {}",
        text(&diff.stdout)
    );

    let (name, victim) = before[1].clone();
    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    wait_until(LIMIT, "the killed worker to be restarted", || {
        let i = p.instance(&name);
        i["state"] == "running" && i["pid"].as_u64().is_some_and(|pid| pid != victim)
    });
    assert_eq!(p.instance(&name)["restarts"], 1);

    let down = p.tend(&["down"]);
    assert!(down.status.success(), "{}", text(&down.stderr));
    wait_until(LIMIT, "the daemon to exit", || !alive(daemon));
    assert_eq!(
        pids_with_env(&format!("TEND_RUN_ID={run_id}")),
        Vec::<i32>::new(),
        "nothing of the run is left"
    );
}

/// A file in the project that is not a tend taking over.
fn write_script(p: &Project, name: &str, body: &str, mode: u32) -> String {
    let path = p.file(name);
    fs::write(&path, body).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn a_binary_that_cannot_take_over_is_refused_and_everything_runs_on() {
    let p = Project::new(COUNTER);
    let d = p.up();
    let daemon = d.pid().expect("daemon pid");
    wait_until(LIMIT, "the counter to write", || counted(&p).len() > 100);
    let before = pids(&p);
    let candidates = [
        (
            write_script(
                &p,
                "not-executable",
                "#!/bin/sh\necho tend-handover 1\n",
                0o644,
            ),
            "Permission denied",
        ),
        (
            write_script(&p, "fails", "#!/bin/sh\necho oops >&2\nexit 1\n", 0o755),
            "exit status 1",
        ),
        (
            write_script(
                &p,
                "other-version",
                "#!/bin/sh\necho tend-handover 99\n",
                0o755,
            ),
            "version(s) [99]",
        ),
        (
            write_script(&p, "garbage", "#!/bin/sh\necho hello\n", 0o755),
            "printed `hello`",
        ),
        (
            p.file("missing").to_str().unwrap().to_string(),
            "No such file",
        ),
    ];
    for (binary, why) in &candidates {
        let out = upgrade(&p, &["--binary", binary]);
        assert_eq!(out.status.code(), Some(1), "{binary} was not refused");
        let said = text(&out.stderr);
        assert!(
            said.contains("not upgraded") && said.contains(why),
            "{binary}: {said}"
        );
    }
    assert_eq!(d.pid(), Some(daemon));
    assert_eq!(exe(daemon), Path::new(BIN));
    assert_eq!(pids(&p), before);
    let info = info(&p);
    assert_eq!(info["upgrades"], 0, "{info}");
    assert!(
        info.get("last_upgrade").is_none(),
        "no exec happened: {info}"
    );
    // Capture went on all along.
    let now = counted(&p).len();
    wait_until(LIMIT, "the counter to write on", || {
        counted(&p).len() > now + 100
    });
    let stop = p.tend(&["stop", "counter"]);
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    assert_unbroken(&counted(&p));
    // The refusals are in the audit (written in batches), with the reason.
    wait_until(LIMIT, "the refusals to be in the audit", || {
        let audit = p.http("GET", "/api/v1/audit", "").json();
        audit
            .as_array()
            .unwrap()
            .iter()
            .filter(|row| row["action"] == "upgrade" && row["ok"] == false)
            .count()
            == candidates.len()
    });
}

#[test]
fn an_edited_manifest_refuses_the_upgrade_until_it_is_applied() {
    let p = Project::new(COUNTER);
    let _d = p.up();
    fs::write(
        p.manifest(),
        format!("{COUNTER}\n[services.extra]\ncommand = \"sleep 300\"\n"),
    )
    .unwrap();
    let out = upgrade(&p, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("differs from what runs"),
        "{}",
        text(&out.stderr)
    );
    let applied = p.tend(&["apply"]);
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    assert_upgraded(&upgrade(&p, &[]));
    assert_eq!(p.state_of("extra"), "running");
}

#[test]
fn sigusr2_upgrades_a_foreground_tend() {
    let p = Project::new(
        r#"
[services.greeter]
command = "sh -c 'echo hello; exec sleep 300'"
"#,
    );
    let mut up = p.spawn(&["up"]);
    // Stops it whatever happens below; attached again once run.json names the run.
    let _early = Daemon::attach(&p);
    wait_until(LIMIT, "the daemon to answer", || {
        p.socket().exists() && p.state_of("greeter") == "running"
    });
    let d = Daemon::attach(&p);
    let daemon = d.pid().expect("daemon pid");
    assert_eq!(
        daemon,
        up.id() as i32,
        "the foreground process is the daemon"
    );
    let before = pids(&p);
    unsafe { libc::kill(daemon, libc::SIGUSR2) };
    // A request that meets the exec loses its connection (docs/cli.md): ask again.
    wait_until(LIMIT, "the upgrade to be done", || {
        p.try_http("GET", "/api/v1/info", "")
            .is_some_and(|answer| answer.json()["upgrades"] == 1)
    });
    assert_eq!(pids(&p), before);
    let down = p.tend(&["down"]);
    assert!(down.status.success(), "{}", text(&down.stderr));
    let status = wait_exit(&mut up);
    assert!(status.success(), "the foreground tend ends well: {status}");
    // Its console (stdout) and its own log (stderr) are the same across the exec.
    let mut echoed = String::new();
    up.stdout
        .take()
        .unwrap()
        .read_to_string(&mut echoed)
        .unwrap();
    assert!(echoed.contains("hello"), "{echoed}");
    let mut said = String::new();
    up.stderr.take().unwrap().read_to_string(&mut said).unwrap();
    assert!(said.contains("SIGUSR2"), "{said}");
    assert!(said.contains("upgraded in place"), "{said}");
}

fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let mut status = None;
    wait_until(LIMIT, "the foreground tend to exit", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    status.unwrap()
}

#[test]
fn a_new_image_that_cannot_take_over_hands_everything_back() {
    // The wrapper runs tend for the check, but as the new image it takes away a variable
    // the manifest needs: tend then cannot read the manifest, and executes the previous
    // binary again, with the environment the old image had.
    let p = Project::new(
        r#"
[services.sleeper]
command = "sleep ${NAP}"
"#,
    );
    let wrapper = write_script(
        &p,
        "wrapper",
        &format!("#!/bin/sh\n[ -n \"$TEND_HANDOVER\" ] && unset NAP\nexec {BIN} \"$@\"\n"),
        0o755,
    );
    let out = Command::new(BIN)
        .arg("-c")
        .arg(p.manifest())
        .args(["up", "-d"])
        .env("NAP", "300")
        .env_remove("TEND_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tend");
    let out = finish(out, LIMIT, "tend up -d");
    let d = Daemon::attach(&p);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let daemon = d.pid().expect("daemon pid");
    let before = pids(&p);
    let out = upgrade(&p, &["--binary", &wrapper]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("NAP"),
        "says why: {}",
        text(&out.stderr)
    );
    assert_eq!(d.pid(), Some(daemon));
    assert_eq!(exe(daemon), Path::new(BIN), "the previous binary again");
    assert_eq!(pids(&p), before);
    let info = info(&p);
    assert_eq!(info["upgrades"], 0, "{info}");
    assert_eq!(info["last_upgrade"]["ok"], false, "{info}");
    // It supervises as before: a kill is a restart.
    let (name, victim) = before[0].clone();
    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    wait_until(LIMIT, "the sleeper to be restarted", || {
        let i = p.instance(&name);
        i["state"] == "running" && i["pid"].as_u64().is_some_and(|pid| pid != victim)
    });
}

#[test]
fn an_upgrade_waits_for_a_reload_and_is_refused_when_it_does_not_end() {
    // A replacement that never says READY=1: the reload goes on until its long timeout, and
    // the upgrade, after waiting a while, is refused saying so; nothing changed meanwhile.
    let p = Project::new(
        r#"
[sockets.http]
listen = "tcp://127.0.0.1:0"

[services.web]
args = ["sh", "-c", "[ -e started ] && exec sleep 300; touch started; exec python3 serve.py"]
sockets = ["http"]
readiness = { notify = true }
reload_timeout = "120s"
"#,
    );
    fs::write(p.file("serve.py"), SERVER).unwrap();
    let _d = p.up_ready();
    let before = pids(&p);
    let reload = p.spawn(&["reload", "web"]);
    wait_until(LIMIT, "the replacement to run", || {
        p.instance("web")["replacement_pid"].is_u64()
    });
    let out = upgrade(&p, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("reload"),
        "says why: {}",
        text(&out.stderr)
    );
    assert_eq!(pids(&p), before);
    assert_eq!(info(&p)["upgrades"], 0);
    // `down` ends the reload, and the client waiting for it.
    let down = p.tend(&["down"]);
    assert!(down.status.success(), "{}", text(&down.stderr));
    finish(reload, LIMIT, "tend reload");
}
