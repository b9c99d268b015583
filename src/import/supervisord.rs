//! Importing a supervisord configuration (`supervisord.conf` and the files it includes)
//! as a tend manifest tree.
//!
//! [`import`] reads the file the way supervisord 4 does (Python's `RawConfigParser`, its
//! `[include]` globbing, its `%(name)s` expansions and value types) and produces the
//! [`Node`] tree tend would get from an equivalent `tend.toml`, every node carrying the
//! line of the INI file it came from, so tend's own validator can check it and point at
//! the INI lines. What tend cannot do the same way is reported as a warning
//! ([`Imported::warnings`]), never dropped silently; what supervisord itself would refuse
//! is an error. docs/migrating.md has the mapping table and the reasons behind each choice.

mod expand;
mod glob;
mod ini;
mod mapping;
mod servers;
mod shlex;
mod values;

use std::path::{Component, Path, PathBuf};

use crate::config::document::{Entry, Node, Segment, Value};
use crate::config::edit_distance;
use expand::{Arg, ExpandError};
use ini::{Ini, Section};
use values::{AutoRestart, LogFile, SignalError};

// ---------------------------------------------------------------------------------------
// The public API
// ---------------------------------------------------------------------------------------

/// The result of an import.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// `{ "tend": {...}, "services": { NAME: {...} } }`, lines from the INI files.
    pub tree: Node,
    /// What tend will not do as supervisord did: unsupported keys and values.
    pub warnings: Vec<Diagnostic>,
    /// Every file read: the main file first, then the included ones in reading order.
    pub files: Vec<PathBuf>,
    /// The sections about supervisord itself and its control interfaces.
    pub server: ServerSettings,
    /// `[eventlistener:x]` sections, parsed but not mapped to services.
    pub listeners: Vec<EventListener>,
    /// supervisord's name of every process, and the tend instance that runs it.
    pub processes: Vec<ProcessName>,
    /// Which file each entry of `tree` came from (index into `files`).
    pub origins: Vec<Origin>,
}

impl Imported {
    /// The file and line that best locate `path` in `tree`: the deepest part of `path`
    /// that exists, as [`Node::line_of`] finds it, in the file that part came from.
    pub fn locate(&self, path: &[Segment]) -> (&Path, usize) {
        let line = self.tree.line_of(path);
        let file = (0..=path.len())
            .rev()
            .find_map(|n| self.origins.iter().find(|o| o.path == path[..n]))
            .map_or(0, |o| o.file);
        (&self.files[file], line)
    }
}

pub use super::Diagnostic;

/// Which file an entry of the tree came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    pub path: Vec<Segment>,
    /// Index into [`Imported::files`].
    pub file: usize,
}

/// A value as written (`raw`), after expansion (`value`), and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub raw: String,
    pub value: String,
    pub file: PathBuf,
    pub line: usize,
}

/// Where a section starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionRef {
    /// The name as written, e.g. `unix_http_server` or `inet_http_server:second`.
    pub name: String,
    pub file: PathBuf,
    pub line: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerSettings {
    pub supervisord: Option<SupervisordSettings>,
    pub unix_http_servers: Vec<UnixHttpServer>,
    pub inet_http_servers: Vec<InetHttpServer>,
    pub supervisorctl: Option<SupervisorctlSettings>,
}

/// `[supervisord]`: each key as written (None when absent: supervisord's default applies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisordSettings {
    pub section: SectionRef,
    pub logfile: Option<Setting>,
    pub logfile_maxbytes: Option<Setting>,
    pub logfile_backups: Option<Setting>,
    pub loglevel: Option<Setting>,
    pub pidfile: Option<Setting>,
    pub umask: Option<Setting>,
    pub nodaemon: Option<Setting>,
    pub silent: Option<Setting>,
    pub minfds: Option<Setting>,
    pub minprocs: Option<Setting>,
    pub nocleanup: Option<Setting>,
    pub childlogdir: Option<Setting>,
    pub user: Option<Setting>,
    pub directory: Option<Setting>,
    pub strip_ansi: Option<Setting>,
    pub environment: Option<Setting>,
    pub identifier: Option<Setting>,
    /// `environment` parsed: it is also merged into every service's `env`.
    pub environment_vars: Vec<(String, String)>,
    /// `nodaemon` parsed (default false).
    pub nodaemon_flag: bool,
}

