//! The plan between two manifests read from text: which services are added, removed,
//! changed (and how) or left alone, and the key each changed setting is named by.

use std::path::Path;

use super::*;
use crate::config::document::{self, Format};

/// A manifest from TOML text, validated as tend does (user names taken as written).
fn manifest(text: &str) -> Manifest {
    let root = document::parse(text, Format::Toml).expect("TOML");
    let read = crate::config::read_from_disk;
    crate::config::validate_tree(
        Path::new("/srv/app/tend.toml"),
        &root,
        &|_| None,
        &read,
        false,
    )
    .unwrap_or_else(|errors| panic!("invalid manifest: {errors:?}\n{text}"))
}

fn keys(change: &ServiceChange) -> Vec<&str> {
    change.settings.iter().map(|s| s.key.as_str()).collect()
}

const BASE: &str = r#"
[services.db]
command = "sleep 100"

[services.web]
command = "sleep 200"
env = { PORT = "8000", MODE = "prod" }
depends_on = ["db"]

[services.worker]
command = "sleep 300"
instances = 2
"#;

#[test]
fn the_same_manifest_changes_nothing() {
    let plan = plan(&manifest(BASE), &manifest(BASE));
    assert!(plan.is_empty());
    assert!(!plan.changes_services());
    assert_eq!(plan.unchanged, ["db", "web", "worker"]);
}

#[test]
fn added_and_removed_services_keep_their_files_order() {
    let new = r#"
[services.zeta]
command = "sleep 1"

[services.web]
command = "sleep 200"
env = { PORT = "8000", MODE = "prod" }

[services.alpha]
command = "sleep 1"
"#;
    let plan = plan(&manifest(BASE), &manifest(new));
    assert_eq!(plan.added, ["zeta", "alpha"]);
    assert_eq!(plan.removed, ["db", "worker"]);
    // web lost its dependency on the removed db: a supervisor-only change.
    assert_eq!(plan.changed.len(), 1);
    assert_eq!(keys(&plan.changed[0]), ["depends_on.db"]);
    assert_eq!(plan.changed[0].action, Action::Update);
    assert!(plan.unchanged.is_empty());
    assert!(plan.changes_services());
}

#[test]
fn a_new_command_restarts_only_that_service() {
    let new = BASE.replace("sleep 200", "sleep 201");
    let plan = plan(&manifest(BASE), &manifest(&new));
    assert_eq!(plan.changed.len(), 1);
    let web = &plan.changed[0];
    assert_eq!(web.name, "web");
    assert_eq!(keys(web), ["command"]);
    assert_eq!(web.action, Action::Restart);
    assert_eq!(plan.unchanged, ["db", "worker"]);
}

#[test]
fn each_environment_variable_is_named() {
    let new = BASE.replace(
        r#"env = { PORT = "8000", MODE = "prod" }"#,
        r#"env = { PORT = "8001", DEBUG = "1" }"#,
    );
    let plan = plan(&manifest(BASE), &manifest(&new));
    assert_eq!(
        keys(&plan.changed[0]),
        ["env.DEBUG", "env.MODE", "env.PORT"]
    );
    assert_eq!(plan.changed[0].action, Action::Restart);
}

