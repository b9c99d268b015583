//! A supervisord.conf run by tend as it is, driven by the stock `supervisorctl` (PyPI
//! `supervisor`) over tend's socket: every command, its output and its exit status.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::harness::{Project, finish, text, wait_until};

fn supervisorctl_bin() -> PathBuf {
    let tool = std::env::var_os("TEND_SUPERVISORCTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/bin/supervisorctl")
        });
    assert!(
        tool.exists(),
        "supervisorctl not found at {} (./scripts/test installs it; or set TEND_SUPERVISORCTL)",
        tool.display()
    );
    tool
}

/// `supervisorctl -c supervisord.conf ARGS…`, bounded.
fn ctl(project: &Project, args: &[&str]) -> Output {
    let child = Command::new(supervisorctl_bin())
        .arg("-c")
        .arg(project.manifest())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run supervisorctl");
    finish(
        child,
        Duration::from_secs(60),
        &format!("supervisorctl {}", args.join(" ")),
    )
}

fn out(o: &Output) -> String {
    format!("{}{}", text(&o.stdout), text(&o.stderr))
}

const CONF: &str = r#"
[unix_http_server]
file=%(here)s/supervisor.sock

[supervisord]
nodaemon=true
environment=SHARED="from supervisord"

[supervisorctl]
serverurl=unix://%(here)s/supervisor.sock

[program:web]
command=sh -c 'echo "web up as $SUPERVISOR_PROCESS_NAME:$SHARED:$OWN"; printf "\033[1mbold\033[0m\n"; echo "an error" >&2; exec sleep 300'
environment=OWN="yes"
startsecs=1
stopwaitsecs=5

[program:worker]
command=sh -c 'echo "worker %(process_num)d"; exec sleep 300'
numprocs=2
process_name=%(program_name)s_%(process_num)02d
startsecs=1

[program:flaky]
command=sh -c 'echo failing; exit 3'
autostart=false
startsecs=1
startretries=1

[group:back]
programs=worker
"#;

fn status_line<'a>(listing: &'a str, name: &str) -> &'a str {
    listing
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no `{name}` in:\n{listing}"))
}

