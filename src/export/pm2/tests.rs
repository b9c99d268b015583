use serde_json::{Value, json};

use super::*;

/// A manifest loaded from TOML text, as `tend` would load it (the directory is kept alive).
fn load(toml: &str) -> (tempfile::TempDir, Manifest) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tend.toml");
    std::fs::write(&path, toml).unwrap();
    let manifest = crate::config::load(&path).unwrap_or_else(|e| panic!("{e}\n{toml}"));
    (dir, manifest)
}

/// The ecosystem file's apps, and the notes as `(service, setting)`.
fn export(toml: &str) -> (Vec<Value>, Vec<(String, String)>, Export, tempfile::TempDir) {
    let (dir, manifest) = load(toml);
    let export = export_pm2(&manifest, &[]);
    let apps = apps(&export);
    let notes = export
        .unmapped
        .iter()
        .map(|(s, k, _)| (s.clone(), k.clone()))
        .collect();
    (apps, notes, export, dir)
}

fn apps(export: &Export) -> Vec<Value> {
    assert_eq!(export.files.len(), 1);
    let (name, text) = &export.files[0];
    assert_eq!(name, FILE_NAME);
    assert!(text.ends_with("}\n"));
    let root: Value = serde_json::from_str(text).unwrap();
    root["apps"].as_array().unwrap().clone()
}

fn noted(notes: &[(String, String)], service: &str, setting: &str) -> bool {
    notes.iter().any(|(s, k)| s == service && k == setting)
}

fn why<'e>(export: &'e Export, service: &str, setting: &str) -> &'e str {
    export
        .unmapped
        .iter()
        .find(|(s, k, _)| s == service && k == setting)
        .map(|(_, _, why)| why.as_str())
        .unwrap_or_else(|| panic!("no note for {service}.{setting}: {:#?}", export.unmapped))
}

#[test]
fn exec_program_with_tend_defaults() {
    let (apps, notes, export, dir) = export(
        r#"
[services.web]
args = ["/usr/bin/server", "--listen", "a b", "it's \"quoted\"", "$HOME", "100%", "back\\slash", "new\nline"]
"#,
    );
    let cwd = dir.path().to_string_lossy().into_owned();
    assert_eq!(
        apps,
        [json!({
            "name": "web",
            "script": "/usr/bin/server",
            "args": ["--listen", "a b", "it's \"quoted\"", "$HOME", "100%", "back\\slash", "new\nline"],
            "interpreter": "none",
            "exec_mode": "fork",
            "cwd": cwd,
            "env": {"TEND_SERVICE": "web"},
            "instance_var": "TEND_INSTANCE",
            "autorestart": true,
            "min_uptime": 1000,
            "max_restarts": 11,
            "exp_backoff_restart_delay": 1000,
            "kill_timeout": 10000,
        })]
    );
    // tend's defaults PM2 does not share, each said once.
    let mut settings: Vec<&str> = notes.iter().map(|(_, k)| k.as_str()).collect();
    settings.sort();
    assert_eq!(
        settings,
        ["backoff", "logs.max_size", "restart_limit", "stop_signal"]
    );
    assert!(why(&export, "web", "backoff").contains("×1.5 up to 15s"));
    assert!(why(&export, "web", "backoff").contains("jitter"));
    assert!(why(&export, "web", "stop_signal").contains("SIGTERM"));
    assert!(why(&export, "web", "restart_limit").contains("max_restarts = 11"));
    assert!(why(&export, "web", "logs.max_size").contains("pm2-logrotate"));
}

#[test]
fn keys_keep_their_order_in_the_file() {
    let (_, _, export, _) = export("[services.a]\ncommand = \"sleep 1\"\n");
    let text = &export.files[0].1;
    let at = |key: &str| text.find(&format!("\"{key}\"")).unwrap();
    assert!(text.starts_with("{\n  \"apps\": [\n    {\n      \"name\": \"a\","));
    assert!(at("name") < at("script") && at("script") < at("args"));
    assert!(at("interpreter") < at("cwd") && at("cwd") < at("env"));
    assert!(at("autorestart") < at("kill_timeout"));
}

#[test]
fn shell_line_is_bin_sh_dash_c() {
    let (apps, _, _, _) = export(
        r#"
[services.job]
shell = true
command = "echo \"$PATH\" | tr : '\n' > out && exit 0"
"#,
    );
    assert_eq!(apps[0]["script"], "/bin/sh");
    assert_eq!(
        apps[0]["args"],
        json!(["-c", "echo \"$PATH\" | tr : '\n' > out && exit 0"])
    );
    assert_eq!(apps[0]["interpreter"], "none");
}

