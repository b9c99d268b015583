//! `tend export supervisord`: a manifest as one `supervisord.conf` that supervisord 4 runs.
//!
//! [`export_supervisord`] is a pure function of the validated manifest: it reads and writes
//! nothing. It returns the file and every setting supervisord cannot express (dependencies,
//! probes, readiness, resources, tend's restart window …), each with the reason.
//!
//! It is the inverse of tend's importer (`src/import/supervisord/`): exporting and then
//! importing gives back the same services wherever both directions carry a setting.
//!
//! How values are written, so that supervisord reads back exactly the strings of the
//! manifest (each rule was checked against supervisord 4.3's own reader):
//! - every value goes through Python's `%` formatting (`%%` is a literal `%`); log file
//!   names go through it twice (`%%%%`);
//! - the INI reader strips each line, ends a value at ` ;` or ` #`, and continues a value
//!   on indented lines. The empty expansion `%(here).0s` (the `here` directory cut to zero
//!   characters) is put where a line would start or end with whitespace, where `;`/`#` would
//!   follow whitespace, between a newline and a line that would look blank or like a
//!   comment, and inside a literal `%(here)s` (which supervisord replaces before any
//!   expansion). So newlines and any whitespace are carried; a carriage return is not
//!   (Python reads it as a line break);
//! - `command` is split with Python's `shlex.split` (POSIX): arguments are single-quoted;
//! - `environment` is split with `shlex` in its *non-POSIX* mode, which has no escapes and
//!   then strips quote characters from both ends of each value: a value is written `'v'`
//!   (no `'` inside), `"v"` (no `"` inside), or bare when it holds both quote kinds and only
//!   word characters; values that start or end with a quote, or hold both quote kinds and
//!   other characters, cannot be written and are reported.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use super::{Export, note_env_files, note_schedules, note_sockets, select};
use crate::config::model::{
    BackoffSpec, Condition, DEFAULT_SYSLOG_SOCKET, HttpSettings, Kind, LogFormat, LogSpec,
    LogTarget, Manifest, OnUnready, Program, RestartLimit, RestartPolicy, ServiceSpec,
    expand_placeholders,
};

/// The name of the file [`export_supervisord`] produces.
pub const FILE_NAME: &str = "supervisord.conf";

/// Expands to nothing: `here` cut to zero characters. Used to keep the INI reader from
/// seeing whitespace at a line's ends, a comment, or a blank line (see the module doc).
const GUARD: &str = "%(here).0s";
/// supervisord's process number, which `{instance}` (or `{port}`) becomes.
const PROCESS_NUM: &str = "%(process_num)d";
/// supervisord's own XML-RPC interface, which supervisorctl needs.
const RPC_FACTORY: &str = "supervisor.rpcinterface:make_main_rpcinterface";
/// The setting under which manifest-wide notes are reported.
const DAEMON: &str = "[tend]";

/// Export `services` (every service when empty) as a `supervisord.conf`.
pub fn export_supervisord(manifest: &Manifest, services: &[String]) -> Export {
    let mut export = Export::default();
    let chosen = select(manifest, services, &mut export);
    for svc in &chosen {
        note_sockets(svc, &mut export, "supervisord", "as the program");
        note_schedules(
            svc,
            &mut export,
            "supervisord",
            "supervisorctl restart NAME",
            "supervisorctl start NAME (it does nothing while a run goes on)",
            "supervisord does not watch files to restart on changes",
        );
        note_env_files(
            svc,
            &mut export,
            "supervisord has no env file key: keep supervisord.conf as private as the file",
        );
    }
    let mut conf = String::new();
    header(manifest, &mut conf);
    daemon(manifest, &mut conf, &mut export);

    // tend runs a service without `cwd` in the manifest's directory.
    let base = manifest.base_dir();
    let priorities = priorities(&chosen, &mut export);
    // supervisord's program names for each service (several when split per instance).
    // (Those whose command cannot be written are left out, so nothing refers to them.)
    let plans: Vec<(&ServiceSpec, Vec<Plan>)> = chosen
        .iter()
        .map(|svc| {
            let plans = plan(svc, &chosen, &mut export);
            (*svc, writable(svc, plans, &mut export))
        })
        .collect();
    let programs: BTreeMap<&str, Vec<String>> = plans
        .iter()
        .map(|(svc, plans)| {
            (
                svc.name.as_str(),
                plans.iter().map(|p| p.program.clone()).collect(),
            )
        })
        .collect();

    // [group:x] → its programs with their priorities, in first-seen order.
    let mut groups: Vec<(String, Vec<(String, i64)>)> = Vec::new();
    for (svc, plans) in &plans {
        let priority = priorities[svc.name.as_str()];
        if plans.is_empty() {
            continue;
        }
        for plan in plans {
            conf.push('\n');
            conf.push_str(&program(svc, plan, &base, priority, &programs, &mut export));
        }
        let group = group_of(svc, plans.len() > 1, &mut export);
        if let Some(group) = group {
            let members = match groups.iter_mut().find(|(g, _)| *g == group) {
                Some((_, members)) => members,
                None => {
                    groups.push((group, Vec::new()));
                    &mut groups.last_mut().expect("UNWRAP: just pushed").1
                }
            };
            members.extend(plans.iter().map(|p| (p.program.clone(), priority)));
        }
    }
    group_sections(&groups, &plans, &priorities, &mut conf, &mut export);

    // The notes in manifest order: unknown names, `[tend]`, then service by service.
    let rank = |service: &str| match manifest.services.iter().position(|s| s.name == service) {
        Some(i) => i + 2,
        None if service == DAEMON => 1,
        None => 0,
    };
    export.unmapped.sort_by_key(|(service, _, _)| rank(service));
    export.files.push((FILE_NAME.to_string(), conf));
    export
}

