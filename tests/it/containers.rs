use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::*;

fn children_of(pid: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid_here: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let i = stat.rfind(')')?;
            let ppid: i32 = stat[i + 2..].split(' ').nth(1)?.parse().ok()?;
            (ppid == pid).then_some(pid_here)
        })
        .collect()
}

#[test]
fn as_pid1_reaps_orphans_and_shuts_down_on_sigterm() {
    if Command::new("unshare").arg("--help").output().is_err() {
        eprintln!("unshare not available; skipped");
        return;
    }
    let p = Project::new(
        r#"
[services.app]
command = "sh -c 'trap \"echo graceful > stopped; exit 0\" TERM; for i in 1 2 3; do (sleep 0.05 &); done; echo yes > trapped; while true; do sleep 0.02; done'"
[services.other]
command = "sleep 1000"
"#,
    );
    let mut unshare = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(BIN)
        .arg("-c")
        .arg(p.manifest())
        .arg("up")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare");
    // tend is the child of unshare, and PID 1 inside the namespace.
    let mut tend = 0;
    wait_until(Duration::from_secs(10), "tend inside the namespace", || {
        tend = children_of(unshare.id() as i32)
            .first()
            .copied()
            .unwrap_or(0);
        tend != 0 && children_of(tend).len() >= 2 && !p.read("trapped").is_empty()
    });
    let ns_pid = std::fs::read_to_string(format!("/proc/{tend}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("NSpid:"))
        .map(|l| l.split_whitespace().last().unwrap().to_string())
        .unwrap();
    assert_eq!(ns_pid, "1", "tend runs as PID 1");
    std::thread::sleep(Duration::from_millis(300));
    let zombies = |pid: i32| {
        children_of(pid)
            .into_iter()
            .filter(|c| {
                std::fs::read_to_string(format!("/proc/{c}/stat"))
                    .is_ok_and(|s| s[s.rfind(')').unwrap() + 2..].starts_with('Z'))
            })
            .count()
    };
    wait_until(Duration::from_secs(5), "orphans reaped", || {
        zombies(tend) == 0
    });
    let services: Vec<i32> = children_of(tend);

    unsafe { libc::kill(tend, libc::SIGTERM) };
    let status = {
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = unshare.try_wait().unwrap() {
                break status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "tend did not exit on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(p.read("stopped").trim(), "graceful");
    for pid in services {
        assert!(!alive(pid), "service process {pid} survived");
    }
}

#[test]
fn sigkill_of_tend_leaves_no_orphans_after_next_up() {
    let p = Project::new(
        r#"
[tend]
cgroups = "off"

[services.app]
command = "sh -c 'sleep 1000 & echo $! > grandchild.pid; wait'"
"#,
    );
    let d = p.up();
    let tend = d.pid().unwrap();
    let leader = p.instance("app")["pid"].as_i64().unwrap() as i32;
    wait_until(Duration::from_secs(5), "grandchild pid", || {
        !p.read("grandchild.pid").trim().is_empty()
    });
    let grandchild: i32 = p.read("grandchild.pid").trim().parse().unwrap();

    unsafe { libc::kill(tend, libc::SIGKILL) };
    wait_until(Duration::from_secs(5), "tend gone", || !alive(tend));
    // PR_SET_PDEATHSIG takes the direct child with tend.
    wait_until(Duration::from_secs(5), "direct child gone", || {
        !alive(leader)
    });

    // The next `up` on the same state dir stops what the dead daemon left behind.
    let out = p.tend(&["up", "-d"]);
    let d2 = Daemon::attach(&p);
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_until(
        Duration::from_secs(5),
        "grandchild of the old run gone",
        || !alive(grandchild),
    );
    let run_id = d2.run_id.clone().expect("run id of the new daemon");
    let ours = pids_with_env(&format!("TEND_RUN_ID={run_id}"));
    wait_until(
        Duration::from_secs(5),
        "exactly one new instance tree",
        || {
            let p2: Vec<i32> = pids_with_env(&format!("TEND_RUN_ID={run_id}"));
            p2.len() == 2
        },
    );
    assert!(ours.len() <= 2, "{ours:?}");
}

#[test]
fn second_up_refuses_while_running() {
    let p = Project::new("[services.app]\ncommand = \"sleep 1000\"\n");
    let _d = p.up();
    let out = p.tend(&["up", "-d"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("already running"),
        "{}",
        text(&out.stderr)
    );
}
