//! `tend diff` and `tend apply` (and SIGHUP) against a running daemon: each kind of change
//! touches only what changed, and an invalid manifest changes nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::harness::*;

/// Instance name → pid, for every instance the daemon supervises.
fn pids(p: &Project) -> BTreeMap<String, Option<u64>> {
    p.status()
        .iter()
        .map(|i| (i["name"].as_str().unwrap().to_string(), i["pid"].as_u64()))
        .collect()
}

fn rewrite(p: &Project, text: &str) {
    std::fs::write(p.manifest(), text).unwrap();
}

/// `tend ARGS`, with its exit code and both outputs.
fn run(p: &Project, args: &[&str]) -> (i32, String, String) {
    let out = p.tend(args);
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

/// A long sleep per service, with a marker so each service's command can be told apart.
fn service(name: &str, extra: &str) -> String {
    format!("[services.{name}]\ncommand = \"sleep 300\"\nmin_uptime = \"100ms\"\n{extra}\n\n")
}

#[test]
fn diff_of_an_unchanged_manifest_shows_no_changes() {
    let p = Project::new(&(service("db", "") + &service("web", "depends_on = [\"db\"]")));
    let _d = p.up();
    let (code, stdout, stderr) = run(&p, &["diff"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(stdout, "= db unchanged\n= web unchanged\nno changes\n");
    let (code, stdout, _) = run(&p, &["diff", "--json"]);
    assert_eq!(code, 0);
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(plan["unchanged"], serde_json::json!(["db", "web"]));
    assert_eq!(plan["changed"], serde_json::json!([]));
    // Applying it is harmless.
    let before = pids(&p);
    let (code, stdout, _) = run(&p, &["apply"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("no changes"), "{stdout}");
    assert_eq!(pids(&p), before);
}

#[test]
fn an_added_service_is_started_and_the_others_keep_their_pids() {
    let first = service("db", "") + &service("web", "depends_on = [\"db\"]");
    let p = Project::new(&first);
    let _d = p.up();
    let before = pids(&p);
    rewrite(
        &p,
        &(first.clone() + &service("api", "") + &service("later", "autostart = false")),
    );
    let (code, stdout, _) = run(&p, &["diff"]);
    assert_eq!(code, 1, "changes: exit 1, as diff(1)");
    assert!(stdout.contains("+ api (added)\n"), "{stdout}");
    assert!(stdout.contains("+ later (added)\n"), "{stdout}");
    assert!(stdout.contains("= web unchanged\n"), "{stdout}");
    let (code, stdout, stderr) = run(&p, &["apply"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("started: api\n"), "{stdout}");
    assert_eq!(p.state_of("api"), "running");
    // Added without autostart: supervised, not started.
    assert_eq!(p.state_of("later"), "stopped");
    let after = pids(&p);
    assert_eq!(after["db"], before["db"]);
    assert_eq!(after["web"], before["web"]);
    // Now the file and the daemon agree.
    assert_eq!(run(&p, &["diff"]).0, 0);
    // The apply is in the audit (written in batches: poll).
    let mut row = serde_json::Value::Null;
    wait_until(Duration::from_secs(5), "an apply row in the audit", || {
        let audit = p.http("GET", "/api/v1/audit", "").json();
        row = audit
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["action"] == "apply")
            .cloned()
            .unwrap_or_default();
        !row.is_null()
    });
    assert_eq!(row["ok"], true);
    assert_eq!(row["origin"], "unix");
    assert!(
        row["result"].as_str().unwrap().contains("added api, later"),
        "{row}"
    );
}

#[test]
fn a_removed_service_is_stopped_and_gone() {
    let p = Project::new(&(service("web", "") + &service("old", "")));
    let _d = p.up();
    let before = pids(&p);
    let old_pid = before["old"].unwrap() as i32;
    rewrite(&p, &service("web", ""));
    let (code, stdout, _) = run(&p, &["diff"]);
    assert_eq!(code, 1);
    assert!(stdout.contains("- old (removed)\n"), "{stdout}");
    let (code, stdout, stderr) = run(&p, &["apply"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("stopped: old\n"), "{stdout}");
    assert!(!alive(old_pid), "old's process is gone");
    let after = pids(&p);
    assert_eq!(after.keys().collect::<Vec<_>>(), ["web"]);
    assert_eq!(after["web"], before["web"]);
    assert_eq!(p.tend(&["status", "old"]).status.code(), Some(1));
}

#[test]
fn a_changed_command_or_env_restarts_only_that_service() {
    // web depends on db: restarting db must not stop web.
    let first = service("db", "")
        + &service("web", "depends_on = { db = \"healthy\" }")
        + &service("worker", "env = { MODE = \"a\" }");
    let p = Project::new(&first);
    let _d = p.up();
    let before = pids(&p);
    let second = first
        .replacen("sleep 300", "sleep 301", 1)
        .replace("MODE = \"a\"", "MODE = \"b\", EXTRA = \"1\"");
    rewrite(&p, &second);
    let (code, stdout, _) = run(&p, &["diff"]);
    assert_eq!(code, 1);
    assert!(
        stdout.contains("~ db: command changed (restart)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("~ worker: env.EXTRA, env.MODE changed (restart)\n"),
        "{stdout}"
    );
    assert!(stdout.contains("= web unchanged\n"), "{stdout}");
    let (code, stdout, stderr) = run(&p, &["apply"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let after = pids(&p);
    assert_ne!(after["db"], before["db"]);
    assert_ne!(after["worker"], before["worker"]);
    assert_eq!(after["web"], before["web"], "the dependent kept running");
    assert_eq!(p.instance("web")["restarts"], 0);
    for name in ["db", "web", "worker"] {
        assert_eq!(p.state_of(name), "running", "{name}");
    }
    // The new command and environment are the ones running.
    let db_pid = after["db"].unwrap();
    let cmdline = std::fs::read(format!("/proc/{db_pid}/cmdline")).unwrap();
    assert_eq!(cmdline, b"sleep\x00301\x00");
    let worker_pid = after["worker"].unwrap();
    let environ = std::fs::read(format!("/proc/{worker_pid}/environ")).unwrap();
    assert!(environ.split(|b| *b == 0).any(|e| e == b"MODE=b"));
    assert!(environ.split(|b| *b == 0).any(|e| e == b"EXTRA=1"));
}

#[test]
fn a_stopped_service_that_changed_stays_stopped() {
    let first = service("web", "") + &service("idle", "autostart = false");
    let p = Project::new(&first);
    let _d = p.up();
    rewrite(
        &p,
        &first.replace(
            "autostart = false",
            "autostart = false\nstop_timeout = \"2s\"",
        ),
    );
    let (code, stdout, stderr) = run(&p, &["apply"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(!stdout.contains("started"), "{stdout}");
    assert_eq!(p.state_of("idle"), "stopped");
    // It starts with its new spec when asked.
    let out = p.tend(&["start", "idle"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn instances_scale_up_and_down_and_to_one() {
    let with = |n: u32| service("web", "") + &service("worker", &format!("instances = {n}"));
    let p = Project::new(&with(2));
    let _d = p.up();
    let before = pids(&p);
    rewrite(&p, &with(3));
    let (code, stdout, _) = run(&p, &["diff"]);
    assert_eq!(code, 1);
    assert!(
        stdout.contains(
            "~ worker: instances changed (scale from 2 to 3 instances, the others untouched)\n"
        ),
        "{stdout}"
    );
    let (code, stdout, stderr) = run(&p, &["apply"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("started: worker:2\n"), "{stdout}");
    let after = pids(&p);
    for name in ["web", "worker:0", "worker:1"] {
        assert_eq!(after[name], before[name], "{name} kept running");
    }
    assert_eq!(p.state_of("worker:2"), "running");

    // 3 → 2: the highest goes, the others stay.
    let three = pids(&p);
    rewrite(&p, &with(2));
    let (code, stdout, stderr) = run(&p, &["apply"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("stopped: worker:2\n"), "{stdout}");
    let two = pids(&p);
    assert_eq!(
        two.keys().collect::<Vec<_>>(),
        ["web", "worker:0", "worker:1"]
    );
    assert!(!alive(three["worker:2"].unwrap() as i32));
    assert_eq!(two["worker:0"], three["worker:0"]);
    assert_eq!(two["worker:1"], three["worker:1"]);

    // 2 → 1: `worker:0` and `worker:1` become `worker`, a new instance.
    rewrite(&p, &with(1));
    let (code, stdout, _) = run(&p, &["diff"]);
    assert_eq!(code, 1);
    assert!(
        stdout.contains("~ worker: instances changed (restart)\n"),
        "{stdout}"
    );
    let (code, stdout, stderr) = run(&p, &["apply"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let one = pids(&p);
    assert_eq!(one.keys().collect::<Vec<_>>(), ["web", "worker"]);
    assert_eq!(p.state_of("worker"), "running");
    assert_eq!(one["web"], before["web"]);
    for name in ["worker:0", "worker:1"] {
        assert!(!alive(two[name].unwrap() as i32), "{name} is gone");
    }
}

#[test]
fn an_invalid_manifest_changes_nothing() {
    let good = service("db", "") + &service("web", "depends_on = [\"db\"]");
    let p = Project::new(&good);
    let _d = p.up();
    let before = pids(&p);

    // A syntax error: the line is named.
    rewrite(
        &p,
        &(good.clone() + "[services.api\ncommand = \"sleep 1\"\n"),
    );
    let (code, stdout, stderr) = run(&p, &["apply"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let file = p.manifest().canonicalize().unwrap();
    let syntax_line = good.lines().count() + 1;
    assert!(
        stderr.contains(&format!("{}:{syntax_line}:", file.display())),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    let (code, _, stderr) = run(&p, &["diff"]);
    assert_eq!(code, 2, "trouble is 2 for diff: {stderr}");
    assert_eq!(pids(&p), before);

    // A semantic error: a dependency on a service that does not exist, plus a new service
    // that must not be added either.
    let bad = good.replace("depends_on = [\"db\"]", "depends_on = [\"dbb\"]") + &service("api", "");
    rewrite(&p, &bad);
    let (code, stdout, stderr) = run(&p, &["apply"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let dep_line = bad
        .lines()
        .position(|l| l.contains("dbb"))
        .map(|i| i + 1)
        .unwrap();
    assert!(
        stderr.contains(&format!(
            "{}:{dep_line}: services.web.depends_on",
            file.display()
        )),
        "{stderr}"
    );
    assert_eq!(pids(&p), before, "every pid unchanged, nothing added");

    // The API says the same with every error's parts.
    let answer = p.http("GET", "/api/v1/plan", "");
    assert_eq!(answer.status, 422);
    let errors = answer.json()["errors"].clone();
    assert_eq!(errors[0]["line"], dep_line);
    assert!(
        errors[0]["key"]
            .as_str()
            .unwrap()
            .starts_with("services.web.depends_on"),
        "{errors}"
    );
    assert_eq!(p.http("POST", "/api/v1/apply", "").status, 422);
    assert_eq!(pids(&p), before);

    // Fixed, the file applies.
    rewrite(&p, &(good + &service("api", "")));
    assert_eq!(run(&p, &["apply"]).0, 0);
    assert_eq!(p.state_of("api"), "running");
}

#[test]
fn daemon_settings_wait_and_supervisor_settings_restart_nothing() {
    let first = service("db", "") + &service("web", "depends_on = [\"db\"]");
    let p = Project::new(&first);
    let _d = p.up();
    let before = pids(&p);
    let second = format!(
        "[tend]\nmax_starting = 4\n\n{}",
        first.replace(
            "depends_on = [\"db\"]",
            "priority = 5\ngroups = [\"front\"]"
        )
    );
    rewrite(&p, &second);
    let (code, stdout, _) = run(&p, &["diff"]);
    assert_eq!(code, 1);
    assert!(
        stdout.contains(
            "~ web: depends_on.db, priority, groups changed (update, nothing restarts)\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("! tend.max_starting changed: not applied while tend runs"),
        "{stdout}"
    );
    let (code, stdout, stderr) = run(&p, &["apply"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(pids(&p), before);
    // The new group is a target at once.
    let status = p.tend(&["status", "--json", "front"]);
    assert!(status.status.success(), "{}", text(&status.stderr));
    // Only the [tend] change is left to do.
    let (code, stdout, _) = run(&p, &["diff"]);
    assert_eq!(code, 1);
    assert!(stdout.contains("= web unchanged"), "{stdout}");
    assert!(stdout.contains("! tend.max_starting"), "{stdout}");
}

#[test]
fn changed_log_settings_take_effect_and_keep_the_tail() {
    let first = "[services.talker]\ncommand = \"sh -c 'echo first; exec sleep 300'\"\nmin_uptime = \"100ms\"\n";
    let p = Project::new(first);
    let _d = p.up();
    wait_until(
        Duration::from_secs(5),
        "first line in the default file",
        || p.read(".tend/logs/talker.out.log").contains("first"),
    );
    rewrite(
        &p,
        &first
            .replace("echo first", "echo second")
            .replace("min_uptime", "logs = { stdout = \"talk.log\" }\nmin_uptime"),
    );
    let (code, stdout, stderr) = run(&p, &["apply"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    wait_until(
        Duration::from_secs(5),
        "second line in the new file",
        || p.read("talk.log").contains("second"),
    );
    assert!(!p.read(".tend/logs/talker.out.log").contains("second"));
    // `tend logs` still has the first run's output.
    let logs = text(&p.tend(&["logs", "--no-prefix", "talker"]).stdout);
    assert_eq!(logs, "first\nsecond\n");
}

#[test]
fn sighup_applies_the_manifest() {
    let first = service("web", "");
    let p = Project::new(&first);
    let d = p.up();
    let before = pids(&p);
    rewrite(&p, &(first.clone() + &service("api", "")));
    let pid = d.pid().expect("daemon pid");
    unsafe { libc::kill(pid, libc::SIGHUP) };
    wait_until(Duration::from_secs(10), "api to run after SIGHUP", || {
        p.status()
            .iter()
            .any(|i| i["name"] == "api" && i["state"] == "running")
    });
    assert_eq!(pids(&p)["web"], before["web"]);
    wait_until(Duration::from_secs(5), "the apply in tend.log", || {
        p.read(".tend/tend.log").contains("apply: added api")
    });
    // An invalid file on SIGHUP: the errors go to tend's log, nothing changes.
    rewrite(&p, &(first + "[services.broken\n"));
    let running = pids(&p);
    unsafe { libc::kill(pid, libc::SIGHUP) };
    wait_until(Duration::from_secs(5), "the errors in tend.log", || {
        p.read(".tend/tend.log")
            .contains("apply: nothing was changed")
    });
    assert!(p.read(".tend/tend.log").contains("tend.toml:"));
    assert_eq!(pids(&p), running);
    assert!(alive(pid), "tend keeps running");
}

#[test]
fn a_supervisord_conf_applies_like_a_manifest() {
    let base = "[unix_http_server]\nfile=%(here)s/s.sock\n[supervisord]\n[supervisorctl]\nserverurl=unix://%(here)s/s.sock\n[program:keep]\ncommand=sleep 301\nstartsecs=0\n[program:edit]\ncommand=sleep 302\nstartsecs=0\n";
    let p = Project::with_manifest("supervisord.conf", base);
    let _d = p.up_ready();
    let before = pids(&p);
    std::fs::write(
        p.manifest(),
        base.replace("sleep 302", "sleep 312") + "[program:new]\ncommand=sleep 304\nstartsecs=0\n",
    )
    .unwrap();
    let (code, stdout, _) = run(&p, &["diff"]);
    assert_eq!(code, 1);
    assert!(stdout.contains("+ new (added)\n"), "{stdout}");
    assert!(
        stdout.contains("~ edit: command changed (restart)\n"),
        "{stdout}"
    );
    let (code, stdout, stderr) = run(&p, &["apply"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let after = pids(&p);
    assert_eq!(after["keep"], before["keep"]);
    assert_ne!(after["edit"], before["edit"]);
    assert_eq!(p.state_of("new"), "running");
    assert_eq!(run(&p, &["diff"]).0, 0);
}

#[test]
fn a_changed_socket_refuses_the_whole_apply() {
    let first =
        "[sockets.http]\nlisten = \"tcp://127.0.0.1:0\"\n\n".to_string() + &service("web", "");
    let p = Project::new(&first);
    let _d = p.up();
    let before = pids(&p);
    rewrite(
        &p,
        &(first.replace("127.0.0.1:0", "127.0.0.1:1") + &service("api", "")),
    );
    let (code, stdout, stderr) = run(&p, &["apply"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert!(stderr.contains("[sockets] `http` changed"), "{stderr}");
    assert_eq!(pids(&p), before, "api was not added, web untouched");
}
