//! Importers: foreign process-manager configurations turned into tend's manifest tree, one
//! file per format. Each is a pure function from a file to the tree an equivalent
//! `tend.toml` would give, plus warnings for what does not translate; this module picks the
//! format, validates the tree with the manifest's own rules and renders it as TOML.

mod dotenv;
mod envsubst;
mod gotemplate;
pub mod pm2;
pub mod process_compose;
pub mod procfile;
mod render;
mod shell;
pub mod supervisord;
mod tree;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::document::{Node, Segment};
use crate::config::{self, ConfigError, ConfigErrors, Manifest};

pub use render::render_toml;

/// A foreign file as a manifest tree: what the PM2, Procfile and process-compose importers
/// return (supervisord's carries more, see [`supervisord::Imported`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub tree: Node,
    pub warnings: Vec<Diagnostic>,
}

/// A problem in a foreign file, at its line: `FILE:LINE: KEY: MESSAGE`, the shape of a
/// manifest error. `key` is the source's own (`program:web.user`, `apps[0].cwd`); `line` is
/// 0 when the problem is the whole file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub key: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file.display(), self.line)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.message)
    }
}

/// Reads a file an import refers to (a `.env` beside a Procfile, an `env_file`); None when
/// it cannot be read. Tests pass one that never touches the disk.
pub type ReadFile<'a> = &'a dyn Fn(&Path) -> Option<String>;

pub fn read_from_disk(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The formats `tend up -c` and `tend import` read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// tend's own manifest (TOML, YAML or JSON).
    Tend,
    Supervisord,
    Pm2,
    Procfile,
    ProcessCompose,
}

impl Source {
    pub const NAMES: [&'static str; 5] =
        ["tend", "supervisord", "pm2", "procfile", "process-compose"];

    pub fn from_name(name: &str) -> Option<Source> {
        match name {
            "tend" => Some(Source::Tend),
            "supervisord" | "supervisor" => Some(Source::Supervisord),
            "pm2" => Some(Source::Pm2),
            "procfile" => Some(Source::Procfile),
            "process-compose" => Some(Source::ProcessCompose),
            _ => None,
        }
    }

    /// The format of the file at `path`, from its name and, where the name leaves it open
    /// (`.json`, `.yaml`, no extension), its content.
    pub fn detect(path: &Path) -> Source {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let extension = name.rsplit_once('.').map_or("", |(_, e)| e);
        if name.starts_with("procfile") || extension == "procfile" {
            return Source::Procfile;
        }
        match extension {
            "toml" => return Source::Tend,
            "conf" | "ini" => return Source::Supervisord,
            "js" | "cjs" | "mjs" | "json5" => return Source::Pm2,
            _ => {}
        }
        let text = std::fs::read(path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
        match extension {
            "json" | "yaml" | "yml" => {
                let format = config::document::Format::from_path(path)
                    .expect("UNWRAP: a manifest extension");
                let Ok(root) = config::document::parse(&text, format) else {
                    return Source::Tend;
                };
                let has = |key: &str| root.get(key).is_some();
                // PM2 also takes a bare array of apps, or one app alone (`process.json`).
                if matches!(root.value, config::document::Value::Array(_))
                    || ((has("apps") || has("script")) && !has("services"))
                {
                    Source::Pm2
                } else if has("processes") && !has("services") {
                    Source::ProcessCompose
                } else {
                    Source::Tend
                }
            }
            _ if text.lines().any(|line| {
                let line = line.trim_start();
                ["[program:", "[supervisord]", "[group:", "[include]"]
                    .iter()
                    .any(|section| line.starts_with(section))
            }) =>
            {
                Source::Supervisord
            }
            _ if text.contains("module.exports") || text.contains("export default") => Source::Pm2,
            _ => Source::Procfile,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Tend => "tend",
            Source::Supervisord => "supervisord",
            Source::Pm2 => "pm2",
            Source::Procfile => "procfile",
            Source::ProcessCompose => "process-compose",
        })
    }
}

/// How to read a file: its format (guessed when None), for PM2 the `--env` whose
/// `env_NAME` is merged over `env`, and the control socket given on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reading {
    pub source: Option<Source>,
    pub environment: Option<String>,
    /// `--socket` / `TEND_SOCKET`: replaces `[tend] socket`, so that `up` listens where the
    /// same variable makes every other command look.
    pub socket: Option<PathBuf>,
}