// ---------------------------------------------------------------------------------------
// Writing values
// ---------------------------------------------------------------------------------------

/// One character of a value, or a `%(…)` expansion written as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    C(char),
    /// Expands to digits only (`%(process_num)d`).
    Num(&'static str),
}

fn chars(s: &str) -> Vec<Tok> {
    s.chars().map(Tok::C).collect()
}

/// How supervisord reads one value: how many times `%` expansion runs over it, and whether
/// `here` is among the names it may use (for [`GUARD`]).
#[derive(Debug, Clone, Copy)]
struct Ctx {
    passes: u32,
    here: bool,
}

/// Program keys, `[supervisord]`, `[unix_http_server] file`, `[supervisorctl] serverurl`.
const PLAIN: Ctx = Ctx {
    passes: 1,
    here: true,
};
/// `stdout_logfile`, `stderr_logfile`: expanded twice.
const LOGFILE: Ctx = Ctx {
    passes: 2,
    here: true,
};
/// `[inet_http_server]` keys: only `ENV_*` names, so no guard.
const NO_HERE: Ctx = Ctx {
    passes: 1,
    here: false,
};

/// Whitespace as Python's `str.isspace` and `str.strip` see it (a superset of Rust's).
fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The text to write after `key=` so that supervisord's INI reader and its `%` expansion
/// give back exactly `toks`. Errors say why a value cannot be written.
fn ini_value(toks: &[Tok], ctx: Ctx) -> Result<String, String> {
    let mut out = String::new();
    // Nothing of the current line's content has been written yet.
    let mut line_start = true;
    // On the first line the key and `=` come before the value, so a `;` or `#` at its
    // start is no comment.
    let mut first_line = true;
    let guard = |out: &mut String| -> Result<(), String> {
        if ctx.here {
            out.push_str(GUARD);
            Ok(())
        } else {
            Err("this key has no `%(here)s` to protect whitespace at a line's ends, a `;` or `#` after whitespace, a newline or a literal `%(here)s` from supervisord's INI reader".into())
        }
    };
    let ends_in_space = |out: &str| out.chars().next_back().is_some_and(is_space);
    for tok in toks {
        match *tok {
            Tok::Num(raw) => {
                out.push_str(raw);
                line_start = false;
            }
            Tok::C('\0') => return Err("a NUL character cannot reach a program".into()),
            Tok::C('\r') => {
                return Err(
                    "a carriage return cannot be written: Python reads it as a line break".into(),
                );
            }
            Tok::C('\n') => {
                if line_start || ends_in_space(&out) {
                    guard(&mut out)?;
                }
                out.push_str("\n  ");
                line_start = true;
                first_line = false;
            }
            Tok::C('%') => {
                for _ in 0..(1u32 << ctx.passes) {
                    out.push('%');
                }
                line_start = false;
            }
            Tok::C(c) => {
                let hazard = match c {
                    '#' | ';' => (line_start && !first_line) || ends_in_space(&out),
                    's' => out.ends_with("%(here)"),
                    c => is_space(c) && line_start,
                };
                if hazard {
                    guard(&mut out)?;
                }
                out.push(c);
                line_start = false;
            }
        }
    }
    if ends_in_space(&out) || (line_start && !out.is_empty()) {
        guard(&mut out)?;
    }
    Ok(out)
}

/// Characters `shlex.split` keeps as they are outside quotes (and that read well bare).
fn bare_in_command(c: char) -> bool {
    c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c)
}

/// argv quoted for Python's `shlex.split` (POSIX mode): each argument single-quoted unless
/// it is plain, a `'` written as `'\''`.
fn shell_quote(argv: &[Vec<Tok>]) -> Vec<Tok> {
    let mut out = Vec::new();
    for (i, arg) in argv.iter().enumerate() {
        if i > 0 {
            out.push(Tok::C(' '));
        }
        let bare = !arg.is_empty()
            && arg.iter().all(|t| match t {
                Tok::Num(_) => true,
                Tok::C(c) => bare_in_command(*c),
            });
        if bare {
            out.extend_from_slice(arg);
            continue;
        }
        out.push(Tok::C('\''));
        for tok in arg {
            match tok {
                Tok::C('\'') => out.extend(chars("'\\''")),
                other => out.push(*other),
            }
        }
        out.push(Tok::C('\''));
    }
    out
}

/// Word characters of supervisord's `environment=` lexer (shlex, non-POSIX, plus `/.+-():`).
fn env_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_/.+-():".contains(c)
}

/// `KEY=value` for `environment=`, read back by supervisord as exactly `key` and `value`.
fn env_pair(key: &str, value: &[Tok]) -> Result<Vec<Tok>, String> {
    if key.is_empty() || !key.chars().all(env_word) {
        return Err(format!(
            "the name `{}` cannot be written in environment=: supervisord reads only letters, digits and `_/.+-():` there",
            key.escape_debug()
        ));
    }
    let is_quote = |t: &Tok| matches!(t, Tok::C('\'' | '"'));
    if value.first().is_some_and(is_quote) || value.last().is_some_and(is_quote) {
        return Err(
            "supervisord strips quote characters from both ends of an environment value, so a value that starts or ends with `'` or `\"` cannot be written".into(),
        );
    }
    let single = value.contains(&Tok::C('\''));
    let double = value.contains(&Tok::C('"'));
    let mut out = chars(key);
    out.push(Tok::C('='));
    let quote = match (single, double) {
        (false, _) => '\'',
        (true, false) => '"',
        (true, true) => {
            let word = |t: &Tok| match t {
                Tok::Num(_) => true,
                Tok::C(c) => env_word(*c),
            };
            if value.first().is_some_and(word) && value.iter().all(|t| word(t) || is_quote(t)) {
                out.extend_from_slice(value);
                return Ok(out);
            }
            return Err(
                "supervisord's environment= has no escapes: a value with both `'` and `\"` can only be written when everything else in it is a letter, digit or one of `_/.+-():`".into(),
            );
        }
    };
    out.push(Tok::C(quote));
    out.extend_from_slice(value);
    out.push(Tok::C(quote));
    Ok(out)
}

