//! Loading whole manifests from a temp dir: every error kind with its file, line and key,
//! all errors at once, the three formats agreeing, env files, interpolation and the schema.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use tempfile::TempDir;

use super::model::*;
use super::signal::Signal;
use super::*;

/// tend's environment as the tests see it.
fn test_env(name: &str) -> Option<String> {
    match name {
        "HOME" => Some("/home/tend".into()),
        "PORT" => Some("8080".into()),
        "EMPTY" => Some(String::new()),
        "GREETING" => Some("hello world".into()),
        _ => None,
    }
}

/// Lines joined with newlines, so line N of a manifest is element N-1.
fn lines(lines: &[&str]) -> String {
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// The temp dir, canonical (it may sit behind a symlink), as manifests see it.
    fn root(&self) -> PathBuf {
        std::fs::canonicalize(self.dir.path()).expect("canonical temp dir")
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create dirs");
        }
        std::fs::write(&path, text).expect("write file");
        path
    }

    fn load(&self, name: &str, text: &str) -> Result<Manifest, ConfigErrors> {
        let path = self.write(name, text);
        load_with_env(&path, &test_env)
    }

    fn ok(&self, name: &str, text: &str) -> Manifest {
        self.load(name, text)
            .unwrap_or_else(|e| panic!("expected {name} to load, got:\n{e}"))
    }

    /// (file name, line, key, message) of every error, in reported order.
    fn errors(&self, name: &str, text: &str) -> Vec<(String, Option<usize>, String, String)> {
        let errors = match self.load(name, text) {
            Ok(m) => panic!("expected errors from {name}, loaded {m:?}"),
            Err(errors) => errors,
        };
        errors
            .iter()
            .map(|e| {
                let file = e
                    .file
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (file, e.line, e.key.clone(), e.message.clone())
            })
            .collect()
    }
}

fn err(
    file: &str,
    line: usize,
    key: &str,
    message: &str,
) -> (String, Option<usize>, String, String) {
    (file.into(), Some(line), key.into(), message.into())
}

/// The errors of a TOML manifest of one service `web` whose table starts on line 1.
fn web_errors(body: &[&str]) -> Vec<(String, Option<usize>, String, String)> {
    let mut all = vec!["[services.web]"];
    all.extend_from_slice(body);
    Fixture::new().errors("tend.toml", &lines(&all))
}

fn web(body: &[&str]) -> ServiceSpec {
    let mut all = vec!["[services.web]"];
    all.extend_from_slice(body);
    let manifest = Fixture::new().ok("tend.toml", &lines(&all));
    let spec = manifest.services.into_iter().next().expect("one service");
    std::sync::Arc::unwrap_or_clone(spec)
}

#[test]
fn a_minimal_service_gets_every_default() {
    let fixture = Fixture::new();
    let m = fixture.ok(
        "tend.toml",
        "[services.web]\ncommand = \"python -m http.server\"\n",
    );
    assert_eq!(m.path, fixture.root().join("tend.toml"));
    assert_eq!(
        m.daemon,
        DaemonSettings {
            state_dir: fixture.root().join(".tend"),
            socket: fixture.root().join(".tend/tend.sock"),
            cgroups: CgroupMode::Auto,
            log: LogSpec::default(),
            sample_every: Some(Duration::from_secs(2)),
            max_starting: None,
            socket_group: None,
            min_fds: None,
            min_procs: None,
            http: None,
            history: HistorySettings {
                enabled: true,
                retention: Duration::from_secs(7 * 24 * 3600),
            },
            notify: Vec::new(),
        }
    );
    assert_eq!(
        m.services,
        [std::sync::Arc::new(ServiceSpec {
            name: "web".into(),
            program: Program::Exec(vec!["python".into(), "-m".into(), "http.server".into()]),
            cwd: None,
            env: BTreeMap::new(),
            env_files: Vec::new(),
            user: None,
            group: None,
            umask: None,
            kind: Kind::Service,
            autostart: true,
            instances: 1,
            numbered: false,
            autoscale: None,
            port_base: None,
            restart: RestartPolicy::Always,
            exit_codes: vec![0],
            backoff: BackoffSpec::default(),
            min_uptime: Duration::from_secs(1),
            max_restarts: 10,
            restart_window: Duration::from_secs(60),
            restart_limit: RestartLimit::Window,
            cooldown: None,
            stop_signal: Signal::Term,
            stop_timeout: Duration::from_secs(10),
            reload_signal: None,
            reload_timeout: Duration::from_secs(60),
            max_surge: 1,
            depends_on: vec![],
            priority: 0,
            groups: vec![],
            logs: LogSpec::default(),
            readiness: None,
            liveness: None,
            startup: None,
            watchdog: None,
            resources: ResourceSpec::default(),
            critical: false,
            event_listener: None,
            sockets: vec![],
            cron_restart: None,
            schedule: None,
            watch: None,
        })]
    );
}

#[test]
fn an_empty_manifest_has_no_services() {
    let fixture = Fixture::new();
    assert!(fixture.ok("tend.toml", "").services.is_empty());
    assert!(fixture.ok("tend.yaml", "services:\n").services.is_empty());
    assert!(fixture.ok("tend.json", "{}").services.is_empty());
}

const FULL_TOML: &str = r#"
[tend]
state_dir = "run/state"
cgroups = "off"

[services.migrate]
kind = "task"
args = ["./migrate", "--to", "${VERSION:-latest}"]

[services.db]
command = "postgres -D '/var/lib/my data'"
stop_signal = "SIGINT"
stop_timeout = "1m30s"
priority = -1
umask = "027"

[services.web]
command = "exec serve --port {port}"
shell = true
cwd = "./app"
env = { GREETING = "${GREETING}", N = 3, DEBUG = true }
instances = 2
port_base = 9000
restart = "on-failure"
exit_codes = [0, 3]
backoff = { initial = "500ms", max = "1m", factor = 1.5, jitter = 0 }
min_uptime = "2s"
max_restarts = 0
restart_window = "1h"
cooldown = "5m"
autostart = false
depends_on = { db = "healthy", migrate = "completed" }
groups = ["frontend", "edge"]
user = "root"
group = "0"
"#;

const FULL_YAML: &str = r#"
# The same manifest as FULL_TOML.
tend:
  state_dir: run/state
  cgroups: "off"
services:
  migrate:
    kind: task
    args: [./migrate, --to, "${VERSION:-latest}"]
  db:
    command: postgres -D '/var/lib/my data'
    stop_signal: SIGINT
    stop_timeout: 1m30s
    priority: -1
    umask: "027"
  web:
    command: exec serve --port {port}
    shell: true
    cwd: ./app
    env:
      GREETING: ${GREETING}
      N: 3
      DEBUG: true
    instances: 2
    port_base: 9000
    restart: on-failure
    exit_codes: [0, 3]
    backoff: {initial: 500ms, max: 1m, factor: 1.5, jitter: 0}
    min_uptime: 2s
    max_restarts: 0
    restart_window: 1h
    cooldown: 5m
    autostart: false
    depends_on:
      db: healthy
      migrate: completed
    groups: [frontend, edge]
    user: root
    group: "0"
"#;

const FULL_JSON: &str = r#"{
  "tend": { "state_dir": "run/state", "cgroups": "off" },
  "services": {
    "migrate": { "kind": "task", "args": ["./migrate", "--to", "${VERSION:-latest}"] },
    "db": {
      "command": "postgres -D '/var/lib/my data'",
      "stop_signal": "SIGINT",
      "stop_timeout": "1m30s",
      "priority": -1,
      "umask": "027"
    },
    "web": {
      "command": "exec serve --port {port}",
      "shell": true,
      "cwd": "./app",
      "env": { "GREETING": "${GREETING}", "N": 3, "DEBUG": true },
      "instances": 2,
      "port_base": 9000,
      "restart": "on-failure",
      "exit_codes": [0, 3],
      "backoff": { "initial": "500ms", "max": "1m", "factor": 1.5, "jitter": 0 },
      "min_uptime": "2s",
      "max_restarts": 0,
      "restart_window": "1h",
      "cooldown": "5m",
      "autostart": false,
      "depends_on": { "db": "healthy", "migrate": "completed" },
      "groups": ["frontend", "edge"],
      "user": "root",
      "group": "0"
    }
  }
}"#;

#[test]
fn the_same_manifest_in_toml_yaml_and_json_loads_equal() {
    let fixture = Fixture::new();
    let mut toml = fixture.ok("tend.toml", FULL_TOML);
    let mut yaml = fixture.ok("tend.yaml", FULL_YAML);
    let mut yml = fixture.ok("tend.yml", FULL_YAML);
    let mut json = fixture.ok("tend.json", FULL_JSON);
    assert_eq!(toml.path, fixture.root().join("tend.toml"));
    assert_eq!(json.path, fixture.root().join("tend.json"));
    for m in [&mut toml, &mut yaml, &mut yml, &mut json] {
        m.path = PathBuf::new();
    }
    assert_eq!(toml, yaml);
    assert_eq!(toml, yml);
    assert_eq!(toml, json);

    // And what they load to is what was written.
    let root = fixture.root();
    assert_eq!(toml.daemon.state_dir, root.join("run/state"));
    assert_eq!(toml.daemon.cgroups, CgroupMode::Off);
    let names: Vec<&str> = toml.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["migrate", "db", "web"], "file order is kept");

    let migrate = &toml.services[0];
    assert_eq!(migrate.kind, Kind::Task);
    assert_eq!(
        migrate.restart,
        RestartPolicy::Never,
        "tasks default to never"
    );
    assert_eq!(
        migrate.program,
        Program::Exec(vec!["./migrate".into(), "--to".into(), "latest".into()])
    );

    let db = &toml.services[1];
    assert_eq!(
        db.program,
        Program::Exec(vec![
            "postgres".into(),
            "-D".into(),
            "/var/lib/my data".into()
        ])
    );
    assert_eq!(db.stop_signal, Signal::Int);
    assert_eq!(db.stop_timeout, Duration::from_secs(90));
    assert_eq!(db.priority, -1);
    assert_eq!(db.umask, Some(0o027));

    let web = &toml.services[2];
    assert_eq!(
        web.program,
        Program::Shell("exec serve --port {port}".into())
    );
    assert_eq!(web.cwd.as_deref(), root.join("app").to_str());
    let env: Vec<(&str, &str)> = web
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        env,
        [("DEBUG", "true"), ("GREETING", "hello world"), ("N", "3")]
    );
    assert_eq!(web.instances, 2);
    assert_eq!(web.port_base, Some(9000));
    assert_eq!(web.restart, RestartPolicy::OnFailure);
    assert_eq!(web.exit_codes, [0, 3]);
    assert_eq!(
        web.backoff,
        BackoffSpec {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(60),
            factor: 1.5,
            jitter: 0.0,
            growth: Growth::Exponential,
        }
    );
    assert_eq!(web.min_uptime, Duration::from_secs(2));
    assert_eq!(web.max_restarts, 0);
    assert_eq!(web.restart_window, Duration::from_secs(3600));
    assert_eq!(web.cooldown, Some(Duration::from_secs(300)));
    assert!(!web.autostart);
    assert_eq!(
        web.depends_on,
        [
            Dependency {
                service: "db".into(),
                condition: Condition::Healthy,
                on_unready: OnUnready::Ignore,
            },
            Dependency {
                service: "migrate".into(),
                condition: Condition::Completed,
                on_unready: OnUnready::Ignore,
            },
        ]
    );
    assert_eq!(web.groups, ["frontend", "edge"]);
    assert_eq!(web.user.as_deref(), Some("root"));
    assert_eq!(web.group.as_deref(), Some("0"));
}