impl Reading {
    fn source_of(&self, path: &Path) -> Source {
        self.source.unwrap_or_else(|| Source::detect(path))
    }
}

/// A foreign file as a manifest tree, before validation.
#[derive(Debug, Clone)]
pub struct Translation {
    pub source: Source,
    /// The file named on the command line (for `includes`, the main one).
    pub file: PathBuf,
    pub tree: Node,
    /// What did not translate, each with the file, line and key it concerns.
    pub warnings: Vec<ConfigError>,
    /// supervisord's names for the processes, for its XML-RPC interface.
    pub supervisor: Option<SupervisorNames>,
    /// Which file each tree entry came from, when there are several.
    located: Option<supervisord::Imported>,
}

/// What supervisord's XML-RPC interface needs beyond the manifest: its names for groups and
/// processes, and its identification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SupervisorNames {
    pub processes: Vec<supervisord::ProcessName>,
    /// `[supervisord] identifier`.
    pub identifier: Option<String>,
}

/// A manifest loaded from any supported format.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub manifest: Manifest,
    pub source: Source,
    pub warnings: Vec<ConfigError>,
    pub supervisor: Option<SupervisorNames>,
}

/// Load the file at `path` as `reading` says, with tend's environment.
pub fn load(path: &Path, reading: &Reading) -> Result<Loaded, ConfigErrors> {
    load_with_env(path, reading, &|name| std::env::var(name).ok())
}

pub fn load_with_env(
    path: &Path,
    reading: &Reading,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigErrors> {
    let source = reading.source_of(path);
    let mut loaded = if source == Source::Tend {
        let manifest = config::load_with_env(path, env)?;
        Loaded {
            warnings: manifest.warnings.clone(),
            manifest,
            source,
            supervisor: None,
        }
    } else {
        translate(path, reading, env)?.validate(env, true)?
    };
    if let Some(socket) = &reading.socket {
        loaded.manifest.daemon.socket = socket.clone();
    }
    Ok(loaded)
}

/// The control socket of the file at `path`, for commands that only talk to a running
/// daemon: read as leniently as [`config::locate_socket`], any format.
pub fn locate_socket(path: &Path, reading: &Reading) -> PathBuf {
    if let Some(socket) = &reading.socket {
        return socket.clone();
    }
    if reading.source_of(path) == Source::Tend {
        return config::locate_socket(path);
    }
    let env = |name: &str| std::env::var(name).ok();
    match translate(path, reading, &env).and_then(|t| t.validate(&env, false)) {
        Ok(loaded) => loaded.manifest.daemon.socket,
        Err(_) => config::locate_state_dir(path).join("tend.sock"),
    }
}

/// Translate the file at `path` into a manifest tree, without validating it.
pub fn translate(
    path: &Path,
    reading: &Reading,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Translation, ConfigErrors> {
    let source = reading.source_of(path);
    let file = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match source {
        Source::Supervisord => translate_supervisord(path, &file, env),
        _ => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigErrors::from(ConfigError::new(
                    &file,
                    None,
                    "",
                    format!("cannot read: {e}"),
                ))
            })?;
            let environment = reading.environment.as_deref();
            translate_text(&file, &text, source, environment, env, &read_from_disk)
        }
    }
}