/// A section being written: `key=value` lines.
struct Section {
    text: String,
}

impl Section {
    fn new(name: &str) -> Section {
        Section {
            text: format!("[{name}]\n"),
        }
    }

    /// A value known to need no escaping (numbers, booleans, names checked by tend).
    fn set(&mut self, key: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.text, "{key}={value}");
    }

    fn put(&mut self, key: &str, value: String) {
        self.text.push_str(key);
        self.text.push('=');
        self.text.push_str(&value);
        self.text.push('\n');
    }
}

/// A comment line's text: no line breaks or other control characters.
fn comment(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Whole seconds, rounded up.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

// ---------------------------------------------------------------------------------------
// supervisord itself
// ---------------------------------------------------------------------------------------

/// `text` as one word for `sh`, for the commands shown in the header.
fn sh_word(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn header(manifest: &Manifest, conf: &mut String) {
    let d = &manifest.daemon;
    let logs = d.state_dir.join("logs");
    let mut dirs = vec![logs.as_path()];
    if let Some(parent) = d.socket.parent()
        && parent != d.state_dir
    {
        dirs.push(parent);
    }
    let dirs: Vec<String> = dirs.iter().map(|p| sh_word(&path_text(p))).collect();
    let _ = writeln!(
        conf,
        "; Generated by `tend export supervisord` from {}.",
        comment(&path_text(&manifest.path))
    );
    let _ = writeln!(
        conf,
        "; supervisord's log and pid file go in tend's state directory, the programs' AUTO logs in"
    );
    let _ = writeln!(
        conf,
        "; its logs/ (as tend's), the socket where tend's would be. These directories must exist:"
    );
    let _ = writeln!(conf, ";   mkdir -p {}", comment(&dirs.join(" ")));
    let _ = writeln!(conf, ";   supervisord -c supervisord.conf");
}

/// `[unix_http_server]`, `[inet_http_server]`, `[supervisord]`, `[rpcinterface:supervisor]`
/// and `[supervisorctl]`, from the `[tend]` table.
fn daemon(manifest: &Manifest, conf: &mut String, export: &mut Export) {
    let d = &manifest.daemon;
    let socket = path_text(&d.socket);

    let mut unix = Section::new("unix_http_server");
    let file = ini_value(&chars(&socket), PLAIN).unwrap_or_else(|why| {
        export.note(
            DAEMON,
            "socket",
            format!("written as supervisor.sock beside supervisord.conf: {why}"),
        );
        "%(here)s/supervisor.sock".into()
    });
    unix.put("file", file.clone());
    unix.set("chmod", "0700");
    conf.push('\n');
    conf.push_str(&unix.text);
    if let Some(group) = &d.socket_group {
        export.note(
            DAEMON,
            "socket_group",
            format!("not set: supervisord's chown= needs a user as well as the group `{group}`; the socket stays 0700"),
        );
    }

    if let Some(http) = &d.http {
        inet_http_server(http, conf, export);
    }

    let mut sd = Section::new("supervisord");
    sd.set("nodaemon", "true");
    let state = &d.state_dir;
    for (key, file) in [
        ("logfile", "supervisord.log"),
        ("pidfile", "supervisord.pid"),
        // Where AUTO logs go: tend's default log directory.
        ("childlogdir", "logs"),
    ] {
        match ini_value(&chars(&path_text(&state.join(file))), PLAIN) {
            Ok(v) => sd.put(key, v),
            Err(why) => export.note(DAEMON, "state_dir", format!("{key}: {why}")),
        }
    }
    sd.set("logfile_maxbytes", d.log.max_size.unwrap_or(0));
    sd.set("logfile_backups", d.log.backups);
    if d.log.rotate_every.is_some() {
        export.note(
            DAEMON,
            "log.rotate_every",
            "supervisord rotates its own log by size only",
        );
    }
    if d.log.compress {
        export.note(
            DAEMON,
            "log.compress",
            "supervisord does not compress rotated logs",
        );
    }
    if let Some(n) = d.min_fds {
        sd.set("minfds", n);
    }
    if let Some(n) = d.min_procs {
        sd.set("minprocs", n);
    }
    conf.push('\n');
    conf.push_str(&sd.text);

    let mut rpc = Section::new("rpcinterface:supervisor");
    rpc.set("supervisor.rpcinterface_factory", RPC_FACTORY);
    conf.push('\n');
    conf.push_str(&rpc.text);

    let mut ctl = Section::new("supervisorctl");
    ctl.put("serverurl", format!("unix://{file}"));
    conf.push('\n');
    conf.push_str(&ctl.text);

    if d.max_starting.is_some() {
        export.note(
            DAEMON,
            "max_starting",
            "supervisord starts every program at once",
        );
    }
    if d.sample_every != Some(Duration::from_secs(2)) {
        export.note(
            DAEMON,
            "sample_every",
            "supervisord does not sample CPU or memory",
        );
    }
    if !d.notify.is_empty() {
        export.note(
            DAEMON,
            "notify",
            "supervisord has no notifications; an [eventlistener:x] such as superlance's crashmail does this",
        );
    }
    if !d.history.enabled || d.history.retention != Duration::from_secs(7 * 24 * 3600) {
        export.note(DAEMON, "history", "supervisord keeps no event history");
    }
}

fn inet_http_server(http: &HttpSettings, conf: &mut String, export: &mut Export) {
    let Some((user, password)) = &http.basic_auth else {
        export.note(
            DAEMON,
            "http",
            "not exported: supervisord's [inet_http_server] takes only a username and password (tend's tokens are not supervisord's), and without them it would serve anyone who connects",
        );
        return;
    };
    if !http.listen.is_ipv4() {
        export.note(
            DAEMON,
            "http.listen",
            format!(
                "not exported: supervisord's [inet_http_server] port= takes IPv4 addresses only, not {}",
                http.listen
            ),
        );
        return;
    }
    let mut inet = Section::new("inet_http_server");
    inet.set("port", http.listen);
    match (
        ini_value(&chars(user), NO_HERE),
        ini_value(&chars(password), NO_HERE),
    ) {
        (Ok(u), Ok(p)) => {
            inet.put("username", u);
            inet.put("password", p);
        }
        (Err(why), _) | (_, Err(why)) => {
            export.note(DAEMON, "http.basic_auth", format!("not exported: {why}"));
            return;
        }
    }
    conf.push('\n');
    conf.push_str(&inet.text);
    if http.tokens_file.is_some() {
        export.note(
            DAEMON,
            "http.tokens_file",
            "supervisord knows no bearer tokens: only basic_auth is exported",
        );
    }
    if http.tls.is_some() {
        export.note(
            DAEMON,
            "http.tls",
            "supervisord's [inet_http_server] speaks plain HTTP; put a TLS proxy in front",
        );
    }
    if http.metrics_public {
        export.note(DAEMON, "http.metrics_public", "supervisord has no metrics");
    }
    if http.max_connections != 64 {
        export.note(
            DAEMON,
            "http.max_connections",
            "supervisord's [inet_http_server] has no connection limit",
        );
    }
}

// ---------------------------------------------------------------------------------------
// Priorities from dependencies
// ---------------------------------------------------------------------------------------

/// Each service's supervisord priority: its own, raised where needed so that every
/// dependency (among the exported services) has a lower one, as supervisord starts
/// programs in priority order (and stops them in reverse) but waits for nothing.
fn priorities<'a>(chosen: &[&'a ServiceSpec], export: &mut Export) -> BTreeMap<&'a str, i64> {
    let mut done: BTreeMap<&str, i64> = BTreeMap::new();
    fn visit<'a>(
        svc: &'a ServiceSpec,
        chosen: &[&'a ServiceSpec],
        done: &mut BTreeMap<&'a str, i64>,
        depth: usize,
    ) -> i64 {
        if let Some(&p) = done.get(svc.name.as_str()) {
            return p;
        }
        let mut p = svc.priority;
        // tend refuses dependency cycles; the depth bound only keeps this total.
        if depth <= chosen.len() {
            for dep in &svc.depends_on {
                if let Some(d) = chosen.iter().find(|s| s.name == dep.service) {
                    p = p.max(visit(d, chosen, done, depth + 1).saturating_add(1));
                }
            }
        }
        done.insert(svc.name.as_str(), p);
        p
    }
    for svc in chosen {
        visit(svc, chosen, &mut done, 0);
    }
    for svc in chosen {
        let p = done[svc.name.as_str()];
        if p != svc.priority {
            let deps: Vec<&str> = svc.depends_on.iter().map(|d| d.service.as_str()).collect();
            export.note(
                &svc.name,
                "priority",
                format!(
                    "written as {p} instead of {} so that supervisord starts it after {} (and stops it before)",
                    svc.priority,
                    deps.join(", ")
                ),
            );
        }
    }
    done
}

