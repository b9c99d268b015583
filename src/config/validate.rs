//! From the parsed tree to the validated [`Manifest`]: deserializes each part into the raw
//! serde types, collecting every serde error, then checks and converts every value,
//! collecting every problem with its file, line and dotted key. Nothing stops at the first
//! mistake: a person fixing a manifest sees all of them in one run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::config::cron::Cron;
use crate::config::document::{Dotted, Entry, Node, Segment, Value};
use crate::config::error::ConfigError;
use crate::config::glob::PathPattern;
use crate::config::model::{
    AutoscaleSpec, BackoffSpec, CgroupMode, CheckSpec, Condition, DEFAULT_BACKLOG,
    DEFAULT_JOURNAL_SOCKET, DEFAULT_SOCKET_MODE, DEFAULT_SYSLOG_SOCKET, DaemonSettings, Dependency,
    Growth, HistorySettings, HttpSettings, Kind, Listen, LogFormat, LogSpec, LogTarget, Manifest,
    NoticeKind, NotifySpec, NotifyTarget, OnUnready, PayloadFormat, ProbeSpec, Program,
    ResourceSpec, RestartLimit, RestartPolicy, ServiceSpec, SocketSpec, TIMESTAMP_DIRECTIVES,
};
use crate::config::model::{DEFAULT_WATCH_DEBOUNCE, WatchSpec};
use crate::config::raw::{
    self, CpuValue, DependsOn, DurationValue, IdValue, Loose, RawBackoff, RawCgroups, RawCheck,
    RawCondition, RawDaemon, RawGrowth, RawHistory, RawHttp, RawKind, RawLogFormat, RawLogs,
    RawManifest, RawNoticeKind, RawNotify, RawOnUnready, RawPayloadFormat, RawProbe, RawRestart,
    RawRestartLimit, RawService, RawSocket, RawStatus, SizeValue, UmaskValue,
};
use crate::config::signal::Signal;
use crate::config::{ReadText, duration, envfile, graph, interpolate, size};

/// The most instances one service may ask for: beyond this a typo is likelier than intent.
const MAX_INSTANCES: i64 = 10_000;

/// Validate a parsed manifest read from `file` (absolute). `env` is tend's environment,
/// used only for `${VAR}` interpolation.
pub(crate) fn validate(
    file: &Path,
    root: &Node,
    env: &dyn Fn(&str) -> Option<String>,
    read: ReadText<'_>,
    this_machine: bool,
) -> Result<Manifest, Vec<ConfigError>> {
    let base_dir = file
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    let mut validator = Validator {
        file,
        base_dir,
        root,
        env,
        read,
        this_machine,
        errors: Vec::new(),
        warnings: Vec::new(),
        env_files: HashMap::new(),
    };
    let manifest = validator.manifest();
    match manifest {
        Some(manifest) if validator.errors.is_empty() => Ok(manifest),
        _ => Err(validator.errors),
    }
}

fn key(name: &str) -> Segment {
    Segment::Key(name.to_string())
}

fn join(base: &[Segment], rest: &[Segment]) -> Vec<Segment> {
    base.iter().chain(rest).cloned().collect()
}

/// A service's dependencies as written, with where each one is written.
struct DependencyRefs {
    entries: Vec<(String, Condition, OnUnready, Vec<Segment>)>,
}

struct Validator<'a> {
    file: &'a Path,
    base_dir: PathBuf,
    root: &'a Node,
    env: &'a dyn Fn(&str) -> Option<String>,
    /// Reads env files.
    read: ReadText<'a>,
    /// Whether the manifest is for this machine: users and groups must exist here.
    this_machine: bool,
    errors: Vec<ConfigError>,
    /// What is allowed but probably not meant; reported only when there is no error.
    warnings: Vec<ConfigError>,
    /// Env files already read, by absolute path: each is read once, and a malformed one is
    /// reported once however many services use it.
    env_files: HashMap<PathBuf, Result<Vec<(String, String)>, String>>,
}