#[test]
fn switching_to_args_or_a_shell_is_a_new_command() {
    let args = BASE.replace(r#"command = "sleep 200""#, r#"args = ["sleep", "200"]"#);
    // The same argv written as `args`: nothing to do.
    assert!(plan(&manifest(BASE), &manifest(&args)).is_empty());
    let shell = BASE.replace(
        r#"command = "sleep 200""#,
        "command = \"sleep 200\"\nshell = true",
    );
    let plan = plan(&manifest(BASE), &manifest(&shell));
    assert_eq!(keys(&plan.changed[0]), ["command"]);
}

#[test]
fn instances_between_two_or_more_scale_and_from_or_to_one_restart() {
    let scaled = |n: u32| BASE.replace("instances = 2", &format!("instances = {n}"));
    let up = plan(&manifest(BASE), &manifest(&scaled(3)));
    assert_eq!(up.changed[0].name, "worker");
    assert_eq!(up.changed[0].action, Action::Scale { from: 2, to: 3 });
    assert_eq!(up.changed[0].settings[0].effect, Effect::Scale);
    let down = plan(&manifest(&scaled(5)), &manifest(&scaled(2)));
    assert_eq!(down.changed[0].action, Action::Scale { from: 5, to: 2 });
    // `worker:0` becomes `worker`, or the other way: every instance is new.
    let to_one = plan(&manifest(&scaled(3)), &manifest(&scaled(1)));
    assert_eq!(to_one.changed[0].action, Action::Restart);
    let from_one = plan(&manifest(&scaled(1)), &manifest(&scaled(2)));
    assert_eq!(from_one.changed[0].action, Action::Restart);
}

#[test]
fn a_numbered_service_scales_through_one_without_renaming() {
    // What `tend scale` and the autoscaler make: `worker:0` stays `worker:0` at one.
    let numbered = |n: u32| {
        let mut m = manifest(BASE);
        let worker =
            std::sync::Arc::make_mut(m.services.iter_mut().find(|s| s.name == "worker").unwrap());
        worker.instances = n;
        worker.numbered = true;
        m
    };
    let down = plan(&numbered(3), &numbered(1));
    assert_eq!(down.changed[0].action, Action::Scale { from: 3, to: 1 });
    let up = plan(&numbered(1), &numbered(4));
    assert_eq!(up.changed[0].action, Action::Scale { from: 1, to: 4 });
    // From the file's single `db` to a numbered count: the names change, a restart.
    let mut scaled = manifest(BASE);
    let db = std::sync::Arc::make_mut(scaled.services.iter_mut().find(|s| s.name == "db").unwrap());
    db.instances = 3;
    db.numbered = true;
    let plan = plan(&manifest(BASE), &scaled);
    assert_eq!(plan.changed[0].name, "db");
    assert_eq!(plan.changed[0].action, Action::Restart);
    assert_eq!(keys(&plan.changed[0]), ["instances"]);
    // Only the mark, at 2 or more: the same names, nothing to do.
    let mut marked = manifest(BASE);
    std::sync::Arc::make_mut(&mut marked.services[2]).numbered = true;
    assert!(super::plan(&manifest(BASE), &marked).changed.is_empty());
}

#[test]
fn autoscale_settings_update_and_adding_it_to_one_instance_renames() {
    let auto = BASE.replace(
        "instances = 2",
        "instances = 2\nautoscale = { min = 2, max = 4, cpu = \"70%\" }",
    );
    let wider = auto.replace("max = 4", "max = 6");
    let plan = plan(&manifest(&auto), &manifest(&wider));
    assert_eq!(keys(&plan.changed[0]), ["autoscale"]);
    assert_eq!(plan.changed[0].action, Action::Update);
    // db, one instance `db`, autoscaled from 1: it becomes `db:0`.
    let db = BASE.replace(
        "command = \"sleep 100\"",
        "command = \"sleep 100\"\nautoscale = { max = 3, cpu = \"70%\" }",
    );
    let renamed = super::plan(&manifest(BASE), &manifest(&db));
    assert_eq!(renamed.changed[0].name, "db");
    assert_eq!(keys(&renamed.changed[0]), ["instances", "autoscale"]);
    assert_eq!(renamed.changed[0].action, Action::Restart);
}

#[test]
fn a_scale_with_a_restart_setting_restarts() {
    let new = BASE.replace("instances = 2", "instances = 3\nstop_timeout = \"3s\"");
    let plan = plan(&manifest(BASE), &manifest(&new));
    assert_eq!(keys(&plan.changed[0]), ["instances", "stop_timeout"]);
    assert_eq!(plan.changed[0].action, Action::Restart);
}

#[test]
fn a_scale_with_a_supervisor_setting_still_scales() {
    let new = BASE.replace("instances = 2", "instances = 4\npriority = 3");
    let plan = plan(&manifest(BASE), &manifest(&new));
    assert_eq!(keys(&plan.changed[0]), ["instances", "priority"]);
    assert_eq!(plan.changed[0].action, Action::Scale { from: 2, to: 4 });
}

#[test]
fn supervisor_settings_update_without_a_restart() {
    for (extra, key) in [
        ("autostart = false", "autostart"),
        ("priority = 7", "priority"),
        ("groups = [\"front\"]", "groups"),
        ("critical = true", "critical"),
    ] {
        let new = BASE.replace("instances = 2", &format!("instances = 2\n{extra}"));
        let plan = plan(&manifest(BASE), &manifest(&new));
        assert_eq!(keys(&plan.changed[0]), [key], "{extra}");
        assert_eq!(plan.changed[0].action, Action::Update, "{extra}");
    }
}

#[test]
fn dependencies_are_named_one_by_one() {
    let new = BASE
        .replace(
            r#"depends_on = ["db"]"#,
            r#"depends_on = { db = "healthy", worker = "started" }"#,
        )
        .replace("[services.db]", "[services.db]\ndepends_on = [\"worker\"]");
    let plan = plan(&manifest(BASE), &manifest(&new));
    let by_name = |name: &str| plan.changed.iter().find(|c| c.name == name).unwrap();
    assert_eq!(keys(by_name("web")), ["depends_on.db", "depends_on.worker"]);
    assert_eq!(by_name("web").action, Action::Update);
    assert_eq!(keys(by_name("db")), ["depends_on.worker"]);
}

/// Each setting added to a service that did not have it is named by its manifest key, with
/// the effect it has. A setting missing here still cannot be missed by `compare` (the
/// struct is destructured), but its key would be unchecked.
#[test]
fn every_setting_has_its_manifest_key() {
    use Effect::{Restart, Scale, Update};
    let base = "[services.web]\ncommand = \"sleep 1\"\ninstances = 2\n";
    let cases: &[(&str, &[&str], Effect)] = &[
        ("cwd = \"/tmp\"", &["cwd"], Restart),
        ("env = { A = \"1\" }", &["env.A"], Restart),
        ("user = \"nobody\"", &["user"], Restart),
        ("group = \"nogroup\"", &["group"], Restart),
        ("umask = \"022\"", &["umask"], Restart),
        ("kind = \"task\"", &["kind", "restart"], Restart),
        ("autostart = false", &["autostart"], Update),
        ("port_base = 8000", &["port_base"], Restart),
        ("restart = \"never\"", &["restart"], Restart),
        ("exit_codes = [0, 2]", &["exit_codes"], Restart),
        (
            "backoff = { initial = \"100ms\" }",
            &["backoff.initial"],
            Restart,
        ),
        ("backoff = { max = \"5s\" }", &["backoff.max"], Restart),
        ("backoff = { factor = 3.0 }", &["backoff.factor"], Restart),
        ("backoff = { jitter = 0.0 }", &["backoff.jitter"], Restart),
        (
            "backoff = { growth = \"linear\" }",
            &["backoff.growth"],
            Restart,
        ),
        ("min_uptime = \"5s\"", &["min_uptime"], Restart),
        ("max_restarts = 3", &["max_restarts"], Restart),
        ("restart_window = \"5m\"", &["restart_window"], Restart),
        ("restart_limit = \"unstable\"", &["restart_limit"], Restart),
        ("cooldown = \"1m\"", &["cooldown"], Restart),
        ("stop_signal = \"INT\"", &["stop_signal"], Restart),
        ("stop_timeout = \"3s\"", &["stop_timeout"], Restart),
        ("reload_signal = \"HUP\"", &["reload_signal"], Update),
        ("reload_timeout = \"5s\"", &["reload_timeout"], Update),
        ("max_surge = 2", &["max_surge"], Update),
        ("cron_restart = \"0 3 * * *\"", &["cron_restart"], Update),
        ("watch = [\"src\"]", &["watch"], Update),
        ("priority = 5", &["priority"], Update),
        ("groups = [\"front\"]", &["groups"], Update),
        ("logs = { merge = true }", &["logs.merge"], Restart),
        ("logs = { stdout = \"null\" }", &["logs.stdout"], Restart),
        ("logs = { stderr = \"null\" }", &["logs.stderr"], Restart),
        ("logs = { max_size = \"1MB\" }", &["logs.max_size"], Restart),
        (
            "logs = { rotate_every = \"1d\" }",
            &["logs.rotate_every"],
            Restart,
        ),
        ("logs = { backups = 3 }", &["logs.backups"], Restart),
        ("logs = { compress = true }", &["logs.compress"], Restart),
        (
            "logs = { timestamps = true }",
            &["logs.timestamps"],
            Restart,
        ),
        (
            "logs = { timestamp_format = \"%H:%M:%S\" }",
            &["logs.timestamps", "logs.timestamp_format"],
            Restart,
        ),
        ("logs = { format = \"json\" }", &["logs.format"], Restart),
        ("logs = { tail = 10 }", &["logs.tail"], Restart),
        (
            "logs = { max_line = \"1KiB\" }",
            &["logs.max_line"],
            Restart,
        ),
        ("logs = { syslog = true }", &["logs.syslog"], Restart),
        ("logs = { journal = true }", &["logs.journal"], Restart),
        (
            "logs = { events = [\"stdout\"] }",
            &["logs.events"],
            Restart,
        ),
        (
            "readiness = { tcp = \"127.0.0.1:1\" }",
            &["readiness"],
            Restart,
        ),
        (
            "liveness = { tcp = \"127.0.0.1:1\" }",
            &["liveness"],
            Restart,
        ),
        (
            "liveness = { tcp = \"127.0.0.1:1\" }\nstartup = { tcp = \"127.0.0.1:1\" }",
            &["liveness", "startup"],
            Restart,
        ),
        (
            "readiness = { notify = true }\nwatchdog = \"30s\"",
            &["readiness", "watchdog"],
            Restart,
        ),
        ("max_memory = \"1GB\"", &["max_memory"], Restart),
        ("memory_max = \"1GB\"", &["memory_max"], Restart),
        ("cpu_max = \"150%\"", &["cpu_max"], Restart),
        ("pids_max = 10", &["pids_max"], Restart),
        ("warn_cpu = \"90%\"", &["warn_cpu"], Restart),
        ("warn_memory = \"800MB\"", &["warn_memory"], Restart),
        ("gpus = [0]", &["gpus", "gpus_per_instance"], Restart),
        (
            "gpus = [0, 1]\ngpus_per_instance = 1",
            &["gpus", "gpus_per_instance"],
            Restart,
        ),
        ("max_gpu_memory = \"1GB\"", &["max_gpu_memory"], Restart),
        ("critical = true", &["critical"], Update),
        (
            "event_listener = { events = [\"TICK_60\"] }",
            &["event_listener"],
            Restart,
        ),
        ("instances = 3", &["instances"], Scale),
    ];
    let old = manifest(base);
    for (extra, want, effect) in cases {
        let text = if extra.starts_with("instances") {
            base.replace("instances = 2", extra)
        } else {
            format!("{base}{extra}\n")
        };
        let plan = plan(&old, &manifest(&text));
        assert_eq!(plan.changed.len(), 1, "{extra}");
        assert_eq!(keys(&plan.changed[0]), *want, "{extra}");
        let strongest = if plan.changed[0].settings.iter().any(|s| s.effect == Restart) {
            Restart
        } else {
            plan.changed[0].settings[0].effect
        };
        assert_eq!(strongest, *effect, "{extra}");
    }
}

#[test]
fn daemon_settings_are_listed_apart_and_change_no_service() {
    let new = format!(
        "[tend]\nmax_starting = 2\nsocket = \"/tmp/other.sock\"\nhistory = {{ enabled = false }}\n{BASE}"
    );
    let plan = plan(&manifest(BASE), &manifest(&new));
    assert_eq!(
        plan.daemon,
        ["tend.socket", "tend.max_starting", "tend.history"]
    );
    assert!(!plan.changes_services());
    assert!(!plan.is_empty());
    assert_eq!(plan.unchanged.len(), 3);
}

#[test]
fn sockets_wait_for_a_restart_of_tend_and_a_service_taking_one_restarts() {
    let old = manifest(&format!(
        "{BASE}\n[sockets.http]\nlisten = \"tcp://127.0.0.1:8080\"\n"
    ));
    let moved = manifest(&format!(
        "{BASE}\n[sockets.http]\nlisten = \"tcp://127.0.0.1:9090\"\n"
    ));
    let plan_moved = plan(&old, &moved);
    assert_eq!(plan_moved.daemon, ["sockets.http"]);
    assert!(!plan_moved.changes_services());

    let taking = manifest(&format!(
        "{}\n[sockets.http]\nlisten = \"tcp://127.0.0.1:8080\"\n",
        BASE.replace("sleep 100\"", "sleep 100\"\nsockets = [\"http\"]")
    ));
    let plan_taking = plan(&old, &taking);
    assert!(plan_taking.daemon.is_empty());
    assert_eq!(plan_taking.changed.len(), 1);
    assert_eq!(keys(&plan_taking.changed[0]), ["sockets"]);
    assert_eq!(plan_taking.changed[0].action, Action::Restart);
}