// ---------------------------------------------------------------------------------------
// Programs
// ---------------------------------------------------------------------------------------

/// How a service's per-instance strings are written in one program section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// One process: `{instance}` and `{port}` replaced by this instance's values.
    Fixed { index: u32, port: Option<u32> },
    /// `numprocs` processes numbered from 0: `{instance}` is `%(process_num)d`.
    Instances,
    /// `numprocs` processes numbered from `port_base`: `{port}` (and `PORT`) is
    /// `%(process_num)d`; `{instance}` is not used.
    Ports,
}

/// One `[program:x]` (or `[eventlistener:x]`) section to write for a service.
#[derive(Debug, Clone)]
struct Plan {
    program: String,
    /// The `command=` value, once known to be writable.
    command: String,
    mode: Mode,
    numprocs: u32,
    numprocs_start: u32,
}

/// `plans` with their `command=` value, or none when it cannot be written (reported).
fn writable(svc: &ServiceSpec, mut plans: Vec<Plan>, export: &mut Export) -> Vec<Plan> {
    for p in &mut plans {
        match command(svc, p.mode) {
            Ok(c) => p.command = c,
            Err(why) => {
                let setting = match svc.program {
                    Program::Exec(_) => "args",
                    Program::Shell(_) => "command",
                };
                export.note(&svc.name, setting, format!("not exported: {why}"));
                return Vec::new();
            }
        }
    }
    plans
}