#[test]
fn program_path_with_a_space_is_wrapped() {
    let (apps, notes, _, _) = export(
        r#"
[services.x]
args = ["/opt/my app/run", "a b"]
"#,
    );
    assert_eq!(apps[0]["script"], "/bin/sh");
    assert_eq!(
        apps[0]["args"],
        json!(["-c", "exec \"$0\" \"$@\"", "/opt/my app/run", "a b"])
    );
    assert!(noted(&notes, "x", "command"));
}

#[test]
fn script_extension_never_picks_an_interpreter() {
    let (apps, _, _, _) = export("[services.s]\ncommand = \"./server.js --port 1\"\n");
    assert_eq!(apps[0]["script"], "./server.js");
    assert_eq!(apps[0]["interpreter"], "none");
}

#[test]
fn instances_with_port_base() {
    let (apps, notes, _, _) = export(
        r#"
[services.api]
command = "api"
instances = 3
port_base = 8000
env = { SHARD = "{instance}", MODE = "prod" }
"#,
    );
    let app = &apps[0];
    assert_eq!(app["instances"], 3);
    assert_eq!(app["exec_mode"], "fork");
    assert_eq!(app["instance_var"], "TEND_INSTANCE");
    assert_eq!(app["increment_var"], "PORT");
    assert_eq!(
        app["env"],
        json!({"MODE": "prod", "PORT": "8000", "TEND_SERVICE": "api"})
    );
    // SHARD has no third PM2 variable to go to: the wrapper sets it.
    assert_eq!(
        app["args"],
        json!(["-c", "export SHARD=\"$TEND_INSTANCE\"; exec api"])
    );
    assert!(noted(&notes, "api", "env.SHARD"));
}

#[test]
fn one_counted_variable_needs_no_wrapper() {
    let (apps, notes, _, _) = export(
        r#"
[services.api]
command = "api --x"
instances = 2
env = { SHARD = "{instance}" }
"#,
    );
    let app = &apps[0];
    assert_eq!(app["script"], "api");
    assert_eq!(app["instance_var"], "TEND_INSTANCE");
    assert_eq!(app["increment_var"], "SHARD");
    assert_eq!(app["env"], json!({"TEND_SERVICE": "api"}));
    assert!(
        !notes
            .iter()
            .any(|(_, k)| k.starts_with("env") || k == "command")
    );
}

#[test]
fn instance_variables_without_port_base() {
    let (apps, notes, _, _) = export(
        r#"
[services.w]
command = "w"
instances = 2
env = { A = "{instance}", B = "{instance}", C = "x-{instance}" }
"#,
    );
    let app = &apps[0];
    assert_eq!(app["instance_var"], "TEND_INSTANCE");
    assert_eq!(app["increment_var"], "A");
    assert_eq!(app["env"], json!({"TEND_SERVICE": "w"}));
    // The rest is set per instance by a /bin/sh wrapper.
    assert_eq!(app["script"], "/bin/sh");
    assert_eq!(
        app["args"],
        json!([
            "-c",
            "export B=\"$TEND_INSTANCE\" C=x-\"$TEND_INSTANCE\"; exec w"
        ])
    );
    assert!(noted(&notes, "w", "env.B"));
    assert!(noted(&notes, "w", "env.C"));
    assert!(noted(&notes, "w", "command"));
}

#[test]
fn a_name_sh_cannot_export_is_passed_literally() {
    let (apps, notes, export, _) = export(
        r#"
[services.w]
command = "w"
instances = 2
port_base = 3000
env = { "a.b" = "{instance}", OK = "{port}" }
"#,
    );
    let app = &apps[0];
    assert_eq!(app["env"]["a.b"], "{instance}");
    assert_eq!(app["args"], json!(["-c", "export OK=\"$PORT\"; exec w"]));
    assert!(noted(&notes, "w", "env.a.b"));
    assert!(why(&export, "w", "env.a.b").contains("literally"));
}

