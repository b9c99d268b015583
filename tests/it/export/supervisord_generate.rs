//! Shared by the property tests: a generator of tend manifests (as TOML text, so tend's own
//! loader validates them), TOML rendering, and what supervisord should see for each
//! instance.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use tend::config::model::{Manifest, Program, ServiceSpec};

/// How many cases a property test runs: `PROPTEST_CASES` when set, else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------
// Strings
// ---------------------------------------------------------------------------------------

/// Pieces that each break some quoting rule: shell and shlex quotes, `$` and `${` (tend's
/// interpolation), `%` and `%(here)s` (supervisord's), INI comments (` #`, ` ;`), line
/// breaks, Python-only whitespace, placeholders, non-ASCII.
const AWKWARD: &[&str] = &[
    "a",
    "Z",
    "0",
    "s",
    " ",
    "  ",
    "\t",
    "'",
    "\"",
    "$",
    "${",
    "$$",
    "{",
    "}",
    "%",
    "%%",
    "%(here)s",
    "%(program_name)s",
    "(",
    ")",
    "\\",
    "\\\\",
    "#",
    ";",
    " #",
    " ;",
    "\n",
    ",",
    "=",
    ":",
    "é",
    "€",
    "😀",
    "\u{1f}",
    "\u{a0}",
    "~",
    "*",
    "`",
    "{instance}",
    "{port}",
];

/// A string made of awkward pieces.
pub fn awkward(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(AWKWARD), 0..max).prop_map(|p| p.concat())
}

/// A string that is not blank (a command line).
pub fn awkward_line() -> impl Strategy<Value = String> {
    awkward(8).prop_map(|s| format!("x{s}"))
}

/// Rarely, a carriage return: supervisord.conf cannot hold one, so it must be reported.
pub fn maybe_cr(s: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    (s, prop::bool::weighted(0.03)).prop_map(|(s, cr)| if cr { format!("{s}\r") } else { s })
}