/// The `command=` value: argv (`/bin/sh -c LINE` for a shell command) quoted for shlex.
fn command(svc: &ServiceSpec, mode: Mode) -> Result<String, String> {
    let argv: Vec<Vec<Tok>> = match &svc.program {
        Program::Exec(argv) => argv.iter().map(|a| template(a, mode)).collect(),
        Program::Shell(line) => vec![chars("/bin/sh"), chars("-c"), template(line, mode)],
    };
    ini_value(&shell_quote(&argv), PLAIN)
}

/// A string tend expands per instance, as tokens for `mode`.
fn template(s: &str, mode: Mode) -> Vec<Tok> {
    let placeholder = match mode {
        Mode::Fixed { index, port } => return chars(&expand_placeholders(s, index, port)),
        Mode::Instances => "{instance}",
        Mode::Ports => "{port}",
    };
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(at) = rest.find(placeholder) {
        out.extend(chars(&rest[..at]));
        out.push(Tok::Num(PROCESS_NUM));
        rest = &rest[at + placeholder.len()..];
    }
    out.extend(chars(rest));
    out
}

fn uses(svc: &ServiceSpec, placeholder: &str) -> bool {
    let program = match &svc.program {
        Program::Exec(argv) => argv.iter().any(|a| a.contains(placeholder)),
        Program::Shell(line) => line.contains(placeholder),
    };
    program
        || svc.env.values().any(|v| v.contains(placeholder))
        || svc.cwd.as_deref().is_some_and(|c| c.contains(placeholder))
}

/// The sections a service becomes: one, with `numprocs` for instances; or, when the
/// instances need both their index and their port, one per instance.
fn plan(svc: &ServiceSpec, chosen: &[&ServiceSpec], export: &mut Export) -> Vec<Plan> {
    let n = svc.instances;
    let one = |program: String, mode, numprocs, numprocs_start| Plan {
        program,
        command: String::new(),
        mode,
        numprocs,
        numprocs_start,
    };
    if n <= 1 {
        let mode = Mode::Fixed {
            index: 0,
            port: svc.port(0),
        };
        return vec![one(svc.name.clone(), mode, 1, 0)];
    }
    let Some(base) = svc.port_base else {
        return vec![one(svc.name.clone(), Mode::Instances, n, 0)];
    };
    if !uses(svc, "{instance}") {
        export.note(
            &svc.name,
            "port_base",
            format!(
                "supervisord cannot add to process_num, so the processes are numbered from the port (numprocs_start={base}): they are `{0}_{base}` … `{0}_{1}` instead of tend's `{0}:0` … `{0}:{2}`",
                svc.name,
                u32::from(base) + n - 1,
                n - 1
            ),
        );
        return vec![one(svc.name.clone(), Mode::Ports, n, u32::from(base))];
    }
    let names: Vec<String> = (0..n).map(|i| format!("{}_{i}", svc.name)).collect();
    if let Some(clash) = names.iter().find(|p| chosen.iter().any(|s| s.name == **p)) {
        export.note(
            &svc.name,
            "instances",
            format!("not exported: its instances need their own programs, and one would be called `{clash}` like another service"),
        );
        return Vec::new();
    }
    export.note(
        &svc.name,
        "instances",
        format!(
            "supervisord cannot compute both {{instance}} and {{port}} from process_num: each instance is its own program, `{}` … `{}`",
            names[0],
            names[names.len() - 1]
        ),
    );
    names
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let i = i as u32;
            let mode = Mode::Fixed {
                index: i,
                port: svc.port(i),
            };
            one(name, mode, 1, 0)
        })
        .collect()
}

/// The group a service's programs go in: its first tend group, or for a service split per
/// instance, a group named after it.
fn group_of(svc: &ServiceSpec, split: bool, export: &mut Export) -> Option<String> {
    if svc.event_listener.is_some() {
        if !svc.groups.is_empty() {
            export.note(
                &svc.name,
                "groups",
                "supervisord's [group:x] holds programs only, not event listeners",
            );
        }
        return None;
    }
    if svc.groups.len() > 1 {
        export.note(
            &svc.name,
            "groups",
            format!(
                "supervisord runs a program once per group it is in: it is only in [group:{}], not in {}",
                svc.groups[0],
                svc.groups[1..].join(", ")
            ),
        );
    }
    match svc.groups.first() {
        Some(g) => Some(g.clone()),
        None if split => Some(svc.name.clone()),
        None => None,
    }
}

fn group_sections(
    groups: &[(String, Vec<(String, i64)>)],
    plans: &[(&ServiceSpec, Vec<Plan>)],
    priorities: &BTreeMap<&str, i64>,
    conf: &mut String,
    export: &mut Export,
) {
    for (name, members) in groups {
        let mut sorted = members.clone();
        // supervisord starts a group's programs in the order listed.
        sorted.sort_by_key(|(_, p)| *p);
        let low = sorted.first().map_or(0, |m| m.1);
        let high = sorted.last().map_or(0, |m| m.1);
        let mut section = Section::new(&format!("group:{name}"));
        let programs: Vec<&str> = sorted.iter().map(|(p, _)| p.as_str()).collect();
        section.set("programs", programs.join(","));
        section.set("priority", low);
        conf.push('\n');
        conf.push_str(&section.text);
        // Another program whose priority falls inside the group's range is no longer
        // ordered against all of its members.
        let inside: Vec<&str> = plans
            .iter()
            .filter(|(svc, plans)| {
                let p = priorities[svc.name.as_str()];
                !plans
                    .iter()
                    .any(|pl| programs.contains(&pl.program.as_str()))
                    && p > low
                    && p < high
            })
            .map(|(svc, _)| svc.name.as_str())
            .collect();
        if !inside.is_empty() {
            for (svc, plans) in plans {
                if plans
                    .iter()
                    .any(|pl| programs.contains(&pl.program.as_str()))
                {
                    export.note(
                        &svc.name,
                        "groups",
                        format!(
                            "supervisord orders [group:{name}] as a whole (priority {low}), so its members' priorities ({low} to {high}) no longer order them against {}",
                            inside.join(", ")
                        ),
                    );
                }
            }
        }
    }
}

