//! `watch`, `cron_restart` and `schedule` through the real binary. File watches end to end
//! (real files, a real inotify, the real restart); cron fires need a clock the test can
//! move, so they are driven in-process (tests/schedule_inprocess.rs) and checked here for
//! what the binary does with them: validation, `tend check`, a scheduled task not started
//! by `up`.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{Project, text, wait_until};

fn pid(project: &Project, name: &str) -> Option<u64> {
    project.instance(name)["pid"].as_u64()
}

/// The reasons of the web's restarts, from the history, oldest first.
fn restart_reasons(project: &Project) -> Vec<String> {
    let out = project.tend(&["events", "--json", "--since", "1h", "--service", "web"]);
    assert!(out.status.success(), "events: {}", text(&out.stderr));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.iter()
        .filter(|e| e["kind"] == "state" && e["to_state"] == "stopping")
        .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_burst_of_changes_restarts_once_and_ignored_state_and_log_files_never_do() {
    let project = Project::new(
        r#"
[services.web]
# Writes its log into the watched tree at every start: without the log exclusion it
# would restart itself for ever.
command = "sh -c 'echo started; exec sleep 300'"
watch = ["**/*.py", "out"]
watch_ignore = ["src/ignored"]
watch_debounce = "200ms"
stop_timeout = "2s"
logs = { stdout = "out/web.log" }
"#,
    );
    for dir in ["src/ignored", "out"] {
        std::fs::create_dir_all(project.file(dir)).unwrap();
    }
    std::fs::write(project.file("src/app.py"), "v = 0\n").unwrap();
    let _daemon = project.up();
    wait_until(Duration::from_secs(10), "the watch to be set up", || {
        project
            .read(".tend/tend.log")
            .contains("web: watching 3 directories for changes")
    });
    let first = pid(&project, "web").expect("web runs");

    for i in 0..20 {
        std::fs::write(project.file("src/app.py"), format!("v = {i}\n")).unwrap();
    }
    wait_until(Duration::from_secs(10), "web to restart", || {
        pid(&project, "web").is_some_and(|p| p != first)
    });
    project.wait_state("web", "running", Duration::from_secs(10));
    let second = pid(&project, "web").unwrap();

    // Nothing of these restarts: an ignored directory, tend's state dir (its logs, a .py
    // dropped there), the service's own log file (written at every start) and its rotation.
    std::fs::write(project.file("src/ignored/x.py"), "x").unwrap();
    std::fs::write(project.file(".tend/scratch.py"), "x").unwrap();
    std::fs::write(project.file(".tend/logs/x.py"), "x").unwrap();
    std::fs::write(project.file("out/web.log.1"), "x").unwrap();
    // A change that counts, last: had anything above restarted web, that restart would
    // come before this one in the history.
    std::fs::write(project.file("src/marker.py"), "x").unwrap();
    wait_until(Duration::from_secs(10), "web to restart again", || {
        pid(&project, "web").is_some_and(|p| p != second)
    });
    wait_until(
        Duration::from_secs(10),
        "both restarts in the history",
        || restart_reasons(&project).len() >= 2,
    );
    assert_eq!(
        restart_reasons(&project),
        ["watch: src/app.py changed", "watch: src/marker.py changed"]
    );
    assert!(project.read("out/web.log").contains("started"));
}

#[test]
fn a_crashed_service_restarts_on_a_fix_and_a_stopped_one_does_not() {
    let project = Project::new(
        r#"
[services.web]
command = "sh -c 'test -f fixed && exec sleep 300; exit 1'"
watch = "fixed"
watch_debounce = "100ms"
max_restarts = 0
stop_timeout = "2s"
"#,
    );
    let _daemon = project.up_allow_failure();
    project.wait_state("web", "fatal", Duration::from_secs(10));
    wait_until(Duration::from_secs(10), "the watch to be set up", || {
        project.read(".tend/tend.log").contains("web: watching")
    });
    std::fs::write(project.file("fixed"), "").unwrap();
    project.wait_state("web", "running", Duration::from_secs(10));

    assert!(project.tend(&["stop", "web"]).status.success());
    std::fs::remove_file(project.file("fixed")).unwrap();
    wait_until(
        Duration::from_secs(10),
        "the watch to see the change",
        || {
            project
                .read(".tend/tend.log")
                .contains("web: watch: fixed changed: stopped; nothing to restart")
        },
    );
    assert_eq!(project.state_of("web"), "stopped");
}

#[test]
fn schedules_are_checked_and_a_scheduled_task_waits_for_its_time() {
    let project = Project::new(
        r#"[services.web]
command = "sleep 300"
cron_restart = "0 3 * * *"
watch = ["src/**/*.py"]

[services.backup]
kind = "task"
command = "true"
schedule = "@daily"

[services.report]
kind = "task"
command = "true"
schedule = "*/5 * * * mon-fri"
autostart = true
"#,
    );
    let out = project.tend(&["check"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let _daemon = project.up();
    project.wait_state("report", "exited", Duration::from_secs(10));
    assert_eq!(
        project.state_of("backup"),
        "stopped",
        "it waits for midnight"
    );
    assert_eq!(project.state_of("web"), "running");
}

#[test]
fn schedule_errors_name_file_line_and_key() {
    let project = Project::new(
        r#"[services.web]
command = "sleep 300"
cron_restart = "61 * * * *"
schedule = "@daily"
watch_debounce = "1s"

[services.job]
kind = "task"
command = "true"
schedule = "0 0 30 2 *"
max_concurrent = 2
"#,
    );
    let out = project.tend(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let file = project
        .manifest()
        .canonicalize()
        .unwrap()
        .display()
        .to_string();
    for expected in [
        format!("{file}:3: services.web.cron_restart: bad minute field \"61\": 61 is not in 0-59"),
        format!("{file}:4: services.web.schedule: only a task"),
        format!("{file}:5: services.web.watch_debounce: only applies with `watch`"),
        format!("{file}:10: services.job.schedule: never fires"),
        format!("{file}:11: services.job.max_concurrent: 2 is not supported"),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing `{expected}` in:\n{stderr}"
        );
    }
    // `up` refuses it the same way, starting nothing.
    let out = project.tend(&["up", "-d"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("services.web.cron_restart"));
}