impl Validator<'_> {
    fn error(&mut self, path: &[Segment], message: impl Into<String>) {
        let line = self.root.line_of(path);
        self.errors.push(ConfigError::new(
            self.file,
            Some(line),
            Dotted(path).to_string(),
            message,
        ));
    }

    fn warning(&mut self, path: &[Segment], message: impl Into<String>) {
        let line = self.root.line_of(path);
        self.warnings.push(ConfigError::new(
            self.file,
            Some(line),
            Dotted(path).to_string(),
            message,
        ));
    }

    fn manifest(&mut self) -> Option<Manifest> {
        let root = self.root;
        let Some(entries) = root.entries() else {
            self.error(
                &[],
                format!(
                    "a manifest is a table of `[tend]`, `[services.NAME]` and `[sockets.NAME]`, found {}",
                    root.kind()
                ),
            );
            return None;
        };
        // Generating the schema costs more than validating the rest of a small manifest
        // (three quarters of the time, by a profile of the fuzz targets); the keys are fixed.
        static TOP_KEYS: OnceLock<Vec<String>> = OnceLock::new();
        let top_keys = TOP_KEYS.get_or_init(raw::field_names::<RawManifest>);
        for entry in entries {
            if !top_keys.contains(&entry.key) {
                self.unknown_key(&[], &entry.key, entry.line, top_keys);
            }
        }

        let names_in = |table: &str| -> Vec<String> {
            root.get(table)
                .and_then(|n| match &n.value {
                    Value::Table(entries) => Some(entries.iter().map(|e| e.key.clone()).collect()),
                    _ => None,
                })
                .unwrap_or_default()
        };
        let service_names = names_in("services");
        // Every name written, valid or not: a service naming a socket whose table has a
        // mistake gets that mistake reported, not also "no such socket".
        let socket_names = names_in("sockets");
        let daemon = self.daemon(root.get("tend"), &service_names);
        let sockets = self.sockets(root.get("sockets"));
        for socket in &sockets {
            if let Listen::Unix { path, .. } = &socket.listen {
                let taken = [
                    (&daemon.socket, "tend's control socket"),
                    (
                        &daemon.state_dir.join("notify.sock"),
                        "tend's sd_notify socket",
                    ),
                ];
                if let Some((_, what)) = taken.iter().find(|(p, _)| *p == path) {
                    self.error(
                        &[key("sockets"), key(&socket.name), key("listen")],
                        format!("{} is {what}", path.display()),
                    );
                }
            }
        }
        let services = self.services(root.get("services"), &socket_names);
        if daemon.sample_every.is_none() {
            for service in services.iter().filter(|s| s.autoscale.is_some()) {
                self.error(
                    &[key("services"), key(&service.name), key("autoscale")],
                    "follows the sampled CPU, but `tend.sample_every` turns sampling off",
                );
            }
        }
        self.socket_warnings(&sockets, &services);
        Some(Manifest {
            path: self.file.to_path_buf(),
            daemon,
            services: services.into_iter().map(std::sync::Arc::new).collect(),
            sockets,
            warnings: std::mem::take(&mut self.warnings),
        })
    }

    fn unknown_key(&mut self, parent: &[Segment], name: &str, line: usize, known: &[String]) {
        let hint = did_you_mean(name, known)
            .map(|k| format!("; did you mean `{k}`?"))
            .unwrap_or_default();
        self.errors.push(ConfigError::new(
            self.file,
            Some(line),
            Dotted(&join(parent, &[key(name)])).to_string(),
            format!("unknown key `{name}`{hint}"),
        ));
    }

    /// Deserialize `node` (found at `base`) into `T`. On a serde error: report it, remove the
    /// key it names from a copy of the tree and try again, so that every bad key is reported
    /// and the rest still parses. Each retry removes a key, so the loop is bounded.
    ///
    /// Also returns the top-level keys that were removed: later checks must not mistake a
    /// key dropped for being malformed for a key left out (no "missing `command`" after
    /// "`command`: invalid type").
    fn collect<T: DeserializeOwned>(
        &mut self,
        node: &Node,
        base: &[Segment],
    ) -> (Option<T>, HashSet<String>) {
        let mut node = node.clone();
        let mut broken = HashSet::new();
        for _ in 0..=count_entries(&node) {
            let error = match serde_path_to_error::deserialize::<_, T>(node.to_json()) {
                Ok(value) => return (Some(value), broken),
                Err(error) => error,
            };
            let mut path: Vec<Segment> = error
                .path()
                .iter()
                .filter_map(|segment| match segment {
                    serde_path_to_error::Segment::Map { key } => Some(Segment::Key(key.clone())),
                    serde_path_to_error::Segment::Seq { index } => Some(Segment::Index(*index)),
                    _ => None,
                })
                .collect();
            let message = error.inner().to_string();
            let removal = if let Some((field, expected)) = unknown_field(&message) {
                if path.last() == Some(&Segment::Key(field.clone())) {
                    path.pop();
                }
                let parent = join(base, &path);
                let line = self.root.line_of(&join(&parent, &[key(&field)]));
                self.unknown_key(&parent, &field, line, &expected);
                path.push(Segment::Key(field));
                path
            } else {
                self.error(&join(base, &path), humanize(&message));
                // Arrays are dropped whole: removing one element would shift the indices
                // that later errors use to find their lines.
                let keys = path
                    .iter()
                    .take_while(|s| matches!(s, Segment::Key(_)))
                    .count();
                path.truncate(keys);
                path
            };
            if let Some(Segment::Key(top)) = removal.first() {
                broken.insert(top.clone());
            }
            if !node.remove(&removal) {
                return (None, broken);
            }
        }
        (None, broken)
    }

    fn daemon(&mut self, node: Option<&Node>, service_names: &[String]) -> DaemonSettings {
        let raw = match node {
            None => RawDaemon::default(),
            Some(n) if n.value == Value::Null => RawDaemon::default(),
            Some(n) => self
                .collect::<RawDaemon>(n, &[key("tend")])
                .0
                .unwrap_or_default(),
        };
        let state_dir = match raw.state_dir {
            None => self.base_dir.join(".tend"),
            Some(dir) if dir.trim().is_empty() => {
                self.error(&[key("tend"), key("state_dir")], "must not be empty");
                self.base_dir.join(".tend")
            }
            Some(dir) => clean(&self.base_dir.join(dir)),
        };
        let socket = match raw.socket {
            None => state_dir.join("tend.sock"),
            Some(path) if path.trim().is_empty() => {
                self.error(&[key("tend"), key("socket")], "must not be empty");
                state_dir.join("tend.sock")
            }
            Some(path) => clean(&self.base_dir.join(path)),
        };
        // sockaddr_un holds 107 bytes and a NUL, and tend first binds a name one byte longer
        // (`tend.sock~`) to move it into place when ready.
        if socket.as_os_str().len() > 106 {
            self.error(
                &[key("tend"), key("socket")],
                format!(
                    "{} is {} bytes long; a unix socket path can have at most 106 here",
                    socket.display(),
                    socket.as_os_str().len()
                ),
            );
        }
        let cgroups = match raw.cgroups {
            None | Some(RawCgroups::Auto) => CgroupMode::Auto,
            Some(RawCgroups::Off) => CgroupMode::Off,
        };
        let log = raw.log.map(|own| RawLogs {
            max_size: own.max_size,
            rotate_every: own.rotate_every,
            backups: own.backups,
            compress: own.compress,
            ..RawLogs::default()
        });
        let log = self.logs(log.as_ref(), &[key("tend"), key("log")]);
        let sample_every = match &raw.sample_every {
            None => Some(Duration::from_secs(2)),
            Some(value) => self
                .duration(value, &[key("tend"), key("sample_every")])
                .filter(|d| !d.is_zero()),
        };
        if sample_every.is_some_and(|d| d < Duration::from_millis(100)) {
            self.error(
                &[key("tend"), key("sample_every")],
                "must be at least 100ms (or \"0s\" to turn sampling off)",
            );
        }
        let max_starting = match raw.max_starting {
            None => None,
            Some(n) if n >= 1 => Some(n as usize),
            Some(n) => {
                self.error(
                    &[key("tend"), key("max_starting")],
                    format!("must be at least 1, not {n}"),
                );
                None
            }
        };
        let mut limit = |value: Option<i64>, name: &str| match value {
            None => None,
            Some(n) if n >= 1 => Some(n as u64),
            Some(n) => {
                self.error(
                    &[key("tend"), key(name)],
                    format!("must be at least 1, not {n}"),
                );
                None
            }
        };
        let min_fds = limit(raw.min_fds, "min_fds");
        let min_procs = limit(raw.min_procs, "min_procs");
        let socket_group = raw.socket_group.as_ref().and_then(|group| {
            self.identity(group, &[key("tend"), key("socket_group")], Identity::Group)
        });
        let http = raw.http.as_ref().and_then(|http| self.http(http));
        let history = self.history(raw.history.as_ref());
        let notify = raw
            .notify
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, entry)| self.notify(entry, i, service_names))
            .collect();
        DaemonSettings {
            state_dir,
            socket,
            cgroups,
            log,
            sample_every,
            max_starting,
            socket_group,
            min_fds,
            min_procs,
            http,
            history,
            notify,
        }
    }

    fn http(&mut self, raw: &RawHttp) -> Option<HttpSettings> {
        let at = |k: &str| [key("tend"), key("http"), key(k)];
        let Some(listen) = &raw.listen else {
            if raw.tokens_file.is_some() || raw.tls_cert.is_some() || raw.basic_auth.is_some() {
                self.error(&at("listen"), "is required to turn the listener on");
            }
            return None;
        };
        let listen = match listen.parse::<std::net::SocketAddr>() {
            Ok(address) => Some(address),
            Err(_) => {
                self.error(
                    &at("listen"),
                    format!("expected an address and port like \"127.0.0.1:9100\", not `{listen}`"),
                );
                None
            }
        };
        let basic_auth = raw.basic_auth.as_ref().and_then(|b| {
            if b.username.is_empty() || b.password.is_empty() {
                self.error(&at("basic_auth"), "needs a non-empty username and password");
                return None;
            }
            if let Some(hex) = b.password.strip_prefix("{SHA}")
                && (hex.len() != 40 || !hex.chars().all(|c| c.is_ascii_hexdigit()))
            {
                self.error(
                    &at("basic_auth"),
                    "a `{SHA}` password is `{SHA}` and the 40 hex digits of the password's SHA-1",
                );
                return None;
            }
            Some((b.username.clone(), b.password.clone()))
        });
        let tokens_file = match &raw.tokens_file {
            None if basic_auth.is_some() => Some(None),
            None => {
                self.error(
                    &at("tokens_file"),
                    "is required with `listen` (or `basic_auth`): the listener never serves anyone unauthenticated",
                );
                None
            }
            Some(file) => {
                let path = clean(&self.base_dir.join(file));
                if !path.is_file() {
                    self.error(
                        &at("tokens_file"),
                        format!("{} does not exist", path.display()),
                    );
                }
                Some(Some(path))
            }
        };
        let tls = match (&raw.tls_cert, &raw.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key_file)) => Some((
                clean(&self.base_dir.join(cert)),
                clean(&self.base_dir.join(key_file)),
            )),
            (Some(_), None) => {
                self.error(&at("tls_key"), "is required with `tls_cert`");
                None
            }
            (None, Some(_)) => {
                self.error(&at("tls_cert"), "is required with `tls_key`");
                None
            }
        };
        let max_connections = match raw.max_connections {
            None => 64,
            Some(n @ 1..=65536) => n as usize,
            Some(n) => {
                self.error(
                    &at("max_connections"),
                    format!("must be between 1 and 65536, not {n}"),
                );
                64
            }
        };
        Some(HttpSettings {
            listen: listen?,
            tokens_file: tokens_file?,
            basic_auth,
            tls,
            metrics_public: raw.metrics_public.unwrap_or(false),
            max_connections,
        })
    }

    fn history(&mut self, raw: Option<&RawHistory>) -> HistorySettings {
        let mut history = HistorySettings::default();
        let Some(raw) = raw else {
            return history;
        };
        history.enabled = raw.enabled.unwrap_or(true);
        if let Some(value) = &raw.retention {
            let path = [key("tend"), key("history"), key("retention")];
            match self.duration(value, &path) {
                Some(d) if d >= Duration::from_secs(3600) => history.retention = d,
                Some(_) => self.error(&path, "must be at least 1h"),
                None => {}
            }
        }
        history
    }

    fn notify(
        &mut self,
        raw: &RawNotify,
        index: usize,
        service_names: &[String],
    ) -> Option<NotifySpec> {
        let base = [key("tend"), key("notify"), Segment::Index(index)];
        let at = |k: &str| join(&base, &[key(k)]);
        for name in raw.services.iter().flatten() {
            if !service_names.contains(name) {
                let hint = did_you_mean(name, service_names)
                    .map(|k| format!("; did you mean `{k}`?"))
                    .unwrap_or_default();
                self.error(&at("services"), format!("no service named `{name}`{hint}"));
            }
        }
        let timeout = match &raw.timeout {
            None => Duration::from_secs(10),
            Some(value) => self.duration(value, &at("timeout"))?,
        };
        if timeout.is_zero() {
            self.error(&at("timeout"), "must be longer than 0s");
            return None;
        }
        let on = raw
            .on
            .iter()
            .flatten()
            .map(|kind| match kind {
                RawNoticeKind::Fatal => NoticeKind::Fatal,
                RawNoticeKind::Unhealthy => NoticeKind::Unhealthy,
                RawNoticeKind::Restarted => NoticeKind::Restarted,
                RawNoticeKind::Recovered => NoticeKind::Recovered,
                RawNoticeKind::Flapping => NoticeKind::Flapping,
            })
            .collect();
        let target = match (&raw.webhook, &raw.command) {
            (Some(url), None) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    self.error(
                        &at("webhook"),
                        format!("expected an http:// or https:// URL, not `{url}`"),
                    );
                    return None;
                }
                match url.parse::<axum::http::Uri>() {
                    Err(_) => {
                        self.error(&at("webhook"), format!("`{url}` is not a valid URL"));
                        return None;
                    }
                    Ok(uri) if uri.authority().is_some_and(|a| a.as_str().contains('@')) => {
                        self.error(
                            &at("webhook"),
                            "put credentials in `headers` (e.g. Authorization), not in the URL",
                        );
                        return None;
                    }
                    Ok(_) => {}
                }
                for (name, value) in raw.headers.iter().flatten() {
                    if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                        self.error(
                            &at("headers"),
                            format!("`{name}` is not a valid header name"),
                        );
                        return None;
                    }
                    if axum::http::HeaderValue::from_str(value).is_err() {
                        self.error(
                            &at("headers"),
                            format!("the value of `{name}` is not a valid header value"),
                        );
                        return None;
                    }
                }
                let format = match raw.format {
                    None | Some(RawPayloadFormat::Json) => PayloadFormat::Json,
                    Some(RawPayloadFormat::Slack) => PayloadFormat::Slack,
                    Some(RawPayloadFormat::Discord) => PayloadFormat::Discord,
                    Some(RawPayloadFormat::Text) => PayloadFormat::Text,
                };
                let headers = raw
                    .headers
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                NotifyTarget::Webhook {
                    url: url.clone(),
                    format,
                    headers,
                    timeout,
                }
            }
            (None, Some(command)) => {
                if command.trim().is_empty() {
                    self.error(&at("command"), "must not be empty");
                    return None;
                }
                if raw.format.is_some() || raw.headers.is_some() {
                    self.error(
                        &at(if raw.format.is_some() {
                            "format"
                        } else {
                            "headers"
                        }),
                        "applies to a `webhook`, not a `command`",
                    );
                }
                NotifyTarget::Command {
                    command: command.clone(),
                    timeout,
                }
            }
            (Some(_), Some(_)) => {
                self.error(&at("command"), "give `webhook` or `command`, not both");
                return None;
            }
            (None, None) => {
                self.error(&base, "needs a `webhook` or a `command`");
                return None;
            }
        };
        Some(NotifySpec {
            on,
            services: raw.services.clone().unwrap_or_default(),
            target,
        })
    }

    /// The entries of a top-level table of named tables (`[services]`, `[sockets]`): none
    /// when it is absent or empty, and an error when it is not a table.
    fn named_tables<'n>(&mut self, node: Option<&'n Node>, what: &str) -> &'n [Entry] {
        let Some(n) = node else { return &[] };
        match &n.value {
            Value::Null => &[],
            Value::Table(entries) => entries,
            _ => {
                self.error(
                    &[key(what)],
                    format!("expected a table of {what}, found {}", n.kind()),
                );
                &[]
            }
        }
    }

    fn services(&mut self, node: Option<&Node>, socket_names: &[String]) -> Vec<ServiceSpec> {
        let entries = self.named_tables(node, "services");

        let names: Vec<String> = entries.iter().map(|e| e.key.clone()).collect();
        let mut raws: Vec<(String, Option<RawService>, HashSet<String>)> = Vec::new();
        for entry in entries {
            let path = [key("services"), key(&entry.key)];
            if let Err(message) = check_name(&entry.key) {
                self.error(&path, message);
            }
            let (raw, broken) = self.collect::<RawService>(&entry.value, &path);
            raws.push((entry.key.clone(), raw, broken));
        }

        // Kinds first: `completed` dependencies need to know which services are tasks.
        // A service whose `kind` was malformed has no known kind, rather than the default.
        let kinds: HashMap<&str, Kind> = raws
            .iter()
            .filter(|(_, _, broken)| !broken.contains("kind"))
            .filter_map(|(name, raw, _)| Some((name.as_str(), kind(raw.as_ref()?.kind))))
            .collect();
        let mut dependencies: Vec<DependencyRefs> = Vec::new();
        let mut specs = Vec::new();
        for (name, raw, broken) in &raws {
            let refs = dependency_refs(name, raw.as_ref().and_then(|r| r.depends_on.as_ref()));
            if let Some(raw) = raw
                && let Some(spec) = self.service(name, raw, broken, &refs, &names, socket_names)
            {
                specs.push(spec);
            }
            dependencies.push(refs);
        }

        self.check_dependencies(&names, &kinds, &dependencies);
        specs
    }

    fn check_dependencies(
        &mut self,
        names: &[String],
        kinds: &HashMap<&str, Kind>,
        dependencies: &[DependencyRefs],
    ) {
        let index: HashMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let mut graph: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
        for (i, (name, refs)) in names.iter().zip(dependencies).enumerate() {
            let mut seen = HashSet::new();
            for (dep, condition, _, path) in &refs.entries {
                if !seen.insert(dep) {
                    self.error(path, format!("`{dep}` is listed twice"));
                    continue;
                }
                if dep == name {
                    self.error(path, format!("`{name}` cannot depend on itself"));
                    continue;
                }
                let Some(&d) = index.get(dep.as_str()) else {
                    let hint = did_you_mean(dep, names)
                        .map(|k| format!("; did you mean `{k}`?"))
                        .unwrap_or_default();
                    self.error(path, format!("unknown service `{dep}`{hint}"));
                    continue;
                };
                if *condition == Condition::Completed
                    && kinds.get(dep.as_str()) == Some(&Kind::Service)
                {
                    self.error(
                        path,
                        format!(
                            "`completed` needs `{dep}` to be a task (`kind = \"task\"`), but it is a service"
                        ),
                    );
                }
                graph[i].push(d);
            }
        }
        for cycle in graph::find_cycles(&graph) {
            let Some(&first) = cycle.first() else {
                continue;
            };
            let mut path: Vec<&str> = cycle.iter().map(|&i| names[i].as_str()).collect();
            path.push(names[first].as_str());
            self.error(
                &[key("services"), key(&names[first]), key("depends_on")],
                format!("dependency cycle: {}", path.join(" -> ")),
            );
        }
    }

    /// Check and convert one service. None when anything in it is wrong (all reported).
    fn service(
        &mut self,
        name: &str,
        raw: &RawService,
        broken: &HashSet<String>,
        deps: &DependencyRefs,
        service_names: &[String],
        socket_names: &[String],
    ) -> Option<ServiceSpec> {
        let errors_before = self.errors.len();
        let base = [key("services"), key(name)];
        let at = |field: &str| join(&base, &[key(field)]);

        let file_env = self.env_files_of(raw, &at("env_file"));
        let env_files: Vec<PathBuf> = raw
            .env_file
            .iter()
            .flat_map(|list| list.0.iter())
            .filter(|file| !file.trim().is_empty())
            .map(|file| clean(&self.base_dir.join(file)))
            .collect();
        let process_env = self.env;
        let lookup = |var: &str| file_env.get(var).cloned().or_else(|| process_env(var));

        let program = self.program(raw, broken, &base, &lookup);
        let cwd = raw.cwd.as_ref().and_then(|cwd| {
            let cwd = self.interpolate(cwd, &at("cwd"), &lookup)?;
            if cwd.is_empty() {
                self.error(&at("cwd"), "must not be empty");
                return None;
            }
            self.utf8_path(clean(&self.base_dir.join(cwd)), &at("cwd"))
        });

        let mut env = file_env.clone();
        for (var, value) in raw.env.iter().flatten() {
            let path = join(&at("env"), &[key(var)]);
            if var.is_empty() || var.contains(['=', '\0']) {
                self.error(
                    &path,
                    "invalid variable name: it must be non-empty without `=`",
                );
                continue;
            }
            let text = match &value.0 {
                Loose::Text(s) => s.clone(),
                other => other.to_string(),
            };
            if let Some(text) = self.interpolate(&text, &path, &lookup) {
                env.insert(var.clone(), text);
            }
        }

        let user = raw
            .user
            .as_ref()
            .and_then(|u| self.identity(u, &at("user"), Identity::User));
        let group = raw
            .group
            .as_ref()
            .and_then(|g| self.identity(g, &at("group"), Identity::Group));
        let umask = raw.umask.as_ref().and_then(|u| self.umask(u, &at("umask")));

        let kind = kind(raw.kind);
        let instances = match raw.instances {
            None => 1,
            Some(n) if n < 1 => {
                self.error(&at("instances"), format!("must be at least 1, not {n}"));
                1
            }
            Some(n) if n > MAX_INSTANCES => {
                self.error(
                    &at("instances"),
                    format!("must be at most {MAX_INSTANCES}, not {n}"),
                );
                1
            }
            Some(n) => u32::try_from(n).unwrap_or(1),
        };
        let autoscale = raw
            .autoscale
            .as_ref()
            .and_then(|a| self.autoscale(a, &at("autoscale"), kind));
        // An autoscaled service starts with `instances`, which must be a count it may have;
        // unwritten, it starts with `min`.
        let instances = match (&autoscale, raw.instances) {
            (Some(a), None) => a.min,
            (Some(a), Some(_)) if !(a.min..=a.max).contains(&instances) => {
                self.error(
                    &at("instances"),
                    format!(
                        "{instances} is outside autoscale's {}..={}: it is the count the service starts with",
                        a.min, a.max
                    ),
                );
                a.min
            }
            _ => instances,
        };
        // The most instances the service may ever have: their ports must all exist.
        let most = autoscale.as_ref().map_or(instances, |a| a.max);
        let port_base = raw.port_base.and_then(|p| {
            let Ok(port) = u16::try_from(p) else {
                self.error(
                    &at("port_base"),
                    format!("must be a port in 1..=65535, not {p}"),
                );
                return None;
            };
            if port == 0 {
                self.error(&at("port_base"), "must be a port in 1..=65535, not 0");
                return None;
            }
            let last = u32::from(port) + most - 1;
            if last > u32::from(u16::MAX) {
                self.error(
                    &at("port_base"),
                    format!("{most} instances from port {port} would need port {last}, past 65535"),
                );
                return None;
            }
            Some(port)
        });

        let restart = match (raw.restart, kind) {
            (Some(RawRestart::Always), _) | (None, Kind::Service) => RestartPolicy::Always,
            (Some(RawRestart::OnFailure), _) => RestartPolicy::OnFailure,
            (Some(RawRestart::Never), _) | (None, Kind::Task) => RestartPolicy::Never,
        };
        let exit_codes = self.exit_codes(raw.exit_codes.as_deref(), &at("exit_codes"));
        let backoff = self.backoff(
            raw.backoff.as_ref(),
            broken.contains("backoff"),
            &at("backoff"),
        );
        let min_uptime = self.duration_or(
            raw.min_uptime.as_ref(),
            &at("min_uptime"),
            Duration::from_secs(1),
        );
        let restart_window = self.duration_or(
            raw.restart_window.as_ref(),
            &at("restart_window"),
            Duration::from_secs(60),
        );
        let stop_timeout = self.duration_or(
            raw.stop_timeout.as_ref(),
            &at("stop_timeout"),
            Duration::from_secs(10),
        );
        let cooldown = raw
            .cooldown
            .as_ref()
            .and_then(|d| self.duration(d, &at("cooldown")));
        let max_restarts = match raw.max_restarts {
            None => 10,
            Some(n) => u32::try_from(n).unwrap_or_else(|_| {
                let why = if n < 0 {
                    "must be at least 0"
                } else {
                    "is too large"
                };
                self.error(&at("max_restarts"), format!("{why}: {n}"));
                0
            }),
        };
        let restart_limit = match raw.restart_limit {
            None | Some(RawRestartLimit::Window) => RestartLimit::Window,
            Some(RawRestartLimit::Unstable) => RestartLimit::Unstable,
        };
        let stop_signal = match &raw.stop_signal {
            None => Signal::Term,
            Some(value) => Signal::from_str(&value.0.to_string()).unwrap_or_else(|e| {
                self.error(&at("stop_signal"), e.to_string());
                Signal::Term
            }),
        };
        let reload_signal = raw.reload_signal.as_ref().and_then(|value| {
            Signal::from_str(&value.0.to_string())
                .map_err(|e| self.error(&at("reload_signal"), e.to_string()))
                .ok()
        });
        let reload_timeout = self.duration_or(
            raw.reload_timeout.as_ref(),
            &at("reload_timeout"),
            Duration::from_secs(60),
        );
        if reload_timeout.is_zero() {
            self.error(
                &at("reload_timeout"),
                "must be longer than 0s: a replacement needs time to become ready",
            );
        }
        let max_surge = match raw.max_surge {
            None => 1,
            Some(n) if n >= 1 => u32::try_from(n).unwrap_or(u32::MAX),
            Some(n) => {
                self.error(&at("max_surge"), format!("must be at least 1, not {n}"));
                1
            }
        };
        let mut depends_on: Vec<Dependency> = Vec::new();
        for (service, condition, on_unready, _) in &deps.entries {
            // Duplicates are reported with the other dependency checks.
            if !depends_on.iter().any(|d| &d.service == service) {
                depends_on.push(Dependency {
                    service: service.clone(),
                    condition: *condition,
                    on_unready: *on_unready,
                });
            }
        }
        let groups = self.groups(raw.groups.as_deref(), &at("groups"), service_names);
        let sockets = self.service_sockets(raw.sockets.as_deref(), &at("sockets"), socket_names);
        let logs = self.logs(raw.logs.as_ref(), &at("logs"));
        let readiness = self.probe(raw.readiness.as_ref(), &base, ProbeRole::Readiness);
        let liveness = self.probe(raw.liveness.as_ref(), &base, ProbeRole::Liveness);
        let startup = self.probe(raw.startup.as_ref(), &base, ProbeRole::Startup);
        let watchdog = raw
            .watchdog
            .as_ref()
            .and_then(|d| self.duration(d, &at("watchdog")));
        if watchdog.is_some()
            && !readiness
                .as_ref()
                .is_some_and(|r| r.check == CheckSpec::Notify)
        {
            self.error(
                &at("watchdog"),
                "needs sd_notify: set `readiness = { notify = true }` too",
            );
        }
        let resources = self.resources(raw, &base);
        let (cron_restart, schedule) = self.schedules(raw, kind, &base);
        let watch = self.watch(raw, &base);
        if startup.is_some() && liveness.is_none() {
            self.error(
                &at("startup"),
                "only delays liveness checks; add a `liveness` probe or remove it",
            );
        }

        if self.errors.len() != errors_before {
            return None;
        }
        Some(ServiceSpec {
            name: name.to_string(),
            program: program?,
            cwd,
            env,
            env_files,
            user,
            group,
            umask,
            kind,
            // A scheduled task runs when its schedule says, unless told to run at `up` too.
            autostart: raw.autostart.unwrap_or(schedule.is_none()),
            instances,
            // An autoscaled count may pass through 1: its names stay `web:0`.
            numbered: autoscale.is_some(),
            autoscale,
            port_base,
            restart,
            exit_codes,
            backoff,
            min_uptime,
            max_restarts,
            restart_window,
            restart_limit,
            cooldown,
            stop_signal,
            stop_timeout,
            reload_signal,
            reload_timeout,
            max_surge,
            depends_on,
            logs,
            priority: raw.priority.unwrap_or(0),
            groups,
            readiness,
            liveness,
            startup,
            watchdog,
            resources,
            critical: raw.critical.unwrap_or(false),
            event_listener: raw
                .event_listener
                .as_ref()
                .and_then(|l| self.event_listener(l, &at("event_listener"), kind)),
            sockets,
            cron_restart,
            schedule,
            watch,
        })
    }

    /// `cron_restart` (services), `schedule` and `max_concurrent` (tasks).
    fn schedules(
        &mut self,
        raw: &RawService,
        kind: Kind,
        base: &[Segment],
    ) -> (Option<Cron>, Option<Cron>) {
        let at = |field: &str| join(base, &[key(field)]);
        let parse = |this: &mut Self, text: Option<&String>, field: &str| {
            let cron = Cron::parse(text?)
                .map_err(|e| this.error(&at(field), e))
                .ok()?;
            Some(cron)
        };
        let cron_restart = parse(self, raw.cron_restart.as_ref(), "cron_restart");
        let schedule = parse(self, raw.schedule.as_ref(), "schedule");
        if raw.cron_restart.is_some() && kind == Kind::Task {
            self.error(
                &at("cron_restart"),
                "a task runs on a schedule with `schedule`; `cron_restart` restarts a running service",
            );
        }
        if raw.schedule.is_some() && kind == Kind::Service {
            self.error(
                &at("schedule"),
                "only a task (`kind = \"task\"`) runs on a schedule; a service is restarted on one with `cron_restart`",
            );
        }
        match raw.max_concurrent {
            None => {}
            Some(_) if raw.schedule.is_none() => {
                self.error(&at("max_concurrent"), "only applies with `schedule`");
            }
            Some(n) if n < 1 => {
                self.error(&at("max_concurrent"), format!("must be 1, not {n}"));
            }
            Some(1) => {}
            Some(n) => self.error(
                &at("max_concurrent"),
                format!(
                    "{n} is not supported: tend runs one run of a scheduled task at a time, and skips a run that is due while the previous one is still going; use 1"
                ),
            ),
        }
        (cron_restart, schedule)
    }

    /// `watch`, `watch_ignore` and `watch_debounce`.
    fn watch(&mut self, raw: &RawService, base: &[Segment]) -> Option<WatchSpec> {
        let at = |field: &str| join(base, &[key(field)]);
        let Some(paths) = &raw.watch else {
            for field in ["watch_ignore", "watch_debounce"] {
                let written = match field {
                    "watch_ignore" => raw.watch_ignore.is_some(),
                    _ => raw.watch_debounce.is_some(),
                };
                if written {
                    self.error(&at(field), "only applies with `watch`");
                }
            }
            return None;
        };
        if paths.0.is_empty() {
            self.error(&at("watch"), "must name at least one path or glob");
            return None;
        }
        let patterns = |this: &mut Self, list: &[String], field: &str| {
            let mut out = Vec::new();
            for (i, written) in list.iter().enumerate() {
                match PathPattern::new(written, &this.base_dir) {
                    Ok(pattern) => out.push(pattern),
                    Err(why) => this.error(&join(&at(field), &[Segment::Index(i)]), why),
                }
            }
            out
        };
        let paths = patterns(self, &paths.0, "watch");
        let ignore = patterns(
            self,
            raw.watch_ignore.as_ref().map_or(&[][..], |l| &l.0),
            "watch_ignore",
        );
        let debounce = self.duration_or(
            raw.watch_debounce.as_ref(),
            &at("watch_debounce"),
            DEFAULT_WATCH_DEBOUNCE,
        );
        Some(WatchSpec {
            paths,
            ignore,
            debounce,
        })
    }

    /// A service's `sockets`: names of `[sockets]` tables, each once.
    fn service_sockets(
        &mut self,
        names: Option<&[String]>,
        path: &[Segment],
        socket_names: &[String],
    ) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (i, name) in names.unwrap_or_default().iter().enumerate() {
            let at = join(path, &[Segment::Index(i)]);
            if !socket_names.contains(name) {
                let hint = match did_you_mean(name, socket_names) {
                    Some(known) => format!("; did you mean `{known}`?"),
                    None if socket_names.is_empty() => {
                        format!("; define it in a `[sockets.{name}]` table")
                    }
                    None => String::new(),
                };
                self.error(&at, format!("no socket named `{name}`{hint}"));
            } else if out.contains(name) {
                self.error(&at, format!("`{name}` is listed twice"));
            } else {
                out.push(name.clone());
            }
        }
        out
    }

    /// The `[sockets]` tables, in file order; a socket with a mistake is left out (reported).
    fn sockets(&mut self, node: Option<&Node>) -> Vec<SocketSpec> {
        let entries = self.named_tables(node, "sockets");
        let mut specs: Vec<SocketSpec> = Vec::new();
        for entry in entries {
            let path = [key("sockets"), key(&entry.key)];
            if let Err(message) = check_socket_name(&entry.key) {
                self.error(&path, message);
            }
            let (raw, broken) = self.collect::<RawSocket>(&entry.value, &path);
            let Some(spec) = raw.and_then(|raw| self.socket(&entry.key, &raw, &broken)) else {
                continue;
            };
            let same = specs
                .iter()
                .find(|other| match (&other.listen, &spec.listen) {
                    (Listen::Tcp { address: a, .. }, Listen::Tcp { address: b, .. }) => {
                        a == b && a.port() != 0
                    }
                    (Listen::Unix { path: a, .. }, Listen::Unix { path: b, .. }) => a == b,
                    _ => false,
                });
            if let Some(other) = same {
                let message = format!("the same address as socket `{}`", other.name);
                self.error(&join(&path, &[key("listen")]), message);
                continue;
            }
            specs.push(spec);
        }
        specs
    }

    fn socket(
        &mut self,
        name: &str,
        raw: &RawSocket,
        broken: &HashSet<String>,
    ) -> Option<SocketSpec> {
        let base = [key("sockets"), key(name)];
        let at = |field: &str| join(&base, &[key(field)]);
        let errors_before = self.errors.len();
        let backlog = match raw.backlog {
            None => DEFAULT_BACKLOG,
            Some(n @ 1..=65535) => n as u32,
            Some(n) => {
                self.error(
                    &at("backlog"),
                    format!("must be between 1 and 65535, not {n}"),
                );
                DEFAULT_BACKLOG
            }
        };
        let Some(written) = &raw.listen else {
            if !broken.contains("listen") {
                self.error(
                    &base,
                    "missing `listen`: an address such as \"tcp://0.0.0.0:8080\" or \"unix:/run/app.sock\"",
                );
            }
            return None;
        };
        let env = self.env;
        let written = self.interpolate(written, &at("listen"), env)?;
        let listen = match parse_listen(&written) {
            Err(message) => {
                self.error(&at("listen"), message);
                None
            }
            Ok(ListenAddress::Tcp(address)) => {
                for (field, set) in [
                    ("mode", raw.mode.is_some()),
                    ("owner", raw.owner.is_some()),
                    ("group", raw.group.is_some()),
                ] {
                    if set {
                        self.error(&at(field), "applies to unix sockets only");
                    }
                }
                Some(Listen::Tcp {
                    address,
                    reuse_port: raw.reuse_port.unwrap_or(false),
                })
            }
            Ok(ListenAddress::Unix(path)) => {
                if raw.reuse_port.is_some() {
                    self.error(&at("reuse_port"), "applies to tcp sockets only");
                }
                let path = clean(&self.base_dir.join(path));
                // sockaddr_un holds 107 bytes and a NUL.
                if path.as_os_str().len() > 107 {
                    self.error(
                        &at("listen"),
                        format!(
                            "{} is {} bytes long; a unix socket path can have at most 107",
                            path.display(),
                            path.as_os_str().len()
                        ),
                    );
                }
                let mode = match &raw.mode {
                    None => Some(DEFAULT_SOCKET_MODE),
                    Some(mode) => self.mode(mode, &at("mode")),
                };
                let owner = raw
                    .owner
                    .as_ref()
                    .and_then(|u| self.identity(u, &at("owner"), Identity::User));
                let group = raw
                    .group
                    .as_ref()
                    .and_then(|g| self.identity(g, &at("group"), Identity::Group));
                mode.map(|mode| Listen::Unix {
                    path,
                    mode,
                    owner,
                    group,
                })
            }
        };
        if self.errors.len() != errors_before {
            return None;
        }
        Some(SocketSpec {
            name: name.to_string(),
            listen: listen?,
            backlog,
        })
    }

    /// What validation cannot refuse but a person should hear: a socket nobody receives,
    /// and probes of a socket's port, which reach whichever instance the kernel picks (or
    /// only the kernel's queue).
    fn socket_warnings(&mut self, sockets: &[SocketSpec], services: &[ServiceSpec]) {
        for socket in sockets {
            if !services.iter().any(|s| s.sockets.contains(&socket.name)) {
                self.warning(
                    &[key("sockets"), key(&socket.name)],
                    "no service receives this socket (list it in a service's `sockets`); tend binds it all the same",
                );
            }
        }
        for service in services {
            let ports: Vec<(u16, &str)> = service
                .sockets
                .iter()
                .filter_map(|name| sockets.iter().find(|s| &s.name == name))
                .filter_map(|s| match s.listen {
                    Listen::Tcp { address, .. } if address.port() != 0 => {
                        Some((address.port(), s.name.as_str()))
                    }
                    _ => None,
                })
                .collect();
            if ports.is_empty() {
                continue;
            }
            let probes = [
                ("readiness", &service.readiness),
                ("liveness", &service.liveness),
                ("startup", &service.startup),
            ];
            for (role, probe) in probes {
                let Some(probe) = probe else { continue };
                for (check, field) in std::iter::once((&probe.check, None))
                    .chain(probe.fallback.iter().map(|f| (f, Some("fallback"))))
                {
                    let Some((kind, port)) = probe_port(check, service) else {
                        continue;
                    };
                    let Some((_, socket)) = ports.iter().find(|(p, _)| *p == port) else {
                        continue;
                    };
                    let message = match kind {
                        "tcp" => format!(
                            "connects to port {port} of socket `{socket}`, which tend keeps listening: the connection succeeds even before the program accepts anything, so this check always passes; probe a port of each instance's own, or use exec or notify"
                        ),
                        _ if service.instances > 1 => format!(
                            "asks port {port} of socket `{socket}`, which all {} instances share: the kernel picks which one answers, so the probe cannot tell them apart{}; probe a port of each instance's own, or use exec or notify",
                            service.instances,
                            if role == "readiness" {
                                ", nor, during `tend reload`, a replacement from the process it replaces"
                            } else {
                                ""
                            }
                        ),
                        // One instance is told apart, except from its own replacement.
                        _ if role == "readiness" => format!(
                            "asks port {port} of socket `{socket}`: during `tend reload` (or a rolling `tend apply`) the process being replaced answers it too, so the probe cannot tell when the replacement is ready; use notify, or probe a port of the process's own"
                        ),
                        _ => continue,
                    };
                    let mut path = vec![key("services"), key(&service.name), key(role)];
                    path.extend(field.map(key));
                    path.push(key(kind));
                    self.warning(&path, message);
                }
            }
        }
    }

    /// A unix socket's `mode`: permission bits, as octal text or an integer.
    fn mode(&mut self, value: &raw::ModeValue, path: &[Segment]) -> Option<u32> {
        self.permission_bits(&value.0, path, "mode", "660")
    }

    fn resources(&mut self, raw: &RawService, base: &[Segment]) -> ResourceSpec {
        let at = |field: &str| join(base, &[key(field)]);
        let size = |this: &mut Self, value: &Option<SizeValue>, field: &str| {
            let value = value.as_ref()?;
            let parsed = match &value.0 {
                Loose::Text(text) => size::parse(text),
                Loose::Integer(n) if *n > 0 => Ok(*n as u64),
                other => Err(format!("`{other}` is not a size such as \"1GB\"")),
            };
            match parsed {
                Ok(0) => {
                    this.error(&at(field), "must be more than 0");
                    None
                }
                Ok(bytes) => Some(bytes),
                Err(message) => {
                    this.error(&at(field), message);
                    None
                }
            }
        };
        let max_memory = size(self, &raw.max_memory, "max_memory");
        let memory_max = size(self, &raw.memory_max, "memory_max");
        let warn_memory = size(self, &raw.warn_memory, "warn_memory");
        let cpu_max = raw
            .cpu_max
            .as_ref()
            .and_then(|v| self.cpu_share(v, &at("cpu_max")))
            .map(|percent| percent / 100.0);
        let warn_cpu = raw
            .warn_cpu
            .as_ref()
            .and_then(|v| self.cpu_share(v, &at("warn_cpu")));
        let max_gpu_memory = size(self, &raw.max_gpu_memory, "max_gpu_memory");
        let gpus: Vec<String> = raw
            .gpus
            .iter()
            .flatten()
            .filter_map(|id| match &id.0 {
                Loose::Integer(n) if *n >= 0 => Some(n.to_string()),
                Loose::Text(t) if !t.trim().is_empty() && !t.contains(',') => {
                    Some(t.trim().to_string())
                }
                other => {
                    self.error(&at("gpus"), format!("`{other}` is not a GPU index or UUID"));
                    None
                }
            })
            .collect();
        let gpus_per_instance = match raw.gpus_per_instance {
            None => gpus.len(),
            Some(n) if n >= 1 && (gpus.is_empty() || n as usize <= gpus.len()) => n as usize,
            Some(n) => {
                self.error(
                    &at("gpus_per_instance"),
                    format!(
                        "must be between 1 and the {} listed in gpus, not {n}",
                        gpus.len()
                    ),
                );
                1
            }
        };
        if raw.gpus_per_instance.is_some() && gpus.is_empty() {
            self.error(&at("gpus_per_instance"), "needs `gpus`");
        }
        let pids_max = match raw.pids_max {
            None => None,
            Some(n) if n >= 1 => Some(n as u64),
            Some(n) => {
                self.error(&at("pids_max"), format!("must be at least 1, not {n}"));
                None
            }
        };
        ResourceSpec {
            max_memory,
            memory_max,
            cpu_max,
            pids_max,
            warn_cpu,
            warn_memory,
            gpus,
            gpus_per_instance,
            max_gpu_memory,
        }
    }

    /// A CPU share in percent of one core: "150%" or a number of cores (1.5 → 150).
    fn cpu_share(&mut self, value: &CpuValue, path: &[Segment]) -> Option<f64> {
        let percent = match &value.0 {
            Loose::Text(text) => match text.trim().strip_suffix('%') {
                Some(number) => number.trim().parse::<f64>().ok(),
                None => text.trim().parse::<f64>().ok().map(|cores| cores * 100.0),
            },
            Loose::Integer(n) => Some(*n as f64 * 100.0),
            Loose::Float(f) => Some(f * 100.0),
            Loose::Bool(_) => None,
        };
        match percent {
            Some(p) if p.is_finite() && p > 0.0 => Some(p),
            _ => {
                self.error(
                    path,
                    "must be a share of CPU such as \"150%\" or 1.5 (cores), above 0",
                );
                None
            }
        }
    }

    /// The service's `readiness`, `liveness` or `startup` table (`role` names it), validated.
    fn probe(
        &mut self,
        raw: Option<&RawProbe>,
        service: &[Segment],
        role: ProbeRole,
    ) -> Option<Box<ProbeSpec>> {
        let raw = raw?;
        let path = &join(service, &[key(role.name())]);
        let at = |field: &str| join(path, &[key(field)]);
        let errors_before = self.errors.len();
        let primary = RawCheck {
            http: raw.http.clone(),
            method: raw.method.clone(),
            status: raw.status.clone(),
            body_contains: raw.body_contains.clone(),
            headers: raw.headers.clone(),
            tcp: raw.tcp.clone(),
            exec: raw.exec.clone(),
        };
        let driven = [
            raw.log.as_ref().map(|_| "log"),
            raw.notify.filter(|n| *n).map(|_| "notify"),
        ];
        let polled = [
            primary.http.as_ref().map(|_| "http"),
            primary.tcp.as_ref().map(|_| "tcp"),
            primary.exec.as_ref().map(|_| "exec"),
        ];
        let kinds: Vec<&str> = driven.iter().chain(&polled).flatten().copied().collect();
        let check = match kinds.as_slice() {
            [] => {
                self.error(path, "needs one check: http, tcp, exec, log or notify");
                None
            }
            [one] => match *one {
                "log" | "notify" if role != ProbeRole::Readiness => {
                    self.error(
                        &at(one),
                        format!("`{one}` can only decide readiness, not {}", role.name()),
                    );
                    None
                }
                "log" => {
                    let pattern = raw.log.clone().unwrap_or_default();
                    match crate::config::model::line_pattern(&pattern) {
                        Ok(_) => Some(CheckSpec::Log(pattern)),
                        Err(e) => {
                            self.error(&at("log"), format!("not a regular expression: {e}"));
                            None
                        }
                    }
                }
                "notify" => Some(CheckSpec::Notify),
                _ => self.check(&primary, path),
            },
            several => {
                self.error(
                    path,
                    format!("has {}: choose one check per probe", several.join(" and ")),
                );
                None
            }
        };
        if raw.fallback.is_some() && matches!(check, Some(CheckSpec::Log(_) | CheckSpec::Notify)) {
            self.error(
                &at("fallback"),
                "only http, tcp and exec checks have a fallback",
            );
        }
        let fallback = raw
            .fallback
            .as_ref()
            .and_then(|f| self.check(f, &at("fallback")));
        let duration = |this: &mut Self, field: &str, default: Duration| {
            let value = raw_duration(raw, field);
            this.duration_or(value, &at(field), default)
        };
        let initial_delay = duration(self, "initial_delay", Duration::ZERO);
        let interval = duration(self, "interval", Duration::from_secs(10));
        let timeout = duration(self, "timeout", Duration::from_secs(1));
        for (field, value) in [("interval", interval), ("timeout", timeout)] {
            if value < Duration::from_millis(10) {
                self.error(&at(field), "must be at least 10ms");
            }
        }
        let threshold = |this: &mut Self, value: Option<i64>, field: &str, default: u32| match value
        {
            None => default,
            Some(n) if (1..=1000).contains(&n) => n as u32,
            Some(n) => {
                this.error(&at(field), format!("must be between 1 and 1000, not {n}"));
                default
            }
        };
        let success_threshold = threshold(self, raw.success_threshold, "success_threshold", 1);
        let failure_threshold = threshold(self, raw.failure_threshold, "failure_threshold", 3);
        if self.errors.len() != errors_before {
            return None;
        }
        Some(Box::new(ProbeSpec {
            check: check?,
            fallback,
            initial_delay,
            interval,
            timeout,
            success_threshold,
            failure_threshold,
        }))
    }

    /// One http, tcp or exec check (a probe's own, or its fallback).
    fn check(&mut self, raw: &RawCheck, path: &[Segment]) -> Option<CheckSpec> {
        let at = |field: &str| join(path, &[key(field)]);
        let kinds: Vec<&str> = [
            raw.http.as_ref().map(|_| "http"),
            raw.tcp.as_ref().map(|_| "tcp"),
            raw.exec.as_ref().map(|_| "exec"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if raw.http.is_none() {
            for (field, set) in [
                ("method", raw.method.is_some()),
                ("status", raw.status.is_some()),
                ("body_contains", raw.body_contains.is_some()),
                ("headers", raw.headers.is_some()),
            ] {
                if set {
                    self.error(&at(field), "applies to http checks only");
                }
            }
        }
        match kinds.as_slice() {
            ["http"] => {
                let url = raw.http.clone().unwrap_or_default();
                if let Err(message) = check_http_url(&url) {
                    self.error(&at("http"), message);
                    return None;
                }
                let status = match &raw.status {
                    None => (200, 399),
                    Some(RawStatus::One(code)) => (*code as u16, *code as u16),
                    Some(RawStatus::Range([low, high])) => (*low as u16, *high as u16),
                };
                let valid = |code: i64| (100..=599).contains(&code);
                let raw_codes: Vec<i64> = match &raw.status {
                    None => vec![],
                    Some(RawStatus::One(code)) => vec![*code],
                    Some(RawStatus::Range(pair)) => pair.to_vec(),
                };
                if !raw_codes.iter().all(|c| valid(*c)) || status.0 > status.1 {
                    self.error(
                        &at("status"),
                        "must be a status code (100-599) or a range [low, high]",
                    );
                    return None;
                }
                Some(CheckSpec::Http {
                    url,
                    method: raw
                        .method
                        .clone()
                        .unwrap_or_else(|| "GET".into())
                        .to_ascii_uppercase(),
                    status,
                    body_contains: raw.body_contains.clone(),
                    headers: raw
                        .headers
                        .iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                })
            }
            ["tcp"] => {
                let address = raw.tcp.clone().unwrap_or_default();
                match address.rsplit_once(':') {
                    Some((host, port))
                        if !host.is_empty()
                            && (port.parse::<u16>().is_ok_and(|p| p > 0) || port == "{port}") =>
                    {
                        Some(CheckSpec::Tcp(address))
                    }
                    _ => {
                        self.error(&at("tcp"), format!("`{address}` is not host:port"));
                        None
                    }
                }
            }
            ["exec"] => {
                let command = raw.exec.clone().unwrap_or_default();
                if command.trim().is_empty() {
                    self.error(&at("exec"), "must not be empty");
                    return None;
                }
                Some(CheckSpec::Exec(command))
            }
            [] => {
                self.error(path, "needs one check: http, tcp or exec");
                None
            }
            several => {
                self.error(
                    path,
                    format!("has {}: choose one check", several.join(" and ")),
                );
                None
            }
        }
    }

    /// Interpolate `text` (the value at `path`), reporting every problem in it.
    fn interpolate(
        &mut self,
        text: &str,
        path: &[Segment],
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Option<String> {
        match interpolate::interpolate(text, lookup) {
            Ok(value) if value.contains('\0') => {
                self.error(
                    path,
                    "contains a NUL character, which no process can receive",
                );
                None
            }
            Ok(value) => Some(value),
            Err(messages) => {
                for message in messages {
                    self.error(path, message);
                }
                None
            }
        }
    }

    fn program(
        &mut self,
        raw: &RawService,
        broken: &HashSet<String>,
        base: &[Segment],
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Option<Program> {
        let at = |field: &str| join(base, &[key(field)]);
        let shell = raw.shell.unwrap_or(false);
        match (&raw.command, &raw.args) {
            (Some(_), Some(_)) => {
                self.error(&at("args"), "set `command` or `args`, not both");
                None
            }
            (None, None) => {
                if !broken.contains("command") && !broken.contains("args") {
                    self.error(
                        base,
                        "missing `command` (a command line) or `args` (an argv array)",
                    );
                }
                None
            }
            (Some(command), None) => {
                let line = self.interpolate(command, &at("command"), lookup)?;
                if line.trim().is_empty() {
                    self.error(&at("command"), "must not be empty");
                    return None;
                }
                if shell {
                    return Some(Program::Shell(line));
                }
                match shell_words::split(&line) {
                    Ok(argv) => Some(Program::Exec(argv)),
                    Err(e) => {
                        self.error(&at("command"), format!("cannot split into words: {e}"));
                        None
                    }
                }
            }
            (None, Some(args)) => {
                if shell {
                    self.error(
                        &at("shell"),
                        "`shell = true` runs `command` through /bin/sh -c; it cannot take `args`",
                    );
                    return None;
                }
                if args.is_empty() {
                    self.error(
                        &at("args"),
                        "must not be empty: the first element is the program",
                    );
                    return None;
                }
                let argv: Vec<Option<String>> = args
                    .iter()
                    .enumerate()
                    .map(|(i, arg)| {
                        self.interpolate(arg, &join(&at("args"), &[Segment::Index(i)]), lookup)
                    })
                    .collect();
                argv.into_iter()
                    .collect::<Option<Vec<_>>>()
                    .map(Program::Exec)
            }
        }
    }

    /// The merged env files of a service (later files override earlier ones).
    fn env_files_of(&mut self, raw: &RawService, path: &[Segment]) -> BTreeMap<String, String> {
        let mut merged = BTreeMap::new();
        for (i, file) in raw
            .env_file
            .iter()
            .flat_map(|list| list.0.iter())
            .enumerate()
        {
            // A lone string has no index in the tree; `line_of` then stops at `env_file`.
            let at = join(path, &[Segment::Index(i)]);
            if file.trim().is_empty() {
                self.error(&at, "env file path must not be empty");
                continue;
            }
            let full = clean(&self.base_dir.join(file));
            if !self.env_files.contains_key(&full) {
                let parsed = self.read_env_file(&full, path);
                self.env_files.insert(full.clone(), parsed);
            }
            match self.env_files.get(&full) {
                Some(Ok(pairs)) => merged.extend(pairs.iter().cloned()),
                Some(Err(message)) => {
                    let message = message.clone();
                    self.error(&at, message);
                }
                None => {}
            }
        }
        merged
    }

    /// Read and parse one env file. A file that cannot be read is an error at each
    /// reference (the Err); malformed lines are reported once, against the env file itself.
    fn read_env_file(
        &mut self,
        full: &Path,
        path: &[Segment],
    ) -> Result<Vec<(String, String)>, String> {
        let text = (self.read)(full)
            .map_err(|e| format!("cannot read env file {}: {e}", full.display()))?;
        match envfile::parse(&text) {
            Ok(pairs) => Ok(pairs),
            Err(errors) => {
                for error in errors {
                    self.errors.push(ConfigError::new(
                        full,
                        Some(error.line),
                        Dotted(path).to_string(),
                        error.message,
                    ));
                }
                // Already reported; the service gets no values from it.
                Ok(Vec::new())
            }
        }
    }

    fn utf8_path(&mut self, path: PathBuf, at: &[Segment]) -> Option<String> {
        match path.into_os_string().into_string() {
            Ok(s) => Some(s),
            Err(os) => {
                self.error(
                    at,
                    format!("path {} is not valid UTF-8", PathBuf::from(os).display()),
                );
                None
            }
        }
    }

    fn identity(&mut self, value: &IdValue, path: &[Segment], which: Identity) -> Option<String> {
        let noun = which.noun();
        match &value.0 {
            Loose::Integer(id) => match u32::try_from(*id) {
                Ok(id) => Some(id.to_string()),
                Err(_) => {
                    self.error(path, format!("{noun} id {id} is out of range"));
                    None
                }
            },
            Loose::Text(name) if name.is_empty() => {
                self.error(path, "must not be empty");
                None
            }
            // Numeric ids need no passwd entry: containers often run as bare uids.
            Loose::Text(name) if name.bytes().all(|b| b.is_ascii_digit()) => {
                match name.parse::<u32>() {
                    Ok(_) => Some(name.clone()),
                    Err(_) => {
                        self.error(path, format!("{noun} id {name} is out of range"));
                        None
                    }
                }
            }
            // A manifest translated for another machine names that machine's users.
            Loose::Text(name) if !self.this_machine => Some(name.clone()),
            Loose::Text(name) => {
                let found = match which {
                    Identity::User => nix::unistd::User::from_name(name).map(|u| u.is_some()),
                    Identity::Group => nix::unistd::Group::from_name(name).map(|g| g.is_some()),
                };
                match found {
                    Ok(true) => Some(name.clone()),
                    Ok(false) => {
                        self.error(path, format!("no {noun} named `{name}` on this machine"));
                        None
                    }
                    Err(e) => {
                        self.error(path, format!("cannot look up {noun} `{name}`: {e}"));
                        None
                    }
                }
            }
            other => {
                self.error(
                    path,
                    format!("expected a {noun} name or id, found `{other}`"),
                );
                None
            }
        }
    }

    fn umask(&mut self, value: &UmaskValue, path: &[Segment]) -> Option<u32> {
        self.permission_bits(&value.0, path, "umask", "022")
    }

    /// Permission bits (a `umask`, a socket's `mode`), as octal text or an integer.
    fn permission_bits(
        &mut self,
        value: &Loose,
        path: &[Segment],
        what: &str,
        example: &str,
    ) -> Option<u32> {
        let bits = match value {
            Loose::Text(text) => {
                let digits = text.trim();
                if digits.is_empty()
                    || digits.len() > 4
                    || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
                {
                    self.error(
                        path,
                        format!("`{text}` is not an octal {what} such as \"{example}\""),
                    );
                    return None;
                }
                u32::from_str_radix(digits, 8).ok()?
            }
            Loose::Integer(n) => match u32::try_from(*n) {
                Ok(n) => n,
                Err(_) => {
                    self.error(path, format!("{what} {n} is out of range (0 to 0o777)"));
                    return None;
                }
            },
            other => {
                self.error(
                    path,
                    format!("`{other}` is not an octal {what} such as \"{example}\""),
                );
                return None;
            }
        };
        if bits > 0o777 {
            self.error(
                path,
                format!("{what} {bits:#o} is out of range (at most 0o777)"),
            );
            return None;
        }
        Some(bits)
    }

    fn exit_codes(&mut self, codes: Option<&[i64]>, path: &[Segment]) -> Vec<i32> {
        let Some(codes) = codes else { return vec![0] };
        if codes.is_empty() {
            self.error(path, "must list at least one exit code");
        }
        let mut out = Vec::with_capacity(codes.len());
        for (i, &code) in codes.iter().enumerate() {
            match u8::try_from(code) {
                Ok(code) => out.push(i32::from(code)),
                Err(_) => self.error(
                    &join(path, &[Segment::Index(i)]),
                    format!("exit code {code} is not in 0..=255"),
                ),
            }
        }
        out
    }

    /// `autoscale = { min, max, cpu, cooldown }`.
    fn autoscale(
        &mut self,
        raw: &raw::RawAutoscale,
        path: &[Segment],
        kind: Kind,
    ) -> Option<AutoscaleSpec> {
        let at = |field: &str| join(path, &[key(field)]);
        let errors_before = self.errors.len();
        if kind == Kind::Task {
            self.error(
                path,
                "a task runs to completion: autoscale is for services that run until stopped",
            );
        }
        let count = |this: &mut Self, value: Option<i64>, field: &str| match value {
            Some(n) if (1..=MAX_INSTANCES).contains(&n) => Some(n as u32),
            Some(n) => {
                this.error(
                    &at(field),
                    format!("must be between 1 and {MAX_INSTANCES}, not {n}"),
                );
                None
            }
            None => None,
        };
        let min = count(self, raw.min, "min").unwrap_or(1);
        let max = count(self, raw.max, "max");
        match max {
            None if raw.max.is_none() => self.error(
                path,
                "needs `max`, the most instances, e.g. `autoscale = { max = 4, cpu = \"70%\" }`",
            ),
            Some(max) if max < min => self.error(
                &at("max"),
                format!("must be at least `min` ({min}), not {max}"),
            ),
            _ => {}
        }
        let cpu = match &raw.cpu {
            None => {
                self.error(
                    path,
                    "needs `cpu`, the target CPU per instance, e.g. `cpu = \"70%\"`",
                );
                None
            }
            Some(value) => self.cpu_share(value, &at("cpu")),
        };
        // A target no instance can reach would scale up for ever: at most every core here.
        if let Some(percent) = cpu
            && self.this_machine
        {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            if percent > 100.0 * cores as f64 {
                self.error(
                    &at("cpu"),
                    format!(
                        "{percent}% is more than this machine's {cores} core(s) can give one instance ({}%)",
                        100 * cores
                    ),
                );
            }
        }
        let cooldown = match &raw.cooldown {
            None => Some(Duration::from_secs(60)),
            Some(value) => self.duration(value, &at("cooldown")),
        };
        if self.errors.len() != errors_before {
            return None;
        }
        Some(AutoscaleSpec {
            min,
            max: max?,
            cpu: cpu?,
            cooldown: cooldown?,
        })
    }

    fn event_listener(
        &mut self,
        raw: &raw::RawEventListener,
        path: &[Segment],
        kind: Kind,
    ) -> Option<crate::config::model::EventListenerSpec> {
        let at = |field: &str| join(path, &[key(field)]);
        if kind == Kind::Task {
            self.error(
                path,
                "a task cannot be an event listener: listeners run until stopped",
            );
            return None;
        }
        let events = raw.events.as_deref().unwrap_or_default();
        let subscription = match crate::config::events::parse_subscription(&events.join(",")) {
            Ok(subscription) => subscription,
            Err(e) => {
                self.error(&at("events"), e.replace("events=", "events"));
                return None;
            }
        };
        let buffer_size = match raw.buffer_size {
            None => 10,
            Some(n) if (1..=1 << 20).contains(&n) => n as usize,
            Some(n) => {
                self.error(
                    &at("buffer_size"),
                    format!("must be between 1 and 1048576, not {n}"),
                );
                return None;
            }
        };
        Some(crate::config::model::EventListenerSpec {
            subscription,
            buffer_size,
        })
    }

    /// `broken`: a key of the table was malformed or misspelled (`intial`), so a default
    /// may stand where the person wrote a value; comparing with it would only mislead.
    fn backoff(&mut self, raw: Option<&RawBackoff>, broken: bool, path: &[Segment]) -> BackoffSpec {
        let defaults = BackoffSpec::default();
        let Some(raw) = raw else { return defaults };
        let at = |field: &str| join(path, &[key(field)]);
        // None: written but invalid (already reported), so not compared below.
        let initial = match &raw.initial {
            None => Some(defaults.initial),
            Some(d) => self.duration(d, &at("initial")),
        };
        // An unwritten `max` never undercuts a written `initial`: `initial = "1m"` alone means
        // a steady one-minute delay, not an error about a default nobody wrote.
        let max = match &raw.max {
            None => Some(initial.map_or(defaults.max, |i| i.max(defaults.max))),
            Some(d) => self.duration(d, &at("max")),
        };
        let factor = match raw.factor {
            None => defaults.factor,
            Some(f) if f >= 1.0 && f.is_finite() => f,
            Some(f) => {
                self.error(
                    &at("factor"),
                    format!("must be a finite number of at least 1.0, not {f}"),
                );
                defaults.factor
            }
        };
        let jitter = match raw.jitter {
            None => defaults.jitter,
            Some(j) if (0.0..=1.0).contains(&j) => j,
            Some(j) => {
                self.error(&at("jitter"), format!("must be between 0 and 1, not {j}"));
                defaults.jitter
            }
        };
        if let (false, Some(initial), Some(max)) = (broken, initial, max)
            && max < initial
        {
            // When only one of the two is written, the other is its default: say so.
            let describe = |written: bool, d: Duration| {
                if written {
                    format!("{d:?}")
                } else {
                    format!("the default {d:?}")
                }
            };
            let which = if raw.max.is_some() { "max" } else { "initial" };
            self.error(
                &at(which),
                format!(
                    "`max` ({}) must be at least `initial` ({})",
                    describe(raw.max.is_some(), max),
                    describe(raw.initial.is_some(), initial)
                ),
            );
        }
        BackoffSpec {
            initial: initial.unwrap_or(defaults.initial),
            max: max.unwrap_or(defaults.max),
            factor,
            jitter,
            growth: match raw.growth {
                None | Some(RawGrowth::Exponential) => Growth::Exponential,
                Some(RawGrowth::Linear) => Growth::Linear,
            },
        }
    }

    fn duration(&mut self, value: &DurationValue, path: &[Segment]) -> Option<Duration> {
        let parsed = match &value.0 {
            Loose::Text(text) => duration::parse(text),
            Loose::Integer(n) if *n < 0 => Err(format!("duration `{n}` cannot be negative")),
            Loose::Float(f) if *f < 0.0 => Err(format!("duration `{f}` cannot be negative")),
            number => Err(duration::missing_unit(&number.to_string())),
        };
        parsed.map_err(|message| self.error(path, message)).ok()
    }

    fn logs(&mut self, raw: Option<&RawLogs>, path: &[Segment]) -> LogSpec {
        let defaults = LogSpec::default();
        let Some(raw) = raw else { return defaults };
        let at = |field: &str| join(path, &[key(field)]);
        let target = |this: &mut Self, value: Option<&String>, field: &str| match value
            .map(String::as_str)
        {
            None => LogTarget::File(None),
            Some("inherit") => LogTarget::Inherit,
            Some("null") => LogTarget::Null,
            Some("") => {
                this.error(&at(field), "must be a path, \"inherit\" or \"null\"");
                LogTarget::File(None)
            }
            Some(file) => LogTarget::File(Some(clean(&this.base_dir.join(file)))),
        };
        let stdout = target(self, raw.stdout.as_ref(), "stdout");
        let stderr = target(self, raw.stderr.as_ref(), "stderr");
        let byte_size =
            |this: &mut Self, value: Option<&SizeValue>, field: &str, min: u64| -> Option<u64> {
                let parsed = match &value?.0 {
                    Loose::Text(text) => size::parse(text),
                    Loose::Integer(n) if *n >= 0 => Ok(*n as u64),
                    other => Err(format!("`{other}` is not a size such as \"50MB\"")),
                };
                match parsed {
                    Ok(bytes) if bytes < min => {
                        this.error(
                            &at(field),
                            format!("must be at least {min} bytes, not {bytes}"),
                        );
                        None
                    }
                    Ok(bytes) => Some(bytes),
                    Err(message) => {
                        this.error(&at(field), message);
                        None
                    }
                }
            };
        let max_size = match &raw.max_size {
            None => defaults.max_size,
            // "0" turns size rotation off.
            Some(SizeValue(Loose::Integer(0))) => None,
            Some(SizeValue(Loose::Text(t))) if t.trim() == "0" => None,
            Some(value) => byte_size(self, Some(value), "max_size", 1024).or(defaults.max_size),
        };
        let max_line = byte_size(self, raw.max_line.as_ref(), "max_line", 256)
            .unwrap_or(defaults.max_line as u64);
        if max_line > 16 * 1024 * 1024 {
            self.error(
                &at("max_line"),
                format!("must be at most 16MiB, not {max_line} bytes"),
            );
        }
        let rotate_every = raw
            .rotate_every
            .as_ref()
            .and_then(|d| self.duration(d, &at("rotate_every")));
        if rotate_every.is_some_and(|d| d < Duration::from_secs(1)) {
            self.error(&at("rotate_every"), "must be at least 1s");
        }
        let count =
            |this: &mut Self, value: Option<i64>, field: &str, max: i64, default: i64| -> i64 {
                match value {
                    None => default,
                    Some(n) if (0..=max).contains(&n) => n,
                    Some(n) => {
                        this.error(&at(field), format!("must be between 0 and {max}, not {n}"));
                        default
                    }
                }
            };
        let backups = count(self, raw.backups, "backups", 1000, defaults.backups as i64) as u32;
        let tail = count(self, raw.tail, "tail", 1_000_000, defaults.tail as i64) as usize;
        if let Some(pattern) = &raw.timestamp_format
            && let Err(message) = check_timestamp_pattern(pattern)
        {
            self.error(&at("timestamp_format"), message);
        }
        LogSpec {
            merge: raw.merge.unwrap_or(false),
            stdout,
            stderr,
            max_size,
            rotate_every,
            backups,
            compress: raw.compress.unwrap_or(false),
            timestamps: raw.timestamps.unwrap_or(false) || raw.timestamp_format.is_some(),
            timestamp_format: raw.timestamp_format.clone(),
            format: match raw.format {
                Some(RawLogFormat::Json) => LogFormat::Json,
                _ => LogFormat::Plain,
            },
            tail,
            max_line: max_line as usize,
            syslog: self.forward(
                raw.syslog,
                raw.syslog_socket.as_ref(),
                DEFAULT_SYSLOG_SOCKET,
                &at("syslog_socket"),
            ),
            journal: self.forward(
                raw.journal,
                raw.journal_socket.as_ref(),
                DEFAULT_JOURNAL_SOCKET,
                &at("journal_socket"),
            ),
            events_stdout: raw
                .events
                .iter()
                .flatten()
                .any(|s| *s == raw::RawStream::Stdout),
            events_stderr: raw
                .events
                .iter()
                .flatten()
                .any(|s| *s == raw::RawStream::Stderr),
        }
    }

    /// The socket a forwarding sink sends to, when it is on.
    fn forward(
        &mut self,
        on: Option<bool>,
        socket: Option<&String>,
        default: &str,
        at: &[Segment],
    ) -> Option<PathBuf> {
        let socket = match socket.map(String::as_str) {
            Some("") => {
                self.error(at, "must be a socket path");
                None
            }
            Some(path) => Some(clean(&self.base_dir.join(path))),
            None => None,
        };
        on.unwrap_or(false)
            .then(|| socket.unwrap_or_else(|| PathBuf::from(default)))
    }

    fn duration_or(
        &mut self,
        value: Option<&DurationValue>,
        path: &[Segment],
        default: Duration,
    ) -> Duration {
        value
            .and_then(|v| self.duration(v, path))
            .unwrap_or(default)
    }

    fn groups(
        &mut self,
        groups: Option<&[String]>,
        path: &[Segment],
        service_names: &[String],
    ) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (i, group) in groups.unwrap_or_default().iter().enumerate() {
            let at = join(path, &[Segment::Index(i)]);
            if let Err(message) = check_name(group) {
                self.error(&at, message);
            } else if service_names.contains(group) {
                // One name, one meaning: `tend restart web` must not be ambiguous.
                self.error(
                    &at,
                    format!("group `{group}` has the same name as a service"),
                );
            } else if !out.contains(group) {
                out.push(group.clone());
            }
        }
        out
    }
}

#[derive(Clone, Copy)]
enum Identity {
    User,
    Group,
}

impl Identity {
    fn noun(self) -> &'static str {
        match self {
            Identity::User => "user",
            Identity::Group => "group",
        }
    }
}

/// Names and conditions of `depends_on` as written, duplicates included, each with its path.
fn dependency_refs(name: &str, depends_on: Option<&DependsOn>) -> DependencyRefs {
    let base = [key("services"), key(name), key("depends_on")];
    let entries = depends_on
        .map(|d| {
            d.entries
                .iter()
                .enumerate()
                .map(|(i, (dep, raw_dependency))| {
                    let at = if d.table {
                        Segment::Key(dep.clone())
                    } else {
                        Segment::Index(i)
                    };
                    let condition = match raw_dependency.condition {
                        RawCondition::Started => Condition::Started,
                        RawCondition::Healthy => Condition::Healthy,
                        RawCondition::Completed => Condition::Completed,
                    };
                    let on_unready = match raw_dependency.on_unready {
                        None | Some(RawOnUnready::Ignore) => OnUnready::Ignore,
                        Some(RawOnUnready::Stop) => OnUnready::Stop,
                        Some(RawOnUnready::Restart) => OnUnready::Restart,
                    };
                    (dep.clone(), condition, on_unready, join(&base, &[at]))
                })
                .collect()
        })
        .unwrap_or_default();
    DependencyRefs { entries }
}

fn kind(raw: Option<RawKind>) -> Kind {
    match raw {
        None | Some(RawKind::Service) => Kind::Service,
        Some(RawKind::Task) => Kind::Task,
    }
}

/// Service and group names: `[A-Za-z0-9][A-Za-z0-9_.-]*`, and not `all`.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !first_ok || !rest_ok {
        let colon = if name.contains(':') {
            " (`:` is reserved: `web:2` names an instance)"
        } else {
            ""
        };
        return Err(format!(
            "`{name}` is not a valid name: use letters, digits, `_`, `.` and `-`, starting with a letter or digit{colon}"
        ));
    }
    if name == "all" {
        return Err("`all` is reserved: it names every service".into());
    }
    Ok(())
}