/// One `[program:x]` or `[eventlistener:x]` section.
fn program(
    svc: &ServiceSpec,
    plan: &Plan,
    base: &Path,
    priority: i64,
    programs: &BTreeMap<&str, Vec<String>>,
    export: &mut Export,
) -> String {
    let name = &svc.name;
    let mode = plan.mode;
    let first = plan.program == plans_first(svc, programs);
    // Notes about the service are made once, with its first section.
    let mut notes = Export::default();

    let kind = if svc.event_listener.is_some() {
        "eventlistener"
    } else {
        "program"
    };
    let mut s = Section::new(&format!("{kind}:{}", plan.program));

    s.put("command", plan.command.clone());
    if plan.numprocs > 1 {
        s.set("process_name", "%(program_name)s_%(process_num)d");
        s.set("numprocs", plan.numprocs);
        if plan.numprocs_start != 0 {
            s.set("numprocs_start", plan.numprocs_start);
        }
    }

    // tend runs a program without `cwd` in the manifest's directory.
    let cwd_owned;
    let cwd = match &svc.cwd {
        Some(c) => c.as_str(),
        None => {
            cwd_owned = path_text(base);
            cwd_owned.as_str()
        }
    };
    match ini_value(&template(cwd, mode), PLAIN) {
        Ok(v) => s.put("directory", v),
        Err(why) => notes.note(name, "cwd", format!("not exported: {why}")),
    }

    let mut env: Vec<(String, Vec<Tok>)> = svc
        .env
        .iter()
        .map(|(k, v)| (k.clone(), template(v, mode)))
        .collect();
    if svc.port_base.is_some() && !svc.env.contains_key("PORT") {
        let port = match mode {
            Mode::Fixed { port, .. } => chars(&port.map(|p| p.to_string()).unwrap_or_default()),
            Mode::Instances | Mode::Ports => vec![Tok::Num(PROCESS_NUM)],
        };
        env.push(("PORT".into(), port));
    }
    let mut pairs: Vec<Tok> = Vec::new();
    for (key, value) in &env {
        // Each pair is checked on its own, so that one value that cannot be written costs
        // only itself (pairs end in a quote or a word character: joining them with `,`
        // creates no new hazard).
        match env_pair(key, value).and_then(|pair| ini_value(&pair, PLAIN).map(|_| pair)) {
            Ok(pair) => {
                if !pairs.is_empty() {
                    pairs.push(Tok::C(','));
                }
                pairs.extend(pair);
            }
            Err(why) => notes.note(name, &format!("env.{key}"), format!("not exported: {why}")),
        }
    }
    if !pairs.is_empty() {
        match ini_value(&pairs, PLAIN) {
            Ok(v) => s.put("environment", v),
            // Every pair was checked on its own above; kept total all the same.
            Err(why) => notes.note(name, "env", format!("not exported: {why}")),
        }
    }

    if let Some(user) = &svc.user {
        match ini_value(&chars(user), PLAIN) {
            Ok(v) => {
                s.put("user", v);
                notes.note(
                    name,
                    "user",
                    "supervisord switches to the user but does not set HOME, USER and LOGNAME as tend does",
                );
            }
            Err(why) => notes.note(name, "user", format!("not exported: {why}")),
        }
    }
    if let Some(group) = &svc.group {
        notes.note(
            name,
            "group",
            format!("supervisord has no group setting: the program runs with its user's groups, not `{group}`"),
        );
    }
    if let Some(umask) = svc.umask {
        s.set("umask", format!("{umask:03o}"));
    }
    s.set("autostart", svc.autostart);
    restart(svc, &mut s, &mut notes);
    s.set("stopsignal", svc.stop_signal.name());
    s.set("stopwaitsecs", ceil_secs(svc.stop_timeout));
    if svc.stop_timeout.subsec_nanos() > 0 {
        notes.note(
            name,
            "stop_timeout",
            format!(
                "supervisord counts whole seconds: {:?} is written as {}",
                svc.stop_timeout,
                ceil_secs(svc.stop_timeout)
            ),
        );
    }
    // tend always signals the whole process group.
    s.set("stopasgroup", "true");
    s.set("killasgroup", "true");
    s.set("priority", priority);
    dependencies(svc, programs, &mut s, &mut notes);
    logs(svc, &mut s, &mut notes);
    if let Some(listener) = &svc.event_listener {
        let events: Vec<&str> = listener
            .subscription
            .types()
            .iter()
            .map(|t| t.name())
            .collect();
        s.set("events", events.join(","));
        s.set("buffer_size", listener.buffer_size);
    }
    unsupported(svc, &mut notes);

    if first {
        export.unmapped.extend(notes.unmapped);
    }
    s.text
}

/// The program name of a service's first section.
fn plans_first<'a>(svc: &ServiceSpec, programs: &'a BTreeMap<&str, Vec<String>>) -> &'a str {
    programs
        .get(svc.name.as_str())
        .and_then(|p| p.first())
        .map_or("", String::as_str)
}