#[test]
fn several_instances_wrap_what_differs_per_instance() {
    let (apps, notes, export, dir) = export(
        r#"
[services.api]
args = ["/opt/my api/run", "--port={port}", "--name=api {instance}", "it's", ""]
cwd = "/srv/shard-{instance}"
instances = 2
port_base = 8000
env = { URL = "http://127.0.0.1:{port}/", PLAIN = "a b" }

[services.sh]
shell = true
command = "echo {instance}"
cwd = "/srv/{instance}"
instances = 2
"#,
    );
    let api = &apps[0];
    assert_eq!(api["script"], "/bin/sh");
    assert_eq!(
        api["args"],
        json!([
            "-c",
            "cd /srv/shard-\"$TEND_INSTANCE\" || exit 1; export URL=http://127.0.0.1:\"$PORT\"/; exec '/opt/my api/run' --port=\"$PORT\" '--name=api '\"$TEND_INSTANCE\" 'it'\\''s' ''"
        ])
    );
    assert_eq!(api["cwd"], dir.path().to_string_lossy().as_ref());
    assert_eq!(
        api["env"],
        json!({"PLAIN": "a b", "PORT": "8000", "TEND_SERVICE": "api"})
    );
    assert_eq!(api["instance_var"], "TEND_INSTANCE");
    assert_eq!(api["increment_var"], "PORT");
    for setting in ["command", "cwd", "env.URL"] {
        assert!(noted(&notes, "api", setting), "{setting}");
    }
    assert!(why(&export, "api", "command").contains("$PORT"));
    // A shell line's own placeholders cannot be told from its quoting: literal, reported.
    let sh = &apps[1];
    assert_eq!(
        sh["args"],
        json!([
            "-c",
            "cd /srv/\"$TEND_INSTANCE\" || exit 1; exec /bin/sh -c 'echo {instance}'"
        ])
    );
    assert!(
        export
            .unmapped
            .iter()
            .any(|(s, k, w)| s == "sh" && k == "command" && w.contains("literally"))
    );
}

#[test]
fn shell_words() {
    let places = Instances {
        single: false,
        port_base: Some(9000),
        port_counts: false,
    };
    assert_eq!(places.shell_word("plain-word"), "plain-word");
    assert_eq!(places.shell_word(""), "''");
    assert_eq!(places.shell_word("a b"), "'a b'");
    assert_eq!(places.shell_word("$x `y` \\ \n"), "'$x `y` \\ \n'");
    assert_eq!(places.shell_word("it's"), "'it'\\''s'");
    assert_eq!(places.shell_word("{instance}"), "\"$TEND_INSTANCE\"");
    assert_eq!(
        places.shell_word("p{port}"),
        "p\"$((9000 + $TEND_INSTANCE))\""
    );
    assert_eq!(places.shell_word("{x}"), "'{x}'");
    let counted = Instances {
        port_counts: true,
        ..places
    };
    assert_eq!(counted.shell_word("{port}{port}"), "\"$PORT\"\"$PORT\"");
}

#[test]
fn an_explicit_port_is_kept_and_port_is_computed() {
    let (apps, notes, _, _) = export(
        r#"
[services.w]
args = ["w", "--port={port}"]
instances = 2
port_base = 7000
env = { PORT = "80" }
"#,
    );
    let app = &apps[0];
    assert_eq!(app["env"]["PORT"], "80");
    assert_eq!(app["increment_var"], Value::Null);
    assert_eq!(app["instance_var"], "TEND_INSTANCE");
    // `{port}` is still port_base + the instance number.
    assert_eq!(
        app["args"],
        json!(["-c", "exec w --port=\"$((7000 + $TEND_INSTANCE))\""])
    );
    assert!(noted(&notes, "w", "command"));
}

#[test]
fn one_instance_expands_placeholders() {
    let (apps, notes, _, dir) = export(
        r#"
[services.one]
args = ["srv", "--id={instance}", "--port={port}"]
cwd = "work-{instance}"
port_base = 9000
env = { URL = "http://localhost:{port}/{instance}", ME = "{instance}" }
"#,
    );
    let app = &apps[0];
    assert_eq!(app["args"], json!(["--id=0", "--port=9000"]));
    assert_eq!(
        app["cwd"],
        dir.path().join("work-0").to_string_lossy().as_ref()
    );
    assert_eq!(app["env"]["URL"], "http://localhost:9000/0");
    assert_eq!(app["env"]["PORT"], "9000");
    assert_eq!(app["env"]["ME"], "0");
    assert_eq!(app["instance_var"], "TEND_INSTANCE");
    assert_eq!(app["increment_var"], "PORT");
    assert!(
        !notes
            .iter()
            .any(|(_, k)| k.starts_with("env") || k == "command")
    );
}