/// A TOML basic string: `"…"` with escapes; `${` written `$${` (tend's literal `${`).
pub fn toml_str(s: &str) -> String {
    let s = s.replace("${", "$${");
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------------------
// Manifests
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub enum Prog {
    Args(Vec<String>),
    Shell(String),
}

#[derive(Debug, Clone, Default)]
pub struct Logs {
    pub merge: Option<bool>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    pub max_size: Option<&'static str>,
    pub backups: Option<u32>,
    pub syslog: Option<bool>,
    pub events: Option<bool>,
    pub timestamps: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct Svc {
    pub program: Prog,
    pub cwd: Option<String>,
    pub env: Vec<(String, String)>,
    pub instances: Option<u32>,
    pub port_base: Option<u16>,
    pub task: bool,
    pub restart: Option<&'static str>,
    pub restart_limit: Option<&'static str>,
    pub max_restarts: Option<u32>,
    pub min_uptime: Option<&'static str>,
    pub backoff: Option<&'static str>,
    pub exit_codes: Option<Vec<u8>>,
    pub stop_signal: Option<&'static str>,
    pub stop_timeout: Option<&'static str>,
    pub user: Option<&'static str>,
    pub umask: Option<&'static str>,
    pub autostart: Option<bool>,
    pub priority: Option<i64>,
    pub groups: Vec<&'static str>,
    /// Indexes of earlier services, with "healthy" when true.
    pub depends_on: Vec<(usize, bool)>,
    pub listener: Option<Vec<&'static str>>,
    pub logs: Logs,
}

#[derive(Debug, Clone)]
pub struct Daemon {
    pub state_dir: Option<String>,
    pub min_fds: Option<u32>,
    pub min_procs: Option<u32>,
    pub log_max_size: Option<&'static str>,
    pub http: Option<(u16, String, String)>,
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub daemon: Daemon,
    pub services: Vec<Svc>,
}

pub const NAMES: [&str; 4] = ["web", "w-1", "a.b", "x_y"];

fn logs() -> impl Strategy<Value = Logs> {
    let target = || {
        prop::option::of(prop_oneof![
            Just("inherit".to_string()),
            Just("null".to_string()),
            maybe_cr(awkward(4)).prop_map(|s| format!("logs/f{}.log", s.replace(['/', '\0'], "_"))),
        ])
    };
    (
        prop::option::of(any::<bool>()),
        target(),
        target(),
        prop::option::of(prop::sample::select(&["0", "1MiB", "2000000"][..])),
        prop::option::of(0u32..4),
        prop::option::of(prop::bool::weighted(0.2)),
        prop::option::of(any::<bool>()),
        prop::option::of(prop::bool::weighted(0.1)),
    )
        .prop_map(
            |(merge, stdout, stderr, max_size, backups, syslog, events, timestamps)| Logs {
                merge,
                stdout,
                stderr,
                max_size,
                backups,
                syslog,
                events,
                timestamps,
            },
        )
}

fn env_key() -> impl Strategy<Value = String> {
    prop_oneof![
        10 => prop::sample::select(&["A", "B_1", "C.d", "e-f", "G(1):2/3+4", "_"][..]).prop_map(String::from),
        1 => prop::sample::select(&["ODD KEY", "X%Y", "é"][..]).prop_map(String::from),
    ]
}

fn service(index: usize, ports: bool) -> impl Strategy<Value = Svc> {
    let program = prop_oneof![
        3 => prop::collection::vec(maybe_cr(awkward(6)), 1..4).prop_map(|mut a| {
            a[0] = format!("/bin/p{}", a[0]);
            Prog::Args(a)
        }),
        1 => maybe_cr(awkward_line()).prop_map(Prog::Shell),
    ];
    let env = prop::collection::vec((env_key(), maybe_cr(awkward(6))), 0..4);
    let cwd = prop::option::of(awkward(4).prop_map(|s| format!("/srv/{}", s.replace('\0', ""))));
    let instances = prop::option::of(1u32..4);
    let port_base = if ports {
        prop::option::of(20000u16..20100).boxed()
    } else {
        Just(None).boxed()
    };
    let restart = (
        prop::option::of(prop::sample::select(&["always", "on-failure", "never"][..])),
        prop::option::of(prop::sample::select(&["window", "unstable"][..])),
        prop::option::of(0u32..5),
        prop::option::of(prop::sample::select(&["0s", "1s", "3s", "1500ms"][..])),
        prop::option::of(prop::sample::select(
            &[
                "{ initial = \"1s\", growth = \"linear\", jitter = 0.0, max = \"1h\" }",
                "{ initial = \"2s\" }",
            ][..],
        )),
        prop::option::of(prop_oneof![
            Just(vec![0u8]),
            Just(vec![0, 2]),
            Just(vec![1, 255])
        ]),
        prop::bool::weighted(0.15),
    );
    let stop = (
        prop::option::of(prop::sample::select(
            &["INT", "HUP", "KILL", "USR1", "TERM"][..],
        )),
        prop::option::of(prop::sample::select(&["1s", "5s", "2500ms"][..])),
        prop::option::of(prop::sample::select(&["root", "0", "nobody"][..])),
        prop::option::of(prop::sample::select(&["022", "077", "0"][..])),
        prop::option::of(any::<bool>()),
        prop::option::of(-10i64..100),
    );
    let groups = prop::sample::subsequence(&["front", "back", "g.1"][..], 0..3);
    let depends = prop::collection::vec((0..index.max(1), any::<bool>()), 0..index.min(2) + 1)
        .prop_map(move |d| if index == 0 { Vec::new() } else { d });
    let listener = prop::option::of(prop::sample::subsequence(
        &["PROCESS_STATE_FATAL", "TICK_60", "PROCESS_STATE"][..],
        1..3,
    ));
    let listener =
        (prop::bool::weighted(0.15), listener).prop_map(|(on, l)| if on { l } else { None });
    (
        program,
        env,
        cwd,
        (instances, port_base),
        restart,
        stop,
        groups,
        depends,
        listener,
        logs(),
    )
        .prop_map(
            |(
                program,
                env,
                cwd,
                (instances, port_base),
                (restart, restart_limit, max_restarts, min_uptime, backoff, exit_codes, task),
                (stop_signal, stop_timeout, user, umask, autostart, priority),
                groups,
                mut depends_on,
                listener,
                logs,
            )| {
                depends_on.sort();
                depends_on.dedup_by_key(|d| d.0);
                Svc {
                    program,
                    cwd,
                    env,
                    instances,
                    port_base,
                    // A listener runs until stopped: never a task.
                    task: task && listener.is_none(),
                    restart,
                    restart_limit,
                    max_restarts,
                    min_uptime,
                    backoff,
                    exit_codes,
                    stop_signal,
                    stop_timeout,
                    user,
                    umask,
                    autostart,
                    priority,
                    groups,
                    depends_on,
                    listener,
                    logs,
                }
            },
        )
}

fn daemon() -> impl Strategy<Value = Daemon> {
    let credential = || {
        prop::collection::vec(
            prop::sample::select(&["u", "P", "9", "%", "#", " ", "é", "'"][..]),
            1..5,
        )
        .prop_map(|p| format!("k{}", p.concat()))
    };
    (
        prop::option::of(awkward(3).prop_map(|s| format!("st{}", s.replace(['/', '\0'], "_")))),
        prop::option::of(1024u32..4096),
        prop::option::of(100u32..1000),
        prop::option::of(prop::sample::select(&["0", "1MiB", "50MB"][..])),
        prop::option::of((9100u16..9200, credential(), credential())),
    )
        .prop_map(
            |(state_dir, min_fds, min_procs, log_max_size, http)| Daemon {
                state_dir,
                min_fds,
                min_procs,
                log_max_size,
                http,
            },
        )
}

/// 1 to 4 services; `ports`: with `port_base` too (whose multi-instance forms the importer
/// reads back as separate services).
pub fn manifest(ports: bool) -> impl Strategy<Value = Spec> {
    (1usize..=4).prop_flat_map(move |n| {
        let services: Vec<_> = (0..n).map(|i| service(i, ports)).collect();
        (daemon(), services).prop_map(|(daemon, services)| Spec { daemon, services })
    })
}

impl Spec {
    pub fn toml(&self) -> String {
        let mut t = String::new();
        let d = &self.daemon;
        t.push_str("[tend]\n");
        if let Some(s) = &d.state_dir {
            let _ = writeln!(t, "state_dir = {}", toml_str(s));
        }
        if let Some(n) = d.min_fds {
            let _ = writeln!(t, "min_fds = {n}");
        }
        if let Some(n) = d.min_procs {
            let _ = writeln!(t, "min_procs = {n}");
        }
        if let Some(s) = d.log_max_size {
            let _ = writeln!(t, "log = {{ max_size = {}, backups = 3 }}", toml_str(s));
        }
        if let Some((port, user, password)) = &d.http {
            let _ = writeln!(
                t,
                "http = {{ listen = \"127.0.0.1:{port}\", basic_auth = {{ username = {}, password = {} }} }}",
                toml_str(user),
                toml_str(password)
            );
        }
        for (i, s) in self.services.iter().enumerate() {
            let _ = writeln!(t, "\n[services.{}]", toml_str(NAMES[i]));
            match &s.program {
                Prog::Args(a) => {
                    let a: Vec<String> = a.iter().map(|x| toml_str(x)).collect();
                    let _ = writeln!(t, "args = [{}]", a.join(", "));
                }
                Prog::Shell(line) => {
                    let _ = writeln!(t, "command = {}\nshell = true", toml_str(line));
                }
            }
            if let Some(c) = &s.cwd {
                let _ = writeln!(t, "cwd = {}", toml_str(c));
            }
            if !s.env.is_empty() {
                // One value per name (TOML refuses a key twice).
                let unique: BTreeMap<&String, &String> =
                    s.env.iter().map(|(k, v)| (k, v)).collect();
                let pairs: Vec<String> = unique
                    .iter()
                    .map(|(k, v)| format!("{} = {}", toml_str(k), toml_str(v)))
                    .collect();
                let _ = writeln!(t, "env = {{ {} }}", pairs.join(", "));
            }
            let mut line = |k: &str, v: String| {
                let _ = writeln!(t, "{k} = {v}");
            };
            if let Some(n) = s.instances {
                line("instances", n.to_string());
            }
            if let Some(p) = s.port_base {
                line("port_base", p.to_string());
            }
            if s.task {
                line("kind", "\"task\"".into());
            }
            if let Some(r) = s.restart {
                line("restart", toml_str(r));
            }
            if let Some(r) = s.restart_limit {
                line("restart_limit", toml_str(r));
            }
            if let Some(n) = s.max_restarts {
                line("max_restarts", n.to_string());
            }
            if let Some(d) = s.min_uptime {
                line("min_uptime", toml_str(d));
            }
            if let Some(b) = s.backoff {
                line("backoff", b.to_string());
            }
            if let Some(c) = &s.exit_codes {
                line("exit_codes", format!("{c:?}"));
            }
            if let Some(x) = s.stop_signal {
                line("stop_signal", toml_str(x));
            }
            if let Some(x) = s.stop_timeout {
                line("stop_timeout", toml_str(x));
            }
            if let Some(x) = s.user {
                line("user", toml_str(x));
            }
            if let Some(x) = s.umask {
                line("umask", toml_str(x));
            }
            if let Some(x) = s.autostart {
                line("autostart", x.to_string());
            }
            if let Some(x) = s.priority {
                line("priority", x.to_string());
            }
            if !s.groups.is_empty() {
                let g: Vec<String> = s.groups.iter().map(|g| toml_str(g)).collect();
                line("groups", format!("[{}]", g.join(", ")));
            }
            if !s.depends_on.is_empty() {
                let d: Vec<String> = s
                    .depends_on
                    .iter()
                    .map(|(i, healthy)| {
                        let c = if *healthy { "healthy" } else { "started" };
                        format!("{} = \"{c}\"", toml_str(NAMES[*i]))
                    })
                    .collect();
                line("depends_on", format!("{{ {} }}", d.join(", ")));
            }
            if let Some(events) = &s.listener {
                let e: Vec<String> = events.iter().map(|e| toml_str(e)).collect();
                line(
                    "event_listener",
                    format!("{{ events = [{}], buffer_size = 4 }}", e.join(", ")),
                );
            }
            let l = &s.logs;
            let mut parts = Vec::new();
            if let Some(m) = l.merge {
                parts.push(format!("merge = {m}"));
            }
            if let Some(x) = &l.stdout {
                parts.push(format!("stdout = {}", toml_str(x)));
            }
            if let Some(x) = &l.stderr {
                parts.push(format!("stderr = {}", toml_str(x)));
            }
            if let Some(x) = l.max_size {
                parts.push(format!("max_size = {}", toml_str(x)));
            }
            if let Some(x) = l.backups {
                parts.push(format!("backups = {x}"));
            }
            if let Some(x) = l.syslog {
                parts.push(format!("syslog = {x}"));
            }
            if l.events == Some(true) {
                parts.push("events = [\"stdout\", \"stderr\"]".into());
            }
            if let Some(x) = l.timestamps {
                parts.push(format!("timestamps = {x}"));
            }
            if !parts.is_empty() {
                line("logs", format!("{{ {} }}", parts.join(", ")));
            }
        }
        t
    }
}

/// Write `spec` as `tend.toml` in `dir` and load it with tend's loader; also make the
/// directories supervisord needs to exist (the state directory and its `logs/`, and
/// `logs/` beside the manifest for the generated log file names).
pub fn load(dir: &Path, spec: &Spec) -> Manifest {
    let path = dir.join("tend.toml");
    let toml = spec.toml();
    std::fs::write(&path, &toml).unwrap();
    let manifest = tend::config::load(&path)
        .unwrap_or_else(|e| panic!("the generated manifest does not load: {e}\n{toml}"));
    std::fs::create_dir_all(manifest.daemon.state_dir.join("logs")).unwrap();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    manifest
}

// ---------------------------------------------------------------------------------------
// What each process should get
// ---------------------------------------------------------------------------------------

/// An instance's argv, as tend executes it.
pub fn argv(program: &Program) -> Vec<String> {
    match program {
        Program::Exec(argv) => argv.clone(),
        Program::Shell(line) => vec!["/bin/sh".into(), "-c".into(), line.clone()],
    }
}

/// What one instance runs: argv, working directory, the variables tend adds (without
/// `TEND_*`, which are tend's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub argv: Vec<String>,
    pub cwd: String,
    pub env: BTreeMap<String, String>,
}

pub fn run_of(svc: &ServiceSpec, index: u32, base: &Path) -> Run {
    let i = svc.instance(index);
    let mut env = i.env;
    env.remove("TEND_SERVICE");
    env.remove("TEND_INSTANCE");
    Run {
        argv: argv(&i.program),
        cwd: i.cwd.unwrap_or_else(|| base.to_string_lossy().into_owned()),
        env,
    }
}

/// The notes of the export, by service: setting → reasons.
pub fn notes(export: &tend::export::Export) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (service, setting, why) in &export.unmapped {
        out.entry(service.clone())
            .or_default()
            .push((setting.clone(), why.clone()));
    }
    out
}

pub fn noted(
    notes: &BTreeMap<String, Vec<(String, String)>>,
    service: &str,
    setting: &str,
) -> bool {
    notes
        .get(service)
        .is_some_and(|n| n.iter().any(|(s, _)| s == setting))
}

/// Whether the service was left out of the file (its command could not be written).
pub fn left_out(notes: &BTreeMap<String, Vec<(String, String)>>, service: &str) -> bool {
    notes.get(service).is_some_and(|n| {
        n.iter().any(|(s, why)| {
            (s == "args" || s == "command" || s == "instances") && why.starts_with("not exported")
        })
    })
}

pub fn write_conf(dir: &Path, export: &tend::export::Export) -> PathBuf {
    assert_eq!(export.files.len(), 1);
    assert_eq!(export.files[0].0, "supervisord.conf");
    let conf = dir.join("supervisord.conf");
    std::fs::write(&conf, &export.files[0].1).unwrap();
    conf
}