/// autorestart, exitcodes, startsecs, startretries, and what tend does differently.
fn restart(svc: &ServiceSpec, s: &mut Section, notes: &mut Export) {
    let name = &svc.name;
    let autorestart = match svc.restart {
        RestartPolicy::Always => "true",
        RestartPolicy::OnFailure => "unexpected",
        RestartPolicy::Never => "false",
    };
    s.set("autorestart", autorestart);
    let codes: Vec<String> = svc.exit_codes.iter().map(i32::to_string).collect();
    s.set("exitcodes", codes.join(","));

    let startsecs = if svc.kind == Kind::Task {
        notes.note(
            name,
            "kind",
            "supervisord has no tasks: it runs the program once it is started (startsecs=0, so a quick exit is no failed start) and nothing waits for it to complete",
        );
        if !svc.min_uptime.is_zero() {
            notes.note(name, "min_uptime", "written as startsecs=0 for a task");
        }
        0
    } else {
        if svc.min_uptime.subsec_nanos() > 0 {
            notes.note(
                name,
                "min_uptime",
                format!(
                    "supervisord counts whole seconds: {:?} is written as startsecs={}",
                    svc.min_uptime,
                    ceil_secs(svc.min_uptime)
                ),
            );
        }
        ceil_secs(svc.min_uptime)
    };
    s.set("startsecs", startsecs);

    let retries = match (svc.restart_limit, svc.restart) {
        (RestartLimit::Unstable, _) => svc.max_restarts,
        (RestartLimit::Window, RestartPolicy::Never) => {
            notes.note(
                name,
                "restart_limit",
                format!(
                    "tend never restarts it; supervisord would retry a start that fails within startsecs, so startretries=0 (not max_restarts={})",
                    svc.max_restarts
                ),
            );
            0
        }
        (RestartLimit::Window, _) => {
            notes.note(
                name,
                "restart_limit",
                format!(
                    "tend gives up after {} restarts within {:?}; supervisord counts only consecutive starts that fail within startsecs (startretries={}) and restarts a run that lasted without limit",
                    svc.max_restarts, svc.restart_window, svc.max_restarts
                ),
            );
            svc.max_restarts
        }
    };
    s.set("startretries", retries);
    if retries > 0 && !supervisord_backoff(&svc.backoff, retries) {
        notes.note(
            name,
            "backoff",
            "supervisord waits 1 s, 2 s, 3 s … between failed starts, without jitter or cap",
        );
    }
    if svc.cooldown.is_some() {
        notes.note(
            name,
            "cooldown",
            "supervisord leaves FATAL only when asked (supervisorctl start)",
        );
    }
}

/// Whether tend's delays before the first `retries` restarts of a failing start are
/// supervisord's: 1 s, 2 s, 3 s …, no jitter.
fn supervisord_backoff(backoff: &BackoffSpec, retries: u32) -> bool {
    if retries == 0 {
        return true;
    }
    if backoff.jitter != 0.0 {
        return false;
    }
    let same = |n: u32| backoff.delay(n, 0.0) == Duration::from_secs(u64::from(n) + 1);
    // The delays grow monotonically up to a cap, so checking the first ones and the last
    // one covers them all.
    (0..retries.min(1024)).all(same) && same(retries - 1)
}

/// `depends_on`: supervisord waits for nothing; the names are written for tend's importer.
fn dependencies(
    svc: &ServiceSpec,
    programs: &BTreeMap<&str, Vec<String>>,
    s: &mut Section,
    notes: &mut Export,
) {
    if svc.depends_on.is_empty() {
        return;
    }
    let name = &svc.name;
    let mut names: Vec<&str> = Vec::new();
    let mut missing: Vec<&str> = Vec::new();
    for dep in &svc.depends_on {
        match programs.get(dep.service.as_str()) {
            Some(p) if !p.is_empty() => names.extend(p.iter().map(String::as_str)),
            _ => missing.push(&dep.service),
        }
    }
    if !names.is_empty() {
        // Not supervisord's key (it ignores it): tend's importer reads it back.
        s.set("depends_on", names.join(","));
    }
    notes.note(
        name,
        "depends_on",
        "supervisord does not wait for dependencies: it only starts programs in priority order (and stops them in reverse)",
    );
    if !missing.is_empty() {
        notes.note(
            name,
            "depends_on",
            format!("depends on {}, which is not exported", missing.join(", ")),
        );
    }
    let conditions: Vec<String> = svc
        .depends_on
        .iter()
        .filter(|d| d.condition != Condition::Started || d.on_unready != OnUnready::Ignore)
        .map(|d| d.service.clone())
        .collect();
    if !conditions.is_empty() {
        notes.note(
            name,
            "depends_on.condition",
            format!(
                "conditions (healthy, completed) and on_unready are lost: depends_on= lists names only ({})",
                conditions.join(", ")
            ),
        );
    }
}

