//! Export, then import with tend's own supervisord importer: every setting both directions
//! carry must come back exactly, unless the exporter reported it.
//!
//! The comparison is one projection per service ([`check_service`]). It leaves out
//! `state_dir` (the importer puts it beside the imported file), the `TEND_*` variables
//! (tend's own) and `SUPERVISOR_*` (the importer adds supervisord's to every service),
//! `port_base` itself (compared through each instance's values) and the order of services.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::supervisord_generate::*;
use proptest::prelude::*;
use tend::config::model::{
    Condition, LogSpec, LogTarget, Manifest, OnUnready, RestartLimit, ServiceSpec,
};
use tend::export::export_supervisord;
use tend::import::{Reading, Source};

type Notes = BTreeMap<String, Vec<(String, String)>>;

fn import(conf: &Path) -> Result<Manifest, String> {
    let reading = Reading {
        source: Some(Source::Supervisord),
        environment: None,
        socket: None,
    };
    tend::import::load(conf, &reading)
        .map(|l| l.manifest)
        .map_err(|e| e.to_string())
}

/// The variables supervisord itself gives every child, which the importer adds to `env`.
const SUPERVISOR_VARS: [&str; 4] = [
    "SUPERVISOR_ENABLED",
    "SUPERVISOR_GROUP_NAME",
    "SUPERVISOR_PROCESS_NAME",
    "SUPERVISOR_SERVER_URL",
];

struct Diff(Vec<String>);

impl Diff {
    fn eq<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, a: T, b: T) {
        if a != b {
            self.0
                .push(format!("{what}: exported {a:?}, imported {b:?}"));
        }
    }
}

/// Restart delays for the first `n` failed starts, without jitter.
fn delays(svc: &ServiceSpec, n: u32) -> Vec<Duration> {
    (0..n.min(64)).map(|i| svc.backoff.delay(i, 0.0)).collect()
}

/// The log settings that matter: stderr only when not merged; rotation only when a
/// stream goes to a file.
#[derive(Debug, PartialEq)]
struct LogsProj {
    merge: bool,
    stdout: LogTarget,
    stderr: Option<LogTarget>,
    rotation: Option<(Option<u64>, u32)>,
    syslog: bool,
    events_stdout: bool,
    events_stderr: bool,
}

fn logs(l: &LogSpec) -> LogsProj {
    // Both streams into one file is a merge for both sides.
    let merge = l.merge || (matches!(l.stdout, LogTarget::File(Some(_))) && l.stdout == l.stderr);
    let stderr = (!merge).then(|| l.stderr.clone());
    let files =
        matches!(l.stdout, LogTarget::File(_)) || matches!(stderr, Some(LogTarget::File(_)));
    LogsProj {
        merge,
        stdout: l.stdout.clone(),
        stderr,
        rotation: files.then_some((l.max_size, l.backups)),
        syslog: l.syslog.is_some(),
        events_stdout: l.events_stdout,
        events_stderr: l.events_stderr && !merge,
    }
}