/// Socket names follow service names (they become systemd unit names on export), which
/// also keeps them within what LISTEN_FDNAMES allows: ASCII, no `:`, at most 255 bytes.
fn check_socket_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !first_ok || !rest_ok {
        return Err(format!(
            "`{name}` is not a valid socket name: use letters, digits, `_`, `.` and `-`, starting with a letter or digit"
        ));
    }
    if name.len() > 255 {
        return Err(format!(
            "a socket name can have at most 255 characters (LISTEN_FDNAMES), not {}",
            name.len()
        ));
    }
    Ok(())
}

/// A `listen` address as written, before the path is resolved.
enum ListenAddress {
    Tcp(std::net::SocketAddr),
    Unix(String),
}

/// `tcp://IPV4:PORT`, `tcp://[IPV6]:PORT` or `unix:PATH`.
fn parse_listen(written: &str) -> Result<ListenAddress, String> {
    if let Some(rest) = written.strip_prefix("tcp://") {
        let Some((host, port)) = rest.rsplit_once(':') else {
            return Err(format!("`{written}` has no port: write tcp://HOST:PORT"));
        };
        let Ok(port) = port.parse::<u16>() else {
            return Err(format!("`{written}`: `{port}` is not a port (0 to 65535)"));
        };
        if host.is_empty() {
            return Err(format!(
                "`{written}` has no address: use 0.0.0.0 (every IPv4 address), [::] (every address) or 127.0.0.1"
            ));
        }
        let ip = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) => v6
                .parse::<std::net::Ipv6Addr>()
                .map(std::net::IpAddr::V6)
                .map_err(|_| format!("`{written}`: `{v6}` is not an IPv6 address"))?,
            None => match host.parse::<std::net::Ipv4Addr>() {
                Ok(v4) => std::net::IpAddr::V4(v4),
                Err(_) if host.parse::<std::net::Ipv6Addr>().is_ok() => {
                    return Err(format!(
                        "`{written}`: an IPv6 address goes in brackets: tcp://[{host}]:{port}"
                    ));
                }
                Err(_) => {
                    return Err(format!(
                        "`{written}`: `{host}` is not an IP address (host names are not resolved): use 0.0.0.0, 127.0.0.1 or [::]"
                    ));
                }
            },
        };
        return Ok(ListenAddress::Tcp(std::net::SocketAddr::new(ip, port)));
    }
    if let Some(path) = written.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(format!(
                "`{written}` has no path: write unix:/run/app/app.sock (or a path relative to the manifest)"
            ));
        }
        if path.starts_with('@') {
            return Err(format!(
                "`{written}`: abstract unix sockets are not supported; use a path"
            ));
        }
        return Ok(ListenAddress::Unix(path.to_string()));
    }
    Err(format!(
        "`{written}` is not a listen address: use tcp://HOST:PORT (HOST an IP address, IPv6 in brackets) or unix:PATH"
    ))
}