#[test]
fn restart_policies() {
    let (apps, notes, export, _) = export(
        r#"
[services.always]
command = "a"
exit_codes = [0, 3]

[services.onfail]
command = "b"
restart = "on-failure"
exit_codes = [0, 2]

[services.never]
command = "c"
restart = "never"
min_uptime = "5s"

[services.task]
command = "d"
kind = "task"

[services.unstable]
command = "e"
restart = "on-failure"
restart_limit = "unstable"
max_restarts = 0
"#,
    );
    let by = |name: &str| apps.iter().find(|a| a["name"] == name).unwrap().clone();
    assert_eq!(by("always")["autorestart"], true);
    assert_eq!(by("always")["stop_exit_codes"], Value::Null);
    assert!(noted(&notes, "always", "exit_codes"));
    assert_eq!(by("onfail")["stop_exit_codes"], json!([0, 2]));
    assert!(!noted(&notes, "onfail", "exit_codes"));
    for name in ["never", "task"] {
        let app = by(name);
        assert_eq!(app["autorestart"], false);
        for key in ["min_uptime", "max_restarts", "exp_backoff_restart_delay"] {
            assert_eq!(app[key], Value::Null, "{name}.{key}");
        }
    }
    assert!(noted(&notes, "task", "kind"));
    assert!(!noted(&notes, "never", "kind"));
    let unstable = by("unstable");
    assert_eq!(unstable["max_restarts"], 1);
    assert!(why(&export, "unstable", "max_restarts").contains("after 0 restarts"));
    assert!(noted(&notes, "unstable", "restart"));
    assert!(!noted(&notes, "unstable", "restart_limit"));
}

#[test]
fn backoff_shapes() {
    let (apps, notes, _, _) = export(
        r#"
[services.now]
command = "a"
backoff = { initial = "0s" }

[services.fixed]
command = "b"
backoff = { initial = "2s", factor = 1.0, jitter = 0.0 }

[services.pm2like]
command = "c"
backoff = { initial = "500ms", factor = 1.5, max = "15s", jitter = 0.0 }

[services.linear]
command = "d"
backoff = { initial = "1s", growth = "linear", jitter = 0.0 }

[services.long]
command = "e"
backoff = { initial = "20s", factor = 1.5, jitter = 0.0 }
"#,
    );
    let by = |name: &str| apps.iter().find(|a| a["name"] == name).unwrap().clone();
    assert_eq!(by("now")["restart_delay"], Value::Null);
    assert_eq!(by("now")["exp_backoff_restart_delay"], Value::Null);
    assert!(!noted(&notes, "now", "backoff"));
    assert_eq!(by("fixed")["restart_delay"], 2000);
    assert!(!noted(&notes, "fixed", "backoff"));
    assert_eq!(by("pm2like")["exp_backoff_restart_delay"], 500);
    assert!(!noted(&notes, "pm2like", "backoff"));
    assert_eq!(by("linear")["exp_backoff_restart_delay"], 1000);
    assert!(noted(&notes, "linear", "backoff"));
    // PM2 keeps a first delay above 15 s only once.
    assert_eq!(by("long")["exp_backoff_restart_delay"], 20000);
    assert!(noted(&notes, "long", "backoff"));
}

#[test]
fn pm2_floors_and_zeroes() {
    let (apps, notes, _, _) = export(
        r#"
[services.a]
command = "a"
min_uptime = "50ms"
stop_timeout = "0s"
stop_signal = "INT"

[services.b]
command = "b"
min_uptime = "1000.5ms"
stop_timeout = "2.5s"
"#,
    );
    assert_eq!(apps[0]["min_uptime"], 100);
    assert_eq!(apps[0]["kill_timeout"], 1);
    assert!(noted(&notes, "a", "min_uptime"));
    assert!(noted(&notes, "a", "stop_timeout"));
    assert!(!noted(&notes, "a", "stop_signal"));
    assert_eq!(apps[1]["min_uptime"], 1001);
    assert_eq!(apps[1]["kill_timeout"], 2500);
    assert!(noted(&notes, "b", "min_uptime"));
    assert!(!noted(&notes, "b", "stop_timeout"));
}

