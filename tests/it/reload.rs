//! `tend reload`: a replacement beside each instance of a service with `[sockets]`, ready
//! (sd_notify from its own pid) before the old process stops; under load not one request
//! fails. A replacement that never becomes ready is stopped and the old processes kept.
//! `reload_signal` is sent instead; a service without sockets is restarted.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::harness::*;

/// Serves `INSTANCE PID` on fd 3, READY=1 once serving, graceful on SIGTERM.
pub(crate) const SERVER: &str = include_str!("../../bench/reload_server.py");

fn project(manifest: &str) -> Project {
    let p = Project::new(manifest);
    std::fs::write(p.file("serve.py"), SERVER).unwrap();
    p
}

fn web(instances: u32, extra: &str) -> String {
    format!(
        r#"
[sockets.http]
listen = "tcp://127.0.0.1:0"

[services.web]
args = ["python3", "serve.py"]
instances = {instances}
sockets = ["http"]
readiness = {{ notify = true }}
{extra}
"#
    )
}

fn address(p: &Project) -> String {
    let info = p.http("GET", "/api/v1/info", "").json();
    info["sockets"][0]["address"]
        .as_str()
        .and_then(|a| a.strip_prefix("tcp://"))
        .unwrap_or_else(|| panic!("no tcp socket in {info}"))
        .to_string()
}

fn pids(p: &Project, service: &str) -> Vec<u64> {
    p.status()
        .iter()
        .filter(|i| i["service"] == service)
        .map(|i| i["pid"].as_u64().unwrap_or_else(|| panic!("no pid: {i}")))
        .collect()
}

/// One GET with a fresh connection; Err says what went wrong.
pub(crate) fn get(address: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(address).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    match answer.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.0 200") => Ok(body.to_string()),
        _ => Err(format!("bad answer {answer:?}")),
    }
}

#[derive(Default)]
struct Load {
    stop: AtomicBool,
    requests: AtomicU64,
    failures: std::sync::Mutex<Vec<String>>,
}