/// What kind of check a probe is and the port it reaches, for instance 0 (a `{port}` of
/// the instance's own is never a shared socket's).
fn probe_port(check: &CheckSpec, service: &ServiceSpec) -> Option<(&'static str, u16)> {
    let expand = |s: &str| crate::config::model::expand_placeholders(s, 0, service.port(0));
    match check {
        CheckSpec::Tcp(address) => {
            let address = expand(address);
            let (_, port) = address.rsplit_once(':')?;
            Some(("tcp", port.parse().ok()?))
        }
        CheckSpec::Http { url, .. } => {
            let url = expand(url);
            let rest = url.strip_prefix("http://")?;
            let authority = rest.split(['/', '?']).next().unwrap_or_default();
            // After an IPv6 address's `]`, or after the host.
            let after_host = match authority.rsplit_once(']') {
                Some((_, after)) => after,
                None => authority.rsplit_once(':').map_or("", |(_, port)| port),
            };
            let port = after_host.trim_start_matches(':');
            match port {
                "" => Some(("http", 80)),
                port => Some(("http", port.parse().ok()?)),
            }
        }
        _ => None,
    }
}

/// Drop `.` components so that `./logs` beside the manifest prints as `/dir/logs`.
/// A timestamp pattern may only use the directives the log writer knows.
fn check_timestamp_pattern(pattern: &str) -> Result<(), String> {
    let mut rest = pattern;
    while let Some(at) = rest.find('%') {
        let tail = &rest[at..];
        match TIMESTAMP_DIRECTIVES.iter().find(|d| tail.starts_with(**d)) {
            Some(directive) => rest = &tail[directive.len()..],
            None => {
                let shown: String = tail.chars().take(3).collect();
                return Err(format!(
                    "unknown directive `{shown}` (known: {})",
                    TIMESTAMP_DIRECTIVES.join(" ")
                ));
            }
        }
    }
    Ok(())
}

