//! The control API through the real socket: services, actions, errors as JSON, tend's own
//! health, the SSE streams, metrics checked by promtool, and the OpenAPI document.

use std::time::Duration;

use crate::harness::{Project, expect_line, wait_until};

const TWO_SERVICES: &str = r#"
[services.web]
command = "sleep 300"
instances = 2
min_uptime = "100ms"

[services.worker]
command = "sh -c 'echo worker says hi; exec sleep 300'"
min_uptime = "100ms"
depends_on = ["web"]
"#;

#[test]
fn services_list_detail_and_actions() {
    let project = Project::new(TWO_SERVICES);
    let _daemon = project.up_ready();

    let list = project.http("GET", "/api/v1/services", "");
    assert_eq!(list.status, 200, "{}", list.body);
    let list = list.json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web", "worker"]);
    assert_eq!(list[0]["instances"].as_array().unwrap().len(), 2);
    assert_eq!(list[1]["depends_on"][0], "web");

    // Targets narrow the list to the services they name, and those to the named instances.
    let some = project.http("GET", "/api/v1/services?targets=web:1", "");
    assert_eq!(some.status, 200, "{}", some.body);
    let some = some.json();
    assert_eq!(some.as_array().unwrap().len(), 1, "{some}");
    assert_eq!(some[0]["name"], "web");
    assert_eq!(some[0]["count"], 2);
    let instances = some[0]["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 1, "{some}");
    assert_eq!(instances[0]["name"], "web:1");
    let unknown = project.http("GET", "/api/v1/services?targets=nope", "");
    assert_eq!(unknown.status, 404, "{}", unknown.body);

    let web = project.http("GET", "/api/v1/services/web", "").json();
    assert_eq!(web["state"], "running");
    assert_eq!(web["ready"], true);
    assert_eq!(web["autostart"], true);
    for instance in web["instances"].as_array().unwrap() {
        for key in [
            "pid",
            "ready",
            "health",
            "cpu_percent",
            "rss_bytes",
            "restarts",
            "exit_code",
            "uptime_ms",
            "reason",
        ] {
            assert!(
                instance.get(key).is_some(),
                "instance lacks {key}: {instance}"
            );
        }
    }

    let restart = project.http("POST", "/api/v1/services/web:1/restart", "");
    assert_eq!(restart.status, 200, "{}", restart.body);
    assert_eq!(restart.json()["results"][0]["instance"], "web:1");
    assert_eq!(restart.json()["results"][0]["ok"], true);
    assert_eq!(project.instance("web:1")["restarts"], 1);
    assert_eq!(project.instance("web:0")["restarts"], 0);

    let signal = project.http(
        "POST",
        "/api/v1/services/worker/signal",
        r#"{"signal": "CONT"}"#,
    );
    assert_eq!(signal.status, 200, "{}", signal.body);
}

#[test]
fn bad_requests_get_json_errors_and_the_daemon_carries_on() {
    let project = Project::new(TWO_SERVICES);
    let _daemon = project.up_ready();
    let cases: [(&str, &str, &str, u16, &str); 10] = [
        (
            "GET",
            "/api/v1/services/nope",
            "",
            404,
            "no service named `nope`",
        ),
        ("POST", "/api/v1/services/nope/start", "", 404, "nope"),
        (
            "POST",
            "/api/v1/services/web/explode",
            "",
            404,
            "unknown action",
        ),
        (
            "POST",
            "/api/v1/services/web/signal",
            "",
            415,
            "Content-Type",
        ),
        ("POST", "/api/v1/services/web/signal", "{}", 400, "`signal`"),
        (
            "POST",
            "/api/v1/services/web/signal",
            r#"{"signal":"SIGNOPE"}"#,
            400,
            "SIGNOPE",
        ),
        (
            "POST",
            "/api/v1/services/web/start",
            "{not json",
            400,
            "bad request body",
        ),
        ("GET", "/api/v1/events?limit=abc", "", 400, "bad query"),
        ("GET", "/api/v1/nothing-here", "", 404, "no such endpoint"),
        ("DELETE", "/api/v1/services", "", 405, "method"),
    ];
    for (method, path, body, status, needle) in cases {
        let answer = project.http(method, path, body);
        assert_eq!(answer.status, status, "{method} {path}: {}", answer.body);
        let error = answer.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            error.contains(needle),
            "{method} {path}: `{error}` lacks `{needle}`"
        );
    }
    // A request that is not HTTP at all.
    {
        use std::io::{Read, Write};
        let mut stream = std::os::unix::net::UnixStream::connect(project.socket()).unwrap();
        stream.write_all(b"\x00\x01garbage\r\n\r\n").unwrap();
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
    }
    assert_eq!(project.http("GET", "/health", "").status, 200);
    assert_eq!(project.state_of("web:0"), "running");
}

