use std::time::Duration;

use crate::harness::*;

/// Each service appends "start NAME" when it starts and "stop NAME" when told to stop.
fn service(name: &str, extra: &str) -> String {
    format!(
        r#"
[services.{name}]
command = "sh -c 'trap \"echo stop {name} >> order; exit 0\" TERM; echo start {name} >> order; while true; do sleep 0.02; done'"
min_uptime = "200ms"
{extra}
"#
    )
}

#[test]
fn starts_in_dependency_order_and_stops_in_reverse() {
    let manifest = [
        service("web", "depends_on = { api = \"healthy\" }"),
        service(
            "api",
            "depends_on = { db = \"healthy\", migrate = \"completed\" }",
        ),
        r#"
[services.migrate]
kind = "task"
command = "sh -c 'sleep 0.1; echo start migrate >> order'"
depends_on = { db = "started" }
"#
        .to_string(),
        service("db", ""),
    ]
    .concat();
    let p = Project::new(&manifest);
    let d = p.up();
    wait_until(Duration::from_secs(5), "four starts", || {
        p.read("order").lines().count() == 4
    });
    let starts: Vec<String> = p.read("order").lines().map(String::from).collect();
    assert_eq!(
        starts,
        ["start db", "start migrate", "start api", "start web"]
    );
    assert_eq!(p.state_of("migrate"), "exited");
    assert_eq!(p.instance("migrate")["exit_code"], 0);
    drop(d);
    let lines: Vec<String> = p.read("order").lines().skip(4).map(String::from).collect();
    assert_eq!(lines, ["stop web", "stop api", "stop db"]);
}

#[test]
fn dependents_wait_and_say_why() {
    let p = Project::new(
        &[
            service("db", "autostart = false"),
            service(
                "web",
                "depends_on = { db = \"healthy\" }\nautostart = false",
            ),
        ]
        .concat(),
    );
    let d = p.up();
    assert_eq!(p.state_of("web"), "stopped");
    // Starting web starts db first and waits for it.
    let out = p.tend(&["start", "web"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        p.read("order").lines().collect::<Vec<_>>(),
        ["start db", "start web"]
    );
    drop(d);
}

#[test]
fn failed_dependency_blocks_dependents_with_a_reason() {
    let p = Project::new(
        r#"
[services.db]
command = "sh -c 'exit 1'"
max_restarts = 0

[services.web]
command = "sleep 1000"
depends_on = { db = "healthy" }
"#,
    );
    let out = p.tend(&["up", "-d", "--wait"]);
    let _d = Daemon::attach(&p);
    assert!(
        !out.status.success(),
        "up -d --wait must report the failure"
    );
    let stderr = text(&out.stderr);
    assert!(stderr.contains("db: fatal"), "{stderr}");
    assert!(stderr.contains("web: waiting for db"), "{stderr}");
    let web = p.instance("web");
    assert_eq!(web["state"], "waiting");
    assert!(
        web["reason"].as_str().unwrap().contains("waiting for db"),
        "{web}"
    );
}

#[test]
fn priority_orders_independent_services() {
    let p = Project::new(
        &[
            service("late", "priority = 10"),
            service("early", "priority = -5"),
            service("middle", ""),
        ]
        .concat(),
    );
    let d = p.up();
    wait_until(Duration::from_secs(5), "three starts", || {
        p.read("order").lines().count() == 3
    });
    drop(d);
    let stops: Vec<String> = p
        .read("order")
        .lines()
        .filter(|l| l.starts_with("stop"))
        .map(String::from)
        .collect();
    assert_eq!(
        stops,
        ["stop late", "stop middle", "stop early"],
        "higher priority numbers stop first"
    );
}

#[test]
fn instances_get_their_own_names_env_and_ports() {
    let p = Project::new(
        r#"
[services.worker]
command = "sh -c 'echo $TEND_SERVICE {instance} $TEND_INSTANCE $PORT {port} > out.{instance}; exec sleep 1000'"
instances = 3
port_base = 8100
"#,
    );
    let _d = p.up();
    let names: Vec<String> = p
        .status()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["worker:0", "worker:1", "worker:2"]);
    for i in 0..3 {
        wait_until(Duration::from_secs(5), "output file", || {
            !p.read(&format!("out.{i}")).is_empty()
        });
        let port = 8100 + i;
        assert_eq!(
            p.read(&format!("out.{i}")).trim(),
            format!("worker {i} {i} {port} {port}")
        );
    }
    let out = p.tend(&["stop", "worker:1"]);
    assert!(out.status.success());
    assert_eq!(p.state_of("worker:1"), "stopped");
    assert_eq!(p.state_of("worker:0"), "running");
}