#[test]
fn every_error_in_every_service_is_reported_at_once() {
    let text = lines(&[
        "[services.web]",                // 1
        "comand = \"serve\"",            // 2
        "command = \"serve\"",           // 3
        "depends_on = [\"db\"]",         // 4
        "",                              // 5
        "[services.db]",                 // 6
        "command = \"postgres\"",        // 7
        "stop_timeout = \"10 seconds\"", // 8
        "depends_on = [\"cache\"]",      // 9
        "instances = 0",                 // 10
        "",                              // 11
        "[services.cache]",              // 12
        "args = []",                     // 13
        "depends_on = [\"web\"]",        // 14
        "backoff.factor = 0.5",          // 15
        "",                              // 16
        "[servics]",                     // 17
    ]);
    let errors = Fixture::new().errors("tend.toml", &text);
    assert_eq!(
        errors,
        [
            err(
                "tend.toml",
                2,
                "services.web.comand",
                "unknown key `comand`; did you mean `command`?"
            ),
            err(
                "tend.toml",
                4,
                "services.web.depends_on",
                "dependency cycle: web -> db -> cache -> web"
            ),
            err(
                "tend.toml",
                8,
                "services.db.stop_timeout",
                "unknown unit `seconds` in duration `10 seconds` (units: ms, s, m, h, d)"
            ),
            err(
                "tend.toml",
                10,
                "services.db.instances",
                "must be at least 1, not 0"
            ),
            err(
                "tend.toml",
                13,
                "services.cache.args",
                "must not be empty: the first element is the program"
            ),
            err(
                "tend.toml",
                15,
                "services.cache.backoff.factor",
                "must be a finite number of at least 1.0, not 0.5"
            ),
            err(
                "tend.toml",
                17,
                "servics",
                "unknown key `servics`; did you mean `services`?"
            ),
        ]
    );
}

#[test]
fn every_error_is_reported_in_yaml_and_json_too() {
    let yaml = lines(&[
        "services:",                 // 1
        "  web:",                    // 2
        "    command: serve",        // 3
        "    autostart: yes",        // 4
        "    restart: sometimes",    // 5
        "  db:",                     // 6
        "    args: [postgres, 5]",   // 7
        "    min_uptime: 10",        // 8
        "    user: no-such-user-xq", // 9
    ]);
    let errors = Fixture::new().errors("tend.yaml", &yaml);
    assert_eq!(
        errors,
        [
            err(
                "tend.yaml",
                4,
                "services.web.autostart",
                "invalid type: string \"yes\", expected a boolean (YAML 1.2 reads yes/no/on/off as strings: write true or false)"
            ),
            err(
                "tend.yaml",
                5,
                "services.web.restart",
                "unknown variant `sometimes`, expected one of `always`, `on-failure`, `never`"
            ),
            err(
                "tend.yaml",
                7,
                "services.db.args[1]",
                "invalid type: integer `5`, expected a string"
            ),
            err(
                "tend.yaml",
                8,
                "services.db.min_uptime",
                "`10` has no unit; write \"10s\" or \"10ms\" (units: ms, s, m, h, d)"
            ),
            err(
                "tend.yaml",
                9,
                "services.db.user",
                "no user named `no-such-user-xq` on this machine"
            ),
        ]
    );

    let json = lines(&[
        "{",                                                      // 1
        "  \"services\": {",                                      // 2
        "    \"web\": {",                                         // 3
        "      \"command\": \"serve\",",                          // 4
        "      \"cwdd\": \"/srv\"",                               // 5
        "    },",                                                 // 6
        "    \"db\": {\"args\": [\"pg\"], \"kind\": \"daemon\"}", // 7
        "  }",                                                    // 8
        "}",                                                      // 9
    ]);
    let errors = Fixture::new().errors("tend.json", &json);
    assert_eq!(
        errors,
        [
            err(
                "tend.json",
                5,
                "services.web.cwdd",
                "unknown key `cwdd`; did you mean `cwd`?"
            ),
            err(
                "tend.json",
                7,
                "services.db.kind",
                "unknown variant `daemon`, expected `service` or `task`"
            ),
        ]
    );
}

#[test]
fn syntax_errors_have_a_line_and_column() {
    let fixture = Fixture::new();
    let errors = fixture.errors("tend.toml", "[services.web]\ncommand = \"x\nargs = 1\n");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].1, Some(2));
    assert!(errors[0].3.contains("column"), "{errors:?}");

    let errors = fixture.errors("tend.yaml", "services:\n  web:\n    command: [x\n");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].1.is_some());
    assert!(errors[0].3.contains("column"), "{errors:?}");

    let errors = fixture.errors(
        "tend.json",
        "{\n  \"services\": {\n    \"web\" {}\n  }\n}\n",
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].1, Some(3));
}

#[test]
fn duplicate_keys_are_errors_in_every_format() {
    let fixture = Fixture::new();
    let errors = fixture.errors(
        "tend.yaml",
        &lines(&[
            "services:",
            "  web:",
            "    command: a",
            "  web:",
            "    command: b",
        ]),
    );
    assert_eq!(
        errors,
        [err(
            "tend.yaml",
            4,
            "",
            "duplicate key `web` (first defined on line 2)"
        )]
    );

    let errors = fixture.errors(
        "tend.json",
        &lines(&[
            "{\"services\": {\"web\": {",
            "  \"command\": \"a\",",
            "  \"command\": \"b\"",
            "}}}",
        ]),
    );
    assert_eq!(
        errors,
        [err(
            "tend.json",
            3,
            "",
            "duplicate key `command` (first defined on line 2)"
        )]
    );

    let errors = fixture.errors(
        "tend.toml",
        &lines(&["[services.web]", "command = 'a'", "command = 'b'"]),
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].1, Some(3));
    assert!(errors[0].3.starts_with("duplicate key"), "{errors:?}");
}

#[test]
fn unsupported_extensions_and_missing_files_name_the_file() {
    let fixture = Fixture::new();
    let path = fixture.write("tend.ini", "[services.web]\n");
    let errors = load_with_env(&path, &test_env).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors.to_string(),
        format!(
            "{}: unsupported manifest format: the file name must end in .toml, .yaml, .yml or .json",
            path.display()
        )
    );

    let missing = fixture.dir.path().join("nope.toml");
    let errors = load_with_env(&missing, &test_env).unwrap_err();
    assert_eq!(errors.0[0].file, missing);
    assert_eq!(errors.0[0].line, None);
    assert!(
        errors.0[0].message.starts_with("cannot read manifest"),
        "{errors}"
    );
}

#[test]
fn the_manifest_path_is_made_absolute_and_canonical() {
    let fixture = Fixture::new();
    fixture.write("sub/keep", "");
    fixture.write("tend.toml", "");
    let roundabout = fixture.dir.path().join("sub/../tend.toml");
    let m = load_with_env(&roundabout, &test_env).expect("loads");
    assert_eq!(m.path, fixture.root().join("tend.toml"));
    assert_eq!(m.base_dir(), fixture.root());
}

#[test]
fn the_manifest_must_be_a_table() {
    let errors = Fixture::new().errors("tend.yaml", "- a\n- b\n");
    assert_eq!(
        errors,
        [err(
            "tend.yaml",
            1,
            "",
            "a manifest is a table of `[tend]`, `[services.NAME]` and `[sockets.NAME]`, found an array"
        )]
    );
    let errors = Fixture::new().errors("tend.yaml", "services: [web]\ntend: 1\n");
    assert_eq!(
        errors,
        [
            err(
                "tend.yaml",
                1,
                "services",
                "expected a table of services, found an array"
            ),
            err(
                "tend.yaml",
                2,
                "tend",
                "invalid type: integer `1`, expected a table of daemon settings"
            ),
        ]
    );
}

#[test]
fn tend_settings_resolve_state_dir_and_reject_unknowns() {
    let fixture = Fixture::new();
    let m = fixture.ok("tend.toml", "[tend]\nstate_dir = \"/var/run/tend\"\n");
    assert_eq!(m.daemon.state_dir, PathBuf::from("/var/run/tend"));
    let m = fixture.ok(
        "tend.toml",
        "[tend]\nstate_dir = \"./st/../state\"\ncgroups = \"auto\"\n",
    );
    assert_eq!(m.daemon.state_dir, fixture.root().join("st/../state"));
    assert_eq!(m.daemon.cgroups, CgroupMode::Auto);

    let errors = fixture.errors(
        "tend.toml",
        &lines(&[
            "[tend]",
            "cgroups = \"on\"",
            "statedir = \"x\"",
            "state_dir = \"\"",
        ]),
    );
    assert_eq!(
        errors,
        [
            err(
                "tend.toml",
                2,
                "tend.cgroups",
                "unknown variant `on`, expected `auto` or `off`"
            ),
            err(
                "tend.toml",
                3,
                "tend.statedir",
                "unknown key `statedir`; did you mean `state_dir`?"
            ),
            err("tend.toml", 4, "tend.state_dir", "must not be empty"),
        ]
    );
}

#[test]
fn command_args_and_shell_rules() {
    assert_eq!(
        web(&["command = \"echo 'a b' \\\"c d\\\" e\\\\ f\""]).program,
        Program::Exec(vec![
            "echo".into(),
            "a b".into(),
            "c d".into(),
            "e f".into()
        ])
    );
    assert_eq!(
        web(&["args = [\"/bin/echo\", \"${GREETING}\"]"]).program,
        Program::Exec(vec!["/bin/echo".into(), "hello world".into()])
    );
    // Interpolation happens before splitting, as in docker compose.
    assert_eq!(
        web(&["command = \"echo ${GREETING}\""]).program,
        Program::Exec(vec!["echo".into(), "hello".into(), "world".into()])
    );
    assert_eq!(
        web(&["command = \"echo $HOME && exit 1\"", "shell = true"]).program,
        Program::Shell("echo $HOME && exit 1".into())
    );

    assert_eq!(
        web_errors(&["command = \"a\"", "args = [\"a\"]"]),
        [err(
            "tend.toml",
            3,
            "services.web.args",
            "set `command` or `args`, not both"
        )]
    );
    assert_eq!(
        web_errors(&["autostart = true"]),
        [err(
            "tend.toml",
            1,
            "services.web",
            "missing `command` (a command line) or `args` (an argv array)"
        )]
    );
    assert_eq!(
        web_errors(&["args = [\"a\"]", "shell = true"]),
        [err(
            "tend.toml",
            3,
            "services.web.shell",
            "`shell = true` runs `command` through /bin/sh -c; it cannot take `args`"
        )]
    );
    assert_eq!(
        web_errors(&["command = \"  \""]),
        [err(
            "tend.toml",
            2,
            "services.web.command",
            "must not be empty"
        )]
    );
    assert_eq!(
        web_errors(&["command = \"echo 'unclosed\""]),
        [err(
            "tend.toml",
            2,
            "services.web.command",
            "cannot split into words: missing closing quote"
        )]
    );
    assert_eq!(
        web_errors(&["args = [\"a\\u0000b\"]"]),
        [err(
            "tend.toml",
            2,
            "services.web.args[0]",
            "contains a NUL character, which no process can receive"
        )]
    );
}