#[test]
fn own_health_ready_lists_what_is_not_ready() {
    let project = Project::new(
        r#"
[services.web]
command = "sleep 300"
min_uptime = "100ms"

[services.lazy]
command = "sleep 300"
readiness = { exec = "test -e ready-now", interval = "100ms" }
"#,
    );
    let _daemon = project.up();
    assert_eq!(project.http("GET", "/health", "").json()["status"], "ok");
    assert_eq!(project.http("GET", "/live", "").status, 200);
    wait_until(Duration::from_secs(10), "web ready", || {
        project.instance("web")["ready"] == true
    });
    let ready = project.http("GET", "/ready", "");
    assert_eq!(ready.status, 503, "{}", ready.body);
    let body = ready.json();
    assert_eq!(body["ready"], false);
    assert_eq!(body["not_ready"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["not_ready"][0]["instance"], "lazy");
    assert_eq!(body["not_ready"][0]["state"], "running");

    std::fs::write(project.file("ready-now"), "").unwrap();
    wait_until(Duration::from_secs(10), "/ready to pass", || {
        project.http("GET", "/ready", "").status == 200
    });
    assert_eq!(project.http("GET", "/ready", "").json()["ready"], true);

    // What was stopped on purpose is not waited for.
    std::fs::remove_file(project.file("ready-now")).unwrap();
    assert!(project.tend(&["stop", "lazy"]).status.success());
    assert_eq!(project.http("GET", "/ready", "").status, 200);
}

#[test]
fn event_stream_reports_state_changes_live() {
    let project = Project::new(TWO_SERVICES);
    let _daemon = project.up_ready();
    let lines = project.stream_lines("/api/v1/events/stream?service=worker");
    expect_line(&lines, Duration::from_secs(10), "the SSE headers", |l| {
        l.to_ascii_lowercase().contains("text/event-stream")
    });
    assert!(project.tend(&["restart", "worker"]).status.success());
    expect_line(&lines, Duration::from_secs(10), "event: state", |l| {
        l == "event: state"
    });
    let data = expect_line(&lines, Duration::from_secs(10), "its data", |l| {
        l.starts_with("data: ")
    });
    let event: serde_json::Value = serde_json::from_str(&data["data: ".len()..]).unwrap();
    assert_eq!(event["instance"], "worker");
    assert_eq!(event["kind"], "state");
    assert_eq!(event["from_state"], "running");
}

#[test]
fn log_stream_sends_the_tail_then_live_lines() {
    let project = Project::new(
        r#"
[services.talker]
command = "sh -c 'echo first; read line; echo \"second $line\"; exec sleep 300'"
"#,
    );
    let _daemon = project.up_ready();
    wait_until(Duration::from_secs(10), "the first line", || {
        project
            .http("GET", "/api/v1/logs?targets=talker", "")
            .body
            .contains("first")
    });
    let lines = project.stream_lines("/api/v1/logs/stream?targets=talker");
    let data = expect_line(&lines, Duration::from_secs(10), "the tail line", |l| {
        l.starts_with("data: ")
    });
    let entry: serde_json::Value = serde_json::from_str(&data["data: ".len()..]).unwrap();
    assert_eq!(entry["line"], "first");
    assert_eq!(entry["stream"], "stdout");
    assert_eq!(entry["instance"], "talker");
}

#[test]
fn metrics_pass_promtool_and_count_what_happened() {
    let project = Project::new(
        r#"
[services.web]
command = "sh -c 'echo hello; exec sleep 300'"
instances = 2

[services.web.liveness]
exec = "true"
interval = "200ms"
"#,
    );
    let _daemon = project.up_ready();
    assert!(project.tend(&["restart", "web:0"]).status.success());
    let needles = [
        "tend_build_info{version=",
        "tend_instance_up{service=\"web\",instance=\"web:0\"} 1",
        "tend_instance_state{service=\"web\",instance=\"web:1\",state=\"running\"} 1",
        "tend_instance_restarts_total{service=\"web\",instance=\"web:0\",reason=\"requested\"} 1",
        "tend_instance_restarts_total{service=\"web\",instance=\"web:1\",reason=\"requested\"} 0",
        "tend_instance_healthy{service=\"web\",instance=\"web:0\"} 1",
        "tend_probe_success{service=\"web\",instance=\"web:1\",probe=\"liveness\",check=\"exec\"} 1",
        "tend_log_bytes_total{service=\"web\",instance=\"web:1\",stream=\"stdout\"} 6",
        "process_resident_memory_bytes ",
    ];
    let mut text = String::new();
    wait_until(Duration::from_secs(10), "probe results and output", || {
        let metrics = project.http("GET", "/metrics", "");
        assert_eq!(metrics.status, 200);
        assert!(
            metrics
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/plain; version=0.0.4"))
        );
        text = metrics.body;
        needles.iter().all(|n| text.contains(n))
    });
    let file = project.file("metrics.txt");
    std::fs::write(&file, &text).unwrap();
    let promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .expect("promtool (Debian package `prometheus`; ./scripts/test installs it)");
    assert!(
        promtool.status.success() && promtool.stdout.is_empty() && promtool.stderr.is_empty(),
        "promtool: {}{}",
        String::from_utf8_lossy(&promtool.stdout),
        String::from_utf8_lossy(&promtool.stderr)
    );
}

#[test]
fn openapi_document_lists_every_route() {
    let project = Project::new(TWO_SERVICES);
    let _daemon = project.up_ready();
    let document = project.http("GET", "/api/v1/openapi.json", "").json();
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    for path in [
        "/api/v1/services",
        "/api/v1/services/{name}",
        "/api/v1/services/{target}/{action}",
        "/api/v1/actions/scale",
        "/api/v1/session",
        "/api/v1/actions/upgrade",
        "/api/v1/events",
        "/api/v1/events/stream",
        "/api/v1/logs/stream",
        "/metrics",
        "/ready",
    ] {
        assert!(paths.contains_key(path), "the document lacks {path}");
    }
    let schemas = document["components"]["schemas"].as_object().unwrap();
    assert!(schemas.contains_key("InstanceInfo"));
    assert!(schemas.contains_key("EventRow"));
    assert!(schemas.contains_key("ScaleResponse"));
    let scale = &paths["/api/v1/actions/scale"]["post"];
    assert!(scale["responses"].get("409").is_some(), "{scale}");
    // Every documented GET that ends on its own is served (not the fallback).
    for (path, item) in paths {
        if item.get("get").is_none() || path.contains('{') || path.ends_with("/stream") {
            continue;
        }
        let answer = project.http("GET", path, "");
        assert!(
            !answer.body.contains("no such endpoint"),
            "{path} is documented but not served"
        );
    }
}

/// schemathesis (from PyPI) against the live API on the TCP listener with an `operate` token:
/// every operation in the OpenAPI document, valid and invalid inputs, all its checks. The
/// streaming endpoints (which never end), shutdown and upgrade (which replace the daemon)
/// are left out; a fixed seed keeps the
/// run the same every time. Both services are autoscaled within fixed bounds: the fuzzer
/// finds their names (through the service list) and would otherwise `scale` them to
/// thousands of real processes; this way a scale it sends is answered 409 and starts nothing.
/// The dashboard's login is left out too: every token the fuzzer makes up is a failed
/// authentication, and a few of those block the address, so the rest of the run would get
/// 429 (tests/it/dashboard.rs sends it malformed logins instead).
#[test]
fn schemathesis_finds_no_fault_against_the_openapi_document() {
    let tool = std::env::var_os("TEND_SCHEMATHESIS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/bin/schemathesis")
        });
    assert!(
        tool.exists(),
        "schemathesis not found at {} (./scripts/test installs it; or set TEND_SCHEMATHESIS)",
        tool.display()
    );
    let token = "schemathesis-operate-0123456789";
    let project = Project::new(
        r#"
[tend.http]
listen = "127.0.0.1:0"
tokens_file = "tokens"

[services.web]
command = "sleep 300"
instances = 2
min_uptime = "100ms"
autoscale = { min = 2, max = 2, cpu = "50%" }

[services.worker]
command = "sh -c 'echo hi; exec sleep 300'"
min_uptime = "100ms"
autoscale = { min = 1, max = 1, cpu = "50%" }
"#,
    );
    project.write_with_mode("tokens", &format!("{token} operate\n"), 0o600);
    let _daemon = project.up_ready();
    let address = project.http("GET", "/api/v1/info", "").json()["http_listen"]
        .as_str()
        .unwrap()
        .to_string();
    let child = std::process::Command::new(&tool)
        .args([
            "run",
            &format!("http://{address}/api/v1/openapi.json"),
            "--header",
            &format!("Authorization: Bearer {token}"),
            "--checks",
            "all",
            "--exclude-path-regex",
            "stream|shutdown|upgrade",
            "--exclude-path",
            "/api/v1/logs",
            "--exclude-operation-id",
            "login",
            "--max-examples",
            "25",
            "--seed",
            "20261123",
            "--request-timeout",
            "10",
            "--workers",
            "1",
            "--no-color",
        ])
        .current_dir(project.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run schemathesis");
    let out = crate::harness::finish(child, Duration::from_secs(300), "schemathesis");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis found faults:\n{report}");
    // And the daemon is still serving.
    assert_eq!(project.http("GET", "/health", "").status, 200);
}
