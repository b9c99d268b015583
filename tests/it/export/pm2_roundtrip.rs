//! Round trip: tend manifest → `export_pm2` → ecosystem.config.json → tend's own PM2 importer
//! (`tend::import::load` with `Source::Pm2`) → a manifest again, compared with the original on
//! everything both directions carry.
//!
//! Manifests are generated as TOML text (through the `toml` crate, with tend's `$${` escape
//! for a literal `${`) and loaded with `tend::config::load`, so every one is a valid manifest.
//!
//! Two properties:
//! 1. **Nothing is lost silently**: every field of [`comparable`] that differs after the round
//!    trip has a note from the exporter for that service and setting.
//! 2. **What PM2 can carry comes back exactly**: the program (argv per instance), cwd, every
//!    environment variable per instance (so `{instance}`, `{port}`, `port_base`, `PORT`,
//!    `TEND_SERVICE`, `TEND_INSTANCE`), instances, autostart, user, the restart policy, the
//!    exit codes of `on-failure`, stop_timeout and min_uptime where PM2 can hold them,
//!    max_restarts (written N + 1, as PM2 gives up at its N-th unstable exit, after N − 1
//!    restarts, and read back as N − 1), and max_memory, never differ.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};
use tend::config::model::{
    BackoffSpec, Growth, LogTarget, Manifest, Program, RestartLimit, RestartPolicy, ServiceSpec,
};
use tend::export::pm2::{FILE_NAME, export_pm2};

// --- Generated manifests -----------------------------------------------------------------

/// Pieces of awkward strings: quotes, spaces, `$`, `%`, backslashes, newlines, braces,
/// tend's placeholders and interpolation syntax (as literal text), non-ASCII.
fn awkward() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-zA-Z0-9]{1,4}",
        Just(" ".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("$".to_string()),
        Just("$HOME".to_string()),
        Just("${".to_string()),
        Just("${X}".to_string()),
        Just("$${".to_string()),
        Just("%".to_string()),
        Just("%s".to_string()),
        Just("\\".to_string()),
        Just("\\n".to_string()),
        Just("\n".to_string()),
        Just("\t".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("{instance}".to_string()),
        Just("{port}".to_string()),
        Just("`;&|*?".to_string()),
        Just("é☃".to_string()),
        Just("--flag=".to_string()),
    ];
    prop::collection::vec(piece, 0..6).prop_map(|p| p.concat())
}

/// `backoff`: (initial, factor, max, jitter, linear growth).
type GenBackoff = (
    &'static str,
    Option<f64>,
    Option<&'static str>,
    Option<f64>,
    bool,
);

#[derive(Debug, Clone)]
struct Gen {
    /// The service is named `{name}-{index}`.
    name: String,
    shell: bool,
    program: String,
    args: Vec<String>,
    line: String,
    cwd: Option<String>,
    env: Vec<(String, String)>,
    instances: Option<i64>,
    port_base: Option<i64>,
    restart: Option<&'static str>,
    exit_codes: Option<Vec<i64>>,
    backoff: Option<GenBackoff>,
    min_uptime: Option<&'static str>,
    max_restarts: Option<i64>,
    restart_limit: Option<&'static str>,
    stop_timeout: Option<&'static str>,
    stop_signal: Option<&'static str>,
    user: Option<&'static str>,
    group: Option<&'static str>,
    autostart: Option<bool>,
    task: bool,
    groups: Vec<&'static str>,
    stdout: Option<String>,
    stderr: Option<String>,
    merge: Option<bool>,
    stamp: Option<&'static str>,
    json: bool,
    max_memory: Option<&'static str>,
    depends: Vec<(usize, &'static str)>,
    priority: Option<i64>,
    extra: Option<&'static str>,
    /// `cron_restart` for a service, `schedule` for a task.
    cron: Option<&'static str>,
    watch: Option<GenWatch>,
}

/// `watch`, `watch_ignore`, `watch_debounce`.
type GenWatch = (Vec<&'static str>, Vec<&'static str>, Option<&'static str>);

fn env_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Z][A-Z0-9_]{0,5}",
        1 => "[a-z_.:é-][a-zA-Z0-9 .:é-]{0,4}",
        1 => Just("PORT".to_string()),
        1 => Just("TEND_INSTANCE".to_string()),
        1 => Just("TEND_SERVICE".to_string()),
        1 => Just("NODE_APP_INSTANCE".to_string()),
    ]
}