#[test]
fn log_targets() {
    let (apps, notes, _, dir) = export(
        r#"
[services.files]
command = "a"
logs = { stdout = "logs/out.log", stderr = "logs/err.log", max_size = 0 }

[services.merged]
command = "b"
logs = { stdout = "/var/log/b.log", merge = true }

[services.quiet]
command = "c"
logs = { stdout = "null", stderr = "null" }

[services.console]
command = "d"
logs = { stdout = "inherit", stderr = "/tmp/d.err" }

[services.default_merge]
command = "e"
logs = { merge = true }
"#,
    );
    let by = |name: &str| apps.iter().find(|a| a["name"] == name).unwrap().clone();
    let files = by("files");
    assert_eq!(
        files["out_file"],
        dir.path().join("logs/out.log").to_string_lossy().as_ref()
    );
    assert_eq!(
        files["error_file"],
        dir.path().join("logs/err.log").to_string_lossy().as_ref()
    );
    assert_eq!(files["merge_logs"], true);
    assert!(!noted(&notes, "files", "logs.max_size"));
    let merged = by("merged");
    assert_eq!(merged["out_file"], "/var/log/b.log");
    assert_eq!(merged["error_file"], "/var/log/b.log");
    let quiet = by("quiet");
    assert_eq!(quiet["out_file"], "/dev/null");
    assert_eq!(quiet["error_file"], "/dev/null");
    assert!(!noted(&notes, "quiet", "logs.max_size"));
    let console = by("console");
    assert_eq!(console["out_file"], Value::Null);
    assert_eq!(console["error_file"], "/tmp/d.err");
    assert!(noted(&notes, "console", "logs.stdout"));
    let default_merge = by("default_merge");
    assert_eq!(default_merge["out_file"], Value::Null);
    assert_eq!(default_merge["merge_logs"], Value::Null);
    assert!(noted(&notes, "default_merge", "logs.merge"));
}

#[test]
fn timestamps_and_json_lines() {
    let (apps, notes, export, _) = export(
        r#"
[services.a]
command = "a"
logs = { timestamp_format = "%Y-%m-%dT%H:%M:%S:" }

[services.b]
command = "b"
logs = { timestamps = true }

[services.c]
command = "c"
logs = { timestamp_format = "at %H%%%M [x] %6f %z" }

[services.d]
command = "d"
logs = { format = "json" }
"#,
    );
    assert_eq!(apps[0]["log_date_format"], "YYYY-MM-DD[T]HH:mm:ss");
    assert!(!why(&export, "a", "logs.timestamp_format").contains("`: `"));
    assert_eq!(apps[1]["log_date_format"], "YYYY-MM-DD[T]HH:mm:ss.SSSZ");
    assert!(why(&export, "b", "logs.timestamp_format").contains("`: `"));
    assert_eq!(apps[2]["log_date_format"], "[at ]HH%mm[ [x]] SSS ZZ");
    assert!(why(&export, "c", "logs.timestamp_format").contains("microseconds"));
    assert_eq!(apps[3]["log_type"], "json");
    assert!(noted(&notes, "d", "logs.format"));
}

#[test]
fn dayjs_brackets() {
    assert_eq!(dayjs_format("%d/%m/%Y %H:%M").0, "DD/MM/YYYY HH:mm");
    assert_eq!(dayjs_format("[%H]").0, "[[]HH]");
    assert_eq!(dayjs_format("a]b").0, "[a]][b]");
    assert_eq!(dayjs_format("100%%:").0, "100%");
}

#[test]
fn memory_identity_and_cgroups() {
    let (apps, notes, _, _) = export(
        r#"
[services.a]
command = "a"
user = "root"
group = "root"
max_memory = "300MiB"
memory_max = "1GiB"
cpu_max = 1.5
umask = "027"

[services.b]
command = "b"
group = "root"
max_memory = "1GB"

[services.c]
command = "c"
user = "4242"
max_memory = "2GiB"
"#,
    );
    // The umask is set by a wrapper.
    assert_eq!(apps[0]["script"], "/bin/sh");
    assert_eq!(apps[0]["args"], json!(["-c", "umask 027; exec a"]));
    assert_eq!(apps[0]["uid"], "root");
    assert_eq!(apps[0]["gid"], "root");
    assert_eq!(apps[0]["max_memory_restart"], "300M");
    for setting in ["max_memory", "memory_max", "cpu_max", "umask"] {
        assert!(noted(&notes, "a", setting), "{setting}");
    }
    assert_eq!(apps[1]["gid"], Value::Null);
    assert_eq!(apps[1]["max_memory_restart"], 1_000_000_000);
    assert!(noted(&notes, "b", "group"));
    assert_eq!(apps[2]["uid"], "4242");
    assert_eq!(apps[2]["max_memory_restart"], "2G");
    assert!(noted(&notes, "c", "user"));
}

