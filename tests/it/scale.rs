//! `tend scale SERVICE N` and `autoscale` against a running daemon: new indices start and
//! the others keep their processes, the highest indices stop, the count survives an apply
//! of an unchanged file and yields to a changed one, errors, roles, and the autoscaler
//! following a busy child and an idle one.

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

fn names(p: &Project) -> Vec<String> {
    pids(p).into_keys().collect()
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

fn service(name: &str, extra: &str) -> String {
    format!("[services.{name}]\ncommand = \"sleep 300\"\nmin_uptime = \"100ms\"\n{extra}\n\n")
}

fn pid(p: &Project, name: &str) -> i32 {
    p.instance(name)["pid"].as_u64().unwrap() as i32
}

/// The `scale` events the history holds for `service` (written in batches: poll).
fn scale_events(p: &Project, service: &str, at_least: usize) -> Vec<String> {
    let mut reasons = Vec::new();
    wait_until(
        Duration::from_secs(10),
        &format!("{at_least} scale event(s) of {service} in the history"),
        || {
            let events = p
                .http("GET", &format!("/api/v1/events?service={service}"), "")
                .json();
            reasons = events
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["kind"] == "scale")
                .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
                .collect();
            reasons.len() >= at_least
        },
    );
    reasons
}

#[test]
fn scaling_up_starts_the_next_indices_and_down_stops_the_highest() {
    let p = Project::new(&(service("web", "instances = 2") + &service("db", "")));
    let _d = p.up();
    let before = pids(&p);
    let (code, stdout, stderr) = run(&p, &["scale", "web", "4"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(
        stdout,
        "web: 2 → 4 instances (the manifest says 2: an apply that changes it takes it back)\n\
         web:2: started\nweb:3: started\n"
    );
    // `tend scale` answers once the new ones are up, as `tend start` does.
    for name in ["web:0", "web:1", "web:2", "web:3"] {
        assert_eq!(p.state_of(name), "running", "{name}");
    }
    let after = pids(&p);
    assert_eq!(after["web:0"], before["web:0"], "web:0 kept its process");
    assert_eq!(after["web:1"], before["web:1"], "web:1 kept its process");
    assert_eq!(after["db"], before["db"]);
    let environ = std::fs::read(format!("/proc/{}/environ", pid(&p, "web:3"))).unwrap();
    assert!(environ.split(|b| *b == 0).any(|e| e == b"TEND_INSTANCE=3"));
    // The count is shown under the status table.
    let (code, stdout, _) = run(&p, &["status"]);
    assert_eq!(code, 0);
    assert!(
        stdout.ends_with("web: 4 instances, set by tend scale (the manifest says 2)\n"),
        "{stdout}"
    );
    let service = p.http("GET", "/api/v1/services/web", "").json();
    assert_eq!(service["count"], 4);
    assert_eq!(service["scaled"]["manifest"], 2);
    assert_eq!(service["scaled"]["by"], "tend scale");

    // Down to 1: the highest three stop, whole, and are gone; web:0 keeps its process
    // and its name.
    let doomed: Vec<i32> = ["web:1", "web:2", "web:3"]
        .iter()
        .map(|n| pid(&p, n))
        .collect();
    let (code, stdout, stderr) = run(&p, &["scale", "web", "1"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.starts_with("web: 4 → 1 instance"), "{stdout}");
    assert!(
        stdout.contains("web:3: stopped\nweb:2: stopped\nweb:1: stopped\n"),
        "the highest first: {stdout}"
    );
    for pid in doomed {
        assert!(!alive(pid), "pid {pid} of a removed instance is gone");
    }
    assert_eq!(names(&p), ["db", "web:0"]);
    assert_eq!(pids(&p)["web:0"], before["web:0"]);
    // Back to the manifest's count: nothing left to remember.
    let (code, stdout, stderr) = run(&p, &["scale", "web", "2"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(stdout, "web: 1 → 2 instances\nweb:1: started\n");
    let service = p.http("GET", "/api/v1/services/web", "").json();
    assert!(service.get("scaled").is_none(), "{service}");
    assert!(!run(&p, &["status"]).1.contains("set by"));
    // The same count again: nothing to do.
    let (code, stdout, _) = run(&p, &["scale", "web", "2"]);
    assert_eq!((code, stdout.as_str()), (0, "web: already 2 instances\n"));

    // Each change is in the history, with its reason, and in the audit.
    let reasons = scale_events(&p, "web", 3);
    assert!(reasons[0].starts_with("tend scale by uid "), "{reasons:?}");
    assert!(reasons[0].ends_with(": 2 → 4"), "{reasons:?}");
    assert!(reasons[1].ends_with(": 4 → 1"), "{reasons:?}");
    let (_, events, _) = run(&p, &["events", "-s", "web"]);
    assert!(events.contains("scale"), "{events}");
    wait_until(Duration::from_secs(10), "the scale in the audit", || {
        let audit = p.http("GET", "/api/v1/audit", "").json();
        audit.as_array().unwrap().iter().any(|a| {
            a["action"] == "scale"
                && a["targets"] == "web"
                && a["ok"] == true
                && a["result"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("2 → 4; started web:2, web:3")
        })
    });
}

#[test]
fn a_single_instance_scales_to_three_and_back_under_one_name() {
    let p = Project::new(&service("solo", ""));
    let _d = p.up();
    let first = pid(&p, "solo");
    // From one instance the names change (`solo` → `solo:0`…): it is replaced, once.
    let (code, stdout, stderr) = run(&p, &["scale", "solo", "3"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("solo: stopped\n"), "{stdout}");
    assert!(!alive(first));
    assert_eq!(names(&p), ["solo:0", "solo:1", "solo:2"]);
    for name in ["solo:0", "solo:1", "solo:2"] {
        assert_eq!(p.state_of(name), "running", "{name}");
    }
    let kept = pids(&p)["solo:0"];
    // Back to one: `solo:0` stays as it is, name and process.
    let (code, stdout, stderr) = run(&p, &["scale", "solo", "1"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(names(&p), ["solo:0"]);
    assert_eq!(pids(&p)["solo:0"], kept);
    assert!(
        run(&p, &["status"])
            .1
            .contains("solo: 1 instance, set by tend scale (the manifest says 1)"),
    );
    // And up again: only the new index starts.
    let (code, _, _) = run(&p, &["scale", "solo", "2"]);
    assert_eq!(code, 0);
    assert_eq!(names(&p), ["solo:0", "solo:1"]);
    assert_eq!(pids(&p)["solo:0"], kept);
}

#[test]
fn the_scaled_count_survives_an_unchanged_apply_and_yields_to_a_changed_one() {
    let with = |n: u32, extra: &str| service("web", &format!("instances = {n}")) + extra;
    let p = Project::new(&with(2, ""));
    let _d = p.up();
    assert_eq!(run(&p, &["scale", "web", "3"]).0, 0);
    let scaled = pids(&p);
    // The file has not changed: diff says so, and names the count it keeps.
    let (code, stdout, _) = run(&p, &["diff"]);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(
        stdout,
        "= web unchanged\n  web keeps its 3 instances, set by tend scale (the manifest says 2)\nno changes\n"
    );
    let (code, stdout, stderr) = run(&p, &["apply"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(pids(&p), scaled, "apply did not undo the scale");
    // A change elsewhere in the file (a service added): the count stays.
    std::fs::write(p.manifest(), with(2, &service("db", ""))).unwrap();
    let (code, stdout, stderr) = run(&p, &["apply"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("+ db (added)"), "{stdout}");
    let after = pids(&p);
    for name in ["web:0", "web:1", "web:2"] {
        assert_eq!(after[name], scaled[name], "{name}");
    }
    // The file's count changes: it takes over, from the count in force (3 → 4).
    std::fs::write(p.manifest(), with(4, &service("db", ""))).unwrap();
    let (code, stdout, _) = run(&p, &["diff"]);
    assert_eq!(code, 1);
    assert!(
        stdout.contains("~ web: instances changed (scale from 3 to 4 instances"),
        "{stdout}"
    );
    let (code, stdout, stderr) = run(&p, &["apply"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let after = pids(&p);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        ["db", "web:0", "web:1", "web:2", "web:3"]
    );
    for name in ["web:0", "web:1", "web:2"] {
        assert_eq!(after[name], scaled[name], "{name}");
    }
    let service = p.http("GET", "/api/v1/services/web", "").json();
    assert_eq!(service["count"], 4);
    assert!(
        service.get("scaled").is_none(),
        "the override is gone: {service}"
    );
    // From now on the file rules: an apply of it changes nothing.
    assert_eq!(run(&p, &["diff"]).0, 0);
}

#[test]
fn a_stopped_service_is_scaled_without_starting() {
    let p = Project::new(&service("web", "instances = 2\nautostart = false"));
    let _d = p.up();
    let (code, stdout, stderr) = run(&p, &["scale", "web", "3"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("web is not running: the new instances are stopped"),
        "{stdout}"
    );
    assert_eq!(p.state_of("web:2"), "stopped");
    // Started later, it starts all three.
    assert!(p.tend(&["start", "web"]).status.success());
    assert_eq!(p.state_of("web:2"), "running");
}

#[test]
fn scale_errors() {
    let p = Project::new(
        &(service("web", "instances = 2\nport_base = 65534")
            + &service(
                "auto",
                "autoscale = { max = 3, cpu = \"90%\", cooldown = \"1h\" }",
            )),
    );
    let _d = p.up();
    let (code, _, stderr) = run(&p, &["scale", "nope", "2"]);
    assert_eq!(code, 1);
    assert_eq!(stderr, "tend: no service named `nope`\n");
    // An instance or a group is not a service.
    let (code, _, stderr) = run(&p, &["scale", "web:0", "2"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no service named `web:0`"), "{stderr}");
    // 0 and non-numbers are refused by the CLI before it asks.
    for bad in ["0", "-1", "two", "10001"] {
        let (code, _, stderr) = run(&p, &["scale", "web", bad]);
        assert_eq!(code, 2, "{bad}: {stderr}");
    }
    // And by the API, with the reason.
    let zero = p.http(
        "POST",
        "/api/v1/actions/scale",
        r#"{"service": "web", "instances": 0}"#,
    );
    assert_eq!(zero.status, 400);
    assert!(
        zero.json()["error"]
            .as_str()
            .unwrap()
            .contains("tend stop web")
    );
    let huge = p.http(
        "POST",
        "/api/v1/actions/scale",
        r#"{"service": "web", "instances": 10001}"#,
    );
    assert_eq!(huge.status, 400);
    let missing = p.http("POST", "/api/v1/actions/scale", r#"{"service": "web"}"#);
    assert_eq!(missing.status, 400, "{}", missing.body);
    // Past the last port.
    let (code, _, stderr) = run(&p, &["scale", "web", "3"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("past 65535"), "{stderr}");
    // An autoscaled service's count is the autoscaler's.
    let (code, _, stderr) = run(&p, &["scale", "auto", "2"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("`auto` is autoscaled between 1 and 3 instances"),
        "{stderr}"
    );
    // Nothing changed.
    assert_eq!(names(&p), ["auto:0", "web:0", "web:1"]);
}

#[test]
fn a_read_only_token_cannot_scale() {
    const READ: &str = "read-token-0123456789abcdef";
    const OPERATE: &str = "operate-token-0123456789abcdef";
    let p = Project::new(
        &(r#"
[tend.http]
listen = "127.0.0.1:0"
tokens_file = "tokens"

"#
        .to_string()
            + &service("web", "")),
    );
    p.write_with_mode(
        "tokens",
        &format!("{READ} read\n{OPERATE} operate\n"),
        0o600,
    );
    let _d = p.up();
    let address = p.http("GET", "/api/v1/info", "").json()["http_listen"]
        .as_str()
        .unwrap()
        .to_string();
    let tcp = |token: &str| {
        let stream = std::net::TcpStream::connect(&address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let bearer = format!("Bearer {token}");
        http_over(
            stream,
            "POST",
            "/api/v1/actions/scale",
            &[("Authorization", &bearer)],
            r#"{"service": "web", "instances": 2}"#,
        )
    };
    let refused = tcp(READ);
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(names(&p), ["web"]);
    let done = tcp(OPERATE);
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.json()["to"], 2);
    assert_eq!(names(&p), ["web:0", "web:1"]);
    wait_until(
        Duration::from_secs(10),
        "the token's scale in the audit",
        || {
            let audit = p.http("GET", "/api/v1/audit", "").json();
            audit.as_array().unwrap().iter().any(|a| {
                a["action"] == "scale"
                    && a["origin"].as_str().unwrap_or_default().starts_with("tcp")
                    && a["who"].as_str().unwrap_or_default().contains("tokens:2")
            })
        },
    );
}

/// A child that burns a core is scaled up to `max`; idle instances are scaled down to
/// `min`, one at a time. A 10% target is far from both: a busy loop is near 100% of a
/// core however loaded the machine, and `sleep` near 0%.
#[test]
fn autoscale_follows_a_busy_child_up_and_idle_ones_down() {
    let p = Project::new(
        r#"
[tend]
sample_every = "200ms"

[services.busy]
command = "sh -c 'while :; do :; done'"
min_uptime = "100ms"
autoscale = { min = 1, max = 2, cpu = "10%", cooldown = "1s" }

[services.idle]
command = "sleep 300"
min_uptime = "100ms"
instances = 3
autoscale = { min = 1, max = 3, cpu = "50%", cooldown = "1s" }
"#,
    );
    let _d = p.up();
    // Named with their index from the start, even at one instance.
    assert_eq!(p.state_of("busy:0"), "running");
    wait_until(Duration::from_secs(60), "busy:1 to run", || {
        p.status()
            .iter()
            .any(|i| i["name"] == "busy:1" && i["state"] == "running")
    });
    wait_until(Duration::from_secs(60), "idle down to 1 instance", || {
        names(&p).iter().filter(|n| n.starts_with("idle")).count() == 1
    });
    let busy = scale_events(&p, "busy", 1);
    assert!(
        busy[0].starts_with("cpu ") && busy[0].ends_with("% > 10% target: 1 → 2"),
        "{busy:?}"
    );
    let idle = scale_events(&p, "idle", 2);
    assert!(
        idle[0].ends_with("< 25% (half the 50% target): 3 → 2"),
        "{idle:?}"
    );
    assert!(idle[1].ends_with(": 2 → 1"), "{idle:?}");
    // Never below min: idle:0 stays, busy never past max.
    assert!(names(&p).contains(&"idle:0".to_string()));
    assert!(!names(&p).contains(&"busy:2".to_string()));
    let (_, stdout, _) = run(&p, &["status", "busy"]);
    assert!(
        stdout.contains("busy: 2 instances, autoscaled between 1 and 2 at 10% CPU per instance; last change: cpu "),
        "{stdout}"
    );
    // Stop the burning before the daemon goes.
    assert!(p.tend(&["stop", "busy"]).status.success());
}

/// supervisorctl's `reread` reads the file as `tend apply` does: a scaled service is not a
/// changed group, so `update` leaves it (and its count) alone.
#[test]
fn supervisorctl_reread_does_not_see_a_scale_as_a_change() {
    let p = Project::new(&(service("web", "instances = 2") + &service("db", "")));
    let _d = p.up();
    assert_eq!(run(&p, &["scale", "web", "3"]).0, 0);
    let body = "<?xml version='1.0'?><methodCall><methodName>supervisor.reloadConfig</methodName><params></params></methodCall>";
    let stream = std::os::unix::net::UnixStream::connect(p.socket()).unwrap();
    let answer = http_over(
        stream,
        "POST",
        "/RPC2",
        &[("Content-Type", "text/xml")],
        body,
    )
    .body;
    // [[added, changed, removed]], all empty.
    let empty = "<value><array><data>\n</data></array></value>";
    assert_eq!(answer.matches(empty).count(), 3, "{answer}");
    assert_eq!(names(&p), ["db", "web:0", "web:1", "web:2"]);
}