fn env_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => awkward(),
        1 => Just("{instance}".to_string()),
        1 => Just("{port}".to_string()),
    ]
}

fn log_target() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some("null".to_string())),
        1 => Just(Some("inherit".to_string())),
        1 => Just(Some("logs/out put.log".to_string())),
        1 => Just(Some("/tmp/tend-export-pm2-test/b.log".to_string())),
        1 => Just(Some("logs/we ird$%'\"${x}.log".to_string())),
    ]
}

fn service() -> impl Strategy<Value = Gen> {
    let program = (
        any::<bool>(),
        prop_oneof![
            Just("/bin/sleep"),
            Just("server"),
            Just("./bin/app.js"),
            Just("python3")
        ],
        prop::collection::vec(awkward(), 0..4),
        awkward(),
        prop::option::of(prop_oneof![
            Just("dir with space/$x%".to_string()),
            Just("/srv/app-{instance}".to_string()),
            Just("/srv/${lit} {port}".to_string()),
            Just("/".to_string()),
        ]),
        prop::collection::vec((env_name(), env_value()), 0..5),
    );
    let counts = (
        prop::option::of(1i64..=3),
        prop::option::of(prop_oneof![Just(1024i64), Just(8000), Just(65000)]),
        prop::option::of(prop_oneof![
            Just("always"),
            Just("on-failure"),
            Just("never")
        ]),
        prop::option::of(prop::collection::vec(0i64..=255, 1..3)),
        prop::option::of((
            prop_oneof![Just("0s"), Just("500ms"), Just("1s"), Just("20s")],
            prop::option::of(prop_oneof![Just(1.0), Just(1.5), Just(2.0)]),
            prop::option::of(prop_oneof![Just("15s"), Just("30s")]),
            prop::option::of(prop_oneof![Just(0.0), Just(0.1)]),
            any::<bool>(),
        )),
        prop::option::of(prop_oneof![
            Just("50ms"),
            Just("100ms"),
            Just("1s"),
            Just("2500ms"),
            Just("1000.5ms")
        ]),
        prop::option::of(0i64..20),
        prop::option::of(prop_oneof![Just("window"), Just("unstable")]),
    );
    let stopping = (
        prop::option::of(prop_oneof![
            Just("0s"),
            Just("1600ms"),
            Just("10s"),
            Just("1.5s")
        ]),
        prop::option::of(prop_oneof![Just("INT"), Just("TERM"), Just("SIGHUP")]),
        prop::option::of(prop_oneof![Just("root"), Just("nobody"), Just("1234")]),
        prop::option::of(prop_oneof![Just("root"), Just("nogroup")]),
        prop::option::of(any::<bool>()),
        prop::bool::weighted(0.15),
        prop::collection::vec(prop_oneof![Just("grp-a"), Just("grp.b")], 0..3),
    );
    let logging = (
        log_target(),
        log_target(),
        prop::option::of(any::<bool>()),
        prop::option::of(prop_oneof![
            Just("timestamps"),
            Just("%Y-%m-%d %H:%M:%S:"),
            Just("[%H:%M] %%"),
        ]),
        prop::bool::weighted(0.1),
        prop::option::of(prop_oneof![Just("300MiB"), Just("1GB"), Just("12345")]),
    );
    let others = (
        prop::collection::vec(
            (
                0usize..4,
                prop_oneof![Just("started"), Just("healthy"), Just("completed")],
            ),
            0..2,
        ),
        prop::option::of(-2i64..3),
        prop::option::of(prop_oneof![
            Just("umask = \"027\""),
            Just("critical = true"),
            Just("readiness = { notify = true }"),
            Just("liveness = { tcp = \"127.0.0.1:{port}\" }"),
            Just("cooldown = \"1m\""),
            Just("memory_max = \"1GiB\""),
            Just("logs.rotate_every = \"1d\""),
            Just("logs.max_size = 0"),
        ]),
        prop::option::of(prop_oneof![
            Just("0 3 * * *"),
            Just("@hourly"),
            Just("*/5 9-17 * * mon-fri"),
            Just("30 2 1,15 * *"),
        ]),
        prop::option::of((
            prop::collection::vec(
                prop_oneof![
                    Just("src/**/*.py"),
                    Just("config"),
                    Just("../shared/*.conf"),
                    Just("/etc/app/*.conf"),
                    Just("logs"),
                ],
                1..3,
            ),
            prop::collection::vec(prop_oneof![Just("**/__pycache__"), Just("*.log")], 0..2),
            prop::option::of(prop_oneof![Just("200ms"), Just("1s"), Just("2.5s")]),
        )),
    );
    (
        "[a-z0-9][a-z0-9_.-]{0,5}",
        program,
        counts,
        stopping,
        logging,
        others,
    )
        .prop_map(
            |(
                name,
                (shell, program, args, line, cwd, env),
                (
                    instances,
                    port_base,
                    restart,
                    exit_codes,
                    backoff,
                    min_uptime,
                    max_restarts,
                    restart_limit,
                ),
                (stop_timeout, stop_signal, user, group, autostart, task, groups),
                (stdout, stderr, merge, stamp, json, max_memory),
                (depends, priority, extra, cron, watch),
            )| Gen {
                name,
                shell,
                program: program.to_string(),
                args,
                line,
                cwd,
                env,
                instances,
                port_base,
                restart,
                exit_codes,
                backoff,
                min_uptime,
                max_restarts,
                restart_limit,
                stop_timeout,
                stop_signal,
                user,
                group,
                autostart,
                task,
                groups,
                stdout,
                stderr,
                merge,
                stamp,
                json,
                max_memory,
                depends,
                priority,
                extra,
                cron,
                watch,
            },
        )
}

