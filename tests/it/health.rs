use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use crate::harness::*;

/// A tiny HTTP server on a free port that answers every request with the status the test
/// sets, and counts requests. It runs until the test process ends (a detached thread).
struct Endpoint {
    port: u16,
    status: Arc<AtomicU16>,
}

impl Endpoint {
    fn start(status: u16) -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(AtomicU16::new(status));
        let answer = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let code = answer.load(Ordering::SeqCst);
                let body = if code < 400 { "ok" } else { "down" };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Endpoint {
            port,
            status: shared,
        }
    }

    fn set(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }
}

fn ready(p: &Project, name: &str) -> bool {
    p.instance(name)["ready"].as_bool().unwrap_or(false)
}

#[test]
fn http_readiness_follows_the_endpoint_both_ways() {
    let endpoint = Endpoint::start(503);
    let p = Project::new(&format!(
        r#"
[services.api]
command = "sleep 1000"
readiness = {{ http = "http://127.0.0.1:{}/health", interval = "100ms", failure_threshold = 2 }}
"#,
        endpoint.port
    ));
    let _d = p.up_allow_failure();
    wait_until(Duration::from_secs(10), "a failing result recorded", || {
        p.instance("api")["probes"][0]["detail"] == "http 503"
    });
    assert!(!ready(&p, "api"), "503 is not ready");
    assert_eq!(
        p.instance("api")["state"],
        "running",
        "readiness never restarts"
    );
    endpoint.set(200);
    wait_until(Duration::from_secs(10), "ready after 200", || {
        ready(&p, "api")
    });
    endpoint.set(500);
    wait_until(Duration::from_secs(10), "not ready again", || {
        !ready(&p, "api")
    });
    let health = text(&p.tend(&["health", "api"]).stdout);
    assert!(
        health.contains("readiness") && health.contains("http"),
        "{health}"
    );
    assert!(health.contains("failing"), "{health}");
}

#[test]
fn liveness_failure_restarts_through_backoff_with_the_reason() {
    let endpoint = Endpoint::start(200);
    let p = Project::new(&format!(
        r#"
[services.worker]
command = "sleep 1000"
backoff = {{ initial = "50ms", max = "50ms", jitter = 0.0 }}
liveness = {{ http = "http://127.0.0.1:{}/live", interval = "100ms", failure_threshold = 3 }}
"#,
        endpoint.port
    ));
    let _d = p.up();
    wait_until(Duration::from_secs(10), "healthy", || {
        p.instance("worker")["health"] == "healthy"
    });
    let first_pid = p.instance("worker")["pid"].as_u64().unwrap();
    endpoint.set(503);
    wait_until(Duration::from_secs(20), "restarted by liveness", || {
        p.instance("worker")["restarts"].as_u64() >= Some(1)
    });
    endpoint.set(200);
    wait_until(
        Duration::from_secs(10),
        "running again with a new pid",
        || {
            let i = p.instance("worker");
            i["state"] == "running" && i["pid"].as_u64() != Some(first_pid)
        },
    );
    wait_until(Duration::from_secs(10), "the reason is in tend.log", || {
        p.read(".tend/tend.log")
            .contains("liveness: http 503 three times")
    });
}

#[test]
fn tcp_exec_and_startup_probes() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let p = Project::new(&format!(
        r#"
[services.db]
command = "sleep 1000"
readiness = {{ tcp = "127.0.0.1:{port}", interval = "100ms" }}

[services.cache]
command = "sleep 1000"
readiness = {{ exec = "test -f warm", interval = "100ms" }}
startup = {{ exec = "test -f loaded", interval = "100ms", failure_threshold = 1000 }}
liveness = {{ exec = "exit 1", interval = "100ms", failure_threshold = 1 }}
"#
    ));
    let _d = p.up();
    wait_until(Duration::from_secs(10), "tcp ready", || ready(&p, "db"));
    std::fs::write(p.file("warm"), "").unwrap();
    wait_until(Duration::from_secs(10), "exec ready", || ready(&p, "cache"));
    // Liveness would fail at once, but the startup probe has not passed: no restart.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        p.instance("cache")["restarts"],
        0,
        "startup holds liveness back"
    );
    std::fs::write(p.file("loaded"), "").unwrap();
    wait_until(
        Duration::from_secs(10),
        "liveness runs after startup",
        || p.instance("cache")["restarts"].as_u64() >= Some(1),
    );
    drop(listener);
    wait_until(Duration::from_secs(10), "tcp not ready once closed", || {
        !ready(&p, "db")
    });
}

