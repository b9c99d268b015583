use std::time::Duration;

use crate::harness::*;

#[test]
fn status_json_has_the_documented_fields() {
    let p = Project::new(
        r#"
[services.web]
command = "sleep 1000"
groups = ["front"]

[services.job]
kind = "task"
command = "sh -c 'exit 0'"
"#,
    );
    let _d = p.up();
    let status = p.status();
    assert_eq!(status.len(), 2);
    let web = status.iter().find(|i| i["name"] == "web").unwrap();
    for key in [
        "name",
        "service",
        "instance",
        "state",
        "pid",
        "uptime_ms",
        "restarts",
        "exit_code",
        "exit_signal",
    ] {
        assert!(web.get(key).is_some(), "missing {key} in {web}");
    }
    assert_eq!(
        web["state"],
        "running",
        "{status:?}\n{}",
        p.read(".tend/tend.log")
    );
    assert!(web["pid"].as_i64().unwrap() > 1);
    // Targets: a group, an unknown name.
    let out = p.tend(&["status", "--json", "front"]);
    let front: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(front.len(), 1);
    let out = p.tend(&["status", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unknown target `nosuch`"),
        "{}",
        text(&out.stderr)
    );
    // The table.
    let out = p.tend(&["ps"]);
    let table = text(&out.stdout);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("web") && l.contains("running")),
        "{table}"
    );
}