#[test]
fn interpolation_uses_env_files_then_tends_environment() {
    let fixture = Fixture::new();
    fixture.write("base.env", "HOME=/from/file\nONLY_FILE=f\nSHARED=base\n");
    fixture.write("local.env", "SHARED=local\n");
    let m = fixture.ok(
        "tend.toml",
        &lines(&[
            "[services.web]",
            "args = [\"run\", \"${HOME}\", \"${ONLY_FILE}\", \"${SHARED}\", \"${PORT}\", \"${EMPTY:-dflt}\", \"$HOME\", \"$${HOME}\"]",
            "env_file = [\"base.env\", \"local.env\"]",
            "env = { SHARED = \"table\", FROM_TEND = \"${PORT}\" }",
            "cwd = \"${HOME}/app\"",
        ]),
    );
    let web = &m.services[0];
    assert_eq!(
        web.program,
        Program::Exec(
            [
                "run",
                "/from/file",
                "f",
                "local",
                "8080",
                "dflt",
                "$HOME",
                "${HOME}"
            ]
            .map(String::from)
            .to_vec()
        )
    );
    assert_eq!(web.cwd.as_deref(), Some("/from/file/app"));
    // Env files first, later files override earlier ones, `env` overrides them all; tend's
    // own environment is not copied in (the engine adds it).
    let env: Vec<(&str, &str)> = web
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        env,
        [
            ("FROM_TEND", "8080"),
            ("HOME", "/from/file"),
            ("ONLY_FILE", "f"),
            ("SHARED", "table"),
        ]
    );
}

#[test]
fn undefined_variables_are_errors_naming_the_variable_and_key() {
    let errors = web_errors(&[
        "command = \"serve ${NOPE}\"",
        "env = { A = \"${ALSO_NOPE}\", B = \"${OK:-fine}\" }",
        "cwd = \"${WHERE\"",
    ]);
    assert_eq!(
        errors,
        [
            err(
                "tend.toml",
                2,
                "services.web.command",
                "undefined variable `NOPE` (set it, or give a default: `${NOPE:-default}`)"
            ),
            err(
                "tend.toml",
                3,
                "services.web.env.A",
                "undefined variable `ALSO_NOPE` (set it, or give a default: `${ALSO_NOPE:-default}`)"
            ),
            err(
                "tend.toml",
                4,
                "services.web.cwd",
                "`${WHERE` has no closing `}` (write `$${` for a literal `${`)"
            ),
        ]
    );
}

#[test]
fn env_file_errors_name_the_env_file_and_its_line() {
    let fixture = Fixture::new();
    fixture.write(
        "bad.env",
        "GOOD=1\nthis is not an assignment\nexport 9X=1\n",
    );
    let errors = fixture.errors(
        "tend.toml",
        &lines(&[
            "[services.web]",
            "command = \"x\"",
            "env_file = \"bad.env\"",
            "[services.api]",
            "command = \"y\"",
            "env_file = [\"bad.env\", \"missing.env\"]",
        ]),
    );
    let missing = fixture.root().join("missing.env");
    assert_eq!(
        errors,
        [
            err(
                "tend.toml",
                6,
                "services.api.env_file[1]",
                &format!(
                    "cannot read env file {}: No such file or directory (os error 2)",
                    missing.display()
                )
            ),
            err(
                "bad.env",
                2,
                "services.web.env_file",
                "expected KEY=VALUE, found `this is not an assignment`"
            ),
            err(
                "bad.env",
                3,
                "services.web.env_file",
                "invalid variable name `9X`: use letters, digits and `_`, not starting with a digit"
            ),
        ]
    );
}

#[test]
fn env_values_accept_integers_and_booleans_but_not_floats_or_tables() {
    let spec = web(&[
        "command = \"x\"",
        "env = { I = -4, T = true, F = false, S = \"s\" }",
    ]);
    let env: Vec<(&str, &str)> = spec
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        env,
        [("F", "false"), ("I", "-4"), ("S", "s"), ("T", "true")]
    );
    assert_eq!(
        web_errors(&["command = \"x\"", "env = { F = 1.5, T = { a = 1 } }"]),
        [
            err(
                "tend.toml",
                3,
                "services.web.env.F",
                "invalid type: float `1.5`, expected a string, an integer or a boolean"
            ),
            err(
                "tend.toml",
                3,
                "services.web.env.T",
                "invalid type: table, expected a string, an integer or a boolean"
            ),
        ]
    );
}

#[test]
fn cwd_resolves_against_the_manifest_directory() {
    let fixture = Fixture::new();
    let root = fixture.root();
    let m = fixture.ok(
        "tend.toml",
        "[services.a]\ncommand = 'x'\ncwd = 'sub/dir'\n[services.b]\ncommand = 'x'\ncwd = '/abs'\n",
    );
    assert_eq!(m.services[0].cwd.as_deref(), root.join("sub/dir").to_str());
    assert_eq!(m.services[1].cwd.as_deref(), Some("/abs"));
}

#[test]
fn users_groups_and_umask() {
    let spec = web(&[
        "command = \"x\"",
        "user = \"root\"",
        "group = \"root\"",
        "umask = \"022\"",
    ]);
    assert_eq!(spec.user.as_deref(), Some("root"));
    assert_eq!(spec.group.as_deref(), Some("root"));
    assert_eq!(spec.umask, Some(0o022));
    // Numeric ids need no entry in /etc/passwd; a TOML octal integer is taken as is.
    let spec = web(&[
        "command = \"x\"",
        "user = 12345",
        "group = \"54321\"",
        "umask = 0o077",
    ]);
    assert_eq!(spec.user.as_deref(), Some("12345"));
    assert_eq!(spec.group.as_deref(), Some("54321"));
    assert_eq!(spec.umask, Some(0o077));

    assert_eq!(
        web_errors(&[
            "command = \"x\"",
            "user = \"nobody-tend-test\"",
            "group = \"no-group-tend-test\"",
            "umask = \"089\"",
        ]),
        [
            err(
                "tend.toml",
                3,
                "services.web.user",
                "no user named `nobody-tend-test` on this machine"
            ),
            err(
                "tend.toml",
                4,
                "services.web.group",
                "no group named `no-group-tend-test` on this machine"
            ),
            err(
                "tend.toml",
                5,
                "services.web.umask",
                "`089` is not an octal umask such as \"022\""
            ),
        ]
    );
    assert_eq!(
        web_errors(&["command = \"x\"", "umask = 512", "user = -1"]),
        [
            err(
                "tend.toml",
                3,
                "services.web.umask",
                "umask 0o1000 is out of range (at most 0o777)"
            ),
            err(
                "tend.toml",
                4,
                "services.web.user",
                "user id -1 is out of range"
            ),
        ]
    );
}

#[test]
fn yaml_octal_looking_umask_keeps_its_text() {
    let m = Fixture::new().ok(
        "tend.yaml",
        "services:\n  web:\n    command: x\n    umask: 022\n",
    );
    assert_eq!(m.services[0].umask, Some(0o022));
}

#[test]
fn numeric_limits() {
    let spec = web(&["command = \"x\"", "instances = 10000", "port_base = 55536"]);
    assert_eq!((spec.instances, spec.port_base), (10000, Some(55536)));
    assert_eq!(
        web_errors(&[
            "command = \"x\"",
            "instances = -3",
            "exit_codes = [0, 256, -1]"
        ]),
        [
            err(
                "tend.toml",
                3,
                "services.web.instances",
                "must be at least 1, not -3"
            ),
            err(
                "tend.toml",
                4,
                "services.web.exit_codes[1]",
                "exit code 256 is not in 0..=255"
            ),
            err(
                "tend.toml",
                4,
                "services.web.exit_codes[2]",
                "exit code -1 is not in 0..=255"
            ),
        ]
    );
    assert_eq!(
        web_errors(&[
            "command = \"x\"",
            "instances = 10001",
            "max_restarts = -1",
            "exit_codes = []"
        ]),
        [
            err(
                "tend.toml",
                3,
                "services.web.instances",
                "must be at most 10000, not 10001"
            ),
            err(
                "tend.toml",
                4,
                "services.web.max_restarts",
                "must be at least 0: -1"
            ),
            err(
                "tend.toml",
                5,
                "services.web.exit_codes",
                "must list at least one exit code"
            ),
        ]
    );
    assert_eq!(
        web_errors(&["command = \"x\"", "port_base = 0"]),
        [err(
            "tend.toml",
            3,
            "services.web.port_base",
            "must be a port in 1..=65535, not 0"
        )]
    );
    assert_eq!(
        web_errors(&["command = \"x\"", "port_base = 70000"]),
        [err(
            "tend.toml",
            3,
            "services.web.port_base",
            "must be a port in 1..=65535, not 70000"
        )]
    );
    assert_eq!(
        web_errors(&["command = \"x\"", "instances = 3", "port_base = 65534"]),
        [err(
            "tend.toml",
            4,
            "services.web.port_base",
            "3 instances from port 65534 would need port 65536, past 65535"
        )]
    );
    assert_eq!(
        web_errors(&["command = \"x\"", "priority = 1.5"]),
        [err(
            "tend.toml",
            3,
            "services.web.priority",
            "invalid type: float `1.5`, expected an integer"
        )]
    );
}

#[test]
fn backoff_rules() {
    let spec = web(&["command = \"x\"", "[services.web.backoff]", "max = \"2s\""]);
    assert_eq!(spec.backoff.max, Duration::from_secs(2));
    assert_eq!(spec.backoff.initial, Duration::from_secs(1));
    assert_eq!(
        web_errors(&[
            "command = \"x\"",
            "backoff = { initial = \"10s\", max = \"5s\", jitter = 1.5, factor = 2 }",
        ]),
        [
            err(
                "tend.toml",
                3,
                "services.web.backoff.jitter",
                "must be between 0 and 1, not 1.5"
            ),
            err(
                "tend.toml",
                3,
                "services.web.backoff.max",
                "`max` (5s) must be at least `initial` (10s)"
            ),
        ]
    );
    let spec = web(&["command = \"x\"", "backoff = { initial = \"1m\" }"]);
    assert_eq!(
        spec.backoff.max,
        Duration::from_secs(60),
        "an unwritten max grows to a written initial"
    );
    assert_eq!(
        web_errors(&[
            "command = \"x\"",
            "[services.web.backoff]",
            "intial = \"2s\"",
            "max = \"500ms\"",
        ]),
        [err(
            "tend.toml",
            4,
            "services.web.backoff.intial",
            "unknown key `intial`; did you mean `initial`?"
        )],
        "no comparison of max with the default that stands in for the misspelled initial"
    );
    assert_eq!(
        web_errors(&["command = \"x\"", "backoff = \"1s\""]),
        [err(
            "tend.toml",
            3,
            "services.web.backoff",
            "invalid type: string \"1s\", expected a table of backoff settings"
        )]
    );
}