/// `[unix_http_server]` (or `[unix_http_server:NAME]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixHttpServer {
    pub section: SectionRef,
    pub file: Setting,
    /// `chmod` parsed; 0o700 when absent.
    pub mode: u32,
    pub chmod: Option<Setting>,
    /// `user` or `user:group`, names not checked against this machine.
    pub chown: Option<Setting>,
    pub username: Option<Setting>,
    pub password: Option<Setting>,
}

/// `[inet_http_server]` (or `[inet_http_server:NAME]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InetHttpServer {
    pub section: SectionRef,
    pub port: Setting,
    /// The host part of `port`, lowercased; empty for all interfaces (`:9001`, `*:9001`).
    pub host: String,
    pub port_number: u16,
    pub username: Option<Setting>,
    pub password: Option<Setting>,
}

/// `[supervisorctl]`: client settings, kept as written (supervisord never reads them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorctlSettings {
    pub section: SectionRef,
    pub serverurl: Option<Setting>,
    pub username: Option<Setting>,
    pub password: Option<Setting>,
    pub prompt: Option<Setting>,
    pub history_file: Option<Setting>,
}

/// `[eventlistener:x]`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventListener {
    pub section: SectionRef,
    /// Upper-cased event type names, in the order written.
    pub events: Vec<String>,
    pub buffer_size: i64,
    /// As written; supervisord's default is `supervisor.dispatchers:default_handler`.
    pub result_handler: Option<Setting>,
    /// Default -1: listeners start first and stop last.
    pub priority: i64,
    /// The program keys mapped as for `[program:x]`: a table NAME → service, in the
    /// shape of `tree.services` (one entry, or several when processes had to be split).
    pub services: Node,
    pub processes: Vec<ProcessName>,
}

/// One supervisord process and the tend instance that runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessName {
    /// supervisord's group: the `[group:x]` holding the program, else the program name.
    pub group: String,
    /// supervisord's process name (`process_name` expanded).
    pub name: String,
    /// The tend service.
    pub service: String,
    /// The instance index when the service has `instances`, None for a single instance.
    pub instance: Option<u32>,
}

impl ProcessName {
    /// supervisord's namespec: `name` alone when group and name are equal, else `group:name`.
    pub fn namespec(&self) -> String {
        if self.group == self.name {
            self.name.clone()
        } else {
            format!("{}:{}", self.group, self.name)
        }
    }

    /// tend's instance name: `service` or `service:N`.
    pub fn tend_name(&self) -> String {
        match self.instance {
            Some(i) => format!("{}:{i}", self.service),
            None => self.service.clone(),
        }
    }
}

/// Import the supervisord configuration at `path`.
///
/// `env` is the environment supervisord would run with (for `%(ENV_X)s`, and `HOME` for
/// `~`), `host` the machine name for `%(host_node_name)s`. Returns every error at once.
pub fn import(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    host: &str,
) -> Result<Imported, Vec<Diagnostic>> {
    let main = normalize(&std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()));
    let text = match read_text(&main) {
        Ok(text) => text,
        Err(message) => {
            return Err(vec![Diagnostic {
                file: main,
                line: 0,
                key: String::new(),
                message,
            }]);
        }
    };
    let mut cx = Cx {
        ini: Ini::default(),
        files: vec![main.clone()],
        env,
        host: host.to_string(),
        global_env: Vec::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
        headers: Vec::new(),
        server: ServerSettings::default(),
    };
    let report = cx.ini.read(&text, 0);
    cx.syntax_errors(report);
    cx.includes();
    cx.check_sections();
    let tend = cx.supervisord();
    let groups = cx.groups();
    let programs = cx.programs(&groups);
    cx.servers();
    cx.finish(tend, programs)
}

// ---------------------------------------------------------------------------------------
// Reading files
// ---------------------------------------------------------------------------------------