pub(crate) fn clean(path: &Path) -> PathBuf {
    path.components().collect()
}

fn count_entries(node: &Node) -> usize {
    match &node.value {
        Value::Table(entries) => entries.iter().map(|e| 1 + count_entries(&e.value)).sum(),
        Value::Array(items) => items.iter().map(count_entries).sum(),
        _ => 0,
    }
}

/// serde's "unknown field `x`, expected one of `a`, `b`" as (`x`, [`a`, `b`]).
fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, expected) = if let Some(i) = rest.rfind("`, expected ") {
        (&rest[..i], &rest[i + 2..])
    } else {
        (rest.strip_suffix("`, there are no fields")?, "")
    };
    let expected = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((field.to_string(), expected))
}

/// serde speaks Rust; manifests speak TOML/YAML/JSON.
fn humanize(message: &str) -> String {
    let mut out = message
        .replace("expected i64", "expected an integer")
        .replace("expected f64", "expected a number")
        .replace("floating point `", "float `")
        .replace("a sequence", "an array")
        .replace("expected a map", "expected a table")
        .replace("invalid type: map", "invalid type: table")
        .replace("invalid type: sequence", "invalid type: array");
    if out.ends_with("expected a boolean") {
        let yaml11 = ["yes", "no", "on", "off", "y", "n"];
        if yaml11.iter().any(|w| {
            out.to_ascii_lowercase()
                .contains(&format!("string \"{w}\""))
        }) {
            out.push_str(" (YAML 1.2 reads yes/no/on/off as strings: write true or false)");
        }
    }
    out
}