#[test]
fn reload_settings() {
    let spec = web(&["command = \"x\""]);
    assert_eq!(
        (spec.reload_signal, spec.reload_timeout, spec.max_surge),
        (None, Duration::from_secs(60), 1)
    );
    let spec = web(&[
        "command = \"x\"",
        "reload_signal = \"SIGHUP\"",
        "reload_timeout = \"90s\"",
        "max_surge = 3",
    ]);
    assert_eq!(
        (spec.reload_signal, spec.reload_timeout, spec.max_surge),
        (Some(Signal::Hup), Duration::from_secs(90), 3)
    );
    let errors = web_errors(&[
        "command = \"x\"",
        "reload_signal = \"BOGUS\"",
        "reload_timeout = \"0s\"",
        "max_surge = 0",
    ]);
    let keys: Vec<&str> = errors.iter().map(|e| e.2.as_str()).collect();
    assert_eq!(
        keys,
        [
            "services.web.reload_signal",
            "services.web.reload_timeout",
            "services.web.max_surge"
        ],
        "{errors:?}"
    );
    assert_eq!(errors[2].3, "must be at least 1, not 0");
}

#[test]
fn durations_and_signals() {
    let spec = web(&[
        "command = \"x\"",
        "min_uptime = \"0s\"",
        "stop_timeout = \"1.5s\"",
        "stop_signal = 1",
        "restart_window = \"1d\"",
    ]);
    assert_eq!(spec.min_uptime, Duration::ZERO);
    assert_eq!(spec.stop_timeout, Duration::from_millis(1500));
    assert_eq!(spec.stop_signal, Signal::Hup);
    assert_eq!(spec.restart_window, Duration::from_secs(86_400));
    assert_eq!(
        web(&["command = \"x\"", "stop_signal = \"quit\""]).stop_signal,
        Signal::Quit
    );

    let errors = web_errors(&[
        "command = \"x\"",
        "stop_timeout = 10",
        "min_uptime = \"-1s\"",
        "cooldown = -5",
        "stop_signal = \"SIGBOGUS\"",
    ]);
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert_eq!(
        errors[0],
        err(
            "tend.toml",
            3,
            "services.web.stop_timeout",
            "`10` has no unit; write \"10s\" or \"10ms\" (units: ms, s, m, h, d)"
        )
    );
    assert_eq!(
        errors[1],
        err(
            "tend.toml",
            4,
            "services.web.min_uptime",
            "duration `-1s` cannot be negative"
        )
    );
    assert_eq!(
        errors[2],
        err(
            "tend.toml",
            5,
            "services.web.cooldown",
            "duration `-5` cannot be negative"
        )
    );
    assert_eq!(errors[3].1, Some(6));
    assert_eq!(errors[3].2, "services.web.stop_signal");
    assert!(
        errors[3].3.starts_with("unknown signal `SIGBOGUS`"),
        "{errors:?}"
    );
}

#[test]
fn dependency_errors_each_name_the_problem() {
    let text = lines(&[
        "[services.db]",                                              // 1
        "command = \"postgres\"",                                     // 2
        "[services.migrate]",                                         // 3
        "command = \"migrate\"",                                      // 4
        "kind = \"task\"",                                            // 5
        "[services.web]",                                             // 6
        "command = \"serve\"",                                        // 7
        "depends_on = [\"db\", \"web\", \"dbb\", \"db\", \"cache\"]", // 8
        "[services.api]",                                             // 9
        "command = \"api\"",                                          // 10
        "[services.api.depends_on]",                                  // 11
        "db = \"completed\"",                                         // 12
        "migrate = \"completed\"",                                    // 13
        "web = \"ready\"",                                            // 14
    ]);
    let errors = Fixture::new().errors("tend.toml", &text);
    assert_eq!(
        errors,
        [
            err(
                "tend.toml",
                8,
                "services.web.depends_on[1]",
                "`web` cannot depend on itself"
            ),
            err(
                "tend.toml",
                8,
                "services.web.depends_on[2]",
                "unknown service `dbb`; did you mean `db`?"
            ),
            err(
                "tend.toml",
                8,
                "services.web.depends_on[3]",
                "`db` is listed twice"
            ),
            err(
                "tend.toml",
                8,
                "services.web.depends_on[4]",
                "unknown service `cache`"
            ),
            err(
                "tend.toml",
                12,
                "services.api.depends_on.db",
                "`completed` needs `db` to be a task (`kind = \"task\"`), but it is a service"
            ),
            err(
                "tend.toml",
                14,
                "services.api.depends_on.web",
                "unknown variant `ready`, expected one of `started`, `healthy`, `completed`"
            ),
        ]
    );
}

#[test]
fn dependency_cycles_name_the_whole_cycle() {
    let text = lines(&[
        "[services.a]",                     // 1
        "command = \"a\"",                  // 2
        "depends_on = [\"b\"]",             // 3
        "[services.b]",                     // 4
        "command = \"b\"",                  // 5
        "depends_on = [\"c\"]",             // 6
        "[services.c]",                     // 7
        "command = \"c\"",                  // 8
        "depends_on = { a = \"healthy\" }", // 9
        "[services.d]",                     // 10
        "command = \"d\"",                  // 11
        "depends_on = [\"e\"]",             // 12
        "[services.e]",                     // 13
        "command = \"e\"",                  // 14
        "depends_on = [\"d\", \"a\"]",      // 15
    ]);
    assert_eq!(
        Fixture::new().errors("tend.toml", &text),
        [
            err(
                "tend.toml",
                3,
                "services.a.depends_on",
                "dependency cycle: a -> b -> c -> a"
            ),
            err(
                "tend.toml",
                12,
                "services.d.depends_on",
                "dependency cycle: d -> e -> d"
            ),
        ]
    );
}

#[test]
fn names_and_groups() {
    let spec = web(&[
        "command = \"x\"",
        "groups = [\"front\", \"front\", \"edge.v2\"]",
    ]);
    assert_eq!(spec.groups, ["front", "edge.v2"], "duplicates collapse");

    let text = lines(&[
        "[services.\"web:2\"]",               // 1
        "command = \"x\"",                    // 2
        "[services.all]",                     // 3
        "command = \"x\"",                    // 4
        "[services.api]",                     // 5
        "command = \"x\"",                    // 6
        "groups = [\"db\", \"all\", \"-x\"]", // 7
        "[services.db]",                      // 8
        "command = \"x\"",                    // 9
    ]);
    assert_eq!(
        Fixture::new().errors("tend.toml", &text),
        [
            err(
                "tend.toml",
                1,
                "services.web:2",
                "`web:2` is not a valid name: use letters, digits, `_`, `.` and `-`, starting with a letter or digit (`:` is reserved: `web:2` names an instance)"
            ),
            err(
                "tend.toml",
                3,
                "services.all",
                "`all` is reserved: it names every service"
            ),
            err(
                "tend.toml",
                7,
                "services.api.groups[0]",
                "group `db` has the same name as a service"
            ),
            err(
                "tend.toml",
                7,
                "services.api.groups[1]",
                "`all` is reserved: it names every service"
            ),
            err(
                "tend.toml",
                7,
                "services.api.groups[2]",
                "`-x` is not a valid name: use letters, digits, `_`, `.` and `-`, starting with a letter or digit"
            ),
        ]
    );
}

#[test]
fn yaml_booleans_are_only_true_and_false() {
    let m = Fixture::new().ok(
        "tend.yaml",
        "services:\n  web:\n    args: [echo, yes, on, off, no]\n    autostart: false\n",
    );
    assert_eq!(
        m.services[0].program,
        Program::Exec(
            ["echo", "yes", "on", "off", "no"]
                .map(String::from)
                .to_vec()
        )
    );
}

#[test]
fn start_order_puts_dependencies_first_then_priority_then_file_order() {
    let text = lines(&[
        "[services.web]",
        "command = \"x\"",
        "depends_on = [\"api\"]",
        "[services.api]",
        "command = \"x\"",
        "depends_on = { db = \"healthy\", migrate = \"completed\" }",
        "[services.metrics]",
        "command = \"x\"",
        "priority = 10",
        "[services.db]",
        "command = \"x\"",
        "[services.migrate]",
        "command = \"x\"",
        "kind = \"task\"",
        "depends_on = [\"db\"]",
        "[services.cache]",
        "command = \"x\"",
        "priority = -5",
        "[services.logs]",
        "command = \"x\"",
    ]);
    let m = Fixture::new().ok("tend.toml", &text);
    assert_eq!(
        start_order(&m),
        ["cache", "db", "migrate", "api", "web", "logs", "metrics"]
    );
}

#[test]
fn find_manifest_walks_up_and_prefers_toml() {
    let fixture = Fixture::new();
    fixture.write("project/deep/er/file.txt", "");
    assert_eq!(
        find_manifest(&fixture.dir.path().join("project/deep/er")),
        None
    );

    fixture.write("project/tend.json", "{}");
    let found = find_manifest(&fixture.dir.path().join("project/deep/er"));
    assert_eq!(found, Some(fixture.dir.path().join("project/tend.json")));

    fixture.write("project/tend.yml", "");
    fixture.write("project/tend.toml", "");
    let found = find_manifest(&fixture.dir.path().join("project/deep/er"));
    assert_eq!(found, Some(fixture.dir.path().join("project/tend.toml")));

    fixture.write("project/deep/tend.yaml", "");
    let found = find_manifest(&fixture.dir.path().join("project/deep/er"));
    assert_eq!(
        found,
        Some(fixture.dir.path().join("project/deep/tend.yaml"))
    );
    assert_eq!(
        find_manifest(&fixture.dir.path().join("project")),
        Some(fixture.dir.path().join("project/tend.toml"))
    );
}

#[test]
fn schema_describes_every_key_and_denies_unknown_ones() {
    let schema = schema();
    let text = schema.to_string();
    assert_eq!(
        schema["additionalProperties"],
        serde_json::json!(false),
        "top level"
    );
    assert_eq!(schema["title"], "tend manifest");
    let defs = schema["$defs"].as_object().expect("$defs");
    for table in ["RawDaemon", "RawService", "RawBackoff"] {
        assert_eq!(
            defs[table]["additionalProperties"],
            serde_json::json!(false),
            "{table} must deny unknown keys"
        );
    }
    let service = defs["RawService"]["properties"]
        .as_object()
        .expect("properties");
    for key in [
        "command",
        "args",
        "shell",
        "cwd",
        "env",
        "env_file",
        "user",
        "group",
        "umask",
        "kind",
        "autostart",
        "instances",
        "port_base",
        "restart",
        "exit_codes",
        "backoff",
        "min_uptime",
        "max_restarts",
        "restart_window",
        "restart_limit",
        "cooldown",
        "stop_signal",
        "stop_timeout",
        "reload_signal",
        "reload_timeout",
        "max_surge",
        "depends_on",
        "priority",
        "groups",
        "logs",
        "readiness",
        "liveness",
        "startup",
        "watchdog",
        "max_memory",
        "memory_max",
        "cpu_max",
        "pids_max",
        "warn_cpu",
        "warn_memory",
        "gpus",
        "gpus_per_instance",
        "max_gpu_memory",
        "critical",
        "event_listener",
        "sockets",
        "autoscale",
        "cron_restart",
        "schedule",
        "max_concurrent",
        "watch",
        "watch_ignore",
        "watch_debounce",
    ] {
        assert!(service.contains_key(key), "schema lacks `{key}`");
    }
    assert_eq!(service.len(), 53, "a key was added: list it above");
    for table in [
        "RawProbe",
        "RawCheck",
        "RawOwnLog",
        "RawSocket",
        "RawAutoscale",
    ] {
        assert_eq!(
            defs[table]["additionalProperties"],
            serde_json::json!(false),
            "{table} must deny unknown keys"
        );
    }
    for key in ["initial", "max", "factor", "jitter"] {
        assert!(
            defs["RawBackoff"]["properties"].get(key).is_some(),
            "backoff lacks {key}"
        );
    }
    for key in [
        "state_dir",
        "cgroups",
        "log",
        "sample_every",
        "max_starting",
    ] {
        assert!(
            defs["RawDaemon"]["properties"].get(key).is_some(),
            "tend lacks {key}"
        );
    }
    // Doc comments become descriptions, and enums list their values for completion.
    let command = service["command"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(command.contains("POSIX shell"), "{command}");
    assert!(text.contains("on-failure"));
    assert!(text.contains("\"completed\""));
    assert!(text.contains(raw::NAME_PATTERN.replace('\\', "\\\\").as_str()));
    let socket = defs["RawSocket"]["properties"]
        .as_object()
        .expect("properties");
    let keys: Vec<&str> = socket.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["backlog", "group", "listen", "mode", "owner", "reuse_port"]
    );
    assert!(schema["properties"]["sockets"].is_object());
}