fn read_text(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

/// Python's `os.path.normpath`: `.` and `..` resolved lexically, symlinks left alone.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// The import context
// ---------------------------------------------------------------------------------------

/// An `environment=` variable and where it was written.
#[derive(Debug, Clone)]
struct EnvVar {
    key: String,
    value: String,
    file: usize,
    line: usize,
}

struct Cx<'a> {
    ini: Ini,
    files: Vec<PathBuf>,
    env: &'a dyn Fn(&str) -> Option<String>,
    host: String,
    /// `[supervisord] environment`: merged into every program's env, and `ENV_*` names.
    global_env: Vec<EnvVar>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// Section headers per file read: (file, name, line).
    headers: Vec<(usize, String, usize)>,
    server: ServerSettings,
}

/// What names an expansion may use (`here` and `ENV_*` always).
#[derive(Clone, Default)]
struct Names<'n> {
    host: bool,
    program: Option<&'n str>,
    group: Option<&'n str>,
    process_num: Option<Arg>,
    numprocs: Option<i64>,
    /// Whether `[supervisord] environment` entries are `ENV_*` names yet.
    supervisord_env: bool,
    /// The program's own `environment=` entries, for the keys read after it.
    program_env: &'n [EnvVar],
}

/// Where the problems of an expansion go.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sink {
    Errors,
    Warnings,
    /// Trying something out (the per-instance template): problems only mean "no".
    Quiet,
}

/// A value read and converted, with where it was written.
#[derive(Debug, Clone)]
struct Got<T> {
    value: T,
    file: usize,
    line: usize,
}

impl<'a> Cx<'a> {
    fn diag(&self, file: usize, line: usize, key: &str, message: String) -> Diagnostic {
        Diagnostic {
            file: self.files[file].clone(),
            line,
            key: key.to_string(),
            message,
        }
    }

    fn error(&mut self, file: usize, line: usize, key: &str, message: impl Into<String>) {
        let d = self.diag(file, line, key, message.into());
        self.errors.push(d);
    }

    fn warn(&mut self, file: usize, line: usize, key: &str, message: impl Into<String>) {
        let d = self.diag(file, line, key, message.into());
        self.warnings.push(d);
    }

    fn report(&mut self, sink: Sink, file: usize, line: usize, key: &str, message: String) {
        match sink {
            Sink::Errors => self.error(file, line, key, message),
            Sink::Warnings => self.warn(file, line, key, message),
            Sink::Quiet => {}
        }
    }

    fn syntax_errors(&mut self, errors: ini::ReadReport) {
        for e in errors.errors {
            self.error(e.file, e.line, "", e.message);
        }
        self.headers.extend(errors.headers);
    }

    /// `here`: the directory of a file (absolute, as supervisord computes it).
    fn here(&self, file: usize) -> String {
        self.files[file]
            .parent()
            .map_or_else(|| "/".to_string(), |p| p.to_string_lossy().into_owned())
    }

    fn value(&self, section: &Section, key: &str) -> Option<ini::Value> {
        self.ini.get(section, key).cloned()
    }

    fn lookup(&self, names: &Names, file: usize, name: &str) -> Option<Arg> {
        match name {
            "here" => Some(Arg::Text(self.here(file))),
            "host_node_name" if names.host => Some(Arg::Text(self.host.clone())),
            "program_name" => names.program.map(|p| Arg::Text(p.to_string())),
            "group_name" => names.group.map(|g| Arg::Text(g.to_string())),
            "process_num" => names.process_num.clone(),
            "numprocs" => names.numprocs.map(Arg::Int),
            _ => {
                let var = name.strip_prefix("ENV_")?;
                let find = |list: &[EnvVar]| {
                    list.iter()
                        .rev()
                        .find(|e| e.key == var)
                        .map(|e| e.value.clone())
                };
                find(names.program_env)
                    .or_else(|| {
                        if names.supervisord_env {
                            find(&self.global_env)
                        } else {
                            None
                        }
                    })
                    .or_else(|| (self.env)(var))
                    .map(Arg::Text)
            }
        }
    }

    fn unknown_name_message(names: &Names, name: &str) -> String {
        if let Some(var) = name.strip_prefix("ENV_") {
            return format!(
                "`%({name})s`: the environment variable `{var}` is not set (supervisord refuses to start without it)"
            );
        }
        let mut available = vec!["here"];
        if names.host {
            available.push("host_node_name");
        }
        if names.program.is_some() {
            available.push("program_name");
        }
        if names.group.is_some() {
            available.push("group_name");
        }
        if names.process_num.is_some() {
            available.push("process_num");
        }
        if names.numprocs.is_some() {
            available.push("numprocs");
        }
        format!(
            "`%({name})s` cannot be expanded here; the names available are {} and ENV_<variable>",
            available.join(", ")
        )
    }

