use std::time::Duration;

use crate::harness::*;

#[test]
fn crash_loop_backs_off_then_goes_fatal() {
    let p = Project::new(
        r#"
[services.crashy]
command = "sh -c 'echo run >> runs; echo boom >&2; exit 3'"
backoff = { initial = "50ms", max = "200ms", factor = 2.0, jitter = 0.0 }
max_restarts = 3
restart_window = "60s"
"#,
    );
    let _d = p.up_allow_failure();
    p.wait_state("crashy", "fatal", Duration::from_secs(20));
    let crashy = p.instance("crashy");
    assert_eq!(crashy["restarts"], 3);
    assert_eq!(crashy["exit_code"], 3);
    assert_eq!(crashy["pid"], serde_json::Value::Null);
    assert!(
        crashy["reason"].as_str().unwrap().contains("giving up"),
        "{crashy}"
    );
    assert_eq!(
        p.read("runs").lines().count(),
        4,
        "first run plus three restarts"
    );
    // Stays fatal: no further runs.
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(p.read("runs").lines().count(), 4);
    // A manual start leaves fatal.
    let out = p.tend(&["start", "crashy"]);
    assert!(!out.status.success(), "the start fails again, and says so");
    assert!(
        text(&out.stderr).contains("crashy"),
        "{}",
        text(&out.stderr)
    );
    wait_until(Duration::from_secs(10), "a fifth run", || {
        p.read("runs").lines().count() >= 5
    });
}

#[test]
fn cooldown_leaves_fatal_by_itself() {
    let p = Project::new(
        r#"
[services.flaky]
command = "sh -c 'echo run >> runs; exit 1'"
max_restarts = 0
cooldown = "300ms"
"#,
    );
    let _d = p.up_allow_failure();
    wait_until(
        Duration::from_secs(20),
        "three tries through cooldown",
        || p.read("runs").lines().count() >= 3,
    );
    let state = p.state_of("flaky");
    assert!(
        ["fatal", "starting", "running"].contains(&state.as_str()),
        "{state}"
    );
}

