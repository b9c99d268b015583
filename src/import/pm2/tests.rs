//! End-to-end tests: ecosystem text in, tend tree and diagnostics out, one mapping rule each.

use std::path::Path;

use serde_json::{Value as J, json};

use super::{Diagnostic, Imported, import};
use crate::config::document::Segment;

const JS: &str = "ecosystem.config.js";

fn ok_in(file: &str, text: &str, env: Option<&str>) -> Imported {
    import(Path::new(file), text, env).unwrap_or_else(|errors| {
        panic!(
            "{text}\n{}",
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

fn ok(text: &str) -> Imported {
    ok_in(JS, text, None)
}

fn errors(text: &str) -> Vec<Diagnostic> {
    match import(Path::new(JS), text, None) {
        Ok(imported) => panic!("{text}: imported {:?}", imported.tree.to_json()),
        Err(errors) => errors,
    }
}

/// One app's `module.exports`.
fn app(body: &str) -> String {
    format!("module.exports = {{\n  apps: [{{\n{body}\n  }}]\n}}\n")
}

fn service(imported: &Imported, name: &str) -> J {
    imported.tree.to_json()["services"][name].clone()
}

/// The only service of an import.
fn only(imported: &Imported) -> J {
    let services = imported.tree.to_json()["services"].clone();
    let map = services.as_object().expect("services");
    assert_eq!(map.len(), 1, "{services}");
    map.values().next().cloned().unwrap_or_default()
}

fn warned(imported: &Imported, key: &str, needle: &str) -> bool {
    imported
        .warnings
        .iter()
        .any(|w| w.key == key && w.message.contains(needle))
}

fn assert_warned(imported: &Imported, key: &str, needle: &str) {
    assert!(
        warned(imported, key, needle),
        "no warning `{needle}` for {key}; got:\n{}",
        list(&imported.warnings)
    );
}

fn list(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn line_of(imported: &Imported, path: &[&str]) -> usize {
    let segments: Vec<Segment> = path.iter().map(|k| Segment::Key(k.to_string())).collect();
    imported.tree.line_of(&segments)
}

#[test]
fn the_shapes_pm2_accepts() {
    let apps = ok(
        "module.exports = { apps: [{ name: 'a', script: 'a.js' }, { name: 'b', script: 'b.js' }] }",
    );
    assert_eq!(service(&apps, "a")["command"], "node a.js");
    assert_eq!(service(&apps, "b")["command"], "node b.js");

    let single = ok("module.exports = { apps: { name: 'a', script: 'a.js' } }");
    assert_eq!(only(&single)["command"], "node a.js");

    let bare = ok_in(
        "process.json",
        "[{\"name\": \"a\", \"script\": \"a.js\"}]",
        None,
    );
    assert_eq!(only(&bare)["command"], "node a.js");

    let one_app = ok_in("app.json", "{\"script\": \"a.js\"}", None);
    assert_eq!(service(&one_app, "a")["command"], "node a.js");

    let pm2_key = ok_in("e.json", "{\"pm2\": [{\"script\": \"a.js\"}]}", None);
    assert_eq!(service(&pm2_key, "a")["command"], "node a.js");

    let esm = ok_in(
        "ecosystem.config.mjs",
        "export default { apps: [{ script: 'a.js' }] }",
        None,
    );
    assert_eq!(service(&esm, "a")["command"], "node a.js");

    let yaml = ok_in(
        "ecosystem.yml",
        "apps:\n  - name: a\n    script: a.js\n    instances: 2\n",
        None,
    );
    assert_eq!(only(&yaml)["instances"], 2);
    assert_eq!(line_of(&yaml, &["services", "a", "instances"]), 4);

    // PM2 evaluates .json as JavaScript: comments and trailing commas are fine.
    let json = ok_in(
        "ecosystem.json",
        "{\n  // the api\n  \"apps\": [{\"script\": \"api.js\", instances: 2,},],\n}\n",
        None,
    );
    assert_eq!(only(&json)["instances"], 2);

    let json5 = ok_in(
        "ecosystem.json5",
        "{apps: [{script: 'a.js', max_restarts: 0x10}]}",
        None,
    );
    assert_eq!(only(&json5)["max_restarts"], 15);
}

#[test]
fn every_node_keeps_its_source_line() {
    let text = "module.exports = {\n  apps: [{\n    name: 'web',\n    script: 'server.js',\n    args: ['--port', '80 80'],\n    cwd: '/srv/web',\n    env: {\n      A: '1',\n    },\n    max_memory_restart: '200M',\n  }],\n};\n";
    let imported = ok(text);
    let tree = &imported.tree;
    assert_eq!(line_of(&imported, &["services"]), 2);
    assert_eq!(line_of(&imported, &["services", "web"]), 3);
    assert_eq!(line_of(&imported, &["services", "web", "cwd"]), 6);
    assert_eq!(line_of(&imported, &["services", "web", "env", "A"]), 8);
    assert_eq!(line_of(&imported, &["services", "web", "max_memory"]), 10);
    let args = [
        Segment::Key("services".into()),
        Segment::Key("web".into()),
        Segment::Key("args".into()),
        Segment::Index(3),
    ];
    assert_eq!(tree.line_of(&args), 5);
    // Defaults PM2 has and tend does not share are at the app's line.
    assert_eq!(line_of(&imported, &["services", "web", "stop_signal"]), 2);
}

#[test]
fn name_defaults_to_the_script_and_is_made_valid() {
    let imported = ok(
        "module.exports = { apps: [\n{ script: './www/app.js' },\n{ script: 'worker.min.js' },\n{ name: 'my app!', script: 'x.js' },\n{ name: 'all', script: 'y.js' },\n{ name: 'dup', script: 'a.js' },\n{ name: 'dup', script: 'b.js' },\n{ script: 'node dist/main.js' },\n] }",
    );
    let services = imported.tree.to_json()["services"].clone();
    let names: Vec<&String> = services.as_object().unwrap().keys().collect();
    for name in [
        "app",
        "worker.min",
        "my-app",
        "all-app",
        "dup",
        "dup-2",
        "main",
    ] {
        assert!(names.iter().any(|n| *n == name), "{name} not in {names:?}");
    }
    assert_warned(&imported, "apps[2].name", "imported as `my-app`");
    assert_warned(&imported, "apps[3].name", "imported as `all-app`");
    assert_warned(&imported, "apps[5]", "imported as `dup-2`");
}

/// Names tend accepts (`[A-Za-z0-9][A-Za-z0-9_.-]*`, not `all`) are kept as written, with
/// no warning; only refused ones are renamed, and only their refused characters change.
#[test]
fn valid_tend_names_are_kept() {
    let valid = ["a--0", "web-", "x.-_y", "0-", "a---b--"];
    let body: Vec<String> = valid
        .iter()
        .map(|n| format!("{{ name: '{n}', script: 'a.js' }},"))
        .collect();
    let imported = ok(&format!(
        "module.exports = {{ apps: [\n{}\n] }}",
        body.join("\n")
    ));
    let services = imported.tree.to_json()["services"].clone();
    let mut names: Vec<&str> = services
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = valid.to_vec();
    names.sort_unstable();
    want.sort_unstable();
    assert_eq!(names, want);
    assert!(
        !imported
            .warnings
            .iter()
            .any(|w| w.message.contains("not a valid tend service name")),
        "{}",
        list(&imported.warnings)
    );

    let renamed = [
        ("my--app!", "my--app"),
        ("web-!", "web-"),
        ("a - b", "a-b"),
        ("-x y-", "x-y-"),
        ("é", "app"),
        ("api:v2", "api-v2"),
    ];
    let body: Vec<String> = renamed
        .iter()
        .map(|(n, _)| format!("{{ name: '{n}', script: 'a.js' }},"))
        .collect();
    let imported = ok(&format!(
        "module.exports = {{ apps: [\n{}\n] }}",
        body.join("\n")
    ));
    for (i, (written, name)) in renamed.iter().enumerate() {
        assert!(
            !service(&imported, name).is_null(),
            "{written} → {name}: {:#}",
            imported.tree.to_json()
        );
        assert_warned(
            &imported,
            &format!("apps[{i}].name"),
            &format!("`{written}` is not a valid tend service name"),
        );
    }
}

#[test]
fn interpreters_follow_the_extension() {
    let imported = ok(
        "module.exports = { apps: [\n{ name: 'js', script: 'a.js', node_args: '--max-old-space-size=1024 -r esm' },\n{ name: 'py', script: 'a.py', args: ['x'] },\n{ name: 'sh', script: 'run.sh' },\n{ name: 'ts', script: 'a.ts' },\n{ name: 'bin', script: './bin/server', node_args: ['--x'] },\n{ name: 'npm', script: 'npm', args: 'run start' },\n{ name: 'none', script: 'app.js', interpreter: 'none' },\n{ name: 'explicit', script: 'app', exec_interpreter: '/usr/bin/python3.11', interpreter_args: ['-u'] },\n{ name: 'nvm', script: 'a.js', interpreter: 'node@18.0.0' },\n] }",
    );
    assert_eq!(
        service(&imported, "js")["command"],
        "node --max-old-space-size=1024 -r esm a.js"
    );
    assert_eq!(service(&imported, "py")["command"], "python3 a.py x");
    assert_eq!(service(&imported, "py")["env"]["PYTHONUNBUFFERED"], "1");
    assert_eq!(service(&imported, "sh")["command"], "bash run.sh");
    assert_eq!(service(&imported, "ts")["command"], "bun a.ts");
    assert_eq!(service(&imported, "bin")["command"], "./bin/server");
    assert_warned(&imported, "apps[4].script", "needs its `#!` line");
    assert_warned(&imported, "apps[4].node_args", "no interpreter");
    assert_eq!(service(&imported, "npm")["command"], "npm run start");
    assert_eq!(service(&imported, "none")["command"], "app.js");
    assert_eq!(
        service(&imported, "explicit")["command"],
        "/usr/bin/python3.11 -u app"
    );
    assert_eq!(service(&imported, "nvm")["command"], "node a.js");
    assert_warned(&imported, "apps[8].interpreter", "nvm");
}

#[test]
fn arguments_are_split_as_pm2_splits_them_and_written_as_args_when_needed() {
    let imported = ok(&app(
        "script: 'app.js',\nargs: \"--name 'two words' --x=\\\"a b\\\"\",",
    ));
    assert_eq!(
        only(&imported)["args"],
        json!(["node", "app.js", "--name", "two words", "--x=\"a b\""])
    );
    let array = ok(&app(
        "script: 'app.js',\nargs: ['a b', 1, true, '${HOME}'],",
    ));
    assert_eq!(
        only(&array)["args"],
        json!(["node", "app.js", "a b", "1", "true", "$${HOME}"])
    );
}

#[test]
fn a_script_with_spaces_runs_through_bash_as_pm2_does() {
    let plain = ok(&app(
        "name: 'x',\nscript: 'npm run start',\nargs: ['ignored'],",
    ));
    assert_eq!(only(&plain)["command"], "npm run start");
    assert_warned(&plain, "apps[0].args", "bash -c SCRIPT");
    let shell = ok(&app("name: 'x',\nscript: 'npm run build && npm start',"));
    assert_eq!(
        only(&shell)["args"],
        json!(["bash", "-c", "npm run build && npm start"])
    );
    let assignment = ok(&app(
        "name: 'x',\nscript: 'NODE_ENV=production node app.js',",
    ));
    assert_eq!(only(&assignment)["args"][0], "bash");
    // PM2's default name is the script's basename: here `npm start`.
    let unnamed = ok(&app("script: 'yarn start',"));
    assert!(
        unnamed.tree.to_json()["services"]
            .get("yarn-start")
            .is_some()
    );
}

#[test]
fn script_aliases() {
    for key in ["cmd", "command", "exec"] {
        let imported = ok(&app(&format!("name: 'a',\n{key}: 'a.js',")));
        assert_eq!(only(&imported)["command"], "node a.js", "{key}");
    }
    let both = ok(&app("name: 'a',\nscript: 'a.js',\nexec: 'b.js',"));
    assert_eq!(only(&both)["command"], "node a.js");
    assert_warned(&both, "apps[0].exec", "PM2 uses that one");
}

#[test]
fn cwd_and_log_paths_relative_to_it() {
    let imported = ok(&app(
        "name: 'a',\nscript: 'a.js',\ncwd: 'srv/app',\nout_file: './logs/out.log',\nerror_file: '/var/log/a.err',\n",
    ));
    let svc = only(&imported);
    assert_eq!(svc["cwd"], "srv/app");
    assert_eq!(svc["logs"]["stdout"], "srv/app/logs/out.log");
    assert_eq!(svc["logs"]["stderr"], "/var/log/a.err");
}

#[test]
fn instances_and_cluster_mode() {
    let fixed = ok(&app("name: 'a',\nscript: 'a.js',\ninstances: 4,"));
    assert_eq!(only(&fixed)["instances"], 4);
    assert!(fixed.warnings.is_empty(), "{}", list(&fixed.warnings));

    let text = ok(&app("name: 'a',\nscript: 'a.js',\ninstances: '3',"));
    assert_eq!(only(&text)["instances"], 3);

    for value in ["'max'", "0", "-1"] {
        let max = ok(&app(&format!(
            "name: 'a',\nscript: 'a.js',\ninstances: {value},\nexec_mode: 'cluster',"
        )));
        assert!(only(&max).get("instances").is_none(), "{value}");
        assert_warned(
            &max,
            "apps[0].instances",
            "tend has no \"max\" and imports 1 instance",
        );
        assert_warned(&max, "apps[0].instances", "SO_REUSEPORT");
    }

    let cluster = ok(&app(
        "name: 'a',\nscript: 'a.js',\ninstances: 2,\nexec_mode: 'cluster_mode',",
    ));
    assert_eq!(only(&cluster)["instances"], 2);
    assert_warned(&cluster, "apps[0].instances", "share one port");

    let python = ok(&app("name: 'a',\nscript: 'a.py',\nexec_mode: 'cluster',"));
    assert_warned(
        &python,
        "apps[0].exec_mode",
        "cluster mode is for Node programs",
    );
}

#[test]
fn environment_blocks_and_selection() {
    let text = "module.exports = {\n  apps: [{\n    name: 'a',\n    script: 'a.js',\n    port: 8080,\n    env: { NODE_ENV: 'development', A: 1, B: true, C: { x: [1, 2] }, D: 'keep', E: '${X}' },\n    env_production: { NODE_ENV: 'production', D: null },\n    env_staging: { NODE_ENV: 'staging' },\n  }],\n  deploy: { production: { env: { FROM_DEPLOY: 'yes', NODE_ENV: 'deploy' } } },\n};\n";
    let plain = ok(text);
    let env = only(&plain)["env"].clone();
    assert_eq!(env["NODE_ENV"], "development");
    assert_eq!(env["A"], "1");
    assert_eq!(env["B"], "true");
    assert_eq!(env["C"], "{\"x\":[1,2]}");
    assert_eq!(env["E"], "$${X}");
    assert_eq!(env["PORT"], "8080");
    assert_eq!(env["NODE_APP_INSTANCE"], "{instance}");
    assert!(env.get("FROM_DEPLOY").is_none());
    assert_warned(
        &plain,
        "apps[0].env_production",
        "import with the env name `production`",
    );
    assert_warned(&plain, "deploy", "tend does not deploy");

    let production = ok_in(JS, text, Some("production"));
    let env = only(&production)["env"].clone();
    assert_eq!(env["NODE_ENV"], "production");
    assert_eq!(env["FROM_DEPLOY"], "yes");
    assert!(env.get("D").is_none(), "null unsets: {env}");
    assert!(!warned(
        &production,
        "apps[0].env_production",
        "not applied"
    ));
    assert_warned(&production, "apps[0].env_staging", "not applied");

    let missing = ok_in(JS, text, Some("test"));
    assert_warned(&missing, "apps[0]", "has no `env_test`");
    assert_eq!(only(&missing)["env"]["NODE_ENV"], "development");
}

#[test]
fn instance_variables() {
    let renamed = ok(&app(
        "name: 'a',\nscript: 'a.js',\ninstance_var: 'INSTANCE_ID',",
    ));
    let env = only(&renamed)["env"].clone();
    assert_eq!(env["INSTANCE_ID"], "{instance}");
    assert!(env.get("NODE_APP_INSTANCE").is_none());

    let own = ok(&app(
        "name: 'a',\nscript: 'a.js',\nenv: { NODE_APP_INSTANCE: 'fixed' },",
    ));
    assert_eq!(only(&own)["env"]["NODE_APP_INSTANCE"], "fixed");

    let port = ok(&app(
        "name: 'a',\nscript: 'a.js',\ninstances: 4,\nincrement_var: 'PORT',\nenv: { PORT: 3000 },",
    ));
    let svc = only(&port);
    assert_eq!(svc["port_base"], 3000);
    assert!(svc["env"].get("PORT").is_none());

    let counter = ok(&app(
        "name: 'a',\nscript: 'a.js',\ninstances: 2,\nincrement_var: 'WORKER',",
    ));
    assert_eq!(only(&counter)["env"]["WORKER"], "{instance}");

    let offset = ok(&app(
        "name: 'a',\nscript: 'a.js',\ninstances: 2,\nincrement_var: 'SLOT',\nenv: { SLOT: 5 },",
    ));
    assert_warned(&offset, "apps[0].increment_var", "every instance gets 5");
}

#[test]
fn memory_limits() {
    for (value, expected) in [
        ("'200M'", json!("200MiB")),
        ("'1G'", json!("1GiB")),
        ("'512K'", json!("512KiB")),
        ("1073741824", json!(1073741824)),
        ("'2097152'", json!(2097152)),
    ] {
        let imported = ok(&app(&format!(
            "name: 'a',\nscript: 'a.js',\nmax_memory_restart: {value},"
        )));
        assert_eq!(only(&imported)["max_memory"], expected, "{value}");
    }
    let tiny = ok(&app(
        "name: 'a',\nscript: 'a.js',\nmax_memory_restart: '160',",
    ));
    assert_eq!(only(&tiny)["max_memory"], 160);
    assert_warned(&tiny, "apps[0].max_memory_restart", "did you mean \"160M\"");

    let bad = errors(&app(
        "name: 'a',\nscript: 'a.js',\nmax_memory_restart: '1.5G',",
    ));
    assert_eq!(bad[0].key, "apps[0].max_memory_restart");
    assert_eq!(bad[0].line, 5);
    assert!(bad[0].message.contains("K, M or G"), "{}", list(&bad));
}

#[test]
fn restart_policy_defaults_are_pm2s() {
    let imported = ok(&app("name: 'a',\nscript: 'a.js',"));
    let svc = only(&imported);
    assert_eq!(svc["min_uptime"], "1s");
    // PM2's 16 is the unstable exit it gives up at: 15 restarts.
    assert_eq!(svc["max_restarts"], 15);
    assert_eq!(svc["restart_limit"], "unstable");
    assert_eq!(svc["backoff"], json!({"initial": "0s"}));
    assert_eq!(svc["stop_signal"], "INT");
    assert_eq!(svc["stop_timeout"], "1600ms");
    assert!(svc.get("restart").is_none());
}

#[test]
fn restart_settings() {
    let imported = ok(&app(
        "name: 'a',\nscript: 'a.js',\nmin_uptime: '2s',\nmax_restarts: 5,\nrestart_delay: 3000,\nkill_timeout: 5000,",
    ));
    let svc = only(&imported);
    assert_eq!(svc["min_uptime"], "2s");
    assert_eq!(svc["max_restarts"], 4);
    assert_eq!(
        svc["backoff"],
        json!({"initial": "3s", "factor": 1.0, "jitter": 0.0})
    );
    assert_eq!(svc["stop_timeout"], "5s");
    assert_warned(
        &imported,
        "apps[0].restart_delay",
        "PM2 waits after every exit",
    );

    let exp = ok(&app(
        "name: 'a',\nscript: 'a.js',\nexp_backoff_restart_delay: 100,\nrestart_delay: 50,\nmin_uptime: 60000,",
    ));
    let svc = only(&exp);
    assert_eq!(
        svc["backoff"],
        json!({"initial": "100ms", "max": "15s", "factor": 1.5, "jitter": 0.0})
    );
    assert_eq!(svc["min_uptime"], "60s");
    assert_warned(&exp, "apps[0].restart_delay", "replaces it");

    // PM2 reads a 0 under a key with aliases as unset: its default 16 applies.
    let zero = ok(&app("name: 'a',\nscript: 'a.js',\nmax_restarts: 0,"));
    assert_eq!(only(&zero)["max_restarts"], 15);
    assert_warned(&zero, "apps[0].max_restarts", "reads a 0 here as not set");

    let too_short = errors(&app("name: 'a',\nscript: 'a.js',\nmin_uptime: 50,"));
    assert!(
        too_short[0].message.contains("at least 100"),
        "{}",
        list(&too_short)
    );
    let bad_unit = errors(&app(
        "name: 'a',\nscript: 'a.js',\nmin_uptime: '2 seconds',",
    ));
    assert!(
        bad_unit[0].message.contains("h, m or s"),
        "{}",
        list(&bad_unit)
    );
}

/// PM2 gives up at the N-th unstable exit (`unstable_restarts >= max_restarts` in
/// lib/God.js handleExit), after N - 1 restarts; tend's `max_restarts` counts restarts.
/// Checked with PM2 7.0.4: `max_restarts: 3` runs a failing app 3 times, 1 once, 2.5
/// three times, and a 0 that reaches it (`maxRestarts: 0`, `max_restarts: '0'`) once,
/// even after a run longer than min_uptime.
#[test]
fn max_restarts_counts_the_exit_pm2_gives_up_at() {
    for (written, restarts) in [("3", 3 - 1), ("1", 0), ("2.5", 2), ("'7'", 6), ("16", 15)] {
        let imported = ok(&app(&format!(
            "name: 'a',\nscript: 'a.js',\nmax_restarts: {written},"
        )));
        let svc = only(&imported);
        assert_eq!(svc["max_restarts"], restarts, "{written}");
        assert_eq!(svc["restart_limit"], "unstable", "{written}");
        assert!(svc.get("restart").is_none(), "{written}");
    }

    for written in ["maxRestarts: 0", "max_restarts: '0'"] {
        let imported = ok(&app(&format!(
            "name: 'a',\nscript: 'a.js',\n{written},\nmin_uptime: 2000,\nrestart_delay: 100,"
        )));
        let svc = only(&imported);
        assert_eq!(svc["restart"], "never", "{written}");
        assert!(svc.get("max_restarts").is_none(), "{written}");
        assert!(svc.get("min_uptime").is_none(), "{written}");
        assert!(svc.get("backoff").is_none(), "{written}");
        let key = written.split(':').next().unwrap();
        assert_warned(
            &imported,
            &format!("apps[0].{key}"),
            "imported as `restart = \"never\"`",
        );
        assert_warned(
            &imported,
            "apps[0].restart_delay",
            "no effect with `max_restarts` 0",
        );
    }
}

#[test]
fn autorestart_and_exit_codes() {
    let never = ok(&app(
        "name: 'a',\nscript: 'a.js',\nautorestart: false,\nmax_restarts: 3,",
    ));
    let svc = only(&never);
    assert_eq!(svc["restart"], "never");
    assert!(svc.get("max_restarts").is_none());
    assert_warned(
        &never,
        "apps[0].max_restarts",
        "no effect with `autorestart: false`",
    );

    let codes = ok(&app(
        "name: 'a',\nscript: 'a.js',\nstop_exit_codes: [0, '3', 300],",
    ));
    let svc = only(&codes);
    assert_eq!(svc["restart"], "on-failure");
    assert_eq!(svc["exit_codes"], json!([0, 3]));
    assert_warned(&codes, "apps[0].stop_exit_codes[2]", "not an exit code");

    let one = ok(&app("name: 'a',\nscript: 'a.js',\nstop_exit_codes: 2,"));
    assert_eq!(only(&one)["exit_codes"], json!([2]));

    let manual = ok(&app("name: 'a',\nscript: 'a.js',\nautostart: false,"));
    assert_eq!(only(&manual)["autostart"], false);
}

#[test]
fn stop_settings_and_readiness_are_reported() {
    let imported = ok(&app(
        "name: 'a',\nscript: 'a.js',\nshutdown_with_message: true,\ntreekill: false,\nwait_ready: true,\nlisten_timeout: 8000,",
    ));
    assert_warned(&imported, "apps[0].shutdown_with_message", "IPC");
    assert_warned(&imported, "apps[0].treekill", "whole process tree");
    assert_warned(&imported, "apps[0].wait_ready", "8000ms");
    assert_warned(&imported, "apps[0].wait_ready", "notify = true");
    let listen = ok(&app("name: 'a',\nscript: 'a.js',\nlisten_timeout: 8000,"));
    assert_warned(&listen, "apps[0].listen_timeout", "reloads");
}

#[test]
fn watch_and_cron() {
    let on = ok(&app(
        "name: 'a',\nscript: 'a.js',\ncwd: 'srv',\nwatch: ['src', './lib/*.js'],\nignore_watch: ['node_modules', 'src/tmp', '\\\\.git'],\nwatch_delay: 1000,\nwatch_options: { usePolling: true },\ncron_restart: '0 7 * * *',",
    ));
    let svc = only(&on);
    assert_eq!(svc["watch"], json!(["srv/src", "srv/lib/*.js"]));
    assert_eq!(
        svc["watch_ignore"],
        json!(["**/node_modules", "srv/src/tmp"])
    );
    assert_eq!(svc["watch_debounce"], "1s");
    assert_eq!(svc["cron_restart"], "0 7 * * *");
    assert_warned(&on, "apps[0].ignore_watch", "regular expression");
    assert_warned(&on, "apps[0].watch_options", "inotify");
    assert_warned(&on, "apps[0].cron_restart", "only while it runs");

    // `watch: true` watches the app's directory, with PM2's default ignores.
    let all = ok(&app("name: 'a',\nscript: 'a.js',\nwatch: true,"));
    assert_eq!(only(&all)["watch"], json!(["."]));
    assert_eq!(
        only(&all)["watch_ignore"],
        json!(["**/.*", "**/node_modules"])
    );
    assert!(all.warnings.is_empty(), "{}", list(&all.warnings));

    // A periodic job: `autorestart: false` with a cron is a scheduled task; croner's
    // seconds field, when 0, is dropped.
    let job = ok(&app(
        "name: 'a',\nscript: 'a.js',\nautorestart: false,\ncron_restart: '0 */5 * * * *',",
    ));
    let svc = only(&job);
    assert_eq!(svc["kind"], "task");
    assert_eq!(svc["schedule"], "*/5 * * * *");
    assert_eq!(svc["autostart"], true, "PM2 runs it when it is added too");
    assert!(svc.get("cron_restart").is_none(), "{svc}");
    assert_warned(&job, "apps[0].cron_restart", "imported as a task");

    // Seconds tend cannot fire on, and an expression it cannot read: reported, not imported.
    let seconds = ok(&app(
        "name: 'a',\nscript: 'a.js',\ncron_restart: '*/10 * * * * *',",
    ));
    assert_warned(&seconds, "apps[0].cron_restart", "whole minutes");
    assert!(only(&seconds).get("cron_restart").is_none());
    let bad = ok(&app("name: 'a',\nscript: 'a.js',\ncron: '0 25 * * *',"));
    assert_warned(&bad, "apps[0].cron", "bad hour field");
    assert!(only(&bad).get("cron_restart").is_none());

    // Off, they do nothing in PM2 either: no warnings.
    let off = ok(&app(
        "name: 'a',\nscript: 'a.js',\nwatch: false,\nignore_watch: ['node_modules'],\ncron_restart: 0,\nvizion: false,\nautorestart: true,\nmerge_logs: true,",
    ));
    assert!(off.warnings.is_empty(), "{}", list(&off.warnings));
    assert!(only(&off).get("watch").is_none());
}

#[test]
fn logs() {
    let merged = ok(&app(
        "name: 'a',\nscript: 'a.js',\nout_file: 'a.log',\nerror_file: 'a.log',\ntime: true,",
    ));
    let svc = only(&merged);
    assert_eq!(
        svc["logs"],
        json!({"stdout": "a.log", "merge": true, "timestamp_format": "%Y-%m-%dT%H:%M:%S:"})
    );
    assert_warned(&merged, "apps[0].time", "UTC");

    let combined = ok(&app(
        "name: 'a',\nscript: 'a.js',\nlog: 'all.log',\nlog_date_format: 'YYYY-MM-DD HH:mm Z',",
    ));
    assert_eq!(
        only(&combined)["logs"],
        json!({"stdout": "all.log", "merge": true, "timestamp_format": "%Y-%m-%d %H:%M +00:00:"})
    );

    let devnull = ok(&app(
        "name: 'a',\nscript: 'a.js',\nout: '/dev/null',\nerr_file: 'NULL',\nlog_type: 'json',\npid_file: 'a.pid',",
    ));
    assert_eq!(
        only(&devnull)["logs"],
        json!({"stdout": "null", "stderr": "null", "format": "json"})
    );
    assert_warned(&devnull, "apps[0].log_type", "RFC 3339");
    assert_warned(&devnull, "apps[0].pid_file", "no per-app pid file");

    let unsupported = ok(&app(
        "name: 'a',\nscript: 'a.js',\nlog_date_format: 'DD/MM/YY hh:mm A',",
    ));
    assert_eq!(only(&unsupported)["logs"], json!({"timestamps": true}));
    assert_warned(&unsupported, "apps[0].log_date_format", "`YY`");

    let home = ok(&app(
        "name: 'a',\nscript: 'a.js',\nout_file: '~/logs/a.log',\ndisable_logs: false,",
    ));
    assert!(only(&home).get("logs").is_none());
    assert_warned(&home, "apps[0].out_file", "`~`");

    let disabled = ok(&app("name: 'a',\nscript: 'a.js',\ndisable_logs: true,"));
    assert_eq!(
        only(&disabled)["logs"],
        json!({"stdout": "null", "stderr": "null"})
    );

    let per_instance = ok(&app(
        "name: 'a',\nscript: 'a.js',\ninstances: 2,\nout_file: 'out.log',",
    ));
    assert_warned(&per_instance, "apps[0].merge_logs", "one file per process");
}

#[test]
fn namespaces_become_groups() {
    let imported = ok(
        "module.exports = { apps: [\n{ name: 'a', script: 'a.js', namespace: 'front' },\n{ name: 'b', script: 'b.js', namespace: 'default' },\n{ name: 'c', script: 'c.js', namespace: 'a' },\n] }",
    );
    assert_eq!(service(&imported, "a")["groups"], json!(["front"]));
    assert!(service(&imported, "b").get("groups").is_none());
    assert!(service(&imported, "c").get("groups").is_none());
    assert_warned(&imported, "apps[2].namespace", "also a service name");
}

#[test]
fn user_and_group() {
    let imported = ok(&app(
        "name: 'a',\nscript: 'a.js',\nuser: 'www-data',\ngid: 33,",
    ));
    let svc = only(&imported);
    assert_eq!(svc["user"], "www-data");
    assert_eq!(svc["group"], 33);
    let uid = ok(&app("name: 'a',\nscript: 'a.js',\nuid: 1000,"));
    assert_eq!(only(&uid)["user"], 1000);
}

#[test]
fn unknown_keys_aliases_and_pm2_only_features() {
    let imported = ok(&app(
        "name: 'a',\nscript: 'a.js',\ninstance: 2,\nmaxMemoryRestart: '1G',\nignoreWatch: ['x'],\nenv_file: '.env',\ntrace: true,\nsource_map_support: true,\nforce: true,\nfilter_env: ['SECRET_'],",
    ));
    assert_warned(&imported, "apps[0].instance", "did you mean `instances`?");
    assert_eq!(only(&imported)["max_memory"], "1GiB");
    assert!(
        !imported
            .warnings
            .iter()
            .any(|w| w.key.ends_with("ignoreWatch"))
    );
    assert_warned(&imported, "apps[0].env_file", "PM2 has no env_file");
    assert_warned(&imported, "apps[0].trace", "PM2.io");
    assert_warned(
        &imported,
        "apps[0].source_map_support",
        "--enable-source-maps",
    );
    assert_warned(&imported, "apps[0].force", "ignored");
    assert_warned(&imported, "apps[0].filter_env", "not imported");

    let twice = ok(&app(
        "name: 'a',\nscript: 'a.js',\ninstances: 2,\ninstances: 3,",
    ));
    assert_eq!(only(&twice)["instances"], 3);
    assert_warned(
        &twice,
        "apps[0].instances",
        "written twice (first on line 5)",
    );
}

#[test]
fn append_env_to_name() {
    let text = app("name: 'api',\nscript: 'a.js',\nappend_env_to_name: true,\nenv_production: {},");
    let imported = ok_in(JS, &text, Some("production"));
    assert!(
        imported.tree.to_json()["services"]
            .get("api-production")
            .is_some()
    );
    let plain = ok(&text);
    assert!(plain.tree.to_json()["services"].get("api").is_some());
}

#[test]
fn values_pm2_refuses_are_errors_with_lines() {
    let cases = [
        (
            "autorestart: 'false',",
            "apps[0].autorestart",
            "must be a boolean, not a string",
        ),
        (
            "kill_timeout: 'soon',",
            "apps[0].kill_timeout",
            "must be a number",
        ),
        (
            "exec_mode: 'workers',",
            "apps[0].exec_mode",
            "\"fork\" or \"cluster\"",
        ),
        (
            "instances: true,",
            "apps[0].instances",
            "must be a number or \"max\"",
        ),
        ("name: 42,", "apps[0].name", "must be a string"),
        (
            "env: { A: 1 }, args: [{}],",
            "apps[0].args[0]",
            "an object cannot be",
        ),
    ];
    for (body, key, needle) in cases {
        let errors = errors(&app(&format!("script: 'a.js',\n{body}")));
        assert!(
            errors
                .iter()
                .any(|e| e.key == key && e.line == 4 && e.message.contains(needle)),
            "{body}: {}",
            list(&errors)
        );
    }
    let missing = errors(&app("name: 'a',\ninstances: 2,"));
    assert_eq!(missing[0].key, "apps[0].script");
    assert_eq!(missing[0].line, 2);
    assert!(missing[0].message.contains("no `script`"));
}

#[test]
fn javascript_code_in_settings_is_skipped_with_a_warning() {
    let text = "const os = require('os');\nmodule.exports = {\n  apps: [{\n    name: 'a',\n    script: 'a.js',\n    instances: os.cpus().length,\n    env: {\n      SECRET: fs.readFileSync('/run/secret', 'utf8'),\n      PLAIN: 'kept',\n    },\n    max_memory_restart: `${LIMIT}M`,\n  }],\n};\n";
    let imported = ok(text);
    let svc = only(&imported);
    assert!(svc.get("instances").is_none());
    assert!(svc.get("max_memory").is_none());
    assert_eq!(svc["env"]["PLAIN"], "kept");
    assert!(svc["env"].get("SECRET").is_none());
    let warning = imported
        .warnings
        .iter()
        .find(|w| w.key == "apps[0].env.SECRET")
        .expect("a warning for SECRET");
    assert_eq!(warning.line, 8);
    assert!(
        warning.message.contains("fs.readFileSync(...)"),
        "{warning}"
    );
    assert_warned(
        &imported,
        "apps[0].instances",
        "an expression with os.cpus(...)",
    );
    assert_warned(&imported, "apps[0].max_memory_restart", "template literal");
}

#[test]
fn javascript_code_where_the_program_is_decided_is_an_error() {
    let text = "const path = require('path');\nmodule.exports = {\n  apps: [{\n    name: 'a',\n    script: 'a.js',\n    cwd: path.join(__dirname, 'api'),\n  }],\n};\n";
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "{}", list(&errors));
    assert_eq!(
        errors[0].to_string(),
        "ecosystem.config.js:6: apps[0].cwd: this is JavaScript code (path.join(...)), not a literal; tend cannot evaluate it — replace it with a literal value, or import what Node evaluates: node -p 'JSON.stringify(require(\"./ecosystem.config.js\"), null, 2)' > ecosystem.json"
    );
    let script = errors_of("module.exports = { apps: [{ script: process.argv[2] }] }");
    assert!(
        script[0].message.contains("process.argv[2]"),
        "{}",
        list(&script)
    );
    let apps = errors_of("const apps = require('./apps');\nmodule.exports = { apps };");
    assert!(
        apps[0].message.contains("`apps`, a variable"),
        "{}",
        list(&apps)
    );
    let element = errors_of("module.exports = { apps: [makeApp('a'), { script: 'b.js' }] }");
    assert_eq!(element[0].key, "apps[0]");
    let whole = errors_of("module.exports = merge(base, {});");
    assert!(whole[0].message.contains("merge(...)"), "{}", list(&whole));
}

fn errors_of(text: &str) -> Vec<Diagnostic> {
    errors(text)
}

#[test]
fn spreads_are_reported_and_may_explain_a_missing_script() {
    let text = "const base = { script: 'a.js' };\nmodule.exports = {\n  apps: [\n    { ...base, name: 'a' },\n  ],\n};\n";
    let errors = errors(text);
    assert!(
        errors[0].message.contains("a spread (...base) may hold it"),
        "{}",
        list(&errors)
    );
    let imported =
        ok("module.exports = { apps: [\n{ ...defaults, name: 'a', script: 'a.js' }\n] }");
    assert_warned(
        &imported,
        "apps[0]",
        "a spread (...defaults): the keys it adds are not imported",
    );
}

#[test]
fn environment_reads_become_tend_interpolation() {
    let text = "module.exports = { apps: [{\n  name: 'a',\n  script: 'a.js',\n  cwd: process.env.APP_DIR || '/srv/app',\n  args: ['--port', process.env.PORT || 3000],\n  env: { DB: process.env.DATABASE_URL, URL: `http://${process.env.HOST}:80` },\n}] }";
    let imported = ok(text);
    let svc = only(&imported);
    assert_eq!(svc["cwd"], "${APP_DIR:-/srv/app}");
    assert_eq!(
        svc["args"],
        json!(["node", "a.js", "--port", "${PORT:-3000}"])
    );
    assert_eq!(svc["env"]["DB"], "${DATABASE_URL:-}");
    assert_eq!(svc["env"]["URL"], "http://${HOST:-}:80");
}

#[test]
fn top_level_keys() {
    let imported = ok(
        "module.exports = {\n  apps: [{ script: 'a.js' }],\n  static: [{ port: 8080 }],\n  appz: [],\n}",
    );
    assert_warned(&imported, "static", "static file server");
    assert_warned(&imported, "appz", "did you mean `apps`?");
}

#[test]
fn files_that_cannot_be_imported() {
    let empty = errors("module.exports = { apps: [] }");
    assert!(empty[0].message.contains("no apps"), "{}", list(&empty));
    let syntax = errors(
        "module.exports = {\n  apps: [\n    { script: 'a.js' }\n    { script: 'b.js' }\n  ]\n}",
    );
    assert_eq!(syntax[0].line, 4);
    assert!(
        syntax[0]
            .message
            .starts_with("cannot read the file: expected `,` or `]`"),
        "{}",
        list(&syntax)
    );
    let no_export = errors("const apps = [];\n");
    assert!(
        no_export[0].message.contains("module.exports"),
        "{}",
        list(&no_export)
    );
    let not_app = errors("module.exports = { apps: ['a.js'] }");
    assert!(not_app[0].message.contains("an app must be an object"));
    let yaml = import(Path::new("e.yaml"), "apps:\n  - script: [\n", None).unwrap_err();
    assert_eq!(yaml[0].key, "");
}

#[test]
fn placeholders_and_dollars_are_kept_literal() {
    let imported = ok(&app(
        "name: 'a',\nscript: 'a.js',\nargs: ['{instance}', '$HOME', '${X}'],\nenv: { P: 'a{instance}' },",
    ));
    let svc = only(&imported);
    assert_eq!(
        svc["args"],
        json!(["node", "a.js", "{instance}", "$HOME", "$${X}"])
    );
    assert_warned(
        &imported,
        "apps[0].args",
        "tend replaces with the instance number",
    );
    assert_warned(
        &imported,
        "apps[0].env.P",
        "tend replaces with the instance number",
    );
}

#[test]
fn diagnostics_display_as_tend_does() {
    let d = Diagnostic {
        file: "eco.json".into(),
        line: 3,
        key: "apps[0].watch".into(),
        message: "m".into(),
    };
    assert_eq!(d.to_string(), "eco.json:3: apps[0].watch: m");
}