fn service_name(services: &[Gen], i: usize) -> String {
    format!("{}-{i}", services[i].name)
}

/// tend's escape for a literal `${` in interpolated strings.
fn esc(text: &str) -> String {
    text.replace("${", "$${")
}

/// The manifest as TOML text.
fn manifest_toml(services: &[Gen]) -> String {
    let mut text = String::new();
    for (i, g) in services.iter().enumerate() {
        let name = service_name(services, i);
        let mut t = toml::Table::new();
        if g.shell {
            t.insert("shell".into(), true.into());
            // Never empty: tend refuses an empty command.
            t.insert("command".into(), esc(&format!(": {}", g.line)).into());
        } else {
            let argv: Vec<toml::Value> = std::iter::once(g.program.clone())
                .chain(g.args.iter().cloned())
                .map(|a| esc(&a).into())
                .collect();
            t.insert("args".into(), argv.into());
        }
        if let Some(cwd) = &g.cwd {
            t.insert("cwd".into(), esc(cwd).into());
        }
        if !g.env.is_empty() {
            let mut env = toml::Table::new();
            for (k, v) in &g.env {
                env.insert(k.clone(), esc(v).into());
            }
            t.insert("env".into(), env.into());
        }
        let instances = g.instances.unwrap_or(1);
        if let Some(n) = g.instances {
            t.insert("instances".into(), n.into());
        }
        if let Some(p) = g.port_base {
            t.insert("port_base".into(), (p - instances).max(1).into());
        }
        if let Some(r) = g.restart {
            t.insert("restart".into(), r.into());
        }
        if let Some(codes) = &g.exit_codes {
            t.insert(
                "exit_codes".into(),
                codes
                    .iter()
                    .map(|c| toml::Value::from(*c))
                    .collect::<Vec<_>>()
                    .into(),
            );
        }
        if let Some((initial, factor, max, jitter, linear)) = g.backoff {
            let mut b = toml::Table::new();
            b.insert("initial".into(), initial.into());
            if let Some(f) = factor {
                b.insert("factor".into(), f.into());
            }
            // `max` below `initial` is refused by tend.
            if let Some(m) = max.filter(|_| initial != "20s") {
                b.insert("max".into(), m.into());
            }
            if let Some(j) = jitter {
                b.insert("jitter".into(), j.into());
            }
            if linear {
                b.insert("growth".into(), "linear".into());
            }
            t.insert("backoff".into(), b.into());
        }
        if let Some(m) = g.min_uptime {
            t.insert("min_uptime".into(), m.into());
        }
        if let Some(m) = g.max_restarts {
            t.insert("max_restarts".into(), m.into());
        }
        if let Some(l) = g.restart_limit {
            t.insert("restart_limit".into(), l.into());
        }
        if let Some(s) = g.stop_timeout {
            t.insert("stop_timeout".into(), s.into());
        }
        if let Some(s) = g.stop_signal {
            t.insert("stop_signal".into(), s.into());
        }
        if let Some(u) = g.user {
            t.insert("user".into(), u.into());
        }
        if let Some(gr) = g.group {
            t.insert("group".into(), gr.into());
        }
        if let Some(a) = g.autostart {
            t.insert("autostart".into(), a.into());
        }
        if g.task {
            t.insert("kind".into(), "task".into());
        }
        let groups: BTreeSet<&str> = g.groups.iter().copied().collect();
        if !groups.is_empty() {
            t.insert(
                "groups".into(),
                groups
                    .iter()
                    .map(|g| toml::Value::from(*g))
                    .collect::<Vec<_>>()
                    .into(),
            );
        }
        let mut logs = toml::Table::new();
        if let Some(o) = &g.stdout {
            logs.insert("stdout".into(), o.clone().into());
        }
        if let Some(e) = &g.stderr {
            logs.insert("stderr".into(), e.clone().replace("b.log", "c.log").into());
        }
        if let Some(m) = g.merge {
            logs.insert("merge".into(), m.into());
        }
        match g.stamp {
            Some("timestamps") => {
                logs.insert("timestamps".into(), true.into());
            }
            Some(format) => {
                logs.insert("timestamp_format".into(), format.into());
            }
            None => {}
        }
        if g.json {
            logs.insert("format".into(), "json".into());
        }
        if let Some(m) = g.max_memory {
            t.insert("max_memory".into(), m.into());
        }
        // Dependencies on earlier services only: never a cycle. `completed` needs a task.
        let mut deps = toml::Table::new();
        for (target, condition) in &g.depends {
            if *target < i {
                let condition = if *condition == "completed" && !services[*target].task {
                    "started"
                } else {
                    condition
                };
                deps.insert(service_name(services, *target), (*condition).into());
            }
        }
        if !deps.is_empty() {
            t.insert("depends_on".into(), deps.into());
        }
        if let Some(p) = g.priority {
            t.insert("priority".into(), p.into());
        }
        if let Some(cron) = g.cron {
            let key = if g.task { "schedule" } else { "cron_restart" };
            t.insert(key.into(), cron.into());
        }
        if let Some((paths, ignore, debounce)) = &g.watch {
            let list = |l: &[&str]| {
                toml::Value::from(l.iter().map(|p| toml::Value::from(*p)).collect::<Vec<_>>())
            };
            t.insert("watch".into(), list(paths));
            if !ignore.is_empty() {
                t.insert("watch_ignore".into(), list(ignore));
            }
            if let Some(d) = debounce {
                t.insert("watch_debounce".into(), (*d).into());
            }
        }
        let mut extra = String::new();
        match g.extra {
            Some(line) if line.starts_with("logs.") => {
                let (key, value) = line["logs.".len()..].split_once(" = ").unwrap();
                let value: toml::Value =
                    toml::from_str::<toml::Table>(&format!("v = {value}")).unwrap()["v"].clone();
                logs.insert(key.into(), value);
            }
            Some(line) => extra = format!("{line}\n"),
            None => {}
        }
        if !logs.is_empty() {
            t.insert("logs".into(), logs.into());
        }
        let mut root = toml::Table::new();
        let mut services_table = toml::Table::new();
        services_table.insert(name, t.into());
        root.insert("services".into(), services_table.into());
        let rendered = toml::to_string(&root).unwrap();
        // Extra keys go into the service's own table, before any sub-table header.
        let header_end = rendered.find('\n').unwrap() + 1;
        text.push_str(&rendered[..header_end]);
        text.push_str(&extra);
        text.push_str(&rendered[header_end..]);
        text.push('\n');
    }
    text
}