fn check_service(
    a: &ServiceSpec,
    b: &ServiceSpec,
    base: &Path,
    notes: &Notes,
    exported: &[&str],
) -> Vec<String> {
    let n = |setting: &str| noted(notes, &a.name, setting);
    let mut d = Diff(Vec::new());
    d.eq("instances", a.instances, b.instances);
    if a.instances == b.instances {
        for i in 0..a.instances {
            let (x, mut y) = (run_of(a, i, base), run_of(b, i, base));
            for var in SUPERVISOR_VARS {
                y.env.remove(var);
            }
            let mut x_env = x.env.clone();
            for key in x.env.keys() {
                if n(&format!("env.{key}")) {
                    x_env.remove(key);
                    y.env.remove(key);
                }
            }
            d.eq(&format!("instance {i} argv"), &x.argv, &y.argv);
            if !n("cwd") {
                d.eq(&format!("instance {i} cwd"), &x.cwd, &y.cwd);
            }
            d.eq(&format!("instance {i} env"), &x_env, &y.env);
        }
    }
    d.eq("user", &a.user, &b.user);
    d.eq("umask", a.umask, b.umask);
    d.eq("autostart", a.autostart, b.autostart);
    if !n("kind") {
        d.eq("kind", a.kind, b.kind);
    }
    d.eq("restart", a.restart, b.restart);
    d.eq("exit_codes", &a.exit_codes, &b.exit_codes);
    if !n("min_uptime") {
        d.eq("min_uptime", a.min_uptime, b.min_uptime);
    }
    if !n("restart_limit") {
        d.eq("restart_limit", a.restart_limit, b.restart_limit);
        d.eq("max_restarts", a.max_restarts, b.max_restarts);
        if a.restart_limit == RestartLimit::Window {
            d.eq("restart_window", a.restart_window, b.restart_window);
        }
        if !n("backoff") {
            d.eq(
                "backoff delays",
                delays(a, a.max_restarts),
                delays(b, a.max_restarts),
            );
            if a.max_restarts > 0 {
                d.eq("backoff jitter", a.backoff.jitter, b.backoff.jitter);
            }
        }
    }
    if !n("cooldown") {
        d.eq("cooldown", a.cooldown, b.cooldown);
    }
    d.eq("stop_signal", a.stop_signal, b.stop_signal);
    if !n("stop_timeout") {
        d.eq("stop_timeout", a.stop_timeout, b.stop_timeout);
    }
    if !n("priority") {
        d.eq("priority", a.priority, b.priority);
    }
    if !n("groups") {
        d.eq("groups", &a.groups, &b.groups);
    }
    let deps = |s: &ServiceSpec| -> Vec<String> {
        s.depends_on
            .iter()
            .filter(|x| exported.contains(&x.service.as_str()))
            .map(|x| x.service.clone())
            .collect()
    };
    d.eq("depends_on", deps(a), deps(b));
    if !n("depends_on.condition") {
        let conditions = |s: &ServiceSpec| -> Vec<(Condition, OnUnready)> {
            s.depends_on
                .iter()
                .filter(|x| exported.contains(&x.service.as_str()))
                .map(|x| (x.condition, x.on_unready))
                .collect()
        };
        d.eq("depends_on conditions", conditions(a), conditions(b));
    }
    let mut a_logs = a.logs.clone();
    if n("logs.merge") {
        // Not written (an event listener): the streams stay apart.
        a_logs.merge = false;
    }
    let (mut la, lb) = (logs(&a_logs), logs(&b.logs));
    for stream in ["stdout", "stderr"] {
        if n(&format!("logs.{stream}")) {
            // Written as AUTO.
            let auto = LogTarget::File(None);
            if stream == "stdout" {
                la.stdout = auto;
            } else if la.stderr.is_some() {
                la.stderr = Some(auto);
            }
        }
    }
    if n("logs.events") {
        la.events_stderr = lb.events_stderr;
    }
    if n("logs.max_size") {
        la.rotation = lb.rotation;
    }
    d.eq("logs", la, lb);
    for (field, same) in [
        (
            "logs.rotate_every",
            a.logs.rotate_every == b.logs.rotate_every,
        ),
        ("logs.compress", a.logs.compress == b.logs.compress),
        ("logs.timestamps", a.logs.timestamps == b.logs.timestamps),
        ("logs.format", a.logs.format == b.logs.format),
        ("logs.tail", a.logs.tail == b.logs.tail),
        ("logs.max_line", a.logs.max_line == b.logs.max_line),
        ("logs.journal", a.logs.journal == b.logs.journal),
    ] {
        if !same && !n(field) {
            d.0.push(format!("{field} differs and is not reported"));
        }
    }
    let listener = |s: &ServiceSpec| {
        s.event_listener.as_ref().map(|l| {
            let names: Vec<&str> = l.subscription.types().iter().map(|t| t.name()).collect();
            (names, l.buffer_size)
        })
    };
    d.eq("event_listener", listener(a), listener(b));
    for (field, same) in [
        ("readiness", a.readiness == b.readiness),
        ("liveness", a.liveness == b.liveness),
        ("startup", a.startup == b.startup),
        ("watchdog", a.watchdog == b.watchdog),
        ("critical", a.critical == b.critical),
        ("group", a.group == b.group),
    ] {
        if !same && !n(field) {
            d.0.push(format!("{field} differs and is not reported"));
        }
    }
    d.0
}