#[test]
fn dependencies_come_first() {
    let (dir, manifest) = load(
        r#"
[services.web]
command = "web"
depends_on = { api = "healthy" }

[services.api]
command = "api"
depends_on = ["db"]
priority = 5

[services.db]
command = "db"
groups = ["data"]

[services.side]
command = "side"
priority = -1
"#,
    );
    let _ = dir;
    let export = export_pm2(&manifest, &[]);
    let names: Vec<String> = apps(&export)
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["side", "db", "api", "web"]);
    assert!(why(&export, "web", "depends_on").contains("api (healthy)"));
    assert!(why(&export, "api", "depends_on").contains("db (started)"));
    assert!(why(&export, "api", "priority").contains("file order"));
    assert_eq!(apps(&export)[1]["namespace"], "data");

    // A selection brings what it depends on; unknown names are said.
    let export = export_pm2(&manifest, &["web".into(), "nope".into()]);
    let names: Vec<String> = apps(&export)
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["db", "api", "web"]);
    assert_eq!(why(&export, "nope", ""), "no such service in the manifest");

    let export = export_pm2(&manifest, &["nope".into()]);
    assert!(export.files.is_empty());
    assert!(export.unmapped.iter().any(|(s, _, _)| s.is_empty()));
}

#[test]
fn probes_and_the_rest_are_reported() {
    let (_, notes, export, _) = export(
        r#"
[services.a]
command = "a"
readiness = { notify = true }
watchdog = "30s"
critical = true
cooldown = "1m"
groups = ["g1", "g2"]

[services.b]
command = "b"
readiness = { tcp = "127.0.0.1:80" }
liveness = { http = "http://127.0.0.1:80/" }
startup = { tcp = "127.0.0.1:80" }
logs = { syslog = true, tail = 10, events = ["stdout"] }
"#,
    );
    assert!(why(&export, "a", "readiness").contains("wait_ready"));
    for setting in ["watchdog", "critical", "cooldown", "groups"] {
        assert!(noted(&notes, "a", setting), "{setting}");
    }
    for setting in [
        "readiness",
        "liveness",
        "startup",
        "logs.syslog",
        "logs.tail",
        "logs.events",
    ] {
        assert!(noted(&notes, "b", setting), "{setting}");
    }
}

#[test]
fn env_names_pm2_uses_itself() {
    let (apps, notes, _, _) = export(
        r#"
[services.app]
command = "a"
env = { args = "x", pm_id = "1", app = "me", OK = "y", status = "s" }
"#,
    );
    for var in ["args", "pm_id", "app", "status"] {
        assert!(noted(&notes, "app", &format!("env.{var}")), "{var}");
    }
    assert!(!noted(&notes, "app", "env.OK"));
    assert_eq!(apps[0]["env"]["args"], "x");
}

#[test]
fn cron_restart_schedule_and_watch() {
    let (apps, notes, export, dir) = export(
        r#"
[services.web]
command = "server"
cron_restart = "@daily"
watch = ["src", "config/*.toml"]
watch_ignore = ["**/__pycache__"]
watch_debounce = "1s"
logs = { stdout = "src/web.log" }

[services.job]
kind = "task"
command = "backup"
schedule = "*/5 * * * mon-fri"
"#,
    );
    let root = dir.path().canonicalize().unwrap();
    let at = |p: &str| root.join(p).to_string_lossy().into_owned();
    assert_eq!(apps[0]["cron_restart"], "0 0 * * *", "macros written out");
    assert_eq!(apps[0]["watch"], json!([at("src"), at("config/*.toml")]));
    assert_eq!(
        apps[0]["ignore_watch"],
        json!([at("**/__pycache__"), at("src/web.log")])
    );
    assert_eq!(apps[0]["watch_delay"], 1000);
    assert!(why(&export, "web", "watch_ignore").contains("log file"));
    assert!(why(&export, "web", "cron_restart").contains("when it is stopped"));
    assert!(noted(&notes, "web", "watch_debounce"));
    assert_eq!(apps[1]["cron_restart"], "*/5 * * * mon-fri");
    assert_eq!(apps[1]["autorestart"], false);
    assert_eq!(
        apps[1]["autostart"], false,
        "a scheduled task waits for its time"
    );
    assert!(why(&export, "job", "schedule").contains("skips"));
}