#[test]
fn logs_and_signals() {
    let p = Project::new(
        r#"
[services.talker]
command = "sh -c 'echo hello out; echo hello err >&2; trap \"echo got usr1\" USR1; while true; do sleep 0.02; done'"
"#,
    );
    let _d = p.up();
    wait_until(Duration::from_secs(5), "output captured", || {
        text(&p.tend(&["logs", "talker"]).stdout).contains("hello err")
    });
    let out = p.tend(&["logs", "talker", "--stream", "out", "--no-prefix"]);
    assert_eq!(text(&out.stdout), "hello out\n");
    assert!(p.file(".tend/logs/talker.out.log").exists());
    assert!(p.file(".tend/logs/talker.err.log").exists());

    let out = p.tend(&["signal", "USR1", "talker"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_until(Duration::from_secs(5), "trap output", || {
        text(&p.tend(&["logs", "talker"]).stdout).contains("got usr1")
    });
    let out = p.tend(&["signal", "BOGUS", "talker"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unknown signal"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn no_daemon_is_one_line_and_exit_1() {
    let p = Project::new("[services.web]\ncommand = \"sleep 1000\"\n");
    let out = p.tend(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("not running"), "{stderr}");
}

#[test]
fn socket_is_private_and_down_stops_everything() {
    use std::os::unix::fs::PermissionsExt;
    let p = Project::new("[services.web]\ncommand = \"sleep 1000\"\ninstances = 2\n");
    let d = p.up();
    let mode = std::fs::metadata(p.file(".tend/tend.sock"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let pids: Vec<i32> = p
        .status()
        .iter()
        .map(|i| i["pid"].as_i64().unwrap() as i32)
        .collect();
    let tend = d.pid().unwrap();
    let out = p.tend(&["down"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!alive(tend));
    for pid in pids {
        assert!(!alive(pid));
    }
    assert!(!p.file(".tend/tend.sock").exists());
}

#[test]
fn up_listens_on_the_socket_tend_socket_names() {
    let p = Project::new("[services.web]\ncommand = \"sleep 1000\"\n");
    let elsewhere = tempfile::tempdir().unwrap();
    let socket = elsewhere.path().join("control.sock");
    let tend = |args: &[&str]| {
        let child = p.command(args).env("TEND_SOCKET", &socket).spawn().unwrap();
        finish(child, Duration::from_secs(60), &args.join(" "))
    };
    let up = tend(&["up", "-d"]);
    let _d = Daemon::attach(&p);
    assert!(up.status.success(), "{}", text(&up.stderr));
    assert!(socket.exists(), "the daemon listens on TEND_SOCKET");
    assert!(!p.file(".tend/tend.sock").exists());
    // A reload reads the manifest again and keeps the socket it was given.
    let apply = tend(&["apply"]);
    assert!(apply.status.success(), "{}", text(&apply.stderr));
    let said = format!("{}{}", text(&apply.stdout), text(&apply.stderr));
    assert!(!said.contains("socket"), "{said}");
    let status = tend(&["status", "--json"]);
    assert!(text(&status.stdout).contains("\"web\""));
    let down = tend(&["down"]);
    assert!(down.status.success(), "{}", text(&down.stderr));
    assert!(!socket.exists());
}

#[test]
fn tend_socket_env_overrides_the_manifest() {
    let p = Project::new("[services.web]\ncommand = \"sleep 1000\"\n");
    let _d = p.up();
    let elsewhere = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .args(["status", "--json"])
        .current_dir(elsewhere.path())
        .env("TEND_SOCKET", p.file(".tend/tend.sock"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("\"web\""));
    // `--socket` beats the variable, before the command's name as after it.
    let nowhere = elsewhere.path().join("nowhere.sock");
    for args in [
        ["--socket", nowhere.to_str().unwrap(), "status"],
        ["status", "--socket", nowhere.to_str().unwrap()],
    ] {
        let out = std::process::Command::new(BIN)
            .args(args)
            .current_dir(elsewhere.path())
            .env("TEND_SOCKET", p.file(".tend/tend.sock"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let said = text(&out.stderr);
        assert!(said.contains("nowhere.sock"), "{args:?}: {said}");
    }
}

#[test]
fn foreground_up_prefixes_output_and_stops_on_interrupt() {
    let p = Project::new(
        r#"
[services.one]
command = "sh -c 'echo alpha; exec sleep 1000'"
[services.two]
command = "sh -c 'echo beta; exec sleep 1000'"
"#,
    );
    let child = p.spawn(&["up"]);
    let _d = Daemon::attach(&p);
    wait_until(Duration::from_secs(10), "both running", || {
        p.file(".tend/tend.sock").exists()
            && p.tend(&["status", "--json"]).status.success()
            && p.status().iter().all(|i| i["state"] == "running")
    });
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = finish(child, Duration::from_secs(20), "tend up after Ctrl-C");
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(stdout.lines().any(|l| l == "one | alpha"), "{stdout}");
    assert!(stdout.lines().any(|l| l == "two | beta"), "{stdout}");
}

#[test]
fn user_group_and_umask_apply_to_the_child() {
    let p = Project::new(
        r#"
[services.who]
command = "sh -c 'echo $(id -un):$(id -gn):$(umask):$HOME; exec sleep 1000'"
user = "nobody"
umask = "027"
"#,
    );
    if unsafe { libc::geteuid() } != 0 {
        // Switching users needs root; the check that a non-root tend refuses is below.
        let out = p.tend(&["up", "-d"]);
        let _d = Daemon::attach(&p);
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains("not running as root"),
            "{}",
            text(&out.stderr)
        );
        return;
    }
    let _d = p.up();
    wait_until(Duration::from_secs(5), "output", || {
        !text(&p.tend(&["logs", "who"]).stdout).is_empty()
    });
    let line = text(&p.tend(&["logs", "who", "--no-prefix"]).stdout);
    let fields: Vec<&str> = line.trim().split(':').collect();
    assert_eq!(fields[0], "nobody", "{line}");
    assert_eq!(fields[2], "0027", "{line}");
    assert!(
        !fields[3].is_empty() && fields[3] != "/root",
        "HOME is the user's: {line}"
    );
}

#[test]
fn down_during_a_mass_start_stops_cleanly() {
    let services: String = (0..60)
        .map(|i| format!("[services.s{i}]\ncommand = \"sleep 1000\"\n"))
        .collect();
    let p = Project::new(&services);
    let up = p.spawn(&["up", "-d"]);
    wait_until(Duration::from_secs(10), "the control socket", || {
        p.file(".tend/tend.sock").exists()
    });
    let d = Daemon::attach(&p);
    let run: serde_json::Value = serde_json::from_str(&p.read(".tend/run.json")).unwrap();
    let out = p.tend(&["down"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let up = finish(up, Duration::from_secs(60), "tend up -d");
    let stderr = text(&up.stderr);
    assert!(
        !stderr.contains("connection closed"),
        "up -d says why it stopped: {stderr}"
    );
    let run_id = d.run_id.clone().unwrap();
    assert!(
        pids_with_env(&format!("TEND_RUN_ID={run_id}")).is_empty(),
        "nothing left running"
    );
    if let Some(cgroup) = run["cgroup"].as_str() {
        assert!(
            !std::path::Path::new(cgroup).exists(),
            "cgroup subtree {cgroup} removed"
        );
    }
}

#[test]
fn second_interrupt_kills_what_will_not_stop() {
    let p = Project::new(
        r#"
[services.stubborn]
command = "sh -c 'trap \"\" TERM; echo ready > ready; while true; do sleep 0.02; done'"
stop_timeout = "1h"
"#,
    );
    let child = p.spawn(&["up"]);
    let _d = Daemon::attach(&p);
    // The daemon queues its services' starts before its socket answers: the child can be
    // ready before the socket is in place.
    wait_until(
        Duration::from_secs(10),
        "the service to ignore TERM",
        || !p.read("ready").is_empty() && p.file(".tend/tend.sock").exists(),
    );
    let leader = p.instance("stubborn")["pid"].as_i64().unwrap() as i32;
    let tend = child.id() as i32;
    unsafe { libc::kill(tend, libc::SIGINT) };
    wait_until(Duration::from_secs(10), "stopping", || {
        p.state_of("stubborn") == "stopping"
    });
    assert!(
        alive(leader),
        "the first interrupt waits for the stop timeout"
    );
    unsafe { libc::kill(tend, libc::SIGINT) };
    let out = finish(
        child,
        Duration::from_secs(20),
        "tend up after a second Ctrl-C",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("killing everything"),
        "{}",
        text(&out.stderr)
    );
    wait_until(Duration::from_secs(5), "the stubborn service gone", || {
        !alive(leader)
    });
}