#[test]
fn log_readiness_and_a_dependency_gated_on_it() {
    let p = Project::new(
        r#"
[services.db]
command = "sh -c 'echo booting; sleep 0.5; echo database system is ready to accept connections; exec sleep 1000'"
readiness = { log = "ready to accept connections" }

[services.app]
command = "sleep 1000"
depends_on = { db = "healthy" }
"#,
    );
    let up = p.spawn(&["up", "-d"]);
    wait_until(Duration::from_secs(10), "app waits for db", || {
        p.file(".tend/tend.sock").exists()
            && p.instance("app")["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("waiting for db"))
    });
    let _d = Daemon::attach(&p);
    let out = finish(up, Duration::from_secs(30), "up -d");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(ready(&p, "db"));
    assert_eq!(p.instance("app")["state"], "running");
    let probes = &p.instance("db")["probes"][0];
    assert_eq!(probes["kind"], "log");
    assert!(
        probes["detail"]
            .as_str()
            .unwrap()
            .contains("ready to accept connections"),
        "{probes}"
    );
}

#[test]
fn sd_notify_ready_status_and_watchdog() {
    let p = Project::new(
        r#"
[services.notifier]
command = "sh -c 'sleep 0.3; systemd-notify --ready --status=\"warmed up\"; exec sleep 1000'"
readiness = { notify = true }

[services.watched]
command = "sh -c 'echo pid=$$ watchdog_pid=$WATCHDOG_PID usec=$WATCHDOG_USEC; systemd-notify --ready; exec sleep 1000'"
readiness = { notify = true }
watchdog = "1s"
backoff = { initial = "50ms", max = "50ms", jitter = 0.0 }
"#,
    );
    let _d = p.up_allow_failure();
    wait_until(Duration::from_secs(10), "ready by READY=1", || {
        ready(&p, "notifier")
    });
    assert_eq!(p.instance("notifier")["status_text"], "warmed up");
    let status = text(&p.tend(&["status"]).stdout);
    assert!(status.contains("warmed up"), "{status}");
    wait_until(Duration::from_secs(20), "restarted by the watchdog", || {
        p.instance("watched")["restarts"].as_u64() >= Some(1)
    });
    // As systemd does: WATCHDOG_PID is the child's own pid, WATCHDOG_USEC the limit.
    let first = text(&p.tend(&["logs", "--no-prefix", "watched"]).stdout);
    let line = first.lines().next().unwrap_or_default().to_string();
    let pid = line
        .split_whitespace()
        .next()
        .and_then(|f| f.strip_prefix("pid="))
        .unwrap_or("?");
    assert_eq!(
        line,
        format!("pid={pid} watchdog_pid={pid} usec=1000000"),
        "{first}"
    );
    assert!(
        p.read(".tend/tend.log")
            .contains("watchdog: no WATCHDOG=1 within 1s"),
        "{}",
        p.read(".tend/tend.log")
    );
}

#[test]
fn max_memory_restarts_a_growing_tree_and_warnings_come_once() {
    // The shell holds 40 MB in a variable for as long as it lives (no exec: that would drop
    // it): resident memory of the tree, no helper language.
    let hog = r#"sh -c 'v=$(head -c 40000000 /dev/zero | tr "\\0" x); echo grown; sleep 1000'"#;
    let p = Project::new(&format!(
        r#"
[tend]
sample_every = "200ms"

[services.hog]
command = """{hog}"""
max_memory = "20MB"
backoff = {{ initial = "50ms", max = "50ms", jitter = 0.0 }}

[services.heavy]
command = """{hog}"""
warn_memory = "10MB"

[services.idle]
command = "sleep 1000"
"#
    ));
    let _d = p.up_allow_failure();
    wait_until(
        Duration::from_secs(30),
        "hog restarted for its memory",
        || p.instance("hog")["restarts"].as_u64() >= Some(1),
    );
    wait_until(Duration::from_secs(10), "the reason is recorded", || {
        p.read(".tend/tend.log").contains("over max_memory 20MB")
    });
    wait_until(
        Duration::from_secs(20),
        "heavy is sampled above 10MB",
        || p.instance("heavy")["rss_bytes"].as_u64() > Some(30_000_000),
    );
    wait_until(Duration::from_secs(10), "the warning is recorded", || {
        p.read(".tend/tend.log").contains("heavy: warning: memory")
    });
    // Further samples above the line do not repeat it.
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        p.read(".tend/tend.log")
            .matches("heavy: warning: memory")
            .count(),
        1
    );
    assert_eq!(
        p.instance("heavy")["restarts"],
        0,
        "a warning restarts nothing"
    );
    wait_until(Duration::from_secs(10), "idle has a CPU figure", || {
        p.instance("idle")["cpu_percent"].as_f64().is_some()
    });
    let idle = p.instance("idle");
    assert!(idle["rss_bytes"].as_u64().unwrap() > 0, "{idle}");
    let table = text(&p.tend(&["status", "idle"]).stdout);
    assert!(table.contains("CPU") && table.contains("MEM"), "{table}");
}