/// The `*_logfile*` keys and `redirect_stderr`.
fn logs(svc: &ServiceSpec, s: &mut Section, notes: &mut Export) {
    let name = &svc.name;
    let l = &svc.logs;
    let listener = svc.event_listener.is_some();
    let merge = l.merge && !listener;
    if l.merge && listener {
        notes.note(
            name,
            "logs.merge",
            "supervisord refuses redirect_stderr=true for an event listener (stdout is its protocol)",
        );
    }
    s.set("redirect_stderr", merge);
    let streams: &[(&str, &LogTarget)] = if merge {
        &[("stdout", &l.stdout)]
    } else {
        &[("stdout", &l.stdout), ("stderr", &l.stderr)]
    };
    for &(stream, target) in streams {
        let key = format!("{stream}_logfile");
        let file = match target {
            LogTarget::File(None) => Some("AUTO".to_string()),
            LogTarget::File(Some(path)) => match ini_value(&chars(&path_text(path)), LOGFILE) {
                Ok(v) => Some(v),
                Err(why) => {
                    notes.note(
                        name,
                        &format!("logs.{stream}"),
                        format!("written as AUTO: {why}"),
                    );
                    Some("AUTO".to_string())
                }
            },
            LogTarget::Inherit => {
                s.put(&key, format!("/dev/{stream}"));
                // Not a file: supervisord must not try to rotate it.
                s.set(&format!("{key}_maxbytes"), 0);
                None
            }
            LogTarget::Null => {
                s.set(&key, "NONE");
                None
            }
        };
        if let Some(file) = file {
            s.put(&key, file);
            s.set(&format!("{key}_maxbytes"), l.max_size.unwrap_or(0));
            s.set(&format!("{key}_backups"), l.backups);
        }
    }
    if svc.instances > 1 && l.max_size.is_some() && matches!(&l.stdout, LogTarget::File(Some(_))) {
        notes.note(
            name,
            "logs.max_size",
            "the instances share one log file, and each supervisord process rotates it on its own",
        );
    }
    if let Some(socket) = &l.syslog {
        if socket == Path::new(DEFAULT_SYSLOG_SOCKET) {
            s.set("stdout_syslog", "true");
            if !merge {
                s.set("stderr_syslog", "true");
            }
        } else {
            notes.note(
                name,
                "logs.syslog_socket",
                format!(
                    "supervisord sends to the system's syslog only, not to {}",
                    comment(&path_text(socket))
                ),
            );
        }
    }
    if l.events_stdout {
        s.set("stdout_events_enabled", "true");
    }
    if l.events_stderr {
        if merge {
            notes.note(
                name,
                "logs.events",
                "with redirect_stderr, supervisord sends stderr's lines as stdout's",
            );
        } else {
            s.set("stderr_events_enabled", "true");
        }
    }
    let defaults = LogSpec::default();
    let mut lost = |setting: &str, why: &str| notes.note(name, setting, why);
    if l.rotate_every.is_some() {
        lost("logs.rotate_every", "supervisord rotates by size only");
    }
    if l.compress {
        lost(
            "logs.compress",
            "supervisord does not compress rotated logs",
        );
    }
    if l.timestamps {
        lost(
            "logs.timestamps",
            "supervisord writes lines as the program wrote them",
        );
    }
    if l.format == LogFormat::Json {
        lost("logs.format", "supervisord writes plain lines only");
    }
    if l.tail != defaults.tail {
        lost(
            "logs.tail",
            "supervisord keeps no lines in memory: `supervisorctl tail` reads the log file",
        );
    }
    if l.max_line != defaults.max_line {
        lost("logs.max_line", "supervisord does not split long lines");
    }
    if l.journal.is_some() {
        lost(
            "logs.journal",
            "supervisord cannot write to the journal (stdout_syslog reaches it through syslog)",
        );
    }
}

/// Settings supervisord has nothing for.
fn unsupported(svc: &ServiceSpec, notes: &mut Export) {
    let name = &svc.name;
    let mut lost = |setting: &str, why: &str| notes.note(name, setting, why);
    for (probe, setting) in [
        (&svc.readiness, "readiness"),
        (&svc.liveness, "liveness"),
        (&svc.startup, "startup"),
    ] {
        if probe.is_some() {
            lost(
                setting,
                "supervisord has no probes: a process is RUNNING once it has run startsecs",
            );
        }
    }
    if svc.watchdog.is_some() {
        lost("watchdog", "supervisord has no sd_notify watchdog");
    }
    if let Some(signal) = svc.reload_signal {
        lost(
            "reload_signal",
            &format!(
                "supervisord has no reload of a program; `supervisorctl signal {} NAME` sends it",
                signal.name()
            ),
        );
    }
    if svc.critical {
        lost(
            "critical",
            "supervisord keeps running when a program goes FATAL; an [eventlistener:x] on PROCESS_STATE_FATAL that signals supervisord does this",
        );
    }
    if svc.autoscale.is_some() {
        lost(
            "autoscale",
            &format!(
                "supervisord does not scale by load: numprocs is the count it starts with ({})",
                svc.instances
            ),
        );
    }
    let r = &svc.resources;
    let checks: [(bool, &str, &str); 8] = [
        (
            r.max_memory.is_some(),
            "max_memory",
            "supervisord does not watch memory (superlance's memmon does)",
        ),
        (
            r.memory_max.is_some(),
            "memory_max",
            "supervisord sets no cgroup limits",
        ),
        (
            r.cpu_max.is_some(),
            "cpu_max",
            "supervisord sets no cgroup limits",
        ),
        (
            r.pids_max.is_some(),
            "pids_max",
            "supervisord sets no cgroup limits",
        ),
        (
            r.warn_cpu.is_some(),
            "warn_cpu",
            "supervisord does not sample CPU",
        ),
        (
            r.warn_memory.is_some(),
            "warn_memory",
            "supervisord does not sample memory",
        ),
        (
            !r.gpus.is_empty(),
            "gpus",
            "supervisord does not hand out GPUs: set CUDA_VISIBLE_DEVICES in env",
        ),
        (
            r.max_gpu_memory.is_some(),
            "max_gpu_memory",
            "supervisord does not watch GPU memory",
        ),
    ];
    for (set, setting, why) in checks {
        if set {
            lost(setting, why);
        }
    }
}

#[cfg(test)]
mod tests;