#[test]
fn supervisorctl_drives_a_supervisord_conf_run_by_tend() {
    let project = Project::with_manifest("supervisord.conf", CONF);
    let _daemon = project.up_ready();
    assert!(
        project.file("supervisor.sock").exists(),
        "the socket is where supervisord's was"
    );

    // version and status, with supervisord's names and exit statuses.
    let version = ctl(&project, &["version"]);
    assert!(version.status.success(), "{}", out(&version));
    let status = ctl(&project, &["status"]);
    let listing = text(&status.stdout);
    // flaky never started: status 3 (LSB "not running").
    assert_eq!(status.status.code(), Some(3), "{}", out(&status));
    assert!(
        status_line(&listing, "web").contains("RUNNING"),
        "{listing}"
    );
    assert!(status_line(&listing, "web").contains("pid "), "{listing}");
    assert!(
        status_line(&listing, "back:worker_00").contains("RUNNING"),
        "{listing}"
    );
    assert!(
        status_line(&listing, "back:worker_01").contains("RUNNING"),
        "{listing}"
    );
    assert!(
        status_line(&listing, "flaky").contains("STOPPED   Not started"),
        "{listing}"
    );
    let running = ctl(&project, &["status", "web", "back:*"]);
    assert_eq!(running.status.code(), Some(0), "{}", out(&running));
    let unknown = ctl(&project, &["status", "nosuch"]);
    assert_eq!(unknown.status.code(), Some(4), "{}", out(&unknown));
    assert!(
        out(&unknown).contains("no such process"),
        "{}",
        out(&unknown)
    );

    // pid of the daemon and of a process.
    let pid = ctl(&project, &["pid"]);
    assert_eq!(text(&pid.stdout).trim(), _daemon.pid().unwrap().to_string());
    let web_pid = text(&ctl(&project, &["pid", "web"]).stdout)
        .trim()
        .to_string();
    assert!(web_pid.parse::<u32>().is_ok_and(|p| p > 0), "{web_pid}");

    // tail: the environment supervisord gives (its own, [supervisord] and the program's).
    let tail = ctl(&project, &["tail", "web"]);
    assert!(
        text(&tail.stdout).contains("web up as web:from supervisord:yes"),
        "{}",
        out(&tail)
    );
    // ESC is not allowed in XML 1.0: tend drops it (supervisord ships it and its own client
    // fails to parse the answer).
    assert!(text(&tail.stdout).contains("[1mbold[0m"), "{}", out(&tail));
    assert!(!tail.stdout.contains(&0x1b), "{}", out(&tail));
    let tail_err = ctl(&project, &["tail", "web", "stderr"]);
    assert!(
        text(&tail_err.stdout).contains("an error"),
        "{}",
        out(&tail_err)
    );
    let worker = ctl(&project, &["tail", "back:worker_01"]);
    assert!(
        text(&worker.stdout).contains("worker 1"),
        "{}",
        out(&worker)
    );

    // A start that fails within startsecs: ABNORMAL_TERMINATION, exit 7; then FATAL once
    // its one retry has failed too.
    let flaky = ctl(&project, &["start", "flaky"]);
    assert_eq!(flaky.status.code(), Some(7), "{}", out(&flaky));
    assert!(
        out(&flaky).contains("abnormal termination"),
        "{}",
        out(&flaky)
    );
    wait_until(Duration::from_secs(20), "flaky to be FATAL", || {
        text(&ctl(&project, &["status", "flaky"]).stdout).contains("FATAL")
    });

    // stop / start / restart of a name, a group and all.
    let stop = ctl(&project, &["stop", "web"]);
    assert!(out(&stop).contains("web: stopped"), "{}", out(&stop));
    assert!(text(&ctl(&project, &["status", "web"]).stdout).contains("STOPPED"));
    assert_eq!(text(&ctl(&project, &["pid", "web"]).stdout).trim(), "0");
    let again = ctl(&project, &["stop", "web"]);
    assert!(out(&again).contains("not running"), "{}", out(&again));
    let start = ctl(&project, &["start", "web"]);
    assert!(out(&start).contains("web: started"), "{}", out(&start));
    let already = ctl(&project, &["start", "web"]);
    assert!(
        out(&already).contains("already started"),
        "{}",
        out(&already)
    );
    let group = ctl(&project, &["restart", "back:*"]);
    let group_out = out(&group);
    for line in [
        "back:worker_00: stopped",
        "back:worker_01: stopped",
        "back:worker_00: started",
        "back:worker_01: started",
    ] {
        assert!(group_out.contains(line), "{group_out}");
    }
    let before = text(&ctl(&project, &["pid", "web"]).stdout)
        .trim()
        .to_string();
    let restart = ctl(&project, &["restart", "web"]);
    assert!(out(&restart).contains("web: started"), "{}", out(&restart));
    let after = text(&ctl(&project, &["pid", "web"]).stdout)
        .trim()
        .to_string();
    assert_ne!(before, after, "restart gives a new process");

    // signal: HUP kills `sleep`; supervisord semantics restart it (autorestart=unexpected).
    let signal = ctl(&project, &["signal", "HUP", "web"]);
    assert!(out(&signal).contains("web: signalled"), "{}", out(&signal));
    let bad = ctl(&project, &["signal", "NOPE", "web"]);
    assert!(out(&bad).contains("bad signal"), "{}", out(&bad));
    // A group signal leaves stopped members alone, as supervisord does.
    ctl(&project, &["stop", "back:worker_01"]);
    let group_signal = ctl(&project, &["signal", "USR2", "back:*"]);
    assert_eq!(
        group_signal.status.code(),
        Some(0),
        "{}",
        out(&group_signal)
    );
    assert!(
        !out(&group_signal).contains("worker_01"),
        "{}",
        out(&group_signal)
    );
    ctl(&project, &["start", "back:worker_01"]);

    // tail -f follows the file over /logtail.
    let mut follow = Command::new(supervisorctl_bin())
        .arg("-c")
        .arg(project.manifest())
        .args(["tail", "-f", "back:worker_00"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let mut seen = false;
    for line in lines.by_ref().take(20) {
        if line.unwrap().contains("worker 0") {
            seen = true;
            break;
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(seen, "tail -f printed the worker's output");

    // maintail reads tend's own log; clear empties a process's log files.
    let main = ctl(&project, &["maintail"]);
    assert!(text(&main.stdout).contains("web"), "{}", out(&main));
    let clear = ctl(&project, &["clear", "back:worker_01"]);
    assert!(
        out(&clear).contains("back:worker_01: cleared"),
        "{}",
        out(&clear)
    );
    assert!(!text(&ctl(&project, &["tail", "back:worker_01"]).stdout).contains("worker 1"));

    // avail lists the configuration.
    let avail = text(&ctl(&project, &["avail"]).stdout);
    for name in ["web", "back:worker_00", "back:worker_01", "flaky"] {
        assert!(status_line(&avail, name).contains("in use"), "{avail}");
    }
    assert!(status_line(&avail, "flaky").contains("manual"), "{avail}");

    // stop all, status 3, start all.
    let stop_all = ctl(&project, &["stop", "all"]);
    assert!(
        out(&stop_all).contains("web: stopped"),
        "{}",
        out(&stop_all)
    );
    assert_eq!(ctl(&project, &["status"]).status.code(), Some(3));
    let start_all = ctl(&project, &["start", "all"]);
    assert!(
        out(&start_all).contains("back:worker_00: started"),
        "{}",
        out(&start_all)
    );

    // shutdown ends the daemon and its processes.
    let pid = _daemon.pid().unwrap();
    let shutdown = ctl(&project, &["shutdown"]);
    assert!(out(&shutdown).contains("Shut down"), "{}", out(&shutdown));
    wait_until(Duration::from_secs(20), "tend to exit", || {
        !crate::harness::alive(pid)
    });
    let gone = ctl(&project, &["status"]);
    assert_eq!(gone.status.code(), Some(4), "{}", out(&gone));
}

#[test]
fn tend_check_and_import_read_a_supervisord_conf() {
    let project = Project::with_manifest(
        "supervisord.conf",
        "[supervisord]\nlogfile=/var/log/supervisord.log\n\n[program:api]\ncommand=/usr/bin/env python3 -m http.server\nautorestart=unexpected\nstdout_capture_maxbytes=1MB\n",
    );
    let check = project.tend(&["check"]);
    assert!(check.status.success(), "{}", out(&check));
    assert!(text(&check.stdout).contains("ok (1 services, 1 instances, 2 warning(s))"));
    // Each warning names the file, the line and the key.
    let stderr = text(&check.stderr);
    assert!(
        stderr.contains("supervisord.conf:2: supervisord.logfile:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("supervisord.conf:7: program:api.stdout_capture_maxbytes:"),
        "{stderr}"
    );

    let import = Command::new(env!("CARGO_BIN_EXE_tend"))
        .arg("import")
        .arg(project.manifest())
        .output()
        .unwrap();
    assert!(import.status.success(), "{}", out(&import));
    let toml = text(&import.stdout);
    assert!(toml.contains("[services.api]"), "{toml}");
    assert!(toml.contains("restart = \"on-failure\""), "{toml}");
    assert!(
        toml.contains("# api: not translated:\n#   line 7: program:api.stdout_capture_maxbytes"),
        "{toml}"
    );
    // The output is a manifest tend accepts as it is.
    std::fs::write(project.file("tend.toml"), &toml).unwrap();
    let recheck = Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(["check", "-c"])
        .arg(project.file("tend.toml"))
        .output()
        .unwrap();
    assert!(recheck.status.success(), "{}\n{toml}", out(&recheck));

    // An invalid value is an error at its line, and nothing starts.
    std::fs::write(
        project.manifest(),
        "[supervisord]\n[program:api]\ncommand=x\nstartsecs=soon\n",
    )
    .unwrap();
    let bad = project.tend(&["check"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("supervisord.conf:4: program:api.startsecs"),
        "{}",
        out(&bad)
    );
}

#[test]
fn reread_update_add_and_remove_change_the_running_set() {
    let base = "[unix_http_server]\nfile=%(here)s/s.sock\n[supervisord]\n[supervisorctl]\nserverurl=unix://%(here)s/s.sock\n[program:keep]\ncommand=sleep 301\n[program:edit]\ncommand=sleep 302\n[program:drop]\ncommand=sleep 303\n";
    let project = Project::with_manifest("supervisord.conf", base);
    let _daemon = project.up_ready();
    let nothing = ctl(&project, &["reread"]);
    assert!(
        out(&nothing).contains("No config updates to processes"),
        "{}",
        out(&nothing)
    );

    // A changed program, a new one, and one gone from the file.
    std::fs::write(
        project.manifest(),
        base.replace("sleep 302", "sleep 312").replace(
            "[program:drop]\ncommand=sleep 303\n",
            "[program:new]\ncommand=sleep 304\n",
        ),
    )
    .unwrap();
    let reread = out(&ctl(&project, &["reread"]));
    for line in ["edit: changed", "new: available", "drop: disappeared"] {
        assert!(reread.contains(line), "{reread}");
    }
    // avail lists what was read: the new program is available, not yet in use.
    let avail = text(&ctl(&project, &["avail"]).stdout);
    assert!(status_line(&avail, "new").contains("avail"), "{avail}");
    assert!(status_line(&avail, "keep").contains("in use"), "{avail}");
    let keep_pid = text(&ctl(&project, &["pid", "keep"]).stdout)
        .trim()
        .to_string();
    let update = ctl(&project, &["update"]);
    assert!(update.status.success(), "{}", out(&update));
    let listing = text(&ctl(&project, &["status"]).stdout);
    assert!(!listing.contains("drop"), "{listing}");
    assert!(listing.contains("new"), "{listing}");
    wait_until(Duration::from_secs(20), "new and edit running", || {
        let listing = text(&ctl(&project, &["status"]).stdout);
        status_line(&listing, "new").contains("RUNNING")
            && status_line(&listing, "edit").contains("RUNNING")
    });
    // The unchanged program kept running; the changed one runs its new command.
    assert_eq!(
        text(&ctl(&project, &["pid", "keep"]).stdout).trim(),
        keep_pid
    );
    let status = project.status();
    let edit = status
        .iter()
        .find(|s| s["name"] == "edit")
        .expect("edit in tend status");
    let pid = edit["pid"].as_u64().unwrap();
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(cmdline.contains("312"), "{cmdline:?}");

    // remove refuses a running group, then works once it is stopped; add brings it back.
    let busy = ctl(&project, &["remove", "new"]);
    assert!(out(&busy).contains("still running"), "{}", out(&busy));
    ctl(&project, &["stop", "new"]);
    let removed = ctl(&project, &["remove", "new"]);
    assert!(
        out(&removed).contains("removed process group"),
        "{}",
        out(&removed)
    );
    assert!(!text(&ctl(&project, &["status"]).stdout).contains("new"));
    let added = ctl(&project, &["add", "new"]);
    assert!(
        out(&added).contains("added process group"),
        "{}",
        out(&added)
    );
    let twice = ctl(&project, &["add", "new"]);
    assert!(out(&twice).contains("already active"), "{}", out(&twice));
    wait_until(Duration::from_secs(20), "new to run again", || {
        status_line(&text(&ctl(&project, &["status"]).stdout), "new").contains("RUNNING")
    });

    // reload: everything stops and starts again from the file.
    let reload = ctl(&project, &["reload"]);
    assert!(
        out(&reload).contains("Restarted supervisord"),
        "{}",
        out(&reload)
    );
    wait_until(Duration::from_secs(20), "a new keep after reload", || {
        let pid = text(&ctl(&project, &["pid", "keep"]).stdout)
            .trim()
            .to_string();
        pid != keep_pid && pid != "0" && !pid.is_empty() && !pid.contains("ERROR")
    });
    wait_until(Duration::from_secs(20), "keep RUNNING after reload", || {
        status_line(&text(&ctl(&project, &["status"]).stdout), "keep").contains("RUNNING")
    });

    // A file that no longer parses: reread says so and nothing changes.
    std::fs::write(project.manifest(), format!("{base}[program:broken]\n")).unwrap();
    let bad = ctl(&project, &["reread"]);
    assert!(!bad.status.success(), "{}", out(&bad));
    assert!(out(&bad).contains("command"), "{}", out(&bad));
    assert!(status_line(&text(&ctl(&project, &["status"]).stdout), "keep").contains("RUNNING"));
}

/// A listener written the way supervisord's documentation shows (READY, header line,
/// payload, RESULT), recording each event; on FATAL it does what the common "stop the
/// container" listener does: SIGTERM to its parent, which is tend.
const LISTENER: &str = r#"
import os, signal, sys
log = os.path.join(os.path.dirname(os.path.abspath(__file__)), "events.log")
def write(s):
    sys.stdout.write(s)
    sys.stdout.flush()
while True:
    write("READY\n")
    line = sys.stdin.readline()
    if not line:
        break
    headers = dict(x.split(":", 1) for x in line.split())
    data = sys.stdin.read(int(headers["len"]))
    with open(log, "a") as f:
        f.write(headers["eventname"] + " " + headers["pool"] + " " + data.replace("\n", "|") + "\n")
    write("RESULT 2\nOK")
    if headers["eventname"] == "PROCESS_STATE_FATAL" and "processname:doomed" in data:
        os.kill(os.getppid(), signal.SIGTERM)
"#;

#[test]
fn event_listeners_get_supervisords_events_and_can_stop_tend() {
    let project = Project::with_manifest(
        "supervisord.conf",
        r#"
[unix_http_server]
file=%(here)s/s.sock
[supervisord]
[supervisorctl]
serverurl=unix://%(here)s/s.sock
[eventlistener:watch]
command=python3 -u %(here)s/listener.py
events=PROCESS_STATE,TICK_5,PROCESS_LOG,REMOTE_COMMUNICATION,SUPERVISOR_STATE_CHANGE
buffer_size=100
[program:web]
command=sh -c 'while true; do echo tick-from-web; sleep 0.2; done'
stdout_events_enabled=true
[program:slowstop]
command=sh -c 'trap "sleep 1; exit 0" TERM; while true; do sleep 0.1; done'
stopwaitsecs=10
[program:doomed]
command=sh -c 'exit 1'
autostart=false
startretries=1
"#,
    );
    std::fs::write(project.file("listener.py"), LISTENER).unwrap();
    let daemon = project.up_ready();
    let pid = daemon.pid().unwrap();
    let events = || project.read("events.log");
    wait_until(
        Duration::from_secs(20),
        "web RUNNING, its output and a TICK_5",
        || {
            let log = events();
            log.contains(
            "PROCESS_STATE_RUNNING watch processname:web groupname:web from_state:STARTING pid:",
        ) && log.contains("TICK_5 watch when:")
            && log.contains(" channel:stdout|tick-from-web|\n")
        },
    );
    // PROCESS_LOG_STDOUT: `processname groupname pid channel`, a newline, the line itself.
    let log = events();
    let line = log
        .lines()
        .find(|l| l.starts_with("PROCESS_LOG_STDOUT"))
        .unwrap();
    assert!(
        line.starts_with("PROCESS_LOG_STDOUT watch processname:web groupname:web pid:"),
        "{line}"
    );
    assert!(line.ends_with(" channel:stdout|tick-from-web|"), "{line}");
    // The listener itself runs and is listed as supervisord lists it.
    assert!(status_line(&text(&ctl(&project, &["status"]).stdout), "watch").contains("RUNNING"));

    // sendRemoteCommEvent (what supervisor.childutils and other tools call) reaches it.
    let stream = std::os::unix::net::UnixStream::connect(project.file("s.sock")).unwrap();
    let body = "<?xml version='1.0'?><methodCall><methodName>supervisor.sendRemoteCommEvent</methodName><params><param><value><string>deploy</string></value></param><param><value><string>v2 is out</string></value></param></params></methodCall>";
    let answer = crate::harness::http_over(
        stream,
        "POST",
        "/RPC2",
        &[("Content-Type", "text/xml")],
        body,
    );
    assert!(
        answer.body.contains("<boolean>1</boolean>"),
        "{}",
        answer.body
    );
    wait_until(Duration::from_secs(20), "the remote event", || {
        events().contains("REMOTE_COMMUNICATION watch type:deploy|v2 is out")
    });

    // A program that cannot start: STARTING, BACKOFF (tries:1), STARTING, FATAL; the
    // listener then stops tend, as it would stop supervisord.
    let start = ctl(&project, &["start", "doomed"]);
    assert_eq!(start.status.code(), Some(7), "{}", out(&start));
    wait_until(
        Duration::from_secs(30),
        "tend to be stopped by the listener",
        || !crate::harness::alive(pid),
    );
    let log = events();
    let doomed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("processname:doomed"))
        .map(|l| l.split_whitespace().next().unwrap())
        .take(4)
        .collect();
    assert_eq!(
        doomed,
        [
            "PROCESS_STATE_STARTING",
            "PROCESS_STATE_BACKOFF",
            "PROCESS_STATE_STARTING",
            "PROCESS_STATE_FATAL"
        ],
        "{log}"
    );
    assert!(log.contains("PROCESS_STATE_BACKOFF watch processname:doomed groupname:doomed from_state:STARTING tries:1"), "{log}");
    assert!(
        log.contains(
            "PROCESS_STATE_FATAL watch processname:doomed groupname:doomed from_state:STARTING\n"
        ),
        "{log}"
    );
    // Listeners stop last (slowstop takes a second): they hear that tend is stopping.
    assert!(
        log.contains("SUPERVISOR_STATE_CHANGE_RUNNING watch \n"),
        "{log}"
    );
    assert!(
        log.contains("SUPERVISOR_STATE_CHANGE_STOPPING watch \n"),
        "{log}"
    );
}

/// The same supervisord.conf run by the real supervisord (PyPI `supervisor`, beside
/// supervisorctl) and by tend: the same processes under the same names and states, the
/// same environment for the children, the same restart behaviour (startretries, FATAL,
/// EXITED with autorestart=unexpected).
#[test]
fn tend_behaves_like_supervisord_on_the_same_file() {
    const CONF: &str = r#"
[unix_http_server]
file=%(here)s/s.sock
[supervisord]
nodaemon=true
logfile=%(here)s/supervisord.log
pidfile=%(here)s/supervisord.pid
childlogdir=%(here)s
environment=SHARED="one"
[supervisorctl]
serverurl=unix://%(here)s/s.sock
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[program:web]
command=sh -c 'env | sort > %(here)s/env-web.txt; exec sleep 300'
environment=OWN="two",QUOTED="a b"
[program:worker]
command=sh -c 'env | sort > %(here)s/env-worker-%(process_num)d.txt; exec sleep 300'
numprocs=2
process_name=%(program_name)s_%(process_num)02d
[program:crashy]
command=sh -c 'echo x >> %(here)s/crashy-starts; exit 3'
startsecs=1
startretries=2
[program:oneshot]
command=sh -c 'echo x >> %(here)s/oneshot-starts; sleep 1.5; exit 0'
startsecs=1
[group:back]
programs=worker
"#;
    /// What is compared: status lines (name and state), the children's supervisord
    /// variables and settings, and how often each program was started.
    fn observe(project: &Project) -> (Vec<String>, Vec<String>, usize, usize) {
        let settled = || {
            let listing = text(&ctl(project, &["status"]).stdout);
            listing.contains("FATAL") && listing.contains("EXITED")
        };
        wait_until(
            Duration::from_secs(60),
            "crashy FATAL and oneshot EXITED",
            settled,
        );
        let listing = text(&ctl(project, &["status"]).stdout);
        let status: Vec<String> = listing
            .lines()
            .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
            .collect();
        let dir = project.path().display().to_string();
        let mut env = Vec::new();
        for file in ["env-web.txt", "env-worker-0.txt", "env-worker-1.txt"] {
            for line in project.read(file).lines() {
                let wanted = ["SUPERVISOR_", "SHARED=", "OWN=", "QUOTED="];
                if wanted.iter().any(|w| line.starts_with(w)) {
                    env.push(format!("{file}: {}", line.replace(&dir, "DIR")));
                }
            }
        }
        let count = |f: &str| project.read(f).lines().count();
        (status, env, count("crashy-starts"), count("oneshot-starts"))
    }

    let supervisord_bin = supervisorctl_bin().with_file_name("supervisord");
    let theirs = Project::with_manifest("supervisord.conf", CONF);
    let mut supervisord = Command::new(&supervisord_bin)
        .arg("-c")
        .arg(theirs.manifest())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start supervisord");
    let observed = std::panic::catch_unwind(|| observe(&theirs));
    let _ = ctl(&theirs, &["shutdown"]);
    let _ = supervisord.wait();
    let theirs_seen = observed.expect("supervisord ran the file");

    let ours = Project::with_manifest("supervisord.conf", CONF);
    // crashy cannot start by design: `up -d` reports it and exits 1.
    let _daemon = ours.up_allow_failure();
    let ours_seen = observe(&ours);

    // What supervisord did, so the comparison below compares something.
    for expected in [
        "back:worker_00 RUNNING",
        "crashy FATAL",
        "oneshot EXITED",
        "web RUNNING",
    ] {
        assert!(
            theirs_seen.0.iter().any(|l| l == expected),
            "{:?}",
            theirs_seen.0
        );
    }
    for expected in [
        "env-worker-1.txt: SUPERVISOR_PROCESS_NAME=worker_01",
        "env-web.txt: QUOTED=a b",
        "env-web.txt: SHARED=one",
        "env-web.txt: SUPERVISOR_SERVER_URL=unix://DIR/s.sock",
    ] {
        assert!(
            theirs_seen.1.iter().any(|l| l == expected),
            "{:?}",
            theirs_seen.1
        );
    }
    assert_eq!(ours_seen.0, theirs_seen.0, "status: tend vs supervisord");
    assert_eq!(
        ours_seen.1, theirs_seen.1,
        "environment: tend vs supervisord"
    );
    assert_eq!(
        ours_seen.2, 3,
        "crashy: one start and startretries=2 retries"
    );
    assert_eq!(
        (ours_seen.2, ours_seen.3),
        (theirs_seen.2, theirs_seen.3),
        "starts (crashy, oneshot): tend vs supervisord"
    );
}

#[test]
fn removing_a_group_while_a_stop_is_in_progress_lets_the_stop_finish() {
    let project = Project::with_manifest(
        "supervisord.conf",
        "[unix_http_server]\nfile=%(here)s/s.sock\n[supervisord]\n[supervisorctl]\nserverurl=unix://%(here)s/s.sock\n[program:fast]\ncommand=sleep 300\n[program:stubborn]\ncommand=sh -c 'trap \"\" TERM; while true; do sleep 0.1; done'\nstopwaitsecs=3\n",
    );
    let _daemon = project.up_ready();
    let stop_all = Command::new(supervisorctl_bin())
        .arg("-c")
        .arg(project.manifest())
        .args(["stop", "all"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        Duration::from_secs(20),
        "fast stopped, stubborn stopping",
        || {
            let listing = text(&ctl(&project, &["status"]).stdout);
            status_line(&listing, "fast").contains("STOPPED")
                && status_line(&listing, "stubborn").contains("STOPPING")
        },
    );
    let removed = ctl(&project, &["remove", "fast"]);
    assert!(
        out(&removed).contains("removed process group"),
        "{}",
        out(&removed)
    );
    // The stop of everything still ends, once stubborn has been killed.
    let done = finish(stop_all, Duration::from_secs(30), "supervisorctl stop all");
    assert!(done.status.success());
    assert!(status_line(&text(&ctl(&project, &["status"]).stdout), "stubborn").contains("STOPPED"));
}

#[test]
fn a_socket_path_that_names_a_file_is_refused_and_the_file_kept() {
    let project = Project::with_manifest(
        "supervisord.conf",
        "[unix_http_server]\nfile=%(here)s/precious.txt\n[supervisord]\n[program:a]\ncommand=sleep 300\n",
    );
    std::fs::write(project.file("precious.txt"), "precious").unwrap();
    let up = project.tend(&["up"]);
    assert!(!up.status.success());
    assert!(out(&up).contains("is not a socket"), "{}", out(&up));
    assert_eq!(project.read("precious.txt"), "precious");
}

#[test]
fn minfds_raises_the_childrens_limit_or_refuses_to_start() {
    let project = Project::with_manifest(
        "supervisord.conf",
        "[supervisord]\nminfds=2048\n[program:a]\ncommand=sh -c 'ulimit -n > %(here)s/limit.txt; exec sleep 300'\n",
    );
    let _daemon = project.up_ready();
    wait_until(Duration::from_secs(20), "the child wrote its limit", || {
        !project.read("limit.txt").is_empty()
    });
    let limit: u64 = project.read("limit.txt").trim().parse().unwrap_or(u64::MAX);
    assert!(limit >= 2048, "{limit}");
    drop(_daemon);

    // Past what the kernel allows anyone (fs.nr_open): refused, nothing started.
    std::fs::write(
        project.manifest(),
        "[supervisord]\nminfds=999999999\n[program:a]\ncommand=sleep 300\n",
    )
    .unwrap();
    let up = project.tend(&["up"]);
    assert!(!up.status.success());
    assert!(out(&up).contains("min_fds = 999999999"), "{}", out(&up));
}

#[test]
fn supervisorctl_over_tcp_with_inet_http_server_credentials() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The password as supervisord also takes it: {SHA} and the hex SHA-1 of "secret".
    let conf = format!(
        "[inet_http_server]\nport=127.0.0.1:{port}\nusername=admin\npassword={{SHA}}e5e9fa1ba31ecd1ae84f75caaa474f3a663f05f4\n[supervisord]\n[supervisorctl]\nserverurl=http://127.0.0.1:{port}\nusername=admin\npassword=secret\n[program:web]\ncommand=sleep 300\n"
    );
    let project = Project::with_manifest("supervisord.conf", &conf);
    let _daemon = project.up_ready();
    let status = ctl(&project, &["status"]);
    assert!(status.status.success(), "{}", out(&status));
    assert!(status_line(&text(&status.stdout), "web").contains("RUNNING"));
    let restart = ctl(&project, &["restart", "web"]);
    assert!(out(&restart).contains("web: started"), "{}", out(&restart));
    // Wrong credentials are refused, as supervisord refuses them.
    let wrong = Command::new(supervisorctl_bin())
        .arg("-c")
        .arg(project.manifest())
        .args(["-u", "admin", "-p", "guess", "status"])
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(
        out(&wrong).contains("Server requires authentication"),
        "{}",
        out(&wrong)
    );
}

#[test]
fn an_event_listener_added_while_tend_runs_gets_events() {
    let base = "[unix_http_server]\nfile=%(here)s/s.sock\n[supervisord]\n[supervisorctl]\nserverurl=unix://%(here)s/s.sock\n[program:web]\ncommand=sleep 300\n";
    let project = Project::with_manifest("supervisord.conf", base);
    std::fs::write(project.file("listener.py"), LISTENER).unwrap();
    let _daemon = project.up_ready();
    std::fs::write(
        project.manifest(),
        format!("{base}[eventlistener:late]\ncommand=python3 -u %(here)s/listener.py\nevents=PROCESS_STATE\n"),
    )
    .unwrap();
    let update = ctl(&project, &["update"]);
    assert!(
        out(&update).contains("late: added process group"),
        "{}",
        out(&update)
    );
    wait_until(Duration::from_secs(20), "the listener RUNNING", || {
        status_line(&text(&ctl(&project, &["status"]).stdout), "late").contains("RUNNING")
    });
    ctl(&project, &["restart", "web"]);
    wait_until(
        Duration::from_secs(20),
        "web's restart seen by the listener",
        || {
            project
                .read("events.log")
                .contains("PROCESS_STATE_STOPPING late processname:web")
        },
    );
    // It keeps running: nothing crash-loops.
    assert!(status_line(&text(&ctl(&project, &["status"]).stdout), "late").contains("RUNNING"));
}