// --- The projection ----------------------------------------------------------------------

/// Where a stream ends up, as tend would write it.
#[derive(Debug, Clone, PartialEq)]
enum Dest {
    DefaultOut,
    DefaultErr,
    File(PathBuf),
    Null,
    Inherit,
}

fn dest(target: &LogTarget, default: Dest) -> Dest {
    match target {
        LogTarget::File(None) => default,
        LogTarget::File(Some(p)) => Dest::File(p.clone()),
        LogTarget::Null => Dest::Null,
        LogTarget::Inherit => Dest::Inherit,
    }
}

/// A backoff by what it does.
fn backoff_behaviour(b: &BackoffSpec) -> String {
    if b.initial.is_zero() {
        "restart at once".into()
    } else if b.growth == Growth::Exponential && b.factor == 1.0 {
        format!("fixed {:?} jitter {}", b.initial, b.jitter)
    } else {
        format!("{b:?}")
    }
}

/// One service, reduced to what both directions carry, field by field. The keys are tend's
/// setting names, as the exporter's notes use them (`env.NAME` per variable).
///
/// Compared by what it does, not how it is written:
/// - the program, cwd and environment per instance (`ServiceSpec::instance`), so that a
///   shell line and `/bin/sh -c LINE`, `{instance}`/`{port}` and their expansion, `port_base`
///   and PM2's `increment_var: "PORT"` are the same thing; `cwd` unset is the manifest's
///   directory;
/// - a stream merged into stdout goes where stdout goes; a backoff starting at 0 never waits,
///   whatever the rest says, and a factor of 1 has no use for `max`.
///
/// Left out: `name` (services are matched by it), `port_base` itself (only its effect on
/// the environment and strings counts), and, for a service that never restarts, the restart
/// tuning (`backoff`, `min_uptime`, `max_restarts`, `restart_limit`, `restart_window`), which
/// PM2 has no use for with `autorestart: false` and the importer drops; log rotation when
/// nothing is written to a file or the service does not rotate (PM2 never rotates; the
/// importer gives tend's default rotation, which is then ignored).
fn comparable(spec: &ServiceSpec, base: &Path) -> BTreeMap<String, String> {
    let mut c = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        c.insert(k.to_string(), v);
    };
    let instances: Vec<_> = (0..spec.instances).map(|i| spec.instance(i)).collect();
    let argv = |p: &Program| match p {
        Program::Exec(argv) => argv.clone(),
        Program::Shell(line) => vec!["/bin/sh".into(), "-c".into(), line.clone()],
    };
    put(
        "command",
        format!(
            "{:?}",
            instances
                .iter()
                .map(|i| argv(&i.program))
                .collect::<Vec<_>>()
        ),
    );
    let base = base.to_string_lossy().into_owned();
    put(
        "cwd",
        format!(
            "{:?}",
            instances
                .iter()
                .map(|i| i.cwd.clone().unwrap_or(base.clone()))
                .collect::<Vec<_>>()
        ),
    );
    let vars: BTreeSet<&String> = instances.iter().flat_map(|i| i.env.keys()).collect();
    for var in vars {
        let values: Vec<Option<String>> =
            instances.iter().map(|i| i.env.get(var).cloned()).collect();
        put(&format!("env.{var}"), format!("{values:?}"));
    }
    put("user", format!("{:?}", spec.user));
    put("group", format!("{:?}", spec.group));
    put("umask", format!("{:?}", spec.umask));
    put("kind", format!("{:?}", spec.kind));
    put("autostart", format!("{:?}", spec.autostart));
    put("instances", format!("{:?}", spec.instances));
    put("restart", format!("{:?}", spec.restart));
    put("exit_codes", format!("{:?}", spec.exit_codes));
    if spec.restart != RestartPolicy::Never {
        put("backoff", backoff_behaviour(&spec.backoff));
        put("min_uptime", format!("{:?}", spec.min_uptime));
        put("max_restarts", format!("{}", spec.max_restarts));
        let window = match spec.restart_limit {
            RestartLimit::Window => format!(" within {:?}", spec.restart_window),
            RestartLimit::Unstable => String::new(),
        };
        put("restart_limit", format!("{:?}{window}", spec.restart_limit));
    }
    put("cooldown", format!("{:?}", spec.cooldown));
    put("stop_signal", format!("{:?}", spec.stop_signal));
    put("stop_timeout", format!("{:?}", spec.stop_timeout));
    put("depends_on", format!("{:?}", spec.depends_on));
    put("priority", format!("{:?}", spec.priority));
    put("groups", format!("{:?}", spec.groups));
    put("critical", format!("{:?}", spec.critical));
    let logs = &spec.logs;
    let out = dest(&logs.stdout, Dest::DefaultOut);
    let err = if logs.merge {
        out.clone()
    } else {
        dest(&logs.stderr, Dest::DefaultErr)
    };
    let to_files = matches!(out, Dest::DefaultOut | Dest::File(_))
        || matches!(err, Dest::DefaultErr | Dest::File(_));
    put("logs.stdout", format!("{out:?}"));
    put("logs.stderr", format!("{err:?}"));
    // Rotation only where the service rotates files: PM2 itself never rotates, so "no
    // rotation" has nothing to carry (the importer then gives tend's default rotation).
    if to_files && (logs.max_size.is_some() || logs.rotate_every.is_some()) {
        put(
            "logs.rotation",
            format!(
                "{:?} {:?} {} {}",
                logs.max_size, logs.rotate_every, logs.backups, logs.compress
            ),
        );
    }
    put(
        "logs.timestamp_format",
        format!("{} {:?}", logs.timestamps, logs.timestamp_format),
    );
    put("logs.format", format!("{:?}", logs.format));
    put("logs.tail", format!("{}", logs.tail));
    put("logs.max_line", format!("{}", logs.max_line));
    put("logs.syslog", format!("{:?}", logs.syslog));
    put("logs.journal", format!("{:?}", logs.journal));
    put(
        "logs.events",
        format!("{} {}", logs.events_stdout, logs.events_stderr),
    );
    put("readiness", format!("{:?}", spec.readiness));
    put("liveness", format!("{:?}", spec.liveness));
    put("startup", format!("{:?}", spec.startup));
    put("watchdog", format!("{:?}", spec.watchdog));
    // By what they fire on: a macro and its five fields are the same.
    put(
        "cron_restart",
        format!("{:?}", spec.cron_restart.as_ref().map(|c| c.fields())),
    );
    put(
        "schedule",
        format!("{:?}", spec.schedule.as_ref().map(|c| c.fields())),
    );
    // Globs by the paths they stand for (relative to the manifest, or absolute).
    if let Some(w) = &spec.watch {
        let absolute = |list: &[tend::config::glob::PathPattern]| {
            list.iter().map(|p| p.absolute.clone()).collect::<Vec<_>>()
        };
        put(
            "watch",
            format!("{:?} {:?}", absolute(&w.paths), w.debounce),
        );
        put("watch_ignore", format!("{:?}", absolute(&w.ignore)));
    }
    put("event_listener", format!("{:?}", spec.event_listener));
    let r = &spec.resources;
    put("max_memory", format!("{:?}", r.max_memory));
    put("memory_max", format!("{:?}", r.memory_max));
    put("cpu_max", format!("{:?}", r.cpu_max));
    put("pids_max", format!("{:?}", r.pids_max));
    put("warn_cpu", format!("{:?}", r.warn_cpu));
    put("warn_memory", format!("{:?}", r.warn_memory));
    put("gpus", format!("{:?} {}", r.gpus, r.gpus_per_instance));
    put("max_gpu_memory", format!("{:?}", r.max_gpu_memory));
    c
}