fn check_daemon(a: &Manifest, b: &Manifest, notes: &Notes) -> Vec<String> {
    let n = |setting: &str| noted(notes, "[tend]", setting);
    let mut d = Diff(Vec::new());
    d.eq("socket", &a.daemon.socket, &b.daemon.socket);
    d.eq("min_fds", a.daemon.min_fds, b.daemon.min_fds);
    d.eq("min_procs", a.daemon.min_procs, b.daemon.min_procs);
    d.eq("log.max_size", a.daemon.log.max_size, b.daemon.log.max_size);
    d.eq("log.backups", a.daemon.log.backups, b.daemon.log.backups);
    let reported = notes
        .get("[tend]")
        .is_some_and(|v| v.iter().any(|(s, _)| s.starts_with("http")));
    if !reported {
        let http = |m: &Manifest| {
            m.daemon
                .http
                .as_ref()
                .map(|h| (h.listen, h.basic_auth.clone()))
        };
        d.eq("http", http(a), http(b));
    }
    if !n("socket_group") {
        d.eq(
            "socket_group",
            &a.daemon.socket_group,
            &b.daemon.socket_group,
        );
    }
    d.0
}

/// Compare, returning every difference the exporter did not report.
fn check(original: &Manifest, imported: &Manifest, export: &tend::export::Export) -> Vec<String> {
    let notes = notes(export);
    let base = original.base_dir();
    let exported: Vec<&str> = original
        .services
        .iter()
        .filter(|s| !left_out(&notes, &s.name))
        .map(|s| s.name.as_str())
        .collect();
    let mut out = check_daemon(original, imported, &notes);
    let names = |m: &Manifest| -> Vec<String> {
        let mut v: Vec<String> = m.services.iter().map(|s| s.name.clone()).collect();
        v.sort();
        v
    };
    let mut want: Vec<String> = exported.iter().map(|s| s.to_string()).collect();
    want.sort();
    if want != names(imported) {
        out.push(format!(
            "services: exported {want:?}, imported {:?}",
            names(imported)
        ));
        return out;
    }
    for a in original
        .services
        .iter()
        .filter(|s| exported.contains(&s.name.as_str()))
    {
        let b = imported
            .service(&a.name)
            .expect("UNWRAP: names compared above");
        for diff in check_service(a, b, &base, &notes, &exported) {
            out.push(format!("{}: {diff}", a.name));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(256), ..ProptestConfig::default() })]

    #[test]
    fn export_then_import_gives_back_what_was_not_reported(spec in manifest(false)) {
        let dir = tempfile::tempdir().unwrap();
        let original = load(dir.path(), &spec);
        let export = export_supervisord(&original, &[]);
        // Elsewhere than the manifest, so nothing depends on the file's own directory.
        let conf_dir = dir.path().join("conf");
        std::fs::create_dir(&conf_dir).unwrap();
        let conf = write_conf(&conf_dir, &export);
        let text = &export.files[0].1;
        let imported = import(&conf).map_err(|e| {
            TestCaseError::fail(format!("tend cannot import the export: {e}\n--- manifest\n{}\n--- conf\n{text}", spec.toml()))
        })?;
        let diffs = check(&original, &imported, &export);
        prop_assert!(
            diffs.is_empty(),
            "{}\n--- manifest\n{}\n--- conf\n{text}\n--- unmapped\n{:#?}",
            diffs.join("\n"),
            spec.toml(),
            export.unmapped
        );
    }
}

