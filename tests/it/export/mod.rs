//! `tend export`: each target's output checked by that target's own tools, and the command
//! itself (stdout, `-o DIR`, the report of what was not mapped, bad arguments).

use std::path::PathBuf;

use crate::harness::{Project, text};

mod kubernetes_compose;
mod systemd;

/// A program from the test tools venv (target/tools, filled by ./scripts/test).
pub fn tool(name: &str) -> PathBuf {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/tools/bin")
        .join(name);
    assert!(
        path.exists(),
        "{} not found (./scripts/test installs the test tools into target/tools)",
        path.display()
    );
    path
}

const MANIFEST: &str = r#"
[services.db]
command = "/bin/sleep 1000"
readiness = { tcp = "127.0.0.1:5432" }
port_base = 5432

[services.api]
command = "/bin/sleep 1000"
depends_on = { db = "healthy" }

[services.other]
command = "/bin/sleep 1000"
"#;

#[test]
fn prints_every_file_and_reports_what_is_not_mapped() {
    let project = Project::new(MANIFEST);
    let out = project.tend(&["export", "systemd"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for name in ["db.service", "api.service", "other.service"] {
        assert!(stdout.contains(&format!("# ==> {name} <==\n")), "{stdout}");
    }
    assert!(stdout.contains("ExecStart=/bin/sleep 1000\n"), "{stdout}");
    // systemd has no TCP readiness probe: said on stderr, under the service.
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("not mapped, or mapped approximately"),
        "{stderr}"
    );
    assert!(stderr.contains("  db:\n    readiness: "), "{stderr}");
    // What holds for every service is said once, under all of their names.
    assert!(stderr.contains("  db, api, other:\n"), "{stderr}");
    assert_eq!(stderr.matches("backoff.jitter").count(), 1, "{stderr}");
}

#[test]
fn writes_into_a_directory_and_selects_with_dependencies() {
    let project = Project::new(MANIFEST);
    let dir = project.path().join("units");
    let dir_arg = dir.display().to_string();
    let out = project.tend(&["export", "systemd", "-o", &dir_arg, "api"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let mut written: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    // api needs db; other is left out.
    let target = format!(
        "tend-{}.target",
        project.path().file_name().unwrap().to_string_lossy()
    );
    let mut expected = vec!["api.service".to_string(), "db.service".into(), target];
    expected.sort();
    assert_eq!(written, expected);
    let api = std::fs::read_to_string(dir.join("api.service")).unwrap();
    assert!(api.contains("Requires=db.service\n"), "{api}");
}

#[test]
fn refuses_unknown_services_and_missing_image() {
    let project = Project::new(MANIFEST);
    let out = project.tend(&["export", "compose", "--image", "x", "ap"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("no service named \"ap\""), "{stderr}");
    assert!(stderr.contains("did you mean \"api\"?"), "{stderr}");
    assert!(out.stdout.is_empty());

    let out = project.tend(&["export", "kubernetes"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("needs --image"),
        "{}",
        text(&out.stderr)
    );

    let out = project.tend(&["export", "nomad"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn exports_a_foreign_file() {
    let project = Project::new("");
    std::fs::write(
        project.file("Procfile"),
        "web: /bin/sleep 1000\nworker: /bin/sleep 2000\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(["-c", "Procfile", "export", "k8s", "--image", "app:1"])
        .current_dir(project.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("name: \"web\""), "{stdout}");
    assert!(stdout.contains("name: \"worker\""), "{stdout}");
}