/// The closest of `candidates` to `word` within edit distance 2, if any.
pub(crate) fn did_you_mean<'c>(word: &str, candidates: &'c [String]) -> Option<&'c str> {
    let length = word.chars().count();
    candidates
        .iter()
        // The distance is at least the difference in length: a long word is measured
        // against nothing (the distance costs the product of the lengths).
        .filter(|c| c.chars().count().abs_diff(length) <= 2)
        .map(|c| (edit_distance(word, c), c))
        .filter(|&(d, c)| d <= 2 && d < c.chars().count())
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c.as_str())
}

/// Levenshtein distance, by characters: what every "did you mean" measures, for the
/// manifest and for the importers.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_pattern() {
        assert!(check_name("web").is_ok());
        assert!(check_name("9lives_v1.2-x").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("-web").is_err());
        assert!(check_name("we b").is_err());
        assert!(check_name("wéb").is_err());
        assert!(check_name("web:2").unwrap_err().contains("instance"));
        assert!(check_name("all").unwrap_err().contains("reserved"));
    }

    #[test]
    fn unknown_field_messages_parse() {
        assert_eq!(
            unknown_field("unknown field `comand`, expected one of `command`, `args`"),
            Some(("comand".into(), vec!["command".into(), "args".into()]))
        );
        assert_eq!(
            unknown_field("unknown field `x`, expected `a` or `b`"),
            Some(("x".into(), vec!["a".into(), "b".into()]))
        );
        assert_eq!(
            unknown_field("unknown field `x`, there are no fields"),
            Some(("x".into(), vec![]))
        );
        assert_eq!(unknown_field("invalid type: integer"), None);
    }

    #[test]
    fn suggestions_are_close_and_not_silly() {
        let known: Vec<String> = ["command", "cwd", "env", "args"].map(String::from).to_vec();
        assert_eq!(did_you_mean("comand", &known), Some("command"));
        assert_eq!(did_you_mean("commmand", &known), Some("command"));
        assert_eq!(did_you_mean("arg", &known), Some("args"));
        assert_eq!(did_you_mean("zzz", &known), None);
        assert_eq!(did_you_mean("xy", &known), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("é", "e"), 1);
    }

    #[test]
    fn humanize_speaks_manifest() {
        assert_eq!(
            humanize("invalid type: string \"x\", expected i64"),
            "invalid type: string \"x\", expected an integer"
        );
        assert_eq!(
            humanize("invalid type: string \"yes\", expected a boolean"),
            "invalid type: string \"yes\", expected a boolean (YAML 1.2 reads yes/no/on/off as strings: write true or false)"
        );
    }
}