/// The notes that may explain a difference in `field`.
fn explained_by(field: &str) -> Vec<&str> {
    match field {
        "logs.stdout" => vec!["logs.stdout"],
        "logs.stderr" => vec!["logs.stderr", "logs.merge", "logs.stdout"],
        "logs.rotation" => vec![
            "logs.max_size",
            "logs.rotate_every",
            "logs.backups",
            "logs.compress",
        ],
        // A service that restarts unstable runs with restart != always.
        "restart_limit" => vec!["restart_limit"],
        // PM2 has one key for both; which one comes back depends on autorestart.
        "cron_restart" | "schedule" | "kind" => vec!["cron_restart", "schedule", "kind"],
        other => vec![other],
    }
}

/// Whether the exporter must wrap the program in `/bin/sh -c`.
fn wrapped(original: &ServiceSpec) -> bool {
    // A umask, and, with several instances, what differs per instance beyond PM2's two
    // numbered variables (TEND_INSTANCE, and PORT or the first variable that is
    // `{instance}`): a placeholder inside a string, another `{instance}` variable. The
    // wrapper does the same at run time (the PM2 test checks it), but the program, cwd and
    // those variables then read differently (and are reported).
    let has = |t: &str| {
        t.contains("{instance}") || (original.port_base.is_some() && t.contains("{port}"))
    };
    let port_counts =
        original.port_base.is_some() && original.env.get("PORT").is_none_or(|v| v == "{port}");
    let numbered = 1 + original
        .env
        .iter()
        .filter(|(k, v)| *v == "{instance}" && *k != "TEND_INSTANCE" && *k != "TEND_SERVICE")
        .count();
    let strings: Vec<&String> = match &original.program {
        Program::Exec(argv) => argv.iter().collect(),
        Program::Shell(line) => vec![line],
    };
    original.umask.is_some()
        || original.instances > 1
            && (strings.iter().any(|s| has(s))
                || original.cwd.as_deref().is_some_and(has)
                || original.env.iter().any(|(k, v)| {
                    // tend's own variables replace the service's values.
                    let tends = k == "TEND_INSTANCE" || k == "TEND_SERVICE";
                    !tends
                        && has(v)
                        && v != "{instance}"
                        && !(k == "PORT" && v == "{port}" && port_counts)
                })
                || numbered > if port_counts { 1 } else { 2 })
}

