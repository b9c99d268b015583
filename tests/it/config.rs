use crate::harness::*;

#[test]
fn check_reports_every_error_with_file_line_and_key() {
    let p = Project::new(
        r#"[services.web]
command = "sleep 1"
restart = "sometimes"
depends_on = ["ghost"]

[services.worker]
comand = "sleep 1"
stop_timeout = "10"

[services.a]
command = "true"
depends_on = ["b"]

[services.b]
command = "true"
depends_on = ["a"]
"#,
    );
    let out = p.tend(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let file = p.manifest().canonicalize().unwrap().display().to_string();
    for expected in [
        format!("{file}:3: services.web.restart:"),
        format!("{file}:4: services.web.depends_on"),
        format!("{file}:7: services.worker.comand:"),
        format!("{file}:8: services.worker.stop_timeout:"),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing `{expected}` in:\n{stderr}"
        );
    }
    assert!(stderr.contains("ghost"), "{stderr}");
    assert!(stderr.contains("cycle"), "{stderr}");
    assert!(
        stderr.contains("a -> b -> a") || stderr.contains("b -> a -> b"),
        "{stderr}"
    );
}

#[test]
fn check_accepts_a_valid_manifest_in_every_format() {
    let p = Project::new("[services.web]\ncommand = \"sleep 1\"\ninstances = 2\n");
    let out = p.tend(&["check"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("1 services, 2 instances"),
        "{}",
        text(&out.stdout)
    );

    std::fs::write(
        p.file("tend.yaml"),
        "services:\n  web:\n    command: sleep 1\n",
    )
    .unwrap();
    std::fs::write(
        p.file("tend.json"),
        r#"{"services": {"web": {"args": ["sleep", "1"]}}}"#,
    )
    .unwrap();
    for name in ["tend.yaml", "tend.json"] {
        let out = std::process::Command::new(BIN)
            .arg("-c")
            .arg(p.file(name))
            .arg("check")
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
    }
    std::fs::write(
        p.file("bad.yaml"),
        "services:\n  web:\n    command: sleep 1\n    instances: 0\n",
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .arg("-c")
        .arg(p.file("bad.yaml"))
        .arg("check")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(":4: services.web.instances:"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn up_refuses_an_invalid_manifest() {
    let p =
        Project::new("[services.web]\ncommand = \"sleep 1\"\nbackoff = { initial = \"soon\" }\n");
    let out = p.tend(&["up", "-d"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("services.web.backoff.initial"),
        "{}",
        text(&out.stderr)
    );
    assert!(!p.file(".tend/tend.sock").exists());
}

#[test]
fn schema_completions_and_man_page() {
    let p = Project::new("[services.web]\ncommand = \"sleep 1\"\n");
    let out = p.tend(&["schema"]);
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text_schema = schema.to_string();
    for key in [
        "depends_on",
        "stop_timeout",
        "backoff",
        "instances",
        "state_dir",
    ] {
        assert!(text_schema.contains(key), "schema lacks {key}");
    }
    let out = p.tend(&["completions", "bash"]);
    assert!(out.status.success() && text(&out.stdout).contains("tend"));
    let out = p.tend(&["man"]);
    assert!(out.status.success() && text(&out.stdout).contains(".TH"));
}
