//! Every corpus file (real configurations from public repositories, tests/corpus/) of a
//! format tend reads: it must translate into a manifest tend accepts, and the translation
//! is kept as a snapshot so any change to an importer shows up in review.
//! `TEND_UPDATE_SNAPSHOTS=1 cargo test --test it import::` rewrites the snapshots.

use std::path::{Path, PathBuf};

use tend::import::{self, Reading, Source};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// Files that are not valid on their own, with the reason tend (like the tool itself) gives.
const INVALID: &[(&str, &str)] = &[
    // A conf.d fragment relying on the main file's `file=`.
    (
        "zulip__zulip__puppet_zulip_files_supervisor_conf.d_zulip.conf",
        "has no `file`",
    ),
    // `%USER%` is replaced by the image's entrypoint before supervisord reads the file.
    (
        "fcwu__docker-ubuntu-vnc-desktop__rootfs_etc_supervisor_conf.d_supervisord.conf",
        "`%U` is not an expansion",
    ),
    // An app with only a name: PM2 refuses it too.
    ("AchrafAsh__pm2-deploy__ecosystem.json", "no `script`"),
];

/// A fixed environment, so the snapshots do not depend on the machine. supervisord refuses
/// a `%(ENV_X)s` that is not set, so for it every variable is; the other formats have
/// defaults for unset ones (`${X:-default}`), which the snapshots should show.
fn env_for(source: Source) -> impl Fn(&str) -> Option<String> {
    move |name: &str| match name {
        "HOME" => Some("/home/placeholder".into()),
        "USER" => Some("placeholder".into()),
        _ if source == Source::Supervisord => Some("1".into()),
        _ => None,
    }
}

fn expected_source(dir: &str) -> Source {
    match dir {
        "supervisord" => Source::Supervisord,
        "pm2" => Source::Pm2,
        "procfile" => Source::Procfile,
        "process-compose" => Source::ProcessCompose,
        other => panic!("unknown corpus directory {other}"),
    }
}

#[test]
fn every_corpus_file_translates_into_a_manifest_tend_accepts() {
    let update = std::env::var_os("TEND_UPDATE_SNAPSHOTS").is_some();
    let snapshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/import");
    let mut failures = Vec::new();
    let mut counted = 0;
    for dir in ["supervisord", "pm2", "procfile", "process-compose"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(corpus().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for file in files {
            counted += 1;
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            let detected = Source::detect(&file);
            if detected != expected_source(dir) {
                failures.push(format!("{name}: detected as {detected}"));
                continue;
            }
            let env = env_for(detected);
            let result = import::translate(&file, &Reading::default(), &env)
                .and_then(|t| t.clone().validate(&env, false).map(|_| t));
            let invalid = INVALID.iter().find(|(n, _)| *n == name);
            match (result, invalid) {
                (Err(errors), Some((_, reason))) => {
                    if !errors.to_string().contains(reason) {
                        failures.push(format!("{name}: expected `{reason}`, got:\n{errors}"));
                    }
                }
                (Err(errors), None) => failures.push(format!("{name}:\n{errors}")),
                (Ok(_), Some(_)) => failures.push(format!("{name}: should not import")),
                (Ok(translation), None) => {
                    let text = translation
                        .to_toml()
                        .replace(&corpus().display().to_string(), "tests/corpus");
                    // What is printed must itself be a manifest tend accepts.
                    let scratch = tempfile::tempdir().unwrap();
                    let toml = scratch.path().join("tend.toml");
                    std::fs::write(&toml, &text).unwrap();
                    let back = import::translate(&toml, &Reading::default(), &env)
                        .and_then(|t| t.validate(&env, false));
                    if let Err(errors) = back {
                        failures.push(format!("{name}: the printed TOML is refused:\n{errors}"));
                    }
                    let snapshot = snapshots.join(format!("{name}.toml"));
                    if update {
                        std::fs::create_dir_all(&snapshots).unwrap();
                        std::fs::write(&snapshot, &text).unwrap();
                    } else {
                        match std::fs::read_to_string(&snapshot) {
                            Ok(saved) if saved == text => {}
                            Ok(_) => failures.push(format!(
                                "{name}: differs from tests/snapshots/import/{name}.toml (TEND_UPDATE_SNAPSHOTS=1 to accept)"
                            )),
                            Err(_) => failures.push(format!(
                                "{name}: no snapshot (TEND_UPDATE_SNAPSHOTS=1 to write it)"
                            )),
                        }
                    }
                }
            }
        }
    }
    assert!(counted >= 95, "the corpus is missing: {counted} files");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

mod run_directly {
    //! `tend up -c FILE` runs each foreign format as it is.

    use std::time::Duration;

    use crate::harness::{Project, text, wait_until};

    #[test]
    fn a_procfile_with_its_env_file_and_foremans_ports() {
        let project = Project::with_manifest(
            "Procfile",
            "# a comment\nweb: echo \"web port=$PORT default=${MISSING:-fallback} greeting=$GREETING\" > out-web.txt; exec sleep 300\nworker: echo \"worker port=$PORT\" > out-worker.txt; exec sleep 300\n",
        );
        std::fs::write(project.file(".env"), "GREETING=hello\n").unwrap();
        let _daemon = project.up_ready();
        wait_until(Duration::from_secs(20), "both processes wrote", || {
            !project.read("out-web.txt").is_empty() && !project.read("out-worker.txt").is_empty()
        });
        assert_eq!(
            project.read("out-web.txt"),
            "web port=5000 default=fallback greeting=hello\n"
        );
        assert_eq!(project.read("out-worker.txt"), "worker port=5100\n");
        let status = text(&project.tend(&["status"]).stdout);
        assert!(
            status.contains("web") && status.contains("worker"),
            "{status}"
        );
    }

    #[test]
    fn a_pm2_ecosystem_file_with_an_env_name() {
        let project = Project::with_manifest(
            "ecosystem.config.js",
            r#"// PM2 ecosystem file
module.exports = {
  apps: [{
    name: 'api',
    script: './api.sh',
    interpreter: 'bash',
    instances: 2,
    env: { GREETING: 'plain' },
    env_production: { GREETING: 'prod', },
  }],
};
"#,
        );
        std::fs::write(
            project.file("api.sh"),
            "echo \"$NODE_APP_INSTANCE $GREETING\" >> out.txt\nexec sleep 300\n",
        )
        .unwrap();
        let up = project.tend(&["up", "-d", "--wait", "--env", "production"]);
        let _daemon = crate::harness::Daemon::attach(&project);
        assert!(
            up.status.success(),
            "{}{}",
            text(&up.stdout),
            text(&up.stderr)
        );
        wait_until(Duration::from_secs(20), "both instances wrote", || {
            project.read("out.txt").lines().count() == 2
        });
        let mut lines: Vec<String> = project.read("out.txt").lines().map(String::from).collect();
        lines.sort();
        assert_eq!(lines, ["0 prod", "1 prod"]);
    }

    #[test]
    fn a_process_compose_file_with_a_completed_dependency() {
        let project = Project::with_manifest(
            "process-compose.yaml",
            "version: \"0.5\"\nprocesses:\n  setup:\n    command: echo done > setup.txt\n  app:\n    command: cat setup.txt > app.txt && sleep 300\n    depends_on:\n      setup:\n        condition: process_completed_successfully\n",
        );
        let _daemon = project.up_ready();
        wait_until(Duration::from_secs(20), "app ran after setup", || {
            project.read("app.txt") == "done\n"
        });
    }
}