#[test]
fn on_failure_and_never_policies() {
    let p = Project::new(
        r#"
[services.clean]
command = "sh -c 'echo run >> clean; exit 0'"
restart = "on-failure"

[services.accepted]
command = "sh -c 'echo run >> accepted; exit 7'"
restart = "on-failure"
exit_codes = [0, 7]

[services.once]
command = "sh -c 'echo run >> once; exit 1'"
restart = "never"
"#,
    );
    let _d = p.up_allow_failure();
    for name in ["clean", "accepted", "once"] {
        p.wait_state(name, "exited", Duration::from_secs(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    for name in ["clean", "accepted", "once"] {
        assert_eq!(p.read(name).lines().count(), 1, "{name} ran once");
    }
    assert_eq!(p.instance("once")["exit_code"], 1);
}

#[test]
fn restart_replaces_the_process_and_skips_backoff() {
    let p = Project::new(
        r#"
[services.app]
command = "sleep 1000"
backoff = { initial = "1h", max = "1h" }
min_uptime = "100ms"
"#,
    );
    let _d = p.up();
    let first = p.instance("app")["pid"].as_i64().unwrap() as i32;
    let out = p.tend(&["restart", "app"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let second = p.instance("app")["pid"].as_i64().unwrap() as i32;
    assert_ne!(first, second);
    assert!(!alive(first));
    assert_eq!(p.instance("app")["restarts"], 1);
    // A crash would wait an hour; restart does not.
    unsafe { libc::kill(second, libc::SIGKILL) };
    p.wait_state("app", "backoff", Duration::from_secs(10));
    assert_eq!(p.instance("app")["exit_signal"], "SIGKILL");
    let out = p.tend(&["restart", "app"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(p.state_of("app"), "running");
}

#[test]
fn restart_answers_once_the_new_process_runs() {
    // Slow to stop: a restart that answered at once would leave the old process in status.
    let p = Project::new(
        r#"
[services.app]
command = "sh -c 'trap \"sleep 0.5; exit 0\" TERM; while true; do sleep 0.05; done'"
min_uptime = "100ms"
"#,
    );
    let _d = p.up_ready();
    let first = p.instance("app")["pid"].as_i64().unwrap() as i32;
    let out = p.tend(&["restart", "app"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let app = p.instance("app");
    assert_eq!(app["state"], "running", "{app}");
    assert_ne!(app["pid"].as_i64(), Some(i64::from(first)), "{app}");
    assert!(!alive(first));
}

#[test]
fn killed_child_is_restarted_at_once_with_zero_backoff() {
    let p = Project::new(
        r#"
[services.app]
command = "sleep 1000"
backoff = { initial = "0s", max = "0s" }
max_restarts = 1000
"#,
    );
    let _d = p.up();
    for round in 0..5 {
        let pid = p.instance("app")["pid"].as_i64().unwrap() as i32;
        unsafe { libc::kill(pid, libc::SIGKILL) };
        wait_until(Duration::from_secs(10), "a new pid", || {
            let i = p.instance("app");
            i["state"] == "running" && i["pid"].as_i64() != Some(pid as i64)
        });
        assert_eq!(p.instance("app")["restarts"], round + 1);
    }
}

#[test]
fn stop_timeout_escalates_to_sigkill() {
    let p = Project::new(
        r#"
[services.stubborn]
command = "sh -c 'trap \"echo ignored >> got_term\" TERM; while true; do sleep 0.05; done'"
stop_timeout = "300ms"
"#,
    );
    let _d = p.up();
    let out = p.tend(&["stop", "stubborn"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(p.state_of("stubborn"), "stopped");
    assert!(p.read("got_term").contains("ignored"));
    assert_eq!(p.instance("stubborn")["exit_signal"], "SIGKILL");
}

#[test]
fn running_out_of_descriptors_backs_off_even_with_a_zero_backoff_and_recovers() {
    // 40 instances need about 80 descriptors; tend gets 64. Those that cannot be spawned
    // must wait (visibly, in `backoff`) instead of retrying without a pause, and start once
    // descriptors are there again.
    let mut manifest = String::from("[tend]\nhistory = { enabled = false }\n");
    for i in 0..40 {
        manifest.push_str(&format!(
            "\n[services.s{i:02}]\ncommand = \"sleep 1000\"\n\
             backoff = {{ initial = \"0s\", max = \"0s\" }}\nmax_restarts = 100000\n"
        ));
    }
    let p = Project::new(&manifest);
    let up = {
        use std::os::unix::process::CommandExt;
        let mut command = p.command(&["up", "-d"]);
        unsafe {
            command.pre_exec(|| {
                let mut rlimit = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rlimit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The soft limit only, so that the test may lift it again.
                rlimit.rlim_cur = 64;
                if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command.spawn().unwrap()
    };
    wait_until(
        Duration::from_secs(30),
        "the daemon to write its pid",
        || p.file(".tend/tend.pid").exists(),
    );
    let d = Daemon::attach(&p);
    wait_until(
        Duration::from_secs(30),
        "a spawn to fail for descriptors",
        || p.read(".tend/tend.log").contains("Too many open files"),
    );
    let own = p.read(".tend/tend.log");
    let failure = own
        .lines()
        .find(|l| l.contains("spawn failed: Too many open files"))
        .unwrap_or_else(|| panic!("no spawn failure in {own}"));
    assert!(
        failure.contains("restarting in 1s"),
        "a failed spawn waits the floor: {failure}"
    );
    let tend = d.pid().expect("the daemon's pid");
    let mut hard = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut hard) };
    let enough = libc::rlimit {
        rlim_cur: hard.rlim_max.min(4096),
        rlim_max: hard.rlim_max,
    };
    assert_eq!(
        unsafe { libc::prlimit(tend, libc::RLIMIT_NOFILE, &enough, std::ptr::null_mut()) },
        0
    );
    // `up -d` tells what failed to start, and why, if it asked while the instances failed.
    // Out of descriptors, the daemon cannot accept the request until the limit is lifted;
    // by then the retries may run, and it says so instead.
    let up = finish(up, Duration::from_secs(60), "up -d");
    if up.status.success() {
        assert!(
            text(&up.stdout).contains("40 instance(s) up"),
            "{}",
            text(&up.stdout)
        );
    } else {
        assert!(
            text(&up.stderr).contains("Too many open files"),
            "{}",
            text(&up.stderr)
        );
    }
    wait_until(Duration::from_secs(30), "all 40 to run", || {
        p.status().iter().all(|i| i["state"] == "running")
    });
    let retried = p.status().iter().filter(|i| i["restarts"] != 0).count();
    assert!(retried > 0, "some instance needed a retry");
}

/// A child's exit reaches the daemon only through the reaper's signalfd: SIGCHLD is blocked
/// in every one of its threads (so it wakes the engine, not the thread that forked), and a
/// killed child is still restarted. The threads behind the engine run as SCHED_BATCH.
#[test]
fn child_exits_reach_the_engine_through_a_signalfd_and_helpers_never_preempt_it() {
    let p = Project::new(
        r#"
[services.sleeper]
command = "sleep 600"
backoff = { initial = "0s", max = "0s" }
"#,
    );
    let d = p.up();
    let daemon = d.pid().expect("daemon pid");
    let pid = p.instance("sleeper")["pid"].as_i64().expect("running") as i32;
    let tasks = std::fs::read_dir(format!("/proc/{daemon}/task")).unwrap();
    let mut batch = Vec::new();
    for task in tasks {
        let task = task.unwrap().path();
        let name = std::fs::read_to_string(task.join("comm")).unwrap();
        let status = std::fs::read_to_string(task.join("status")).unwrap();
        let blocked = status
            .lines()
            .find_map(|l| l.strip_prefix("SigBlk:"))
            .map(|mask| u64::from_str_radix(mask.trim(), 16).unwrap())
            .unwrap();
        assert_ne!(
            blocked & (1 << (libc::SIGCHLD - 1)),
            0,
            "thread {} takes SIGCHLD",
            name.trim()
        );
        // SAFETY: a plain query of a thread of the daemon by its id.
        let tid: i32 = task.file_name().unwrap().to_str().unwrap().parse().unwrap();
        if unsafe { libc::sched_getscheduler(tid) } == libc::SCHED_BATCH {
            batch.push(name.trim().to_string());
        }
    }
    batch.sort();
    assert_eq!(batch, ["tend-history", "tend-logs"]);
    let signalfds = std::fs::read_dir(format!("/proc/{daemon}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.unwrap().path()).ok())
        .filter(|target| target.to_string_lossy() == "anon_inode:[signalfd]")
        .count();
    assert_eq!(signalfds, 1);
    // SAFETY: a signal to the child this test's daemon started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_until(Duration::from_secs(20), "a new child", || {
        p.instance("sleeper")["pid"]
            .as_i64()
            .is_some_and(|new| new as i32 != pid)
    });
    assert_eq!(p.instance("sleeper")["restarts"], 1);
}

#[test]
fn the_daemon_sizes_its_descriptor_table_for_its_instances_before_it_starts_them() {
    // Grown later, by the threads and children sharing it, the table is replaced only after
    // an RCU grace period (up to 24 ms a time on the benchmark machine). 100 instances hold
    // about 280 descriptors; tend reserves 4 a instance and 256 beside them.
    let p = Project::new(
        r#"
[tend]
history = { enabled = false }

[services.idle]
command = "sleep 1000"
instances = 100
"#,
    );
    let d = p.up();
    let pid = d.pid().expect("the daemon's pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let size: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("FDSize:"))
        .map(|s| s.trim().parse().unwrap())
        .unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let soft: u64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .map(|s| s.parse().unwrap())
        .unwrap();
    assert!(
        size >= soft.min(256 + 4 * 100),
        "FDSize {size}, limit {soft}"
    );
}