/// Is `field` one PM2 (and the importer) can always carry for this original service?
fn must_match(field: &str, original: &ServiceSpec) -> bool {
    let whole_ms = |d: Duration| d.as_nanos().is_multiple_of(1_000_000);
    let wrapped = wrapped(original);
    match field {
        "command" | "cwd" => !wrapped,
        f if f.starts_with("env.") => !wrapped,
        "instances" | "autostart" | "user" | "max_memory" | "restart" | "max_restarts" => true,
        "exit_codes" => original.restart == RestartPolicy::OnFailure,
        "stop_timeout" => !original.stop_timeout.is_zero() && whole_ms(original.stop_timeout),
        "min_uptime" => {
            original.min_uptime >= Duration::from_millis(100) && whole_ms(original.min_uptime)
        }
        "group" => original.user.is_some(),
        "watch" => true,
        "cron_restart" => {
            original.kind == tend::config::model::Kind::Service
                && original.restart != RestartPolicy::Never
        }
        "schedule" => {
            original.kind == tend::config::model::Kind::Task
                && original.restart == RestartPolicy::Never
        }
        "groups" => original.groups.len() <= 1,
        _ => false,
    }
}

fn round_trip(services: &[Gen]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let manifest_path = dir.path().join("tend.toml");
    let text = manifest_toml(services);
    std::fs::write(&manifest_path, &text).unwrap();
    let original: Manifest = match tend::config::load(&manifest_path) {
        Ok(m) => m,
        // Generated combinations tend refuses (none expected): say which.
        Err(e) => return Err(TestCaseError::fail(format!("{e}\n{text}"))),
    };

    let export = export_pm2(&original, &[]);
    prop_assert_eq!(export.files.len(), 1);
    let (name, json) = &export.files[0];
    prop_assert_eq!(name, FILE_NAME);
    // Elsewhere than the manifest, so that the exported cwd must be explicit.
    let out = dir.path().join("exported");
    std::fs::create_dir(&out).unwrap();
    let eco_path = out.join(name);
    std::fs::write(&eco_path, json).unwrap();

    let reading = tend::import::Reading {
        source: Some(tend::import::Source::Pm2),
        environment: None,
        socket: None,
    };
    let loaded = tend::import::load(&eco_path, &reading)
        .map_err(|e| TestCaseError::fail(format!("import failed: {e}\n{text}\n{json}")))?;
    for w in &loaded.warnings {
        let w = w.to_string();
        prop_assert!(
            !w.contains("not a PM2 option") && !w.contains("PM2 refuses"),
            "the importer objects to a written key: {}\n{}",
            w,
            json
        );
    }
    let imported = &loaded.manifest;
    prop_assert_eq!(imported.services.len(), original.services.len());

    for spec in &original.services {
        let Some(back) = imported.service(&spec.name) else {
            return Err(TestCaseError::fail(format!(
                "{} missing after import\n{json}",
                spec.name
            )));
        };
        let wrapper_noted = export.unmapped.iter().any(|(s, k, why)| {
            *s == spec.name && k == "command" && why.contains("`/bin/sh -c` wrapper")
        });
        prop_assert_eq!(
            wrapped(spec),
            wrapper_noted,
            "{}: wrapped?\n{}\n{}",
            spec.name,
            text,
            json
        );
        let a = comparable(spec, &original.base_dir());
        let b = comparable(back, &imported.base_dir());
        let notes: Vec<&str> = export
            .unmapped
            .iter()
            .filter(|(s, _, _)| *s == spec.name)
            .map(|(_, k, _)| k.as_str())
            .collect();
        let fields: BTreeSet<&String> = a
            .keys()
            .chain(b.keys().filter(|k| *k != "logs.rotation"))
            .collect();
        for field in fields {
            let (x, y) = (a.get(field), b.get(field));
            if x == y {
                continue;
            }
            prop_assert!(
                !must_match(field, spec),
                "{}.{} must come back exactly:\n  original: {:?}\n  imported: {:?}\n{}\n{}",
                spec.name,
                field,
                x,
                y,
                text,
                json
            );
            prop_assert!(
                explained_by(field).iter().any(|k| notes.contains(k)),
                "{}.{} differs without a note:\n  original: {:?}\n  imported: {:?}\n  notes: {:?}\n{}\n{}",
                spec.name,
                field,
                x,
                y,
                notes,
                text,
                json
            );
        }
    }
    Ok(())
}