/// Which probe a table is: log and notify checks decide readiness only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProbeRole {
    Readiness,
    Liveness,
    Startup,
}

impl ProbeRole {
    fn name(self) -> &'static str {
        match self {
            ProbeRole::Readiness => "readiness",
            ProbeRole::Liveness => "liveness",
            ProbeRole::Startup => "startup",
        }
    }
}

fn raw_duration<'a>(raw: &'a RawProbe, field: &str) -> Option<&'a DurationValue> {
    match field {
        "initial_delay" => raw.initial_delay.as_ref(),
        "interval" => raw.interval.as_ref(),
        "timeout" => raw.timeout.as_ref(),
        _ => None,
    }
}

/// `http://HOST:PORT/PATH` (the port and path optional; `{port}` allowed as the port).
fn check_http_url(url: &str) -> Result<(), String> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(if url.starts_with("https://") {
            format!("`{url}`: https is not supported by probes; check the plain port or use exec")
        } else {
            format!("`{url}` is not an http:// URL")
        });
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.rsplit_once(':') {
        Some((host, port)) => {
            if port != "{port}" && port.parse::<u16>().is_err() {
                return Err(format!("`{url}`: `{port}` is not a port"));
            }
            host
        }
        None => authority,
    };
    if host.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    Ok(())
}
