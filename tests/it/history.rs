//! The SQLite history through the real daemon: events and actions recorded, kept across a
//! daemon restart, read by `tend events` and `tend summary`; a corrupt database moved aside.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{Project, text, wait_until};

const MANIFEST: &str = r#"
[services.web]
command = "sleep 300"
min_uptime = "100ms"

[services.flaky]
command = "sh -c 'sleep 0.2; exit 3'"
restart = "on-failure"
min_uptime = "100ms"
backoff = { initial = "100ms", max = "100ms" }
max_restarts = 2
restart_window = "1m"
"#;

fn events(project: &Project, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["events", "--json", "--since", "1h"];
    all.extend_from_slice(args);
    let out = project.tend(&all);
    assert!(out.status.success(), "events failed: {}", text(&out.stderr));
    serde_json::from_slice::<Vec<Value>>(&out.stdout).expect("events json")
}

#[test]
fn history_records_exits_and_actions_and_survives_a_restart() {
    let project = Project::new(MANIFEST);
    {
        let _daemon = project.up_allow_failure();
        project.wait_state("flaky", "fatal", Duration::from_secs(20));
        assert!(project.tend(&["restart", "web"]).status.success());
        // Written in batches: wait until the writer has caught up.
        wait_until(
            Duration::from_secs(10),
            "the fatal event in the history",
            || {
                events(&project, &["--service", "flaky"])
                    .iter()
                    .any(|e| e["to_state"] == "fatal")
            },
        );
        // The audit is written in batches too.
        let restarted = || {
            let audit = project.http("GET", "/api/v1/audit", "").json();
            audit
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["action"] == "restart")
                .cloned()
        };
        wait_until(Duration::from_secs(10), "the restart in the audit", || {
            restarted().is_some()
        });
        let restart = restarted().expect("the restart in the audit");
        assert_eq!(restart["origin"], "unix");
        assert_eq!(restart["targets"], "web");
        assert_eq!(restart["ok"], true);
        let uid = nix::unistd::getuid().as_raw();
        assert_eq!(restart["who"], format!("uid {uid}"));
    }
    // A new daemon on the same state dir sees the old run's events.
    let _daemon = project.up();
    let flaky = events(&project, &["--service", "flaky"]);
    let exits: Vec<&Value> = flaky.iter().filter(|e| e["kind"] == "exit").collect();
    assert!(exits.len() >= 3, "three failed runs: {flaky:#?}");
    assert!(exits.iter().all(|e| e["exit_code"] == 3));
    assert!(flaky.iter().all(|e| e["service"] == "flaky"));
    let times: Vec<i64> = flaky.iter().map(|e| e["at_ms"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest first");

    let table = text(&project.tend(&["events", "--service", "flaky"]).stdout);
    assert!(table.contains("exited with code 3"), "{table}");

    let summary = project.tend(&["summary", "--json"]);
    assert!(summary.status.success(), "{}", text(&summary.stderr));
    let summary: Value = serde_json::from_slice(&summary.stdout).unwrap();
    let flaky = summary["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "flaky")
        .expect("flaky in the summary")
        .clone();
    assert_eq!(flaky["restarts"], 2, "{flaky}");
    assert_eq!(flaky["last_failure"]["service"], "flaky");
    let table = text(&project.tend(&["summary"]).stdout);
    assert!(
        table.contains("SERVICE") && table.contains("flaky"),
        "{table}"
    );
}

#[test]
fn a_corrupt_database_is_moved_aside_and_supervision_goes_on() {
    let project = Project::new(MANIFEST);
    std::fs::create_dir_all(project.file(".tend")).unwrap();
    std::fs::write(project.file(".tend/tend.db"), vec![b'x'; 16 * 1024]).unwrap();
    let _daemon = project.up_allow_failure();
    assert_eq!(project.state_of("web"), "running");
    // The history's thread opens the file while the services start: wait for its report.
    wait_until(Duration::from_secs(10), "the report in tend.log", || {
        project.read(".tend/tend.log").contains("history:")
    });
    let aside: Vec<String> = std::fs::read_dir(project.file(".tend"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("tend.db.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "the bad file is kept for a look: {aside:?}");
    assert!(project.tend(&["restart", "web"]).status.success());
    wait_until(
        Duration::from_secs(10),
        "new events in the fresh database",
        || {
            events(&project, &["--service", "web"])
                .iter()
                .any(|e| e["kind"] == "spawn")
        },
    );
}

#[test]
fn history_can_be_turned_off() {
    let project = Project::new(
        r#"
[tend.history]
enabled = false

[services.web]
command = "sleep 300"
"#,
    );
    let _daemon = project.up();
    let answer = project.http("GET", "/api/v1/events", "");
    assert_eq!(answer.status, 404);
    assert!(
        answer.json()["error"]
            .as_str()
            .unwrap()
            .contains("history is off")
    );
    assert!(!project.file(".tend/tend.db").exists());
}