proptest! {
    // 512 cases unless PROPTEST_CASES says otherwise.
    #![proptest_config(Config {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(512),
        ..Config::default()
    })]

    #[test]
    fn export_then_import_gives_back_the_manifest(
        services in prop::collection::vec(service(), 1..5)
    ) {
        round_trip(&services)?;
    }
}

/// A fixed case with every awkward string at once, so a failure here needs no shrinking.
#[test]
fn awkward_strings_survive() {
    let service = |shell: bool| Gen {
        name: "svc".into(),
        shell,
        program: "/bin/sleep".into(),
        args: vec![
            "a b".into(),
            "q'uote\"d".into(),
            "$HOME ${X} $${".into(),
            "100%".into(),
            "back\\slash".into(),
            "new\nline".into(),
            String::new(),
            "{instance}-{port}".into(),
        ],
        line: "printf '%s\\n' \"$@\" ${X:-} {instance}".into(),
        cwd: Some("dir with space/$x%".into()),
        env: vec![
            ("A".into(), "x\"y'z $HOME ${Y} %s \\ \n".into()),
            ("B".into(), "{instance}".into()),
            ("C".into(), "{port}".into()),
        ],
        instances: Some(2),
        port_base: Some(8000),
        restart: Some("on-failure"),
        exit_codes: Some(vec![0, 3]),
        backoff: Some(("500ms", Some(1.5), Some("15s"), Some(0.0), false)),
        min_uptime: Some("2500ms"),
        max_restarts: Some(4),
        restart_limit: Some("unstable"),
        stop_timeout: Some("1600ms"),
        stop_signal: Some("INT"),
        user: Some("nobody"),
        group: Some("nogroup"),
        autostart: Some(false),
        task: false,
        groups: vec!["grp-a"],
        stdout: Some("logs/out put.log".into()),
        stderr: Some("null".into()),
        merge: None,
        stamp: Some("%Y-%m-%d %H:%M:%S:"),
        json: false,
        max_memory: Some("300MiB"),
        depends: vec![],
        priority: None,
        extra: None,
        cron: Some("@daily"),
        watch: Some((
            vec!["src/**/*.py", "/etc/app/*.conf"],
            vec!["*.log"],
            Some("1s"),
        )),
    };
    round_trip(&[service(false), service(true)]).unwrap();
}