/// [`translate`] of `text`, as if it were the file `file` (absolute), in a format read
/// from one file: every one but supervisord's, whose `[include]` reads others (it is
/// refused here). `environment` is PM2's `--env`; the files an import refers to (a `.env`
/// beside a Procfile, an `env_file`) are read only through `read`.
pub fn translate_text(
    file: &Path,
    text: &str,
    source: Source,
    environment: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    read: ReadFile<'_>,
) -> Result<Translation, ConfigErrors> {
    let whole = |message: String| ConfigErrors::from(ConfigError::new(file, None, "", message));
    let failed = |errors: Vec<Diagnostic>| {
        let errors = errors.into_iter().map(config_error).collect();
        ConfigErrors::sorted(errors, file)
    };
    let plain = |imported: Imported| Translation {
        source,
        file: file.to_path_buf(),
        tree: imported.tree,
        warnings: imported.warnings.into_iter().map(config_error).collect(),
        supervisor: None,
        located: None,
    };
    match source {
        Source::Tend => {
            let format = config::document::Format::from_path(file)
                .ok_or_else(|| whole("not a tend manifest: use --from".into()))?;
            let tree = config::document::parse(text, format).map_err(|errors| {
                let errors = errors
                    .into_iter()
                    .map(|e| ConfigError::new(file, e.line, "", e.message))
                    .collect();
                ConfigErrors::sorted(errors, file)
            })?;
            Ok(Translation {
                source,
                file: file.to_path_buf(),
                tree,
                warnings: Vec::new(),
                supervisor: None,
                located: None,
            })
        }
        Source::Pm2 => pm2::import(file, text, environment)
            .map(plain)
            .map_err(failed),
        Source::Procfile => procfile::import_with(file, text, env, read)
            .map(plain)
            .map_err(failed),
        Source::ProcessCompose => process_compose::import_with(file, text, env, read)
            .map(plain)
            .map_err(failed),
        Source::Supervisord => Err(whole(
            "a supervisord configuration is read from its file (its [include] reads others)".into(),
        )),
    }
}