/// `clients` threads sending requests one after another, each on a new connection, until
/// stopped.
fn load(address: &str, clients: usize) -> (Arc<Load>, Vec<std::thread::JoinHandle<()>>) {
    let load = Arc::new(Load::default());
    let threads = (0..clients)
        .map(|_| {
            let load = load.clone();
            let address = address.to_string();
            std::thread::spawn(move || {
                while !load.stop.load(Ordering::Relaxed) {
                    match get(&address) {
                        Ok(_) => {}
                        Err(e) => load.failures.lock().unwrap().push(e),
                    }
                    load.requests.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    (load, threads)
}

#[test]
fn a_rolling_reload_under_load_fails_no_request() {
    let p = project(&web(4, ""));
    let d = p.up_ready();
    let address = address(&p);
    let (load, threads) = load(&address, 4);
    wait_until(Duration::from_secs(10), "the load to get going", || {
        load.requests.load(Ordering::Relaxed) > 20
    });
    let first = pids(&p, "web");
    let mut seen: Vec<u64> = first.clone();
    for round in 0..3 {
        let before = pids(&p, "web");
        let served_before = load.requests.load(Ordering::Relaxed);
        let out = p.tend(&["reload", "web"]);
        assert!(
            out.status.success(),
            "reload {round} failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        for i in 0..4 {
            assert!(
                text(&out.stdout).contains(&format!("web:{i}: reloaded")),
                "{}",
                text(&out.stdout)
            );
        }
        let after = pids(&p, "web");
        for (old, new) in before.iter().zip(&after) {
            assert_ne!(old, new, "round {round}: every instance has a new process");
            assert!(
                !seen.contains(new),
                "round {round}: {new} is not an old pid"
            );
        }
        seen.extend(&after);
        for old in &before {
            assert!(
                !alive(*old as i32),
                "round {round}: the old pid {old} is gone"
            );
        }
        assert!(
            load.requests.load(Ordering::Relaxed) > served_before,
            "requests were served during reload {round}"
        );
    }
    // The new processes answer.
    wait_until(Duration::from_secs(10), "a new process to answer", || {
        get(&address).is_ok_and(|body| {
            let pid: u64 = body
                .split(' ')
                .nth(1)
                .unwrap_or("0")
                .trim()
                .parse()
                .unwrap_or(0);
            pids(&p, "web").contains(&pid)
        })
    });
    load.stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().unwrap();
    }
    let failures = load.failures.lock().unwrap();
    let requests = load.requests.load(Ordering::Relaxed);
    eprintln!("{requests} requests, {} failed", failures.len());
    assert!(
        failures.is_empty(),
        "{} of {requests} requests failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    // Exactly the four instances run: no replacement or old process left over.
    let run_id = d.run_id.clone().expect("run id");
    assert_eq!(
        pids_with_env(&format!("TEND_RUN_ID={run_id}")).len(),
        4,
        "four processes"
    );
    // The history has each step.
    wait_until(Duration::from_secs(20), "the reload in the history", || {
        let out = p.tend(&["events", "--json", "--service", "web"]);
        let events: Vec<serde_json::Value> =
            serde_json::from_slice(&out.stdout).unwrap_or_default();
        let steps = |step: &str| {
            events
                .iter()
                .filter(|e| e["kind"] == "reload" && e["to_state"] == step)
                .count()
        };
        steps("started") == 12 && steps("replaced") == 12 && steps("done") == 12
    });
    assert_eq!(p.state_of("web:0"), "running");
    assert_eq!(
        p.instance("web:0")["restarts"],
        0,
        "a reload is not a restart"
    );
    // Both processes' output went to the instance's log: the old one's last words and the
    // replacement's first, each line whole.
    let now = pids(&p, "web");
    wait_until(Duration::from_secs(10), "both processes in the log", || {
        let out = p.tend(&["logs", "-n", "100", "--no-prefix", "web:0"]);
        let lines = text(&out.stdout);
        lines.contains(&format!("stopped {}\n", first[0]))
            && lines.contains(&format!("serving {}\n", now[0]))
    });
}

#[test]
fn a_replacement_that_never_becomes_ready_is_stopped_and_the_old_ones_kept() {
    never_ready("");
}

#[test]
fn without_cgroups_too_a_failed_replacement_leaves_nothing_behind() {
    // Process groups alone: the replacement's group is stopped, not the old one's.
    never_ready("[tend]\ncgroups = \"off\"\n");
}

fn never_ready(tend: &str) {
    let p = project(&format!(
        "{tend}{}",
        web(3, "reload_timeout = \"2s\"\nmax_surge = 2")
    ));
    let d = p.up_ready();
    let run_id = d.run_id.clone().expect("run id");
    let before = pids(&p, "web");
    // The next release is broken: it serves, but never says READY=1.
    std::fs::write(p.file("never-ready"), "").unwrap();
    let out = p.tend(&["reload", "web"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}{stderr}", text(&out.stdout));
    for i in 0..2 {
        assert!(
            stderr.contains(&format!("web:{i}: the replacement (pid "))
                && stderr.contains("was not ready within 2s (reload_timeout)"),
            "{stderr}"
        );
    }
    assert!(
        stderr.contains("web:2: not reloaded: the reload of web stopped when web:0 failed"),
        "{stderr}"
    );
    assert_eq!(pids(&p, "web"), before, "the old processes still serve");
    for pid in &before {
        assert!(alive(*pid as i32));
    }
    // The replacements are gone by the time reload answers.
    assert_eq!(pids_with_env(&format!("TEND_RUN_ID={run_id}")).len(), 3);
    let status = p.instance("web:0");
    assert_eq!(status["state"], "running");
    assert!(
        status["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("reload failed: ")),
        "{status}"
    );
    let address = address(&p);
    let body = get(&address).expect("the old processes answer");
    let pid: u64 = body.split(' ').nth(1).unwrap().trim().parse().unwrap();
    assert!(before.contains(&pid), "{body}");

    // Fixed (and given time: the suite loads the machine): the next reload goes through.
    std::fs::remove_file(p.file("never-ready")).unwrap();
    std::fs::write(
        p.manifest(),
        format!(
            "{tend}{}",
            web(3, "reload_timeout = \"60s\"\nmax_surge = 2")
        ),
    )
    .unwrap();
    assert!(p.tend(&["apply"]).status.success());
    let out = p.tend(&["reload", "web:1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "web:1: reloaded\n");
    let after = pids(&p, "web");
    assert_eq!((after[0], after[2]), (before[0], before[2]));
    assert_ne!(after[1], before[1]);
}

#[test]
fn reload_signal_is_sent_instead() {
    let p = Project::new(
        r#"
[services.nginxish]
args = ["python3", "-c", """
import os, signal, time
def hup(signum, frame):
    with open('hup-%s.log' % os.environ['TEND_INSTANCE'], 'a') as f:
        f.write('%d\\n' % os.getpid())
signal.signal(signal.SIGHUP, hup)
print('serving', flush=True)
while True:
    time.sleep(1)
"""]
instances = 2
reload_signal = "HUP"
readiness = { log = "^serving" }
"#,
    );
    let _d = p.up_ready();
    let before = pids(&p, "nginxish");
    let out = p.tend(&["reload", "nginxish"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "nginxish:0: reloaded\nnginxish:1: reloaded\n"
    );
    for (i, pid) in before.iter().enumerate() {
        wait_until(Duration::from_secs(10), "the HUP to arrive", || {
            p.read(&format!("hup-{i}.log")) == format!("{pid}\n")
        });
    }
    assert_eq!(pids(&p, "nginxish"), before, "the same processes");
}

#[test]
fn without_sockets_a_reload_is_a_restart() {
    let p = Project::new(
        r#"
[services.plain]
args = ["sleep", "1000"]
min_uptime = "100ms"

[services.pool]
args = ["sleep", "1000"]
instances = 2
min_uptime = "100ms"
"#,
    );
    let _d = p.up_ready();
    let plain = pids(&p, "plain");
    let pool = pids(&p, "pool");
    let out = p.tend(&["reload", "plain", "pool"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "plain: reloaded\npool:0: reloaded\npool:1: reloaded\n"
    );
    assert_ne!(pids(&p, "plain"), plain);
    let now = pids(&p, "pool");
    assert!(now[0] != pool[0] && now[1] != pool[1], "{pool:?} {now:?}");
    for old in plain.iter().chain(&pool) {
        assert!(!alive(*old as i32));
    }
    // A stopped instance is not reloaded (that is `tend start`), and says so.
    assert!(p.tend(&["stop", "plain"]).status.success());
    let out = p.tend(&["reload", "plain"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "plain: not running (stopped)\n");
    assert_eq!(p.state_of("plain"), "stopped");
}

fn environ_has(pid: u64, entry: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .any(|e| e == entry.as_bytes())
}

#[test]
fn apply_reloads_a_changed_service_with_sockets_without_a_gap() {
    // A generous timeout where a replacement must become ready (the suite loads the
    // machine), a short one where it must not.
    let manifest = |version: &str, timeout: &str| {
        web(
            2,
            &format!("env = {{ VERSION = \"{version}\" }}\nreload_timeout = \"{timeout}\"\n"),
        )
    };
    let p = project(&manifest("1", "60s"));
    let _d = p.up_ready();
    let address = address(&p);
    let before = pids(&p, "web");
    let (load, threads) = load(&address, 2);
    wait_until(Duration::from_secs(10), "the load to get going", || {
        load.requests.load(Ordering::Relaxed) > 20
    });

    std::fs::write(p.manifest(), manifest("2", "60s")).unwrap();
    let diff = p.tend(&["diff"]);
    assert!(
        text(&diff.stdout).contains("~ web: env.VERSION changed (reload: "),
        "{}",
        text(&diff.stdout)
    );
    let out = p.tend(&["apply"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("reloaded: web:0, web:1"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        !text(&out.stdout).contains("stopped:"),
        "{}",
        text(&out.stdout)
    );
    let after = pids(&p, "web");
    for (old, new) in before.iter().zip(&after) {
        assert_ne!(old, new);
        assert!(
            environ_has(*new, "VERSION=2"),
            "pid {new} runs the new settings"
        );
        assert!(!alive(*old as i32));
    }

    // A release that never becomes ready: the old processes keep serving, and apply says so.
    // reload_timeout changes at once (an update), so the new one governs this reload.
    std::fs::write(p.file("never-ready"), "").unwrap();
    std::fs::write(p.manifest(), manifest("3", "3s")).unwrap();
    let out = p.tend(&["apply"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("web:0: not reloaded, the old process runs with the previous settings: the replacement (pid")
            && stderr.contains("was not ready within 3s (reload_timeout)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("web:1: not reloaded, the old process runs with the previous settings: not reloaded: the reload of web stopped when web:0 failed"),
        "{stderr}"
    );
    assert_eq!(pids(&p, "web"), after, "the old processes still serve");
    // The new settings are in force: the next process runs them.
    std::fs::remove_file(p.file("never-ready")).unwrap();
    std::fs::write(p.manifest(), manifest("3", "60s")).unwrap();
    let out = p.tend(&["apply"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("~ web: reload_timeout changed (update, nothing restarts)"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(pids(&p, "web"), after, "an update restarts nothing");
    let out = p.tend(&["reload", "web"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for pid in pids(&p, "web") {
        assert!(environ_has(pid, "VERSION=3"), "pid {pid}");
    }

    load.stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().unwrap();
    }
    let failures = load.failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        load.requests.load(Ordering::Relaxed),
        &failures[..failures.len().min(10)]
    );
}