/// Names tend accepts come back as they are, without a warning, even those the importer
/// once "repaired" (`a--0` became `a-0`, `web-` became `web`): only names tend refuses are
/// renamed.
#[test]
fn valid_names_come_back_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tend.toml");
    std::fs::write(
        &path,
        "[services.a--0]\ncommand = \"sleep 1\"\n[services.web-]\ncommand = \"sleep 1\"\n",
    )
    .unwrap();
    let manifest = tend::config::load(&path).unwrap();
    let names =
        |m: &Manifest| -> Vec<String> { m.services.iter().map(|s| s.name.clone()).collect() };
    assert_eq!(names(&manifest), ["a--0", "web-"], "valid tend names");
    let export = export_pm2(&manifest, &[]);
    let eco = dir.path().join(FILE_NAME);
    std::fs::write(&eco, &export.files[0].1).unwrap();
    let reading = tend::import::Reading {
        source: Some(tend::import::Source::Pm2),
        environment: None,
        socket: None,
    };
    let loaded = tend::import::load(&eco, &reading).unwrap();
    assert_eq!(names(&loaded.manifest), ["a--0", "web-"]);
    assert!(
        !loaded
            .warnings
            .iter()
            .any(|w| w.to_string().contains("is not a valid tend service name")),
        "{:?}",
        loaded.warnings
    );
}