#[test]
fn errors_display_one_per_line() {
    let fixture = Fixture::new();
    let errors = fixture
        .load(
            "tend.toml",
            "[services.a]\nfrobnicate = 1\n[services.b]\nfrobnicate = 2\n",
        )
        .unwrap_err();
    let file = fixture.root().join("tend.toml");
    let f = file.display();
    assert_eq!(
        errors.to_string(),
        format!(
            "{f}:1: services.a: missing `command` (a command line) or `args` (an argv array)\n\
             {f}:2: services.a.frobnicate: unknown key `frobnicate`\n\
             {f}:3: services.b: missing `command` (a command line) or `args` (an argv array)\n\
             {f}:4: services.b.frobnicate: unknown key `frobnicate`"
        )
    );
}

#[test]
fn load_reads_tends_own_environment() {
    let fixture = Fixture::new();
    // PATH is set in any environment the tests run in.
    let path = fixture.write("tend.toml", "[services.a]\nargs = [\"${PATH}\"]\n");
    let m = load(&path).expect("loads");
    let expected = std::env::var("PATH").expect("PATH is set");
    assert_eq!(m.services[0].program, Program::Exec(vec![expected]));
}

#[test]
fn hostile_inputs_give_errors_not_panics() {
    let fixture = Fixture::new();
    let inputs: &[(&str, &str)] = &[
        ("tend.yaml", "services:\n  web: &a [*a]\n"),
        ("tend.yaml", "? [a]\n: b\n"),
        ("tend.yaml", "services:\n  ~: {command: x}\n"),
        ("tend.yaml", "!!int x: 1\n"),
        (
            "tend.yaml",
            "services: {web: {command: !!str 5, env: {A: .nan}}}\n",
        ),
        ("tend.yaml", "\u{feff}services: {}\n"),
        (
            "tend.json",
            "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
        ),
        ("tend.json", "\"just a string\""),
        ("tend.toml", "services = 1\n"),
        (
            "tend.toml",
            "[services.web]\ncommand = 'x'\nbackoff.factor = nan\nbackoff.jitter = inf\n",
        ),
        (
            "tend.toml",
            "[services.web]\ncommand = 'x'\ninstances = 9223372036854775807\nport_base = 65535\n",
        ),
        (
            "tend.toml",
            "[services.web]\nargs = [[1], {a = 1}]\ndepends_on = [1]\n",
        ),
        ("tend.toml", "[[services]]\nname = 'x'\n"),
        ("tend.toml", "\u{0}\u{1}\u{2}"),
    ];
    for (name, text) in inputs {
        // Ok or Err are both fine; what matters is reaching this line.
        let _ = fixture.load(name, text);
    }
    let bytes = fixture.dir.path().join("bin.toml");
    std::fs::write(&bytes, [0xff, 0xfe, 0x00]).expect("write");
    assert!(load_with_env(&bytes, &test_env).is_err());
}

#[test]
fn error_types_are_std_errors_that_cross_threads() {
    fn is<T: Send + Sync + std::error::Error + 'static>() {}
    is::<ConfigErrors>();
    is::<ConfigError>();
}

#[test]
fn a_malformed_key_does_not_cause_follow_on_errors() {
    let text = lines(&[
        "[services.migrate]",                              // 1
        "kind = \"taks\"",                                 // 2
        "command = 42",                                    // 3
        "[services.web]",                                  // 4
        "command = \"x\"",                                 // 5
        "depends_on = { migrate = \"completed\" }",        // 6
        "backoff = { initial = \"soon\", max = \"1ms\" }", // 7
    ]);
    // No "missing `command`" for migrate, no "`completed` needs a task" for web (migrate's
    // kind is unknown, not "service"), no "max < initial" (initial is invalid, not 1s).
    assert_eq!(
        Fixture::new().errors("tend.toml", &text),
        [
            err(
                "tend.toml",
                2,
                "services.migrate.kind",
                "unknown variant `taks`, expected `service` or `task`"
            ),
            err(
                "tend.toml",
                3,
                "services.migrate.command",
                "invalid type: integer `42`, expected a string"
            ),
            err(
                "tend.toml",
                7,
                "services.web.backoff.initial",
                "invalid duration `soon`: expected a number, found `soon` (e.g. \"1m30s\")"
            ),
        ]
    );
}

#[test]
fn yaml_nulls_mean_unset() {
    let m = Fixture::new().ok(
        "tend.yaml",
        "tend:\nservices:\n  web:\n    command: x\n    cwd: ~\n    env:\n",
    );
    assert_eq!(m.daemon.state_dir, m.base_dir().join(".tend"));
    assert_eq!(m.services[0].cwd, None);
    assert!(m.services[0].env.is_empty());
}

#[test]
fn the_schema_root_type_parses_a_whole_manifest_too() {
    // The loader deserializes the parts one by one; the root type the schema is generated
    // from must accept the same documents and reject the same unknown keys.
    assert!(serde_json::from_str::<raw::RawManifest>(FULL_JSON).is_ok());
    let unknown = serde_json::from_str::<raw::RawManifest>(r#"{"servics": {}}"#);
    assert!(unknown.is_err());
}

#[test]
fn locate_state_dir_agrees_with_load_and_tolerates_other_errors() {
    let fixture = Fixture::new();
    let root = fixture.root();
    let path = fixture.write(
        "tend.toml",
        "[tend]\nstate_dir = \"./run\"\n[services.web]\n",
    );
    assert_eq!(locate_state_dir(&path), root.join("run"));
    assert!(
        load_with_env(&path, &test_env).is_err(),
        "web has no command"
    );

    let path = fixture.write("tend.yaml", "services:\n  web:\n    command: x\n");
    assert_eq!(locate_state_dir(&path), root.join(".tend"));
    assert_eq!(
        fixture.ok("tend.yaml", "services: {}\n").daemon.state_dir,
        root.join(".tend")
    );

    let path = fixture.write("tend.json", "{\"tend\": {\"state_dir\": \"/abs/state\"}}");
    assert_eq!(locate_state_dir(&path), PathBuf::from("/abs/state"));
    assert_eq!(
        locate_state_dir(&fixture.dir.path().join("missing.toml")),
        root.join(".tend")
    );
    let broken = fixture.write("broken.toml", "[tend\n");
    assert_eq!(locate_state_dir(&broken), root.join(".tend"));
}

#[test]
fn locate_socket_finds_the_tend_table_however_its_key_is_spelled() {
    let fixture = Fixture::new();
    let root = fixture.root();
    let path = fixture.write(
        "tend.toml",
        "[tend]\nstate_dir = \"run\"\n[services.web]\ncommand = \"x\"\n",
    );
    assert_eq!(locate_socket(&path), root.join("run/tend.sock"));
    let path = fixture.write("tend.toml", "[tend]\nsocket = \"ctl.sock\"\n");
    assert_eq!(locate_socket(&path), root.join("ctl.sock"));
    // Escapes spell the key without its letters: the shortcut for manifests that never
    // name `tend` must not skip these.
    let path = fixture.write("tend.toml", "[\"\\u0074end\"]\nsocket = \"escaped.sock\"\n");
    assert_eq!(locate_socket(&path), root.join("escaped.sock"));
    let path = fixture.write(
        "tend.yaml",
        "\"\\x74end\":\n  state_dir: yaml-state\nservices: {}\n",
    );
    assert_eq!(locate_socket(&path), root.join("yaml-state/tend.sock"));
    let path = fixture.write("tend.toml", "[services.web]\ncommand = \"x\"\n");
    assert_eq!(locate_socket(&path), root.join(".tend/tend.sock"));
    let path = fixture.write(
        "tend.toml",
        "[tend]\ncgroups = \"off\"\n[services.web]\ncommand = \"x\"\n",
    );
    assert_eq!(locate_socket(&path), root.join(".tend/tend.sock"));
    // Dotted keys set it as well as a table does.
    let path = fixture.write("tend.toml", "tend.socket = \"dotted.sock\"\n");
    assert_eq!(locate_socket(&path), root.join("dotted.sock"));
}

#[test]
fn locate_socket_finds_the_tend_table_at_the_end_of_a_long_manifest() {
    // Longer than the pieces the shortcut reads, with the table after them.
    let fixture = Fixture::new();
    let root = fixture.root();
    let mut text = String::new();
    for i in 0..2000 {
        text.push_str(&format!(
            "[services.s{i:05}]\ncommand = \"sleep 100\"\n# {}\n",
            "x".repeat(60)
        ));
    }
    text.push_str("[tend]\nsocket = \"last.sock\"\n");
    let path = fixture.write("tend.toml", &text);
    assert_eq!(locate_socket(&path), root.join("last.sock"));
}

/// Hands out `step` bytes a read, so that every word can straddle two reads.
struct Trickle<'a> {
    text: &'a [u8],
    step: usize,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.text.len());
        buf[..n].copy_from_slice(&self.text[..n]);
        self.text = &self.text[n..];
        Ok(n)
    }
}

#[test]
fn the_shortcut_sees_words_across_reads_and_ignores_half_of_the_pair() {
    // The size is only a hint: a file may grow or shrink while it is read.
    let may = |text: &str, step: usize| {
        [0, text.len() as u64, text.len() as u64 / 2, u64::MAX]
            .into_iter()
            .map(|size| {
                let text = text.as_bytes();
                may_set_the_daemon_paths(Trickle { text, step }, size).unwrap()
            })
            .reduce(|a, b| {
                assert_eq!(a, b, "the answer depends on the size hint");
                a
            })
            .unwrap()
    };
    for step in [1, 2, 3, 5, 8, 9, 64 * 1024] {
        assert!(may("[tend]\nsocket = \"a\"\n", step), "{step}");
        assert!(
            may("state_dir: x\nservices: {}\ntend: {}\n", step),
            "{step}"
        );
        assert!(may("[\"\\u0074end\"]\n", step), "{step}");
        assert!(!may("[tend]\ncgroups = \"off\"\n", step), "{step}");
        assert!(!may("[services.socket]\ncommand = \"x\"\n", step), "{step}");
        assert!(!may("", step), "{step}");
    }
    // Past the first piece: the words 150 000 bytes in, one of them across a piece's end.
    let filler = "x".repeat(64 * 1024 - 3);
    let text = format!("{filler}state_dir{}tend", "y".repeat(80_000));
    assert!(may(&text, 64 * 1024));
    assert!(may(&text, 4096));
    assert!(!may(
        &format!("{filler}state_di{}", "y".repeat(80_000)),
        64 * 1024
    ));
}