    /// Expand `text` (written at `file`/`line`) with `names`.
    fn expand_text(
        &mut self,
        text: &str,
        file: usize,
        line: usize,
        key: &str,
        names: &Names,
        sink: Sink,
    ) -> Option<String> {
        let result = expand::expand(text, &|name| self.lookup(names, file, name));
        match result {
            Ok(value) => Some(value),
            Err(ExpandError::Unknown(name)) => {
                let message = Self::unknown_name_message(names, &name);
                self.report(sink, file, line, key, message);
                None
            }
            Err(ExpandError::Format(message)) => {
                let message = if message.contains("%%") {
                    message
                } else {
                    format!(
                        "{message} (every `%` in a value is an expansion; write `%%` for a literal `%`)"
                    )
                };
                self.report(sink, file, line, key, message);
                None
            }
        }
    }

    fn expand(
        &mut self,
        value: &ini::Value,
        key: &str,
        names: &Names,
        sink: Sink,
    ) -> Option<String> {
        self.expand_text(&value.text, value.file, value.line, key, names, sink)
    }

    /// Read `section.key`, expanded and converted. None when absent or wrong (reported).
    fn typed<T>(
        &mut self,
        section: &Section,
        key: &str,
        names: &Names,
        sink: Sink,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<Got<T>> {
        let raw = self.value(section, key)?;
        let label = format!("{}.{key}", section.name);
        let text = self.expand(&raw, &label, names, sink)?;
        match parse(&text) {
            Ok(value) => Some(Got {
                value,
                file: raw.file,
                line: raw.line,
            }),
            Err(message) => {
                self.report(sink, raw.file, raw.line, &label, message);
                None
            }
        }
    }

    fn text(
        &mut self,
        section: &Section,
        key: &str,
        names: &Names,
        sink: Sink,
    ) -> Option<Got<String>> {
        self.typed(section, key, names, sink, |t| Ok(t.to_string()))
    }

    fn setting(
        &mut self,
        section: &Section,
        key: &str,
        names: &Names,
        sink: Sink,
    ) -> Option<Setting> {
        let raw = self.value(section, key)?;
        let got = self.text(section, key, names, sink)?;
        Some(Setting {
            raw: raw.text,
            value: got.value,
            file: self.files[got.file].clone(),
            line: got.line,
        })
    }

    fn section_ref(&self, section: &Section) -> SectionRef {
        SectionRef {
            name: section.name.clone(),
            file: self.files[section.file].clone(),
            line: section.line,
        }
    }

    /// Warn about every key of `section` not in `known`.
    fn unknown_keys(&mut self, section: &Section, known: &[&str], what: &str) {
        for (key, value) in &section.entries {
            if known.contains(&key.as_str()) {
                continue;
            }
            let hint = did_you_mean(key, known)
                .map(|k| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            self.warn(
                value.file,
                value.line,
                &format!("{}.{key}", section.name),
                format!("`{key}` is not a {what} option{hint}; supervisord ignores it, and so does the import"),
            );
        }
    }

    // -------------------------------------------------------------------------------
    // [include]
    // -------------------------------------------------------------------------------

    fn includes(&mut self) {
        let Some(section) = self.ini.section("include").cloned() else {
            return;
        };
        if section.file != 0 {
            return;
        }
        let Some(files) = self.value(&section, "files") else {
            self.error(
                section.file,
                section.line,
                "include",
                "[include] has no `files` setting (supervisord refuses this)",
            );
            return;
        };
        self.unknown_keys(&section, &["files"], "[include]");
        let names = Names {
            host: true,
            ..Names::default()
        };
        let Some(expanded) = self.expand(&files, "include.files", &names, Sink::Errors) else {
            return;
        };
        let base = self.here(0);
        for pattern in expanded.split_whitespace() {
            let joined = if pattern.starts_with('/') {
                pattern.to_string()
            } else if base.ends_with('/') {
                format!("{base}{pattern}")
            } else {
                format!("{base}/{pattern}")
            };
            let mut matches: Vec<String> = glob::glob(&joined)
                .into_iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            matches.sort();
            if matches.is_empty() {
                self.warn(
                    files.file,
                    files.line,
                    "include.files",
                    format!("no file matches `{joined}` (supervisord goes on without it)"),
                );
                continue;
            }
            for found in matches {
                let path = normalize(Path::new(&found));
                self.files.push(path.clone());
                let index = self.files.len() - 1;
                match read_text(&path) {
                    Ok(text) => {
                        let report = self.ini.read(&text, index);
                        self.syntax_errors(report);
                    }
                    Err(message) => self.error(index, 0, "", message),
                }
            }
        }
        // supervisord reads [include] once, from the main file; later ones do nothing.
        let nested: Vec<(usize, usize)> = self
            .headers
            .iter()
            .filter(|(file, name, _)| *file != 0 && name == "include")
            .map(|(file, _, line)| (*file, *line))
            .collect();
        for (file, line) in nested {
            self.warn(
                file,
                line,
                "include",
                "[include] in an included file is not processed (supervisord does not nest includes)",
            );
        }
    }

    // -------------------------------------------------------------------------------
    // Which sections exist
    // -------------------------------------------------------------------------------

    fn check_sections(&mut self) {
        let sections = self.ini.sections.clone();
        if !sections.iter().any(|s| s.name == "supervisord") {
            self.warn(
                0,
                1,
                "supervisord",
                "no [supervisord] section: supervisord refuses such a file; imported anyway (a conf.d fragment?)",
            );
        }
        const PREFIXES: [&str; 5] = [
            "program:",
            "group:",
            "eventlistener:",
            "fcgi-program:",
            "rpcinterface:",
        ];
        const EXACT: [&str; 5] = [
            "supervisord",
            "supervisorctl",
            "include",
            "unix_http_server",
            "inet_http_server",
        ];
        for s in &sections {
            let name = s.name.as_str();
            let known = EXACT.contains(&name)
                || PREFIXES.iter().any(|p| name.starts_with(p))
                || name.starts_with("unix_http_server:")
                || name.starts_with("inet_http_server:");
            if name.starts_with("ctlplugin:") {
                self.warn(
                    s.file,
                    s.line,
                    name,
                    "supervisorctl plugins are Python code; tend cannot load them",
                );
            } else if !known {
                let lower = name.to_lowercase();
                let hint = if EXACT.contains(&lower.as_str())
                    || PREFIXES.iter().any(|p| lower.starts_with(p))
                {
                    " (section names are case-sensitive)"
                } else {
                    ""
                };
                self.warn(
                    s.file,
                    s.line,
                    name,
                    format!("unknown section [{name}]{hint}; supervisord ignores it, and so does the import"),
                );
            }
        }
        if let Some(defaults) = self.ini.defaults.clone() {
            for (key, value) in &defaults.entries {
                if !is_known_key(key) {
                    self.warn(
                        value.file,
                        value.line,
                        &format!("DEFAULT.{key}"),
                        format!("`{key}` is not an option of any section; ignored"),
                    );
                }
            }
        }
    }
}

/// Whether some kind of section has this key, for `[DEFAULT]` (whose keys every section
/// inherits, so a key only one kind knows is still no typo).
fn is_known_key(key: &str) -> bool {
    const OTHER_KEYS: &[&str] = &[
        "files",
        "file",
        "chmod",
        "chown",
        "username",
        "password",
        "port",
        "serverurl",
        "prompt",
        "history_file",
        "programs",
        "priority",
        "depends_on",
        "supervisor.rpcinterface_factory",
    ];
    [
        servers::SUPERVISORD_KEYS,
        mapping::PROGRAM_KEYS,
        mapping::FCGI_KEYS,
        mapping::LISTENER_KEYS,
        OTHER_KEYS,
    ]
    .iter()
    .any(|keys| keys.contains(&key))
}

/// The closest known key, if it is close enough to be a typo.
fn did_you_mean<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    let length = word.chars().count();
    known
        .iter()
        // No distance under the difference in length: a long word is not measured.
        .filter(|k| k.chars().count().abs_diff(length) <= 2)
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, k)| *d <= 2.min(k.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests;