/// supervisord's configuration at `path` (`file` made absolute), with its includes.
fn translate_supervisord(
    path: &Path,
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Translation, ConfigErrors> {
    let source = Source::Supervisord;
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let imported = supervisord::import(path, env, &host).map_err(|errors| {
        let errors = errors.into_iter().map(config_error).collect();
        ConfigErrors::sorted(errors, file)
    })?;
    let file = imported.files[0].clone();
    let mut tree = imported.tree.clone();
    let mut warnings: Vec<ConfigError> = imported
        .warnings
        .iter()
        .cloned()
        .map(config_error)
        .collect();
    control_socket(&imported.server, &mut tree, &mut warnings);
    event_listeners(&imported, &mut tree);
    inherited_umask(&imported, &mut tree);
    supervisor_environment(&imported, &mut tree, &mut warnings);
    let supervisor = SupervisorNames {
        processes: imported
            .processes
            .iter()
            .chain(imported.listeners.iter().flat_map(|l| l.processes.iter()))
            .cloned()
            .collect(),
        identifier: imported
            .server
            .supervisord
            .as_ref()
            .and_then(|s| s.identifier.as_ref())
            .map(|s| s.value.clone()),
    };
    Ok(Translation {
        source,
        file,
        tree,
        warnings,
        supervisor: Some(supervisor),
        located: Some(imported),
    })
}

impl Translation {
    /// The translated tree validated as a manifest; `this_machine` as in
    /// [`config::validate_tree`].
    pub fn validate(
        self,
        env: &dyn Fn(&str) -> Option<String>,
        this_machine: bool,
    ) -> Result<Loaded, ConfigErrors> {
        self.validate_with(env, this_machine, &config::read_from_disk)
    }

    /// [`Translation::validate`] reading the env files the tree names through `read`.
    pub fn validate_with(
        self,
        env: &dyn Fn(&str) -> Option<String>,
        this_machine: bool,
        read: config::ReadText<'_>,
    ) -> Result<Loaded, ConfigErrors> {
        match config::validate_tree(&self.file, &self.tree, env, read, this_machine) {
            Ok(manifest) => {
                let mut warnings = self.warnings.clone();
                warnings.extend(manifest.warnings.iter().map(|w| self.relocate(w.clone())));
                Ok(Loaded {
                    manifest,
                    source: self.source,
                    warnings,
                    supervisor: self.supervisor,
                })
            }
            Err(errors) => {
                let errors = errors.into_iter().map(|e| self.relocate(e)).collect();
                Err(ConfigErrors::sorted(errors, &self.file))
            }
        }
    }

    /// The tree as a commented `tend.toml`: a header naming the source, then each service
    /// with what did not translate for it; warnings about the file as a whole come first.
    pub fn to_toml(&self) -> String {
        let services: Vec<(String, PathBuf, usize)> = self
            .tree
            .get("services")
            .and_then(Node::entries)
            .unwrap_or(&[])
            .iter()
            .map(|e| {
                let path = [Segment::Key("services".into()), Segment::Key(e.key.clone())];
                let (file, line) = match &self.located {
                    Some(imported) => {
                        let (f, l) = imported.locate(&path);
                        (f.to_path_buf(), l)
                    }
                    None => (self.file.clone(), e.line),
                };
                (e.key.clone(), file, line)
            })
            .collect();
        // A warning about a program section belongs to the service that section starts
        // before it in the same file.
        let owner = |w: &ConfigError| -> Option<&str> {
            let per_service = ["program:", "fcgi-program:", "eventlistener:"]
                .iter()
                .any(|p| w.key.starts_with(p));
            if !per_service {
                return None;
            }
            let line = w.line?;
            services
                .iter()
                .filter(|(_, file, start)| *file == w.file && *start <= line)
                .max_by_key(|(_, _, start)| *start)
                .map(|(name, _, _)| name.as_str())
        };
        let general: Vec<&ConfigError> = self
            .warnings
            .iter()
            .filter(|w| owner(w).is_none())
            .collect();
        let mut header = vec![
            format!(
                "Translated from {} ({}) by `tend import`.",
                self.file.display(),
                self.source
            ),
            "Lines named below are lines of that file.".to_string(),
        ];
        if !general.is_empty() {
            header.push(String::new());
            header.push("Not translated:".into());
            header.extend(
                render::warning_lines(&general, &self.file)
                    .into_iter()
                    .map(|l| format!("  {l}")),
            );
        }
        let notes = |service: &str| {
            let mine: Vec<&ConfigError> = self
                .warnings
                .iter()
                .filter(|w| owner(w) == Some(service))
                .collect();
            if mine.is_empty() {
                return Vec::new();
            }
            let mut lines = vec![format!("{service}: not translated:")];
            lines.extend(
                render::warning_lines(&mine, &self.file)
                    .into_iter()
                    .map(|l| format!("  {l}")),
            );
            lines
        };
        render_toml(&self.tree, &header, &notes)
    }

    /// A validation error moved to the file its key came from (with `[include]`, the tree
    /// mixes lines of several files).
    fn relocate(&self, mut error: ConfigError) -> ConfigError {
        if let Some(imported) = &self.located {
            let path = segments(&error.key);
            let (file, line) = imported.locate(&path);
            error.file = file.to_path_buf();
            if error.line.is_none() && line > 0 {
                error.line = Some(line);
            }
        }
        error
    }
}

/// supervisord's `[unix_http_server]` becomes tend's control socket, so `supervisorctl` finds
/// tend where it found supervisord; what tend does differently is a warning.
fn control_socket(
    server: &supervisord::ServerSettings,
    tree: &mut Node,
    warnings: &mut Vec<ConfigError>,
) {
    use crate::config::document::{Entry, Value};
    let mut warn = |file: &Path, line: usize, key: String, message: &str| {
        warnings.push(ConfigError::new(file, Some(line), key, message));
    };
    let mut settings = Vec::new();
    if let Some(unix) = server.unix_http_servers.first() {
        let at = |k: &str| format!("{}.{k}", unix.section.name);
        settings.push(Entry {
            key: "socket".into(),
            line: unix.file.line,
            value: Node::new(unix.file.line, Value::String(unix.file.value.clone())),
        });
        if let Some(chown) = &unix.chown
            && let Some((_, group)) = chown.value.split_once(':')
        {
            settings.push(Entry {
                key: "socket_group".into(),
                line: chown.line,
                value: Node::new(chown.line, Value::String(group.to_string())),
            });
            if unix.mode & 0o060 != 0o060 {
                warn(
                    &chown.file,
                    chown.line,
                    at("chown"),
                    "tend gives the socket's group read and write (0660) whatever chmod says",
                );
            }
        } else if let Some(chown) = &unix.chown {
            warn(
                &chown.file,
                chown.line,
                at("chown"),
                "tend's socket belongs to the user tend runs as; only a group (`user:group`) is kept, as socket_group",
            );
        }
        if unix.mode & 0o007 != 0 {
            let (file, line) = unix
                .chmod
                .as_ref()
                .map_or((&unix.section.file, unix.section.line), |c| {
                    (&c.file, c.line)
                });
            warn(
                file,
                line,
                at("chmod"),
                "tend never opens its socket to every user: it is 0600, or 0660 with a group",
            );
        }
        if let Some(user) = &unix.username {
            warn(
                &user.file,
                user.line,
                at("username"),
                "tend's socket is guarded by its file permissions; supervisorctl's credentials are accepted and not checked",
            );
        }
    }
    for extra in server.unix_http_servers.iter().skip(1) {
        warn(
            &extra.section.file,
            extra.section.line,
            extra.section.name.clone(),
            "tend has one control socket: the first [unix_http_server]",
        );
    }
    // The first [inet_http_server] with credentials becomes tend's TCP listener, taking
    // them as HTTP Basic credentials; tend never listens on TCP without authentication.
    let mut http = None;
    for inet in &server.inet_http_servers {
        let credentials = inet.username.as_ref().zip(inet.password.as_ref());
        match (credentials, &http) {
            (Some((user, password)), None) => {
                let line = inet.section.line;
                // tend listens on an address, not a name: a name is resolved here.
                let address = match inet.host.as_str() {
                    "" | "*" => Some(format!("0.0.0.0:{}", inet.port_number)),
                    h => std::net::ToSocketAddrs::to_socket_addrs(&(h, inet.port_number))
                        .ok()
                        .and_then(|mut all| all.next())
                        .map(|a| a.to_string()),
                };
                let Some(address) = address else {
                    warn(
                        &inet.port.file,
                        inet.port.line,
                        format!("{}.port", inet.section.name),
                        &format!(
                            "`{}` does not resolve here, so tend does not listen on it; write an address",
                            inet.host
                        ),
                    );
                    continue;
                };
                let text = |s: &str| Node::new(line, Value::String(s.to_string()));
                let entry = |key: &str, value: Node| Entry {
                    key: key.into(),
                    line,
                    value,
                };
                let credentials = vec![
                    entry("username", text(&user.value)),
                    entry("password", text(&password.value)),
                ];
                let table = vec![
                    entry("listen", text(&address)),
                    entry("basic_auth", Node::new(line, Value::Table(credentials))),
                ];
                http = Some(entry("http", Node::new(line, Value::Table(table))));
            }
            (Some(_), Some(_)) => warn(
                &inet.section.file,
                inet.section.line,
                inet.section.name.clone(),
                "tend has one TCP listener: the first [inet_http_server] with credentials",
            ),
            (None, _) => warn(
                &inet.section.file,
                inet.section.line,
                inet.section.name.clone(),
                "without username and password tend does not serve this on TCP (supervisord would, to anyone who can connect); use the unix socket, or add credentials",
            ),
        }
    }
    settings.extend(http);
    let Value::Table(root) = &mut tree.value else {
        return;
    };
    if let Some(tend) = root.iter_mut().find(|e| e.key == "tend")
        && let Value::Table(entries) = &mut tend.value.value
    {
        entries.extend(settings);
    }
}

/// `[eventlistener:x]` sections become services with an `event_listener` table: tend runs
/// them and speaks supervisord's protocol with them.
fn event_listeners(imported: &supervisord::Imported, tree: &mut Node) {
    use crate::config::document::{Entry, Value};
    let Some(services) = services_mut(tree) else {
        return;
    };
    for listener in &imported.listeners {
        let line = listener.section.line;
        let Some(entries) = listener.services.entries() else {
            continue;
        };
        for entry in entries {
            let mut service = entry.clone();
            if let Value::Table(keys) = &mut service.value.value {
                let events = listener
                    .events
                    .iter()
                    .map(|e| Node::new(line, Value::String(e.clone())))
                    .collect();
                keys.push(Entry {
                    key: "event_listener".into(),
                    line,
                    value: Node::new(
                        line,
                        Value::Table(vec![
                            Entry {
                                key: "events".into(),
                                line,
                                value: Node::new(line, Value::Array(events)),
                            },
                            Entry {
                                key: "buffer_size".into(),
                                line,
                                value: Node::new(line, Value::Integer(listener.buffer_size)),
                            },
                        ]),
                    ),
                });
            }
            services.push(service);
        }
    }
}

/// `[supervisord] umask`: supervisord's own, which a program without `umask` inherits.
fn inherited_umask(imported: &supervisord::Imported, tree: &mut Node) {
    use crate::config::document::{Entry, Value};
    let Some(umask) = imported
        .server
        .supervisord
        .as_ref()
        .and_then(|s| s.umask.as_ref())
    else {
        return;
    };
    let Some(services) = services_mut(tree) else {
        return;
    };
    for service in services.iter_mut() {
        if let Value::Table(keys) = &mut service.value.value
            && !keys.iter().any(|k| k.key == "umask")
        {
            keys.push(Entry {
                key: "umask".into(),
                line: umask.line,
                value: Node::new(umask.line, Value::String(umask.value.trim().to_string())),
            });
        }
    }
}

/// The tree's `services` table, to add to.
fn services_mut(tree: &mut Node) -> Option<&mut Vec<crate::config::document::Entry>> {
    use crate::config::document::Value;
    let Value::Table(root) = &mut tree.value else {
        return None;
    };
    let services = root.iter_mut().find(|e| e.key == "services")?;
    match &mut services.value.value {
        Value::Table(entries) => Some(entries),
        _ => None,
    }
}

/// The variables supervisord gives every child (`SUPERVISOR_ENABLED`, `…_PROCESS_NAME`,
/// `…_GROUP_NAME`, `…_SERVER_URL`), added to each service's `env` unless the program sets
/// them itself. A process name tend cannot write per instance is left out, with a warning.
fn supervisor_environment(
    imported: &supervisord::Imported,
    tree: &mut Node,
    warnings: &mut Vec<ConfigError>,
) {
    use crate::config::document::{Entry, Value};
    // supervisord's rule: the first unix server, else the inet one (`localhost` for an
    // empty host).
    let server_url = imported
        .server
        .unix_http_servers
        .first()
        .map(|u| format!("unix://{}", u.file.value))
        .or_else(|| {
            imported.server.inet_http_servers.first().map(|i| {
                let host = if i.host.is_empty() || i.host == "*" {
                    "localhost"
                } else {
                    i.host.as_str()
                };
                format!("http://{host}:{}", i.port_number)
            })
        });
    let Some(services) = services_mut(tree) else {
        return;
    };
    for service in services.iter_mut() {
        let processes: Vec<&supervisord::ProcessName> = imported
            .processes
            .iter()
            .chain(imported.listeners.iter().flat_map(|l| l.processes.iter()))
            .filter(|p| p.service == service.key)
            .collect();
        let Some(first) = processes.first() else {
            continue;
        };
        let line = service.value.line;
        let mut vars = vec![
            ("SUPERVISOR_ENABLED", "1".to_string()),
            ("SUPERVISOR_GROUP_NAME", first.group.clone()),
        ];
        match process_name_template(&processes) {
            Some(name) => vars.push(("SUPERVISOR_PROCESS_NAME", name)),
            None => {
                let (file, line) = imported.locate(&[
                    Segment::Key("services".into()),
                    Segment::Key(service.key.clone()),
                ]);
                warnings.push(ConfigError::new(
                    file,
                    Some(line),
                    format!("program:{}.process_name", first.group),
                    "SUPERVISOR_PROCESS_NAME is not set: tend cannot write these process names per instance",
                ));
            }
        }
        if let Some(url) = &server_url {
            vars.push(("SUPERVISOR_SERVER_URL", url.clone()));
        }
        let Value::Table(keys) = &mut service.value.value else {
            continue;
        };
        if !keys.iter().any(|e| e.key == "env") {
            keys.push(Entry {
                key: "env".into(),
                line,
                value: Node::new(line, Value::Table(Vec::new())),
            });
        }
        let Some(env) = keys.iter_mut().find(|e| e.key == "env") else {
            continue;
        };
        let Value::Table(env) = &mut env.value.value else {
            continue;
        };
        for (key, value) in vars {
            if !env.iter().any(|e| e.key == key) {
                env.push(Entry {
                    key: key.into(),
                    line,
                    value: Node::new(line, Value::String(value)),
                });
            }
        }
    }
}

/// The processes' names with `{instance}` where the index goes (`worker_{instance}`), if one
/// template gives every name; a single process's name as it is.
fn process_name_template(processes: &[&supervisord::ProcessName]) -> Option<String> {
    let [first, rest @ ..] = processes else {
        return None;
    };
    let Some(index) = first.instance else {
        return rest.is_empty().then(|| first.name.clone());
    };
    let digits = index.to_string();
    let at = first.name.rfind(&digits)?;
    let template = format!(
        "{}{{instance}}{}",
        &first.name[..at],
        &first.name[at + digits.len()..]
    );
    let fits = processes.iter().all(|p| {
        p.instance
            .is_some_and(|i| template.replace("{instance}", &i.to_string()) == p.name)
    });
    fits.then_some(template)
}

fn config_error(d: supervisord::Diagnostic) -> ConfigError {
    ConfigError::new(d.file, (d.line > 0).then_some(d.line), d.key, d.message)
}

/// `services.web.args[2]` as a path into the tree.
fn segments(dotted: &str) -> Vec<Segment> {
    let mut path = Vec::new();
    for part in dotted.split('.').filter(|p| !p.is_empty()) {
        let (name, mut rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
        path.push(Segment::Key(name.to_string()));
        while let Some((index, after)) = rest.split_once(']') {
            if let Ok(i) = index.parse() {
                path.push(Segment::Index(i));
            }
            rest = after.strip_prefix('[').unwrap_or("");
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inet_http_server_with_credentials_becomes_the_tcp_listener() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("supervisord.conf");
        std::fs::write(
            &path,
            "[inet_http_server]\nport=localhost:9011\nusername=u\npassword=p\n[supervisord]\n[program:a]\ncommand=sleep 1\n",
        )
        .unwrap();
        let env = |_: &str| None;
        let translation = translate(&path, &Reading::default(), &env).unwrap();
        let tree = translation.tree.to_json();
        assert_eq!(tree["tend"]["http"]["listen"], "127.0.0.1:9011");
        assert_eq!(tree["tend"]["http"]["basic_auth"]["username"], "u");
        let env_of_a = &tree["services"]["a"]["env"];
        assert_eq!(env_of_a["SUPERVISOR_SERVER_URL"], "http://localhost:9011");
        let loaded = translation.validate(&env, false).unwrap();
        let http = loaded.manifest.daemon.http.unwrap();
        assert_eq!(http.basic_auth, Some(("u".into(), "p".into())));
        assert_eq!(http.tokens_file, None);
    }

    #[test]
    fn dotted_keys_become_paths() {
        let key = |k: &str| Segment::Key(k.into());
        assert_eq!(
            segments("services.web.args[2]"),
            [key("services"), key("web"), key("args"), Segment::Index(2)]
        );
        assert_eq!(segments(""), []);
        assert_eq!(
            segments("a[1][3]"),
            [key("a"), Segment::Index(1), Segment::Index(3)]
        );
    }
}