#[test]
fn logs_table_defaults_and_values() {
    assert_eq!(web(&["command = \"x\""]).logs, LogSpec::default());
    let spec = web(&[
        "command = \"x\"",
        "[services.web.logs]",
        "merge = true",
        "stdout = \"out/web.log\"",
        "stderr = \"null\"",
        "max_size = \"10MiB\"",
        "rotate_every = \"1d\"",
        "backups = 3",
        "compress = true",
        "timestamp_format = \"%Y-%m-%d %H:%M:%S.%3f\"",
        "format = \"json\"",
        "tail = 50",
        "max_line = \"1KiB\"",
    ]);
    let logs = spec.logs;
    assert!(logs.merge && logs.compress && logs.timestamps);
    match &logs.stdout {
        LogTarget::File(Some(path)) => assert!(
            path.is_absolute() && path.ends_with("out/web.log"),
            "{path:?}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(logs.stderr, LogTarget::Null);
    assert_eq!(logs.max_size, Some(10 * 1024 * 1024));
    assert_eq!(logs.rotate_every, Some(Duration::from_secs(86400)));
    assert_eq!((logs.backups, logs.tail, logs.max_line), (3, 50, 1024));
    assert_eq!(logs.format, LogFormat::Json);
    let inherit = web(&[
        "command = \"x\"",
        "logs = { stdout = \"inherit\", max_size = 0 }",
    ])
    .logs;
    assert_eq!(inherit.stdout, LogTarget::Inherit);
    assert_eq!(inherit.max_size, None, "0 turns size rotation off");
}

#[test]
fn logs_table_errors_name_their_keys() {
    let errors = web_errors(&[
        "command = \"x\"",
        "[services.web.logs]",
        "max_size = \"10 parsecs\"",
        "backups = -1",
        "format = \"xml\"",
        "timestamp_format = \"%Q\"",
        "rotate_every = \"5\"",
        "stdout = \"\"",
    ]);
    let keys: Vec<&str> = errors.iter().map(|e| e.2.as_str()).collect();
    for key in [
        "services.web.logs.max_size",
        "services.web.logs.backups",
        "services.web.logs.format",
        "services.web.logs.timestamp_format",
        "services.web.logs.rotate_every",
        "services.web.logs.stdout",
    ] {
        assert!(keys.contains(&key), "no error for {key} in {errors:?}");
    }
    assert!(
        errors.iter().all(|e| e.1.is_some()),
        "every error has a line: {errors:?}"
    );
}

#[test]
fn probes_read_every_check_with_defaults() {
    let spec = web(&[
        "command = \"x\"",
        "port_base = 8000",
        "readiness = { http = \"http://127.0.0.1:{port}/health\", status = 200, headers = { X-Probe = \"1\" }, fallback = { tcp = \"127.0.0.1:{port}\" } }",
        "liveness = { exec = \"pg_isready -q\", interval = \"2s\", failure_threshold = 5 }",
        "startup = { tcp = \"localhost:5432\", initial_delay = \"30s\" }",
    ]);
    let readiness = spec.readiness.unwrap();
    assert_eq!(
        readiness.check,
        CheckSpec::Http {
            url: "http://127.0.0.1:{port}/health".into(),
            method: "GET".into(),
            status: (200, 200),
            body_contains: None,
            headers: vec![("X-Probe".into(), "1".into())],
        }
    );
    assert_eq!(
        readiness.fallback,
        Some(CheckSpec::Tcp("127.0.0.1:{port}".into()))
    );
    assert_eq!(
        (
            readiness.interval,
            readiness.timeout,
            readiness.success_threshold,
            readiness.failure_threshold
        ),
        (Duration::from_secs(10), Duration::from_secs(1), 1, 3),
        "the defaults"
    );
    let liveness = spec.liveness.unwrap();
    assert_eq!(liveness.check, CheckSpec::Exec("pg_isready -q".into()));
    assert_eq!(
        (liveness.interval, liveness.failure_threshold),
        (Duration::from_secs(2), 5)
    );
    assert_eq!(spec.startup.unwrap().initial_delay, Duration::from_secs(30));

    let driven = web(&[
        "command = \"x\"",
        "readiness = { notify = true }",
        "watchdog = \"30s\"",
    ]);
    assert_eq!(driven.readiness.unwrap().check, CheckSpec::Notify);
    assert_eq!(driven.watchdog, Some(Duration::from_secs(30)));
    let log = web(&[
        "command = \"x\"",
        "readiness = { log = \"listening on \\\\d+\" }",
    ]);
    assert_eq!(
        log.readiness.unwrap().check,
        CheckSpec::Log("listening on \\d+".into())
    );
}

#[test]
fn probe_errors_name_their_keys() {
    let errors = web_errors(&[
        "command = \"x\"",
        "readiness = { http = \"https://example.com/\", tcp = \"a:1\" }",
        "liveness = { log = \"ready\" }",
        "startup = { tcp = \"nohost\", interval = \"5ms\", success_threshold = 0 }",
        "watchdog = \"10s\"",
    ]);
    let keys: Vec<&str> = errors.iter().map(|e| e.2.as_str()).collect();
    for key in [
        "services.web.readiness",
        "services.web.liveness.log",
        "services.web.startup.tcp",
        "services.web.startup.interval",
        "services.web.startup.success_threshold",
        "services.web.watchdog",
    ] {
        assert!(keys.contains(&key), "no error for {key} in {errors:?}");
    }
    let one = web_errors(&[
        "command = \"x\"",
        "readiness = { http = \"https://example.com/\" }",
    ]);
    assert!(one[0].3.contains("https is not supported"), "{one:?}");
    let regex = web_errors(&["command = \"x\"", "readiness = { log = \"(unclosed\" }"]);
    assert_eq!(regex[0].2, "services.web.readiness.log");
    assert!(
        errors.iter().all(|e| e.1.is_some()),
        "every error has a line: {errors:?}"
    );
}

#[test]
fn resource_limits_and_warnings() {
    let spec = web(&[
        "command = \"x\"",
        "max_memory = \"1GB\"",
        "memory_max = \"2GiB\"",
        "cpu_max = \"150%\"",
        "pids_max = 64",
        "warn_cpu = 0.9",
        "warn_memory = \"800MB\"",
    ]);
    assert_eq!(
        spec.resources,
        ResourceSpec {
            max_memory: Some(1_000_000_000),
            memory_max: Some(2 << 30),
            cpu_max: Some(1.5),
            pids_max: Some(64),
            warn_cpu: Some(90.0),
            warn_memory: Some(800_000_000),
            gpus: vec![],
            gpus_per_instance: 0,
            max_gpu_memory: None,
        }
    );
    let errors = web_errors(&[
        "command = \"x\"",
        "max_memory = \"lots\"",
        "cpu_max = \"-5%\"",
        "pids_max = 0",
    ]);
    let keys: Vec<&str> = errors.iter().map(|e| e.2.as_str()).collect();
    for key in [
        "services.web.max_memory",
        "services.web.cpu_max",
        "services.web.pids_max",
    ] {
        assert!(keys.contains(&key), "no error for {key} in {errors:?}");
    }
}

#[test]
fn gpus_are_shared_out_round_robin() {
    let spec = web(&[
        "command = \"x\"",
        "gpus = [0, 1, \"GPU-8f3c\"]",
        "gpus_per_instance = 2",
        "max_gpu_memory = \"20GB\"",
    ]);
    let r = &spec.resources;
    assert_eq!(r.gpus, ["0", "1", "GPU-8f3c"]);
    assert_eq!(r.max_gpu_memory, Some(20_000_000_000));
    assert_eq!(r.gpus_of(0), ["0", "1"]);
    assert_eq!(r.gpus_of(1), ["GPU-8f3c", "0"]);
    assert_eq!(r.gpus_of(2), ["1", "GPU-8f3c"]);
    let all = web(&["command = \"x\"", "gpus = [3, 4]"]);
    assert_eq!(
        all.resources.gpus_of(5),
        ["3", "4"],
        "default: every listed GPU"
    );
    assert!(web(&["command = \"x\""]).resources.gpus_of(0).is_empty());
    let errors = web_errors(&["command = \"x\"", "gpus = [0, -1]", "gpus_per_instance = 3"]);
    let keys: Vec<&str> = errors.iter().map(|e| e.2.as_str()).collect();
    assert!(keys.contains(&"services.web.gpus"), "{errors:?}");
    assert!(
        keys.contains(&"services.web.gpus_per_instance"),
        "{errors:?}"
    );
}

#[test]
fn remote_listener_history_and_notifications_load() {
    let fixture = Fixture::new();
    std::fs::write(fixture.root().join("tokens"), "t0123456789abcdef read\n").unwrap();
    let m = fixture.ok(
        "tend.toml",
        r#"
[tend]
socket_group = "0"

[tend.http]
listen = "127.0.0.1:9100"
tokens_file = "tokens"
metrics_public = true

[tend.history]
retention = "2d"

[[tend.notify]]
on = ["fatal", "flapping"]
services = ["web"]
webhook = "https://hooks.example.com/x"
format = "slack"
headers = { X-Team = "ops" }

[[tend.notify]]
command = "echo $TEND_EVENT"

[services.web]
command = "sleep 1"
"#,
    );
    let http = m.daemon.http.as_ref().expect("the listener is on");
    assert_eq!(http.listen, "127.0.0.1:9100".parse().unwrap());
    assert_eq!(http.tokens_file, Some(fixture.root().join("tokens")));
    assert!(http.metrics_public);
    assert_eq!(http.max_connections, 64);
    assert_eq!(m.daemon.socket_group.as_deref(), Some("0"));
    assert_eq!(m.daemon.history.retention, Duration::from_secs(2 * 86_400));
    assert_eq!(m.daemon.notify.len(), 2);
    assert_eq!(
        m.daemon.notify[0].on,
        [NoticeKind::Fatal, NoticeKind::Flapping]
    );
    assert_eq!(
        m.daemon.notify[0].target,
        NotifyTarget::Webhook {
            url: "https://hooks.example.com/x".into(),
            format: PayloadFormat::Slack,
            headers: vec![("X-Team".into(), "ops".into())],
            timeout: Duration::from_secs(10),
        }
    );
    assert!(matches!(
        &m.daemon.notify[1].target,
        NotifyTarget::Command { command, .. } if command == "echo $TEND_EVENT"
    ));
}

#[test]
fn remote_listener_history_and_notification_errors_name_their_keys() {
    let fixture = Fixture::new();
    let errors = fixture.errors(
        "tend.toml",
        r#"
[tend.http]
listen = "localhost"
tokens_file = "missing-tokens"
tls_cert = "cert.pem"

[tend.history]
retention = "10m"

[[tend.notify]]
webhook = "ftp://example.com"

[[tend.notify]]
services = ["wbe"]
command = "true"

[services.web]
command = "sleep 1"
"#,
    );
    let keys: Vec<(&str, Option<usize>)> = errors
        .iter()
        .map(|(_, line, key, _)| (key.as_str(), *line))
        .collect();
    let expect = [
        ("tend.http.listen", Some(3)),
        ("tend.http.tokens_file", Some(4)),
        ("tend.http.tls_key", None),
        ("tend.history.retention", Some(8)),
        ("tend.notify[0].webhook", Some(11)),
        ("tend.notify[1].services", Some(14)),
    ];
    for (key, _) in expect {
        assert!(
            keys.iter().any(|(k, _)| *k == key),
            "no error for {key}: {errors:#?}"
        );
    }
    let message = |key: &str| {
        errors
            .iter()
            .find(|(_, _, k, _)| k == key)
            .map(|(_, _, _, m)| m.clone())
            .unwrap_or_default()
    };
    assert!(message("tend.http.listen").contains("127.0.0.1:9100"));
    assert!(message("tend.http.tokens_file").contains("does not exist"));
    assert!(message("tend.history.retention").contains("at least 1h"));
    assert!(message("tend.notify[1].services").contains("did you mean `web`"));
    assert!(message("tend.notify[0].webhook").contains("http:// or https://"));

    let errors = fixture.errors(
        "tend.toml",
        "[[tend.notify]]\ncommand = \" \"\n[[tend.notify]]\nwebhook = \"http://x/\"\ntimeout = \"0s\"\n[[tend.notify]]\nwebhook = \"http://x/\"\nheaders = { \"Bad Header\" = \"v\" }\n[[tend.notify]]\nwebhook = \"https://user:pw@x/\"\n",
    );
    let keys: Vec<&str> = errors.iter().map(|e| e.2.as_str()).collect();
    assert_eq!(
        keys,
        [
            "tend.notify[0].command",
            "tend.notify[1].timeout",
            "tend.notify[2].headers",
            "tend.notify[3].webhook"
        ],
        "{errors:?}"
    );

    // A malformed entry is reported with its index and line (the array is then dropped).
    let errors = fixture.errors(
        "tend.toml",
        "[[tend.notify]]\non = [\"sometimes\"]\ncommand = \"true\"\n",
    );
    assert_eq!(errors[0].1, Some(2));
    assert_eq!(errors[0].2, "tend.notify[0].on[0]");
    assert!(errors[0].3.contains("fatal"), "{errors:?}");
}

#[test]
fn sockets_load_with_their_defaults_and_services_name_them() {
    let fixture = Fixture::new();
    let m = fixture.ok(
        "tend.toml",
        &lines(&[
            "[sockets.http]",
            "listen = \"tcp://0.0.0.0:8080\"",
            "[sockets.v6]",
            "listen = \"tcp://[::]:${PORT}\"",
            "backlog = 128",
            "reuse_port = true",
            "[sockets.admin]",
            "listen = \"unix:run/admin.sock\"",
            "mode = \"660\"",
            "owner = 0",
            "group = \"0\"",
            "[sockets.plain]",
            "listen = \"unix:/tmp/tend-test-plain.sock\"",
            "[services.web]",
            "command = \"serve\"",
            "instances = 2",
            "sockets = [\"v6\", \"http\", \"admin\"]",
            "[services.other]",
            "command = \"serve\"",
            "sockets = [\"plain\"]",
        ]),
    );
    assert_eq!(
        m.sockets,
        [
            SocketSpec {
                name: "http".into(),
                listen: Listen::Tcp {
                    address: "0.0.0.0:8080".parse().unwrap(),
                    reuse_port: false,
                },
                backlog: DEFAULT_BACKLOG,
            },
            SocketSpec {
                name: "v6".into(),
                listen: Listen::Tcp {
                    address: "[::]:8080".parse().unwrap(),
                    reuse_port: true,
                },
                backlog: 128,
            },
            SocketSpec {
                name: "admin".into(),
                listen: Listen::Unix {
                    path: fixture.root().join("run/admin.sock"),
                    mode: 0o660,
                    owner: Some("0".into()),
                    group: Some("0".into()),
                },
                backlog: DEFAULT_BACKLOG,
            },
            SocketSpec {
                name: "plain".into(),
                listen: Listen::Unix {
                    path: "/tmp/tend-test-plain.sock".into(),
                    mode: DEFAULT_SOCKET_MODE,
                    owner: None,
                    group: None,
                },
                backlog: DEFAULT_BACKLOG,
            },
        ]
    );
    assert_eq!(
        m.services[0].sockets,
        ["v6", "http", "admin"],
        "in the order listed"
    );
    assert_eq!(m.services[1].sockets, ["plain"]);
    assert_eq!(m.sockets[1].listen.to_string(), "tcp://[::]:8080");
    assert_eq!(
        m.sockets[2].listen.to_string(),
        format!("unix:{}", fixture.root().join("run/admin.sock").display())
    );
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    assert!(web(&["command = \"x\""]).sockets.is_empty());
}

#[test]
fn socket_errors_name_their_keys() {
    let long = format!("unix:/{}", "d".repeat(110));
    let text = lines(&[
        "[sockets.a]",                             // 1
        "listen = \"http://0.0.0.0:80\"",          // 2
        "[sockets.b]",                             // 3
        "listen = \"tcp://0.0.0.0\"",              // 4
        "[sockets.c]",                             // 5
        "listen = \"tcp://localhost:80\"",         // 6
        "[sockets.d]",                             // 7
        "listen = \"tcp://::1:80\"",               // 8
        "[sockets.e]",                             // 9
        "listen = \"tcp://127.0.0.1:99999\"",      // 10
        "[sockets.f]",                             // 11
        "listen = \"tcp://127.0.0.1:81\"",         // 12
        "mode = \"600\"",                          // 13
        "backlog = 0",                             // 14
        "[sockets.g]",                             // 15
        "listen = \"unix:run/g.sock\"",            // 16
        "reuse_port = true",                       // 17
        "mode = \"999\"",                          // 18
        "[sockets.h]",                             // 19
        "backlg = 5",                              // 20
        "[sockets.\"bad:name\"]",                  // 21
        "listen = \"tcp://127.0.0.1:82\"",         // 22
        "[sockets.i]",                             // 23
        "listen = \"tcp://127.0.0.1:82\"",         // 24
        "[sockets.j]",                             // 25
        &format!("listen = \"{long}\""),           // 26
        "[sockets.k]",                             // 27
        "listen = \"unix:@abstract\"",             // 28
        "[sockets.http]",                          // 29
        "listen = \"tcp://127.0.0.1:83\"",         // 30
        "[services.web]",                          // 31
        "command = \"x\"",                         // 32
        "sockets = [\"htp\", \"http\", \"http\"]", // 33
    ]);
    let errors = Fixture::new().errors("tend.toml", &text);
    let found: Vec<(Option<usize>, &str)> = errors
        .iter()
        .map(|(_, line, key, _)| (*line, key.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (Some(2), "sockets.a.listen"),
            (Some(4), "sockets.b.listen"),
            (Some(6), "sockets.c.listen"),
            (Some(8), "sockets.d.listen"),
            (Some(10), "sockets.e.listen"),
            (Some(13), "sockets.f.mode"),
            (Some(14), "sockets.f.backlog"),
            (Some(17), "sockets.g.reuse_port"),
            (Some(18), "sockets.g.mode"),
            (Some(19), "sockets.h"),
            (Some(20), "sockets.h.backlg"),
            (Some(21), "sockets.bad:name"),
            (Some(24), "sockets.i.listen"),
            (Some(26), "sockets.j.listen"),
            (Some(28), "sockets.k.listen"),
            (Some(33), "services.web.sockets[0]"),
            (Some(33), "services.web.sockets[2]"),
        ],
        "{errors:#?}"
    );
    let message = |key: &str| {
        errors
            .iter()
            .find(|(_, _, k, _)| k == key)
            .map(|(_, _, _, m)| m.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        message("sockets.a.listen"),
        "`http://0.0.0.0:80` is not a listen address: use tcp://HOST:PORT (HOST an IP address, IPv6 in brackets) or unix:PATH"
    );
    assert!(message("sockets.b.listen").contains("no port"));
    assert!(message("sockets.c.listen").contains("host names are not resolved"));
    assert!(message("sockets.d.listen").contains("tcp://[::1]:80"));
    assert!(message("sockets.e.listen").contains("`99999` is not a port"));
    assert_eq!(message("sockets.f.mode"), "applies to unix sockets only");
    assert_eq!(
        message("sockets.f.backlog"),
        "must be between 1 and 65535, not 0"
    );
    assert_eq!(
        message("sockets.g.reuse_port"),
        "applies to tcp sockets only"
    );
    assert!(message("sockets.g.mode").contains("not an octal mode"));
    assert!(message("sockets.h").contains("missing `listen`"));
    assert_eq!(
        message("sockets.h.backlg"),
        "unknown key `backlg`; did you mean `backlog`?"
    );
    assert!(message("sockets.bad:name").contains("not a valid socket name"));
    assert_eq!(
        message("sockets.i.listen"),
        "the same address as socket `bad:name`"
    );
    assert!(message("sockets.j.listen").contains("at most 107"));
    assert!(message("sockets.k.listen").contains("abstract"));
    assert_eq!(
        message("services.web.sockets[0]"),
        "no socket named `htp`; did you mean `http`?"
    );
    assert_eq!(message("services.web.sockets[2]"), "`http` is listed twice");

    // Without any [sockets], the hint says where a socket is defined.
    assert_eq!(
        web_errors(&["command = \"x\"", "sockets = [\"http\"]"]),
        [err(
            "tend.toml",
            3,
            "services.web.sockets[0]",
            "no socket named `http`; define it in a `[sockets.http]` table"
        )]
    );
    // tend's own sockets are not for services.
    let errors = Fixture::new().errors(
        "tend.toml",
        "[sockets.a]\nlisten = \"unix:.tend/tend.sock\"\n[sockets.b]\nlisten = \"unix:.tend/notify.sock\"\n",
    );
    let messages: Vec<&str> = errors.iter().map(|e| e.3.as_str()).collect();
    assert_eq!(messages.len(), 2, "{errors:?}");
    assert!(
        messages[0].ends_with("is tend's control socket"),
        "{errors:?}"
    );
    assert!(
        messages[1].ends_with("is tend's sd_notify socket"),
        "{errors:?}"
    );
    // A socket whose table has a mistake is still a known name.
    let errors = Fixture::new().errors(
        "tend.toml",
        "[sockets.http]\nlisten = \"tcp://x:1\"\n[services.web]\ncommand = \"x\"\nsockets = [\"http\"]\n",
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].2, "sockets.http.listen");
}

#[test]
fn socket_errors_in_yaml_have_lines_too() {
    let errors = Fixture::new().errors(
        "tend.yaml",
        "sockets:\n  http:\n    listen: tcp://0.0.0.0:80\n    reuse_port: yes\nservices:\n  web:\n    command: x\n    sockets: [htpp]\n",
    );
    let found: Vec<(Option<usize>, &str)> = errors
        .iter()
        .map(|(_, line, key, _)| (*line, key.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (Some(4), "sockets.http.reuse_port"),
            (Some(8), "services.web.sockets[0]"),
        ],
        "{errors:#?}"
    );
    assert!(errors[1].3.contains("did you mean `http`?"), "{errors:?}");
}

#[test]
fn probes_of_a_shared_port_and_unused_sockets_are_warnings() {
    let fixture = Fixture::new();
    let m = fixture.ok(
        "tend.toml",
        &lines(&[
            "[sockets.http]",                                          // 1
            "listen = \"tcp://0.0.0.0:8080\"",                         // 2
            "[sockets.spare]",                                         // 3
            "listen = \"tcp://0.0.0.0:8081\"",                         // 4
            "[services.web]",                                          // 5
            "command = \"serve\"",                                     // 6
            "instances = 2",                                           // 7
            "sockets = [\"http\"]",                                    // 8
            "readiness = { http = \"http://127.0.0.1:8080/health\" }", // 9
            "liveness = { tcp = \"127.0.0.1:8080\" }",                 // 10
            "[services.one]",                                          // 11
            "command = \"serve\"",                                     // 12
            "sockets = [\"http\"]",                                    // 13
            "readiness = { http = \"http://127.0.0.1:8080/\" }",       // 14
            "liveness = { http = \"http://127.0.0.1:9000/\" }",        // 15
        ]),
    );
    let warnings: Vec<(Option<usize>, &str)> = m
        .warnings
        .iter()
        .map(|w| (w.line, w.key.as_str()))
        .collect();
    assert_eq!(
        warnings,
        [
            (Some(3), "sockets.spare"),
            (Some(9), "services.web.readiness.http"),
            (Some(10), "services.web.liveness.tcp"),
            (Some(14), "services.one.readiness.http"),
        ],
        "one instance asked over http is told apart, but not from its replacement in a \
         reload: its liveness has no warning, its readiness has; {:#?}",
        m.warnings
    );
    assert!(m.warnings[0].message.contains("no service receives"));
    assert!(
        m.warnings[1].message.contains("all 2 instances share")
            && m.warnings[1].message.contains("during `tend reload`"),
        "{}",
        m.warnings[1].message
    );
    assert!(
        m.warnings[3]
            .message
            .contains("cannot tell when the replacement is ready"),
        "{}",
        m.warnings[3].message
    );
    assert!(
        m.warnings[2].message.contains("always passes"),
        "{}",
        m.warnings[2].message
    );
    // `tend check` and `tend up` print them through the loader.
    let loaded =
        crate::import::load_with_env(&m.path, &crate::import::Reading::default(), &test_env)
            .unwrap();
    assert_eq!(loaded.warnings, m.warnings);
}

#[test]
fn autoscale_reads_its_bounds_target_and_cooldown() {
    let spec = web(&[
        "command = \"a\"",
        "autoscale = { min = 2, max = 8, cpu = \"70%\", cooldown = \"30s\" }",
    ]);
    assert_eq!(
        spec.autoscale,
        Some(crate::config::model::AutoscaleSpec {
            min: 2,
            max: 8,
            cpu: 70.0,
            cooldown: Duration::from_secs(30),
        })
    );
    // It starts with `min`, its names carry the index even at one instance.
    assert_eq!(spec.instances, 2);
    assert!(spec.numbered);
    let spec = web(&[
        "command = \"a\"",
        "instances = 3",
        "autoscale = { max = 4, cpu = 0.5 }",
    ]);
    let auto = spec.autoscale.unwrap();
    assert_eq!((auto.min, auto.max, auto.cpu), (1, 4, 50.0));
    assert_eq!(auto.cooldown, Duration::from_secs(60));
    assert_eq!(spec.instances, 3);
    let one = web(&["command = \"a\"", "autoscale = { max = 2, cpu = \"10%\" }"]);
    assert_eq!(one.instance_name(0), "web:0");
    // Without autoscale, one instance is named like its service.
    assert_eq!(web(&["command = \"a\""]).instance_name(0), "web");
}

#[test]
fn autoscale_errors_name_the_key() {
    let at = |body: &str| web_errors(&["command = \"a\"", body]);
    assert_eq!(
        at("autoscale = { min = 3, max = 2, cpu = \"70%\" }"),
        [err(
            "tend.toml",
            3,
            "services.web.autoscale.max",
            "must be at least `min` (3), not 2"
        )]
    );
    assert_eq!(
        at("autoscale = { min = 0, max = 2, cpu = \"70%\" }"),
        [err(
            "tend.toml",
            3,
            "services.web.autoscale.min",
            "must be between 1 and 10000, not 0"
        )]
    );
    assert_eq!(
        at("autoscale = { max = 2, cpu = \"0%\" }"),
        [err(
            "tend.toml",
            3,
            "services.web.autoscale.cpu",
            "must be a share of CPU such as \"150%\" or 1.5 (cores), above 0"
        )]
    );
    let cores = std::thread::available_parallelism().unwrap().get();
    let too_much = format!("autoscale = {{ max = 2, cpu = \"{}%\" }}", 100 * cores + 1);
    let errors = at(&too_much);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].2, "services.web.autoscale.cpu");
    assert!(errors[0].3.contains("core(s)"), "{errors:?}");
    assert_eq!(
        at("autoscale = { cpu = \"70%\" }"),
        [err(
            "tend.toml",
            3,
            "services.web.autoscale",
            "needs `max`, the most instances, e.g. `autoscale = { max = 4, cpu = \"70%\" }`"
        )]
    );
    assert_eq!(
        at("autoscale = { max = 3 }"),
        [err(
            "tend.toml",
            3,
            "services.web.autoscale",
            "needs `cpu`, the target CPU per instance, e.g. `cpu = \"70%\"`"
        )]
    );
    assert_eq!(
        at("autoscale = { max = 3, cpu = \"50%\", cooldown = 60 }").len(),
        1,
        "a cooldown needs its unit"
    );
    let errors = at("autoscale = { max = 3, cpu = \"50%\", step = 2 }");
    assert_eq!(errors[0].2, "services.web.autoscale.step", "{errors:?}");
    assert_eq!(
        web_errors(&[
            "command = \"a\"",
            "instances = 5",
            "autoscale = { max = 3, cpu = \"50%\" }"
        ]),
        [err(
            "tend.toml",
            3,
            "services.web.instances",
            "5 is outside autoscale's 1..=3: it is the count the service starts with"
        )]
    );
    assert_eq!(
        web_errors(&[
            "command = \"a\"",
            "kind = \"task\"",
            "autoscale = { max = 3, cpu = \"50%\" }"
        ]),
        [err(
            "tend.toml",
            4,
            "services.web.autoscale",
            "a task runs to completion: autoscale is for services that run until stopped"
        )]
    );
    // Every port up to max must exist.
    let errors = web_errors(&[
        "command = \"a\"",
        "port_base = 65534",
        "autoscale = { max = 3, cpu = \"50%\" }",
    ]);
    assert_eq!(errors[0].2, "services.web.port_base", "{errors:?}");
}

