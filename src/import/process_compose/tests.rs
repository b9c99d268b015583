//! One test per mapping rule (docs/migrating.md's table), on small files, with no disk access.

use super::*;
use serde_json::{Value as J, json};

fn env(name: &str) -> Option<String> {
    match name {
        "HOME" => Some("/home/me".into()),
        "LEVEL" => Some("debug".into()),
        "N" => Some("3".into()),
        _ => None,
    }
}

fn no_files(_: &Path) -> Option<String> {
    None
}

fn run(yaml: &str) -> Imported {
    run_with(yaml, &[])
}

fn run_with(yaml: &str, files: &[(&str, &str)]) -> Imported {
    let files: Vec<(PathBuf, String)> = files
        .iter()
        .map(|(p, t)| (PathBuf::from(p), t.to_string()))
        .collect();
    let read = move |p: &Path| files.iter().find(|(f, _)| f == p).map(|(_, t)| t.clone());
    import_with(Path::new("proj/process-compose.yaml"), yaml, &env, &read).unwrap_or_else(|e| {
        panic!(
            "{}",
            e.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

fn fail(yaml: &str) -> Vec<Diagnostic> {
    import_with(
        Path::new("proj/process-compose.yaml"),
        yaml,
        &env,
        &no_files,
    )
    .expect_err(yaml)
}

fn svc(imported: &Imported, name: &str) -> J {
    imported.tree.to_json()["services"][name].clone()
}

/// The warning whose key ends with `key` and whose message contains `text`.
fn warning<'a>(imported: &'a Imported, key: &str, text: &str) -> &'a Diagnostic {
    imported
        .warnings
        .iter()
        .find(|w| w.key.ends_with(key) && w.message.contains(text))
        .unwrap_or_else(|| panic!("no warning {key}: {text} in\n{}", dump(imported)))
}

fn dump(imported: &Imported) -> String {
    imported.warnings.iter().map(|w| format!("{w}\n")).collect()
}

#[test]
fn a_command_runs_through_the_shell_and_is_not_restarted_by_default() {
    let got = run("version: '0.5'\nprocesses:\n  web:\n    command: npm run dev\n");
    assert_eq!(
        got.tree.to_json(),
        json!({"services": {"web": {"command": "npm run dev", "shell": true, "restart": "never"}}})
    );
    assert!(got.warnings.is_empty(), "{}", dump(&got));
    let services = got.tree.get("services").unwrap();
    assert_eq!(services.line, 2);
    assert_eq!(services.entry("web").unwrap().line, 3);
    assert_eq!(
        services.get("web").unwrap().entry("command").unwrap().line,
        4
    );
}

#[test]
fn the_tree_is_what_tend_parses_from_the_equivalent_toml() {
    let got = run(
        "processes:\n  db:\n    command: postgres\n    availability: {restart: always, backoff_seconds: 3}\n    readiness_probe:\n      exec: {command: pg_isready}\n      period_seconds: 2\n  api:\n    command: ./api\n    depends_on: {db: {condition: process_healthy}}\n",
    );
    let toml = r#"
[services.db]
command = "postgres"
shell = true
restart = "always"
backoff = { initial = "3s", factor = 1.0, jitter = 0.0 }
readiness = { exec = "pg_isready", interval = "2s" }

[services.api]
command = "./api"
shell = true
restart = "never"
depends_on = { db = "healthy" }
"#;
    let expected = document::parse(toml, Format::Toml).unwrap();
    // serde_json keeps 1.0 and 1 apart, so this also checks every value's type.
    assert_eq!(got.tree.to_json(), expected.to_json());
}

#[test]
fn restart_policies() {
    let got = run(
        "processes:\n  a: {command: a, availability: {restart: always}}\n  b: {command: b, availability: {restart: on_failure}}\n  c: {command: c, availability: {restart: 'no'}}\n  d: {command: d, availability: {restart: exit_on_failure}}\n  e: {command: e, availability: {restart: no}}\n",
    );
    assert_eq!(svc(&got, "a")["restart"], "always");
    assert_eq!(svc(&got, "b")["restart"], "on-failure");
    assert_eq!(svc(&got, "c")["restart"], "never");
    assert_eq!(
        svc(&got, "e")["restart"],
        "never",
        "YAML 1.2: unquoted no is text"
    );
    let d = svc(&got, "d");
    assert_eq!(
        (&d["restart"], &d["max_restarts"], &d["critical"]),
        (&json!("on-failure"), &json!(0), &json!(true))
    );
    warning(&got, "d.availability.restart", "critical = true");
    let errors = fail("processes:\n  a: {command: a, availability: {restart: allways}}\n");
    assert!(
        errors[0].message.contains("did you mean `always`"),
        "{errors:?}"
    );
    assert_eq!(errors[0].line, 2);
}

#[test]
fn backoff_is_fixed_and_max_restarts_counts_differently() {
    let got = run(
        "processes:\n  a:\n    command: a\n    availability:\n      restart: always\n      backoff_seconds: 0\n      max_restarts: 5\n  b:\n    command: b\n    availability: {restart: on_failure, max_restarts: 0}\n  c:\n    command: c\n    availability: {backoff_seconds: 2}\n",
    );
    let a = svc(&got, "a");
    assert_eq!(
        a["backoff"],
        json!({"initial": "1s", "factor": 1.0, "jitter": 0.0})
    );
    assert_eq!(a["max_restarts"], 5);
    warning(&got, "a.availability.max_restarts", "whole life");
    warning(&got, "b.availability.max_restarts", "0 is unlimited");
    assert!(svc(&got, "b").get("max_restarts").is_none());
    warning(&got, "c.availability.backoff_seconds", "no effect");
    assert!(svc(&got, "c").get("backoff").is_none());
}

#[test]
fn dependency_conditions() {
    let got = run(
        "processes:\n  migrate: {command: m}\n  check: {command: c}\n  db:\n    command: d\n    readiness_probe: {exec: {command: pg_isready}}\n  log: {command: l, ready_log_line: 'ready (v1)'}\n  app:\n    command: a\n    depends_on:\n      db: {condition: process_healthy}\n      migrate: {condition: process_completed_successfully}\n      check: {condition: process_completed}\n      log: {condition: process_log_ready}\n  web:\n    command: w\n    depends_on:\n      app: {condition: process_started}\n      ghost: {condition: process_started}\n      migrate: {}\n",
    );
    assert_eq!(
        svc(&got, "app")["depends_on"],
        json!({"db": "healthy", "migrate": "completed", "check": "completed", "log": "healthy"})
    );
    assert_eq!(
        svc(&got, "web")["depends_on"],
        json!({"app": "started", "migrate": "completed"})
    );
    // Whatever is waited on to complete becomes a task (tend's `completed` needs one).
    assert_eq!(svc(&got, "migrate")["kind"], "task");
    assert_eq!(svc(&got, "check")["kind"], "task");
    assert!(
        svc(&got, "migrate").get("restart").is_none(),
        "a task does not restart anyway"
    );
    assert!(svc(&got, "db").get("kind").is_none());
    assert_eq!(
        svc(&got, "log")["readiness"],
        json!({"log": "ready \\(v1\\)"})
    );
    warning(&got, "app.depends_on.check", "also accepted a failure");
    warning(&got, "web.depends_on.ghost", "dependency dropped");
    warning(
        &got,
        "web.depends_on.migrate",
        "default is `process_completed`",
    );
}

#[test]
fn healthy_without_a_probe_is_reported() {
    let got = run(
        "processes:\n  a: {command: a}\n  b:\n    command: b\n    depends_on: {a: {condition: process_healthy}}\n",
    );
    assert_eq!(svc(&got, "b")["depends_on"], json!({"a": "healthy"}));
    warning(&got, "b.depends_on.a", "has no probe");
}

#[test]
fn braced_expansions_become_tend_interpolation_and_bare_ones_stay_for_the_shell() {
    let got = run(
        "processes:\n  a:\n    command: echo ${HOME} $HOME ${NOPE} ${LEVEL:-info} ${X:-${HOME}/x} $${LIT} $$PATH\n",
    );
    assert_eq!(
        svc(&got, "a")["command"],
        "echo ${HOME} $HOME ${NOPE:-} ${LEVEL:-info} ${X:-${HOME}/x} $${LIT} $PATH"
    );
    warning(&got, "a.command", "`NOPE` is not set now");
}

#[test]
fn expansions_tend_lacks_are_evaluated_now() {
    let got = run("processes:\n  a:\n    command: echo ${LEVEL^^} ${#HOME}\n");
    assert_eq!(svc(&got, "a")["command"], "echo DEBUG 8");
    warning(&got, "a.command", "`${LEVEL^^}` has no tend equivalent");
}

#[test]
fn expansions_outside_interpolated_fields_are_evaluated_now() {
    let got = run(
        "processes:\n  a:\n    command: a\n    replicas: ${N}\n    availability:\n      restart: ${R:-on_failure}\n      exit_on_end: ${E:-false}\n    readiness_probe:\n      exec: {command: 'test -d ${HOME}'}\n",
    );
    let a = svc(&got, "a");
    assert_eq!(a["instances"], 3);
    assert_eq!(a["restart"], "on-failure");
    assert_eq!(a["readiness"]["exec"], "test -d /home/me");
    warning(&got, "a.replicas", "substituted now");
    warning(&got, "exec.command", "in a field tend does not interpolate");
}

#[test]
fn disabled_expansion_keeps_every_dollar_literal() {
    let got =
        run("disable_env_expansion: true\nprocesses:\n  a:\n    command: echo ${HOME} $$ $X\n");
    assert_eq!(svc(&got, "a")["command"], "echo $${HOME} $$ $X");
    assert!(got.warnings.is_empty(), "{}", dump(&got));
}

#[test]
fn malformed_expansions_fail_as_in_process_compose() {
    let errors = fail("processes:\n  a:\n    command: echo ${arr[@]}\n");
    assert_eq!(errors[0].line, 3);
    assert!(errors[0].message.contains("$${"), "{errors:?}");
}

#[test]
fn vars_templates_render_and_unknown_ones_are_kept() {
    let got = run(
        "vars: {PORT: 8080, NAME: api}\nprocesses:\n  a:\n    vars: {NAME: web}\n    command: serve {{.NAME}} --port {{ .PORT }} --id {{.PC_REPLICA_NUM}}\n    environment: ['URL=http://x:{{.PORT}}']\n  b:\n    command: docker ps --format '{{.Names}}'\n  c:\n    command: echo '{{.PORT}}'\n    is_template_disabled: true\n",
    );
    assert_eq!(svc(&got, "a")["command"], "serve web --port 8080 --id 0");
    assert_eq!(svc(&got, "a")["env"]["URL"], "http://x:8080");
    assert_eq!(svc(&got, "b")["command"], "docker ps --format '{{.Names}}'");
    warning(&got, "b.command", "not in `vars`");
    assert_eq!(svc(&got, "c")["command"], "echo '{{.PORT}}'");
}

#[test]
fn replicas_become_instances_with_the_replica_number_per_instance() {
    let got = run(
        "processes:\n  node:\n    command: nats-server -c n$${PC_REPLICA_NUM}.conf --id {{.PC_REPLICA_NUM}}\n    replicas: 3\n    readiness_probe:\n      http_get: {host: 127.0.0.1, path: /healthz, port: '822{{ .PC_REPLICA_NUM }}'}\n  app:\n    command: app\n    depends_on:\n      node-0: {condition: process_healthy}\n      node-1: {condition: process_healthy}\n",
    );
    let node = svc(&got, "node");
    assert_eq!(
        node["command"],
        "nats-server -c n$${PC_REPLICA_NUM}.conf --id {instance}"
    );
    assert_eq!(node["instances"], 3);
    assert_eq!(node["env"], json!({"PC_REPLICA_NUM": "{instance}"}));
    assert_eq!(node["port_base"], 8220);
    assert_eq!(node["readiness"]["http"], "http://127.0.0.1:{port}/healthz");
    warning(&got, "http_get.port", "port_base = 8220");
    assert_eq!(svc(&got, "app")["depends_on"], json!({"node": "healthy"}));
    warning(&got, "app.depends_on.node-0", "one replica of `node`");
}

#[test]
fn wide_replica_counts_are_zero_padded() {
    let got = run(
        "processes:\n  w: {command: w, replicas: 12}\n  a:\n    command: a\n    depends_on: {w-03: {condition: process_started}}\n",
    );
    assert_eq!(svc(&got, "a")["depends_on"], json!({"w": "started"}));
}

#[test]
fn probes_translate_with_their_timing() {
    let got = run(
        "processes:\n  a:\n    command: a\n    working_dir: app\n    readiness_probe:\n      http_get: {host: localhost, port: 3000, path: health, status_code: 204, headers: {X-Probe: '1'}}\n      initial_delay_seconds: 5\n      period_seconds: 0\n      timeout_seconds: 2\n      success_threshold: 2\n      failure_threshold: 20\n    liveness_probe:\n      exec: {command: 'curl -f localhost:3000', working_dir: /tmp}\n",
    );
    let a = svc(&got, "a");
    assert_eq!(
        a["readiness"],
        json!({"http": "http://localhost:3000/health", "status": 204, "headers": {"X-Probe": "1"},
               "initial_delay": "5s", "timeout": "2s", "success_threshold": 2, "failure_threshold": 20})
    );
    assert_eq!(
        a["liveness"],
        json!({"exec": "cd /tmp && curl -f localhost:3000"})
    );
    warning(&got, "a.liveness_probe", "only for an is_daemon process");
    warning(&got, "a.readiness_probe", "never restarts on readiness");
    warning(&got, "success_threshold", "does not honour");
}

#[test]
fn https_probes_become_tcp_checks_and_bad_probes_are_dropped() {
    let got = run(
        "processes:\n  a:\n    command: a\n    readiness_probe:\n      http_get: {host: example.com, scheme: https}\n  b:\n    command: b\n    readiness_probe: {period_seconds: 3}\n",
    );
    assert_eq!(
        svc(&got, "a")["readiness"],
        json!({"tcp": "example.com:443"})
    );
    warning(&got, "a.readiness_probe.http_get", "does not speak https");
    assert!(svc(&got, "b").get("readiness").is_none());
    warning(&got, "b.readiness_probe", "neither `exec` nor `http_get`");
}

#[test]
fn ready_log_line_is_a_literal_log_readiness() {
    let got = run("processes:\n  a: {command: a, ready_log_line: 'listening on *:80 [ok]'}\n");
    assert_eq!(
        svc(&got, "a")["readiness"],
        json!({"log": "listening on \\*:80 \\[ok\\]"})
    );
}

#[test]
fn shutdown_settings() {
    let got = run(
        "processes:\n  a:\n    command: a\n    shutdown: {signal: 2, timeout_seconds: 4, command: 'pg_ctl stop', parent_only: true}\n  b:\n    command: b\n    shutdown: {signal: 15, timeout_seconds: 0}\n  c:\n    command: c\n    shutdown: {signal: 64}\n",
    );
    let a = svc(&got, "a");
    assert_eq!(
        (&a["stop_signal"], &a["stop_timeout"]),
        (&json!("INT"), &json!("4s"))
    );
    warning(&got, "a.shutdown.command", "no stop command");
    warning(&got, "a.shutdown.parent_only", "whole process tree");
    assert!(svc(&got, "b").get("stop_signal").is_none());
    warning(&got, "b.shutdown.timeout_seconds", "never sends SIGKILL");
    assert_eq!(svc(&got, "c")["stop_signal"], 64);
}

#[test]
fn global_environment_is_merged_under_each_process() {
    let got = run(
        "environment: ['A=1', 'B=${HOME}', 'BROKEN']\nprocesses:\n  a:\n    command: a\n    environment: ['B=2', 'C=x=y', 'D=']\n  b:\n    command: b\n",
    );
    assert_eq!(
        svc(&got, "a")["env"],
        json!({"A": "1", "B": "2", "C": "x=y", "D": ""})
    );
    assert_eq!(svc(&got, "b")["env"], json!({"A": "1", "B": "${HOME}"}));
    warning(&got, "environment", "is not KEY=VALUE");
    let a = got
        .tree
        .get("services")
        .unwrap()
        .get("a")
        .unwrap()
        .get("env")
        .unwrap();
    assert_eq!(
        a.entry("A").unwrap().line,
        1,
        "global entries keep their line"
    );
    assert_eq!(a.entry("B").unwrap().line, 5);
}

#[test]
fn namespaces_become_groups() {
    let got = run(
        "processes:\n  a: {command: a, namespace: back}\n  b: {command: b, namespace: [back, 'my ns']}\n  c: {command: c, namespace: a}\n",
    );
    assert_eq!(svc(&got, "a")["groups"], json!(["back"]));
    assert_eq!(svc(&got, "b")["groups"], json!(["back", "my-ns"]));
    assert_eq!(svc(&got, "c")["groups"], json!(["a-2"]));
    warning(&got, "c.namespace", "service's name");
}

#[test]
fn disabled_foreground_and_daemon_processes() {
    let got = run(
        "processes:\n  a: {command: a, disabled: true}\n  b: {command: b, is_disabled: 'true'}\n  c: {command: c, is_foreground: true}\n  pg:\n    command: pg_ctl start\n    is_daemon: true\n    availability: {restart: always}\n    readiness_probe: {exec: {command: pg_isready}}\n  app:\n    command: app\n    depends_on: {pg: {condition: process_healthy}, a: {condition: process_started}}\n",
    );
    for name in ["a", "b", "c"] {
        assert_eq!(svc(&got, name)["autostart"], false, "{name}");
    }
    let pg = svc(&got, "pg");
    assert_eq!(pg["kind"], "task");
    assert!(pg.get("restart").is_none());
    assert_eq!(
        svc(&got, "app")["depends_on"],
        json!({"pg": "completed", "a": "started"})
    );
    warning(&got, "app.depends_on.pg", "is a daemon");
    warning(&got, "pg.availability.restart", "cannot see");
    warning(&got, "app.depends_on.a", "is disabled");
}

#[test]
fn keys_without_a_tend_equivalent_are_reported_with_their_line() {
    let got = run(
        "is_tui_disabled: true\nlog_level: info\nfoo: 1\nx-anchor: &x {a: 1}\nenv_cmds: {TOKEN: 'cat token'}\nprocesses:\n  a:\n    command: a\n    description: the a\n    is_tty: true\n    comand: typo\n    x-meta: 1\n    mcp: {type: tool}\n",
    );
    for (key, text, line) in [
        ("is_tui_disabled", "no TUI", 1),
        ("log_level", "own log", 2),
        ("foo", "unknown key", 3),
        ("x-anchor", "extension", 4),
        ("env_cmds.TOKEN", "command's output", 5),
        ("a.description", "no description", 9),
        ("a.is_tty", "never a terminal", 10),
        ("a.comand", "did you mean `command`", 11),
        ("a.x-meta", "extension", 12),
        ("a.mcp", "MCP", 13),
    ] {
        assert_eq!(warning(&got, key, text).line, line, "{key}");
    }
    assert_eq!(
        warning(&got, "a.comand", "").to_string(),
        "proj/process-compose.yaml:11: processes.a.comand: unknown key; did you mean `command`? (process-compose refuses it); not imported"
    );
}

#[test]
fn log_location_and_rotation() {
    let got = run(
        "log_length: 3000\nprocesses:\n  a:\n    command: a\n    log_location: ./a.log\n    log_configuration:\n      disable_json: true\n      no_metadata: true\n      add_timestamp: true\n      timestamp_format: '2006-01-02 15:04:05.000'\n      rotation: {max_size_mb: 5, max_backups: 3, compress: true, max_age_days: 7}\n  b:\n    command: b\n    replicas: 2\n    log_location: ./b.log\n  c:\n    command: c\n    log_location: ./c.log\n",
    );
    assert_eq!(
        svc(&got, "a")["logs"],
        json!({"stdout": "./a.log", "merge": true, "timestamps": true,
               "timestamp_format": "%Y-%m-%d %H:%M:%S.%3f", "max_size": "5MiB", "backups": 3,
               "compress": true, "tail": 3000})
    );
    warning(&got, "rotation.max_age_days", "whatever their age");
    assert_eq!(svc(&got, "b")["logs"], json!({"tail": 3000}));
    warning(&got, "b.log_location", "its own custom log file");
    assert_eq!(svc(&got, "c")["logs"]["stdout"], "./c.log");
    warning(&got, "c.log_location", "as JSON");
}

#[test]
fn a_dotenv_beside_the_file_is_every_process_env_file() {
    let got = run_with(
        "processes:\n  a:\n    command: echo ${FROM_DOTENV}\n  b:\n    command: echo ${FROM_DOTENV}\n    is_dotenv_disabled: true\n",
        &[("proj/.env", "FROM_DOTENV=1\nBAD LINE\nREF=$HOME\n")],
    );
    let a = svc(&got, "a");
    assert_eq!(a["env_file"], json!([".env"]));
    assert_eq!(a["command"], "echo ${FROM_DOTENV}");
    // b does not get `.env`, so tend could not find the variable: evaluated now.
    let b = svc(&got, "b");
    assert!(b.get("env_file").is_none());
    assert_eq!(b["command"], "echo 1");
    let bad = warning(&got, "line", "tend cannot read");
    assert_eq!((bad.file.as_path(), bad.line), (Path::new("proj/.env"), 2));
    warning(&got, "REF", "expands `$VAR`");
    warning(&got, ".env", "environment wins");
}

#[test]
fn a_process_env_file_is_relative_to_its_working_dir() {
    let got = run_with(
        "environment: ['K=1']\nprocesses:\n  a:\n    command: a\n    working_dir: ./server\n    env_file: .env.local\n  b:\n    command: b\n    env_file: missing.env\n",
        &[("proj/./server/.env.local", "K=2\n")],
    );
    assert_eq!(svc(&got, "a")["env_file"], json!(["./server/.env.local"]));
    assert_eq!(svc(&got, "a")["cwd"], "./server");
    warning(&got, "environment.K", "tend's `env` wins");
    warning(&got, "b.env_file", "cannot be read");
}

#[test]
fn bash_only_commands_keep_bash_and_custom_shells_are_used() {
    let got = run(
        "processes:\n  a:\n    command: 'if [[ -f x ]]; then echo y; fi'\n  b:\n    command: echo ok\n",
    );
    assert_eq!(
        svc(&got, "a")["args"],
        json!(["bash", "-c", "if [[ -f x ]]; then echo y; fi"])
    );
    assert!(svc(&got, "a").get("shell").is_none());
    warning(&got, "a.command", "bash syntax");
    assert_eq!(svc(&got, "b")["shell"], true);

    let got = run(
        "shell: {shell_command: zsh, shell_argument: -c}\nprocesses:\n  a:\n    command: echo ${HOME}\n",
    );
    assert_eq!(svc(&got, "a")["args"], json!(["zsh", "-c", "echo ${HOME}"]));
    let got = run(
        "shell: {shell_command: sh, shell_argument: -c}\nprocesses:\n  a:\n    command: '[[ x ]]'\n",
    );
    assert_eq!(svc(&got, "a")["shell"], true);
}

#[test]
fn entrypoint_is_an_argv() {
    let got = run(
        "processes:\n  a:\n    entrypoint: [python, -m, http.server, '${PORT:-8000}']\n  b:\n    command: b\n    entrypoint: [x]\n  c:\n    description: nothing to run\n",
    );
    assert_eq!(
        svc(&got, "a")["args"],
        json!(["python", "-m", "http.server", "${PORT:-8000}"])
    );
    warning(&got, "b.entrypoint", "ignores `entrypoint`");
    assert!(svc(&got, "c").is_null());
    warning(&got, "processes.c", "not imported");
}

#[test]
fn extends_merges_the_parent_under_the_child() {
    let got = run(
        "processes:\n  base:\n    command: serve\n    environment: ['A=1', 'B=1']\n    availability: {restart: always, backoff_seconds: 2}\n  child:\n    extends: base\n    environment: ['B=2']\n    availability: {backoff_seconds: 5}\n",
    );
    let child = svc(&got, "child");
    assert_eq!(child["command"], "serve");
    assert_eq!(child["env"], json!({"A": "1", "B": "2"}));
    assert_eq!(child["restart"], "always");
    assert_eq!(child["backoff"]["initial"], "5s");
    let errors = fail("processes:\n  a: {extends: nope, command: a}\n");
    assert!(errors[0].message.contains("unknown process `nope`"));
}

#[test]
fn names_tend_refuses_are_renamed_and_references_follow() {
    let got = run(
        "processes:\n  _worker: {command: w}\n  'web app':\n    command: a\n    depends_on: {_worker: {condition: process_started}}\n",
    );
    assert_eq!(
        svc(&got, "web-app")["depends_on"],
        json!({"worker": "started"})
    );
    assert_eq!(svc(&got, "worker")["command"], "w");
    warning(&got, "processes._worker", "imported as `worker`");
}

#[test]
fn success_exit_codes_always_include_zero() {
    let got = run("processes:\n  a: {command: a, success_exit_codes: [143, 130]}\n");
    assert_eq!(svc(&got, "a")["exit_codes"], json!([0, 143, 130]));
}

#[test]
fn injected_variables_are_set_where_used() {
    let got = run(
        "processes:\n  a:\n    command: echo $PC_PROC_NAME $PC_REPLICA_NUM ${PC_REPLICA_NUM}\n",
    );
    let a = svc(&got, "a");
    assert_eq!(
        a["env"],
        json!({"PC_REPLICA_NUM": "0", "PC_PROC_NAME": "a"})
    );
    assert_eq!(
        a["command"],
        "echo $PC_PROC_NAME $PC_REPLICA_NUM ${PC_REPLICA_NUM:-}"
    );
    warning(&got, "a.command", "before the process has it");
}

#[test]
fn placeholders_in_the_source_are_reported() {
    let got = run("processes:\n  a:\n    command: echo {port}\n");
    warning(&got, "a.command", "`{port}`");
}

#[test]
fn unreadable_files_are_errors_with_lines() {
    let errors = fail("processes:\n  a: [1\n");
    assert_eq!(errors[0].key, "yaml");
    assert!(errors[0].line >= 2);
    let errors = fail("version: '0.5'\n");
    assert!(errors[0].message.contains("no `processes`"));
    let errors = fail("- a\n");
    assert!(errors[0].message.contains("expected a mapping"));
    let errors = fail("processes:\n  a: {command: a, replicas: many}\n");
    assert!(
        errors[0].message.contains("expected an integer"),
        "{errors:?}"
    );
}

#[test]
fn literal_dollar_before_an_expansion_is_evaluated_now() {
    let got = run("processes:\n  a:\n    command: echo $$${HOME}\n");
    assert_eq!(svc(&got, "a")["command"], "echo $/home/me");
    warning(&got, "a.command", "substituted with its value now");
}

#[test]
fn go_layouts_translate_when_tend_has_every_directive() {
    assert_eq!(
        go_layout_to_tend("2006-01-02T15:04:05.000000-0700").as_deref(),
        Some("%Y-%m-%dT%H:%M:%S.%6f%z")
    );
    assert_eq!(go_layout_to_tend("06-01-02 3:04PM"), None);
    assert_eq!(go_layout_to_tend("100%"), None);
}

#[test]
fn yaml_merge_keys_share_settings() {
    let got = run(
        "x-defaults: &defaults\n  availability: {restart: always}\n  environment: ['A=1']\nprocesses:\n  a:\n    <<: *defaults\n    command: a\n    environment: ['B=2']\n",
    );
    let a = svc(&got, "a");
    assert_eq!(a["restart"], "always");
    assert_eq!(
        a["env"],
        json!({"B": "2"}),
        "the process's own key wins over the merged one"
    );
    assert!(
        !got.warnings.iter().any(|w| w.key.contains("<<")),
        "{}",
        dump(&got)
    );
}

#[test]
fn schedules_and_watches() {
    let got = run(
        "processes:\n  backup:\n    command: ./backup\n    schedule:\n      cron: '0 2 * * *'\n      timezone: UTC\n      run_on_start: true\n      max_concurrent: 2\n  tick:\n    command: ./tick\n    schedule: {interval: 15m}\n  odd:\n    command: ./odd\n    schedule: {interval: 7m}\n  api:\n    command: go run ./cmd/api\n    working_dir: ./api\n    watch:\n      debounce: 1s\n      cascade: true\n      paths:\n        - path: ./src\n          include: ['*.go', 'tmpl/*.html']\n          exclude: ['*_test.go']\n        - path: config.yaml\n  web:\n    command: ./web\n    watch:\n      disable_default_excludes: true\n      paths: [{path: .}]\n",
    );
    let backup = svc(&got, "backup");
    assert_eq!(backup["kind"], "task");
    assert_eq!(backup["schedule"], "0 2 * * *");
    assert_eq!(backup["autostart"], true, "run_on_start");
    warning(&got, "backup.schedule.timezone", "TZ=UTC");
    warning(&got, "backup.schedule.max_concurrent", "2 concurrent runs");
    let tick = svc(&got, "tick");
    assert_eq!(tick["schedule"], "*/15 * * * *");
    assert!(tick.get("autostart").is_none(), "{tick}");
    warning(&got, "tick.schedule.interval", "clock times");
    assert!(svc(&got, "odd").get("schedule").is_none());
    warning(&got, "odd.schedule.interval", "not imported");

    let api = svc(&got, "api");
    assert_eq!(
        api["watch"],
        json!(["api/src/**/*.go", "api/src/tmpl/*.html", "api/config.yaml"])
    );
    let ignore = api["watch_ignore"].as_array().unwrap();
    assert_eq!(ignore[0], "api/src/**/*_test.go");
    assert!(ignore.contains(&json!("**/node_modules")), "{ignore:?}");
    assert!(ignore.contains(&json!("**/*.log")), "{ignore:?}");
    assert_eq!(api["watch_debounce"], "1s");
    warning(&got, "api.watch.cascade", "on_unready");
    let web = svc(&got, "web");
    assert_eq!(web["watch"], json!(["."]));
    assert!(web.get("watch_ignore").is_none(), "{web}");
    assert_eq!(web["watch_debounce"], "300ms", "process-compose's default");

    assert_eq!(interval_as_cron("1m").as_deref(), Some("* * * * *"));
    assert_eq!(interval_as_cron("1h").as_deref(), Some("0 * * * *"));
    assert_eq!(interval_as_cron("6h").as_deref(), Some("0 */6 * * *"));
    assert_eq!(interval_as_cron("24h").as_deref(), Some("0 0 * * *"));
    assert_eq!(interval_as_cron("90s"), None);
    assert_eq!(interval_as_cron("5h"), None);
}