/// supervisord reads `environment=` with Python's shlex in non-POSIX mode (no escapes,
/// quotes inside a word kept, quoted tokens ending at their closing quote, ASCII word
/// characters) and strips quote characters from both ends of each value; the importer
/// reads it the same way. Expected values are what supervisord 4.3.0 gives the child
/// (tests/it/export/supervisord.rs runs it).
#[test]
fn environment_is_read_as_supervisord_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("supervisord.conf");
    let read = |environment: &str| {
        std::fs::write(
            &conf,
            format!("[supervisord]\n[program:p]\ncommand=/bin/true\nenvironment={environment}\n"),
        )
        .unwrap();
        import(&conf).map(|m| m.service("p").unwrap().env["A"].clone())
    };
    // Backslashes are kept as written, both of them.
    assert_eq!(read(r#"A="it's \\""#).unwrap(), r"it's \\");
    // `\"` escapes nothing: the quote closes the value.
    assert_eq!(read(r#"A="it's \""#).unwrap(), r"it's \");
    // Quotes inside a bare word are characters of it.
    assert_eq!(read(r#"A=a'b"c"#).unwrap(), r#"a'b"c"#);
    // Quote characters are stripped from both ends of every value.
    assert_eq!(read(r#"A="'x'""#).unwrap(), "x");
    // Refused by supervisord ("Unexpected end of key/value pairs"): a quoted token ends at
    // its closing quote, and `é` is no word character in non-POSIX shlex.
    for environment in [r#"A="a"'b',B=1"#, "A=aé,B=1"] {
        let error = read(environment).expect_err(environment);
        assert!(
            error.contains("Unexpected end of key/value pairs")
                && error.contains("supervisord.conf:4:")
                && error.contains("program:p.environment"),
            "{environment}: {error}"
        );
    }
}

/// With numprocs > 1, a `$` right before `%(process_num)d` is one service with
/// `instances`: the importer checks its `{instance}` template as tend reads it (`$${instance}`
/// is `${instance}` once loaded, `$0` for instance 0), not as escaped text (`$$0`).
#[test]
fn dollar_before_process_num_is_one_service_with_instances() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("supervisord.conf");
    std::fs::write(
        &conf,
        "[supervisord]\n[program:p]\ncommand=/bin/echo $%(process_num)d\nnumprocs=2\nprocess_name=%(program_name)s_%(process_num)d\n",
    )
    .unwrap();
    let imported = import(&conf).unwrap();
    let names: Vec<&str> = imported.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["p"]);
    let p = imported.service("p").unwrap();
    assert_eq!(p.instances, 2);
    for i in 0..2 {
        assert_eq!(
            run_of(p, i, dir.path()).argv,
            ["/bin/echo".to_string(), format!("${i}")]
        );
    }
}

/// With numprocs > 1 and `%(process_num)d` in the command, environment or directory, a
/// literal `{instance}` in a log file name (which tend does not expand there, so every
/// process writes that one file, as under supervisord) is kept as it is, in one service
/// with `instances`.
#[test]
fn literal_instance_in_a_log_name_is_one_service_with_instances() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("supervisord.conf");
    let log = format!("{}/{{instance}}.log", dir.path().display());
    std::fs::write(
        &conf,
        format!(
            "[supervisord]\n[program:p]\ncommand=/bin/true\nnumprocs=2\nprocess_name=%(program_name)s_%(process_num)d\nenvironment=N='%(process_num)d'\nstdout_logfile={log}\n"
        ),
    )
    .unwrap();
    let imported = import(&conf).unwrap();
    let names: Vec<&str> = imported.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["p"]);
    let p = imported.service("p").unwrap();
    assert_eq!(p.instances, 2);
    assert_eq!(p.env["N"], "{instance}");
    assert_eq!(p.logs.stdout, LogTarget::File(Some(log.into())));
}