#[test]
fn dependents_follow_a_dependency_that_stops_being_ready() {
    let p = Project::new(
        r#"
[services.db]
command = "sleep 1000"
readiness = { exec = "test -f up", interval = "100ms", failure_threshold = 2 }

[services.stopper]
command = "sleep 1000"
depends_on = { db = { condition = "healthy", on_unready = "stop" } }

[services.restarter]
command = "sleep 1000"
depends_on = { db = { condition = "healthy", on_unready = "restart" } }

[services.bystander]
command = "sleep 1000"
depends_on = { db = "healthy" }
"#,
    );
    std::fs::write(p.file("up"), "").unwrap();
    let _d = p.up();
    let restarter_pid = p.instance("restarter")["pid"].as_u64().unwrap();
    std::fs::remove_file(p.file("up")).unwrap();
    wait_until(Duration::from_secs(10), "stopper stopped", || {
        p.instance("stopper")["state"] == "stopped"
    });
    assert_eq!(p.instance("restarter")["state"], "running");
    let bystander = p.instance("bystander");
    assert_eq!(bystander["state"], "running");
    assert_eq!(bystander["warning"], "db not ready", "{bystander}");
    let table = text(&p.tend(&["status", "bystander"]).stdout);
    assert!(table.contains("db not ready"), "{table}");

    std::fs::write(p.file("up"), "").unwrap();
    wait_until(Duration::from_secs(10), "stopper back", || {
        p.instance("stopper")["state"] == "running"
    });
    wait_until(Duration::from_secs(10), "restarter restarted", || {
        let r = p.instance("restarter");
        r["state"] == "running" && r["pid"].as_u64() != Some(restarter_pid)
    });
    assert!(p.instance("bystander")["warning"].is_null());
    assert_eq!(
        p.instance("bystander")["restarts"],
        0,
        "ignore leaves it be"
    );
}

#[test]
fn each_instance_gets_its_own_gpus_across_restarts() {
    let p = Project::new(
        r#"
[services.model]
command = "sh -c 'echo gpus=$CUDA_VISIBLE_DEVICES; exec sleep 1000'"
instances = 3
gpus = [0, 1]
gpus_per_instance = 1
"#,
    );
    let _d = p.up();
    let seen = |name: &str| text(&p.tend(&["logs", "--no-prefix", name]).stdout);
    wait_until(Duration::from_secs(10), "all three printed", || {
        (0..3).all(|i| seen(&format!("model:{i}")).contains("gpus="))
    });
    assert_eq!(seen("model:0").trim(), "gpus=0");
    assert_eq!(seen("model:1").trim(), "gpus=1");
    assert_eq!(seen("model:2").trim(), "gpus=0");
    assert!(p.tend(&["restart", "model:1"]).status.success());
    wait_until(
        Duration::from_secs(10),
        "printed again after the restart",
        || seen("model:1").lines().count() == 2,
    );
    assert_eq!(seen("model:1"), "gpus=1\ngpus=1\n", "the same device again");
    // Without an NVIDIA driver the figures are off, and tend says so once.
    if !std::path::Path::new("/proc/driver/nvidia").exists() {
        assert_eq!(
            p.read(".tend/tend.log").matches("no NVIDIA driver").count(),
            1
        );
    }
}

#[test]
fn a_critical_service_gone_fatal_ends_tend_non_zero() {
    let p = Project::new(
        r#"
[services.core]
command = "sh -c 'exit 3'"
critical = true
max_restarts = 1
backoff = { initial = "20ms", max = "20ms", jitter = 0.0 }

[services.web]
command = "sleep 1000"
"#,
    );
    let up = p.spawn(&["up"]);
    let d = Daemon::attach(&p);
    let out = finish(up, Duration::from_secs(30), "tend up");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("core: critical service failed for good"),
        "{}",
        text(&out.stderr)
    );
    if let Some(run_id) = d.run_id.clone() {
        assert!(pids_with_env(&format!("TEND_RUN_ID={run_id}")).is_empty());
    }
}

#[test]
fn exit_with_returns_the_services_own_code() {
    let p = Project::new(
        r#"
[services.job]
kind = "task"
command = "sh -c 'sleep 0.3; exit 7'"

[services.web]
command = "sleep 1000"
"#,
    );
    let up = p.spawn(&["up", "--exit-with", "job"]);
    let d = Daemon::attach(&p);
    let out = finish(up, Duration::from_secs(30), "tend up --exit-with");
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    if let Some(run_id) = d.run_id.clone() {
        assert!(
            pids_with_env(&format!("TEND_RUN_ID={run_id}")).is_empty(),
            "web was stopped too"
        );
    }
    let unknown = p.tend(&["up", "--exit-with", "nope"]);
    assert!(!unknown.status.success());
    assert!(text(&unknown.stderr).contains("unknown service `nope`"));
}