#[test]
fn autoscale_needs_cpu_sampling() {
    let errors = Fixture::new().errors(
        "tend.toml",
        "[tend]\nsample_every = \"0s\"\n\n[services.web]\ncommand = \"a\"\nautoscale = { max = 3, cpu = \"50%\" }\n",
    );
    assert_eq!(
        errors,
        [err(
            "tend.toml",
            6,
            "services.web.autoscale",
            "follows the sampled CPU, but `tend.sample_every` turns sampling off"
        )]
    );
}

#[test]
fn schedules_and_watches_are_read() {
    let spec = web(&[
        "command = \"x\"",
        "cron_restart = \"0 3 * * *\"",
        "watch = [\"src/**/*.py\", \"config\"]",
        "watch_ignore = \"**/__pycache__\"",
        "watch_debounce = \"1s\"",
    ]);
    assert_eq!(spec.cron_restart.unwrap().to_string(), "0 3 * * *");
    assert!(spec.autostart);
    let watch = spec.watch.unwrap();
    assert_eq!(watch.debounce, Duration::from_secs(1));
    let written: Vec<&str> = watch.paths.iter().map(|p| p.written.as_str()).collect();
    assert_eq!(written, ["src/**/*.py", "config"]);
    assert!(watch.paths[0].absolute.is_absolute());
    assert_eq!(watch.ignore[0].written, "**/__pycache__");
    let spec = web(&["command = \"x\"", "watch = \"src\""]);
    assert_eq!(
        spec.watch.unwrap().debounce,
        crate::config::model::DEFAULT_WATCH_DEBOUNCE
    );

    let task = web(&[
        "command = \"x\"",
        "kind = \"task\"",
        "schedule = \"@hourly\"",
        "max_concurrent = 1",
    ]);
    assert_eq!(task.schedule.unwrap().fields(), ["0", "*", "*", "*", "*"]);
    assert!(!task.autostart, "a scheduled task waits for its schedule");
    let task = web(&[
        "command = \"x\"",
        "kind = \"task\"",
        "schedule = \"*/5 * * * *\"",
        "autostart = true",
    ]);
    assert!(task.autostart, "unless it is told to run at `up` too");
}

#[test]
fn schedule_and_watch_errors_name_their_keys() {
    let errors = web_errors(&[
        "command = \"x\"",
        "cron_restart = \"61 * * * *\"",
        "schedule = \"* * * * *\"",
        "watch = []",
        "watch_debounce = \"fast\"",
    ]);
    let found: Vec<(Option<usize>, &str, &str)> = errors
        .iter()
        .map(|e| (e.1, e.2.as_str(), e.3.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (
                Some(3),
                "services.web.cron_restart",
                r#"bad minute field "61": 61 is not in 0-59"#
            ),
            (
                Some(4),
                "services.web.schedule",
                "only a task (`kind = \"task\"`) runs on a schedule; a service is restarted on one with `cron_restart`"
            ),
            (
                Some(5),
                "services.web.watch",
                "must name at least one path or glob"
            ),
        ],
        "watch_debounce is not read when watch is empty: {errors:?}"
    );

    let errors = web_errors(&[
        "command = \"x\"",
        "kind = \"task\"",
        "schedule = \"0 0 30 2 *\"",
        "max_concurrent = 3",
        "cron_restart = \"@daily\"",
        "watch_ignore = [\"x\"]",
    ]);
    let keys: Vec<(&str, Option<usize>)> = errors.iter().map(|e| (e.2.as_str(), e.1)).collect();
    assert_eq!(
        keys,
        [
            ("services.web.schedule", Some(4)),
            ("services.web.max_concurrent", Some(5)),
            ("services.web.cron_restart", Some(6)),
            ("services.web.watch_ignore", Some(7)),
        ],
        "{errors:?}"
    );
    assert!(errors[0].3.starts_with("never fires"), "{errors:?}");
    assert!(errors[1].3.contains("3 is not supported"), "{errors:?}");

    let errors = web_errors(&["command = \"x\"", "max_concurrent = 1"]);
    assert_eq!(errors[0].3, "only applies with `schedule`");
    let errors = web_errors(&["command = \"x\"", "watch = [\"src\", \"\"]"]);
    assert_eq!(errors[0].2, "services.web.watch[1]");
    assert_eq!(errors[0].3, "must not be empty");
    let errors = web_errors(&["command = \"x\"", "cron_restart = 5"]);
    assert_eq!(errors[0].2, "services.web.cron_restart");
}