#[test]
fn max_starting_lets_a_few_start_at_a_time_in_order() {
    let services: String = ["a", "b", "c", "d"]
        .iter()
        .map(|n| {
            format!(
                "[services.{n}]\ncommand = \"sleep 1000\"\n\
                 readiness = {{ exec = \"test -f go-{n}\", interval = \"100ms\" }}\n"
            )
        })
        .collect();
    let p = Project::new(&format!("[tend]\nmax_starting = 2\n\n{services}"));
    let up = p.spawn(&["up", "-d"]);
    let _d = Daemon::attach(&p);
    let state = |n: &str| p.instance(n)["state"].as_str().unwrap_or("").to_string();
    wait_until(Duration::from_secs(10), "two started, two waiting", || {
        p.file(".tend/tend.sock").exists()
            && state("a") == "running"
            && state("b") == "running"
            && state("c") == "waiting"
            && state("d") == "waiting"
    });
    let reason = p.instance("c")["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("max_starting = 2"), "{reason}");
    std::fs::write(p.file("go-a"), "").unwrap();
    wait_until(
        Duration::from_secs(10),
        "a ready frees a slot for c",
        || state("c") == "running",
    );
    assert_eq!(state("d"), "waiting", "still two starting: b and c");
    for n in ["b", "c", "d"] {
        std::fs::write(p.file(&format!("go-{n}")), "").unwrap();
    }
    let out = finish(up, Duration::from_secs(30), "up -d");
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_until(Duration::from_secs(10), "all ready", || {
        ["a", "b", "c", "d"]
            .iter()
            .all(|n| p.instance(n)["ready"] == true)
    });
}

#[test]
fn sd_notify_reloading_is_not_ready_until_ready_again() {
    let p = Project::new(
        r#"
[services.reloader]
command = """sh -c 'systemd-notify --ready; while [ ! -f reload ]; do sleep 0.05; done; \
  systemd-notify RELOADING=1; while [ ! -f reloaded ]; do sleep 0.05; done; \
  systemd-notify --ready; exec sleep 1000'"""
readiness = { notify = true }
"#,
    );
    let _d = p.up();
    wait_until(Duration::from_secs(10), "ready", || ready(&p, "reloader"));
    std::fs::write(p.file("reload"), "").unwrap();
    wait_until(Duration::from_secs(10), "reloading, not ready", || {
        let i = p.instance("reloader");
        i["notify_phase"] == "reloading" && i["ready"] == false
    });
    let table = text(&p.tend(&["status", "reloader"]).stdout);
    assert!(table.contains("reloading"), "{table}");
    std::fs::write(p.file("reloaded"), "").unwrap();
    wait_until(Duration::from_secs(10), "ready again", || {
        let i = p.instance("reloader");
        i["ready"] == true && i["notify_phase"].is_null()
    });
}

#[test]
fn mainpid_hands_the_run_over_to_the_named_process() {
    let p = Project::new(
        r#"
[services.forker]
command = "sh -c 'sleep 1000 & echo main=$!; systemd-notify --ready MAINPID=$!; exit 0'"
readiness = { notify = true }
backoff = { initial = "50ms", max = "50ms", jitter = 0.0 }
"#,
    );
    let _d = p.up();
    wait_until(Duration::from_secs(10), "the main pid printed", || {
        text(&p.tend(&["logs", "--no-prefix", "forker"]).stdout).contains("main=")
    });
    let logs = text(&p.tend(&["logs", "--no-prefix", "forker"]).stdout);
    let main: u64 = logs
        .lines()
        .find_map(|l| l.strip_prefix("main="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    wait_until(Duration::from_secs(10), "the run follows MAINPID", || {
        p.instance("forker")["pid"].as_u64() == Some(main)
    });
    let i = p.instance("forker");
    assert_eq!(i["state"], "running");
    assert_eq!(
        i["restarts"], 0,
        "the leader's exit did not end the run: {i}"
    );
    assert_eq!(i["ready"], true);
    // The main process's own end is the run's end: restarted by policy.
    unsafe { libc::kill(main as i32, libc::SIGKILL) };
    wait_until(
        Duration::from_secs(10),
        "restarted after the main process died",
        || p.instance("forker")["restarts"].as_u64() >= Some(1),
    );
}
