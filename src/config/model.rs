//! The validated manifest: what tend supervises, with every default applied and every
//! `${VAR}` already interpolated. Everything else in tend (engine, exporters, importers)
//! reads or produces these types; nothing here does I/O or knows about serde.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::cron::Cron;
use crate::config::glob::PathPattern;
use crate::config::signal::Signal;

/// A whole manifest: daemon settings plus services, keyed by name in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The file the manifest was read from (absolute); relative paths resolve from its directory.
    pub path: PathBuf,
    pub daemon: DaemonSettings,
    /// Services in the order they appear in the file. Shared: the engine, the API and every
    /// copy of the manifest hold the same specs (at 10 000 services a copy is tens of MB).
    pub services: Vec<std::sync::Arc<ServiceSpec>>,
    /// `[sockets.NAME]` in the order they appear in the file.
    pub sockets: Vec<SocketSpec>,
    /// What validation accepted but a person should hear about (`tend check`, `tend up`).
    pub warnings: Vec<crate::config::ConfigError>,
}

/// One `[sockets.NAME]` table: a listening socket tend binds at startup, keeps open for its
/// whole life and passes to every instance of the services that name it.
#[derive(Debug, Clone, PartialEq)]
pub struct SocketSpec {
    /// Also its name in LISTEN_FDNAMES.
    pub name: String,
    pub listen: Listen,
    /// listen(2)'s queue length.
    pub backlog: u32,
}

/// What `backlog` is when not set: glibc's SOMAXCONN and the kernel's default
/// net.core.somaxconn since Linux 5.4, as systemd's `Backlog=` default.
pub const DEFAULT_BACKLOG: u32 = 4096;

/// Where a socket listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// Port 0: the kernel picks one at each start.
    Tcp {
        address: std::net::SocketAddr,
        reuse_port: bool,
    },
    Unix {
        /// Absolute.
        path: PathBuf,
        mode: u32,
        /// A user and a group (names or ids) that own the socket file.
        owner: Option<String>,
        group: Option<String>,
    },
}

/// The mode a unix socket file gets when `mode` is not set: systemd's `SocketMode=` default.
pub const DEFAULT_SOCKET_MODE: u32 = 0o666;

impl std::fmt::Display for Listen {
    /// As written in a manifest: `tcp://0.0.0.0:80`, `tcp://[::]:80`, `unix:/run/app.sock`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp { address, .. } => write!(f, "tcp://{address}"),
            Listen::Unix { path, .. } => write!(f, "unix:{}", path.display()),
        }
    }
}

/// The `[tend]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonSettings {
    /// Holds `tend.sock`, `tend.pid`, `logs/`; default `.tend/` beside the manifest. Absolute.
    pub state_dir: PathBuf,
    /// The control socket (API, XML-RPC); default `state_dir/tend.sock`. Absolute.
    pub socket: PathBuf,
    /// Whether to contain each instance in a cgroup v2 subtree when tend can write one.
    pub cgroups: CgroupMode,
    /// Rotation of `state_dir/tend.log` (only the rotation fields are used).
    pub log: LogSpec,
    /// How often instances' CPU and memory are sampled; None: never.
    pub sample_every: Option<Duration>,
    /// At most this many instances starting at once.
    pub max_starting: Option<usize>,
    /// A group (name or id) whose members may use the control socket.
    pub socket_group: Option<String>,
    /// Lower bounds for tend's (and so its children's) RLIMIT_NOFILE and RLIMIT_NPROC.
    pub min_fds: Option<u64>,
    pub min_procs: Option<u64>,
    /// The remote API listener; None: off.
    pub http: Option<HttpSettings>,
    pub history: HistorySettings,
    pub notify: Vec<NotifySpec>,
}

/// `[tend.http]`: the TCP listener of the remote API.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    pub listen: std::net::SocketAddr,
    /// Absolute; None when only `basic_auth` is accepted.
    pub tokens_file: Option<PathBuf>,
    /// `(username, password)` accepted with HTTP Basic, as `operate`.
    pub basic_auth: Option<(String, String)>,
    /// Certificate chain and key, both absolute.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub metrics_public: bool,
    pub max_connections: usize,
}

/// `[tend.history]`.
#[derive(Debug, Clone, PartialEq)]
pub struct HistorySettings {
    pub enabled: bool,
    pub retention: Duration,
}

impl Default for HistorySettings {
    fn default() -> Self {
        HistorySettings {
            enabled: true,
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// One `[[tend.notify]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifySpec {
    /// Empty: every kind.
    pub on: Vec<NoticeKind>,
    /// Empty: every service.
    pub services: Vec<String>,
    pub target: NotifyTarget,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NotifyTarget {
    Webhook {
        url: String,
        format: PayloadFormat,
        headers: Vec<(String, String)>,
        timeout: Duration,
    },
    Command {
        command: String,
        timeout: Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormat {
    #[default]
    Json,
    Slack,
    Discord,
    Text,
}

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoticeKind {
    Fatal,
    Unhealthy,
    Restarted,
    Recovered,
    Flapping,
}

impl NoticeKind {
    pub const ALL: [NoticeKind; 5] = [
        NoticeKind::Fatal,
        NoticeKind::Unhealthy,
        NoticeKind::Restarted,
        NoticeKind::Recovered,
        NoticeKind::Flapping,
    ];

    /// The name in the manifest, the JSON payload and `TEND_EVENT`.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Fatal => "fatal",
            NoticeKind::Unhealthy => "unhealthy",
            NoticeKind::Restarted => "restarted",
            NoticeKind::Recovered => "recovered",
            NoticeKind::Flapping => "flapping",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupMode {
    /// Use cgroup v2 where writable, otherwise fall back to subreaper + /proc tracking.
    Auto,
    /// Never create cgroups.
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Long-running; restarted by policy.
    Service,
    /// Runs to completion (migrations, warm-ups); success satisfies `completed` dependencies.
    Task,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

/// How the program is started. `{instance}` and `{port}` placeholders are still present in
/// strings here; [`ServiceSpec::instance`] expands them per instance.
#[derive(Debug, Clone, PartialEq)]
pub enum Program {
    /// argv, already split (from `args`, or from `command` split like a POSIX shell would).
    Exec(Vec<String>),
    /// `shell = true`: the command line is run by `/bin/sh -c`.
    Shell(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct BackoffSpec {
    pub initial: Duration,
    pub max: Duration,
    pub factor: f64,
    /// Fraction in [0, 1]: each delay is scaled by a random factor in [1 - jitter, 1 + jitter].
    pub jitter: f64,
    pub growth: Growth,
}

impl BackoffSpec {
    /// The delay before restart attempt `attempt` (0 for the first restart after a healthy run).
    /// `unit` is a random number in [-1, 1] that scales the jitter.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let spec = self;
        let initial = spec.initial.as_secs_f64();
        let max = spec.max.as_secs_f64().max(initial);
        // powi on a clamped exponent: a long flap streak must not overflow to inf/NaN.
        let grown = match spec.growth {
            Growth::Exponential => initial * spec.factor.powi(attempt.min(1024) as i32),
            Growth::Linear => initial * (f64::from(attempt) + 1.0),
        };
        let capped = if grown.is_finite() {
            grown.min(max)
        } else {
            max
        };
        let jittered = capped * (1.0 + spec.jitter * unit.clamp(-1.0, 1.0));
        Duration::from_secs_f64(jittered.clamp(0.0, max * (1.0 + spec.jitter)))
    }
}

/// How restart delays grow with each failed start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Growth {
    /// `initial × factor^n`.
    #[default]
    Exponential,
    /// `initial × (n + 1)`.
    Linear,
}

/// What `max_restarts` counts before an instance is given up as fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartLimit {
    /// Every automatic restart within `restart_window`.
    #[default]
    Window,
    /// Consecutive runs that ended before `min_uptime`; a stable run resets the count.
    Unstable,
}

impl Default for BackoffSpec {
    fn default() -> Self {
        BackoffSpec {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(30),
            factor: 2.0,
            jitter: 0.1,
            growth: Growth::Exponential,
        }
    }
}

/// What a dependent waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Condition {
    /// The dependency has been spawned (is running).
    Started,
    /// The dependency is ready: until probes exist, running past its `min_uptime`.
    Healthy,
    /// The dependency is a task that exited successfully.
    Completed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub service: String,
    pub condition: Condition,
    pub on_unready: OnUnready,
}

/// What a running dependent does when its dependency stops being ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnUnready {
    /// Keep running; status shows a warning.
    #[default]
    Ignore,
    /// Stop while the dependency is unready; start again once it is ready.
    Stop,
    /// Keep running; restart once the dependency is ready again.
    Restart,
}

/// One `[services.NAME]` table, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    pub name: String,
    pub program: Program,
    /// Working directory (absolute, resolved against the manifest's directory); None = manifest dir.
    pub cwd: Option<String>,
    /// Environment set for the child on top of tend's own, env files first, then `env`.
    /// Values may still hold `{instance}` / `{port}`.
    pub env: BTreeMap<String, String>,
    /// The env files `env` took values from (absolute, in order): exporters name them, since
    /// copying their values (secrets, often) into another tool's files is the user's call.
    pub env_files: Vec<PathBuf>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub umask: Option<u32>,
    pub kind: Kind,
    pub autostart: bool,
    /// The number of instances: the manifest's `instances` (for an autoscaled service, the
    /// count it starts with), or what `tend scale` or the autoscaler set while tend runs.
    pub instances: u32,
    /// Instance names carry their index (`web:0`) even when there is one instance. Not a
    /// manifest key: set for an autoscaled service and by `tend scale`, so a count that
    /// passes through 1 renames (and restarts) nothing. See [`ServiceSpec::is_numbered`].
    pub numbered: bool,
    /// `autoscale = { min, max, cpu, cooldown }`: the count follows the measured CPU.
    pub autoscale: Option<AutoscaleSpec>,
    /// `{port}` = port_base + instance index; also exported as `PORT`.
    pub port_base: Option<u16>,
    pub restart: RestartPolicy,
    /// Exit codes that count as success.
    pub exit_codes: Vec<i32>,
    pub backoff: BackoffSpec,
    pub min_uptime: Duration,
    pub max_restarts: u32,
    pub restart_window: Duration,
    pub restart_limit: RestartLimit,
    pub cooldown: Option<Duration>,
    pub stop_signal: Signal,
    pub stop_timeout: Duration,
    /// `tend reload` sends this signal instead of replacing the processes.
    pub reload_signal: Option<Signal>,
    /// How long a replacement may take to become ready during a reload.
    pub reload_timeout: Duration,
    /// How many instances a reload replaces at once (at least 1).
    pub max_surge: u32,
    pub depends_on: Vec<Dependency>,
    pub priority: i64,
    pub groups: Vec<String>,
    pub logs: LogSpec,
    /// Boxed: a probe is a few hundred bytes, and most services have none.
    pub readiness: Option<Box<ProbeSpec>>,
    pub liveness: Option<Box<ProbeSpec>>,
    pub startup: Option<Box<ProbeSpec>>,
    /// sd_notify watchdog: the longest allowed gap between WATCHDOG=1 messages.
    pub watchdog: Option<Duration>,
    pub resources: ResourceSpec,
    /// Going fatal ends tend (ordered stop, non-zero exit).
    pub critical: bool,
    /// A supervisord event listener: fed events on stdin, answering on stdout.
    pub event_listener: Option<EventListenerSpec>,
    /// Names of `[sockets]` every instance receives, in this order, from fd 3 on.
    pub sockets: Vec<String>,
    /// Restart the running instances at these times (services only).
    pub cron_restart: Option<Cron>,
    /// Start a run at these times (tasks only); a run still going then is not doubled.
    pub schedule: Option<Cron>,
    /// Restart the running instances when these files change.
    pub watch: Option<WatchSpec>,
}

/// `autoscale = { min = 2, max = 8, cpu = "70%", cooldown = "1m" }`: the instances follow
/// the mean CPU of the running instances (see `api::autoscale`).
#[derive(Debug, Clone, PartialEq)]
pub struct AutoscaleSpec {
    pub min: u32,
    pub max: u32,
    /// The target: mean CPU per running instance, in percent of one core.
    pub cpu: f64,
    /// The least time between two changes of the count.
    pub cooldown: Duration,
}

/// `watch`, `watch_ignore` and `watch_debounce`.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchSpec {
    /// A change to a path matching one of these may restart…
    pub paths: Vec<PathPattern>,
    /// …unless it also matches one of these.
    pub ignore: Vec<PathPattern>,
    /// How long the files must be quiet after a change before the restart.
    pub debounce: Duration,
}

/// What `watch_debounce` is when not set.
pub const DEFAULT_WATCH_DEBOUNCE: Duration = Duration::from_millis(500);

/// `[services.NAME.event_listener]`: the events a listener pool subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventListenerSpec {
    pub subscription: crate::config::events::Subscription,
    pub buffer_size: usize,
}

/// Limits and warnings on an instance's CPU and memory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceSpec {
    /// Restart past this many resident bytes (the whole tree).
    pub max_memory: Option<u64>,
    /// cgroup hard limits.
    pub memory_max: Option<u64>,
    /// In cores (1.5 = 150% of one core).
    pub cpu_max: Option<f64>,
    pub pids_max: Option<u64>,
    /// Warn above this CPU, in percent of one core.
    pub warn_cpu: Option<f64>,
    pub warn_memory: Option<u64>,
    /// Devices handed out as CUDA_VISIBLE_DEVICES.
    pub gpus: Vec<String>,
    pub gpus_per_instance: usize,
    pub max_gpu_memory: Option<u64>,
}

impl ResourceSpec {
    /// The GPUs of instance `index`: `gpus_per_instance` of them, round-robin, so an instance
    /// keeps the same devices across restarts.
    pub fn gpus_of(&self, index: u32) -> Vec<String> {
        if self.gpus.is_empty() {
            return Vec::new();
        }
        let n = self.gpus.len();
        let per = self.gpus_per_instance.clamp(1, n);
        (0..per)
            .map(|j| self.gpus[(index as usize * per + j) % n].clone())
            .collect()
    }
}

/// A probe: what to check and when. Strings may still hold `{instance}` / `{port}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSpec {
    pub check: CheckSpec,
    pub fallback: Option<CheckSpec>,
    pub initial_delay: Duration,
    pub interval: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckSpec {
    Http {
        url: String,
        method: String,
        /// Accepted status codes, inclusive.
        status: (u16, u16),
        body_contains: Option<String>,
        headers: Vec<(String, String)>,
    },
    Tcp(String),
    /// A shell command line.
    Exec(String),
    /// A regular expression matched against output lines (readiness only).
    Log(String),
    /// sd_notify READY=1 (readiness only).
    Notify,
}

/// Compile a log-readiness pattern as tend matches it: on the raw bytes of a line, with
/// ASCII classes (`\d`, `\w`, `.` is any byte), so no Unicode tables are needed and
/// invalid UTF-8 in output cannot keep a line from matching.
pub fn line_pattern(pattern: &str) -> Result<regex::bytes::Regex, regex::Error> {
    regex::bytes::Regex::new(&format!("(?-u){pattern}"))
}

impl ProbeSpec {
    /// Whether the probe is polled (http, tcp, exec) rather than driven by the program.
    pub fn is_polled(&self) -> bool {
        !matches!(self.check, CheckSpec::Log(_) | CheckSpec::Notify)
    }
}

/// Where one output stream goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// A file (absolute); `None` is the default `state_dir/logs/STEM.out.log` / `.err.log`.
    File(Option<PathBuf>),
    /// Straight to tend's own stdout/stderr, unrotated (the container case).
    Inherit,
    /// Discarded (still kept in the in-memory tail).
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Plain,
    Json,
}

/// The `[services.NAME.logs]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct LogSpec {
    pub merge: bool,
    pub stdout: LogTarget,
    pub stderr: LogTarget,
    pub max_size: Option<u64>,
    pub rotate_every: Option<Duration>,
    pub backups: u32,
    pub compress: bool,
    pub timestamps: bool,
    /// A strftime-like pattern; None is RFC 3339 with milliseconds.
    pub timestamp_format: Option<String>,
    pub format: LogFormat,
    /// Lines kept in memory per instance.
    pub tail: usize,
    pub max_line: usize,
    /// Forward each line to this syslog socket (RFC 5424).
    pub syslog: Option<PathBuf>,
    /// Forward each line to this journal socket (native protocol).
    pub journal: Option<PathBuf>,
    /// Send stdout's / stderr's lines to event listeners (PROCESS_LOG_*).
    pub events_stdout: bool,
    pub events_stderr: bool,
}

impl Default for LogSpec {
    fn default() -> Self {
        LogSpec {
            merge: false,
            stdout: LogTarget::File(None),
            stderr: LogTarget::File(None),
            max_size: Some(50_000_000),
            rotate_every: None,
            backups: 10,
            compress: false,
            timestamps: false,
            timestamp_format: None,
            format: LogFormat::Plain,
            tail: 1000,
            max_line: 64 * 1024,
            syslog: None,
            journal: None,
            events_stdout: false,
            events_stderr: false,
        }
    }
}

/// Where `syslog = true` sends lines unless `syslog_socket` says otherwise.
pub const DEFAULT_SYSLOG_SOCKET: &str = "/dev/log";
/// Where `journal = true` sends lines unless `journal_socket` says otherwise.
pub const DEFAULT_JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// The strftime-like directives a `timestamp_format` may use.
pub const TIMESTAMP_DIRECTIVES: &[&str] =
    &["%Y", "%m", "%d", "%H", "%M", "%S", "%3f", "%6f", "%z", "%%"];

/// A service's settings resolved for one instance index: placeholders expanded.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceSpec {
    /// `web` for a single-instance service, `web:2` otherwise.
    pub name: String,
    pub index: u32,
    pub program: Program,
    pub cwd: Option<String>,
    /// The complete environment additions for the child, including TEND_SERVICE,
    /// TEND_INSTANCE and PORT.
    pub env: BTreeMap<String, String>,
}

impl ServiceSpec {
    /// The name of instance `index`: the bare service name when there is one instance
    /// (and it is not [`numbered`](ServiceSpec::numbered)).
    pub fn instance_name(&self, index: u32) -> String {
        if self.is_numbered() {
            format!("{}:{index}", self.name)
        } else {
            self.name.clone()
        }
    }

    /// Whether instance names carry their index: with more than one instance, or when
    /// [`numbered`](ServiceSpec::numbered) says so.
    pub fn is_numbered(&self) -> bool {
        self.numbered || self.instances != 1
    }

    /// The port instance `index` gets, when `port_base` is set.
    pub fn port(&self, index: u32) -> Option<u32> {
        self.port_base.map(|base| base as u32 + index)
    }

    /// Expand `{instance}` and `{port}` for one instance.
    pub fn instance(&self, index: u32) -> InstanceSpec {
        let port = self.port(index);
        let expand = |s: &str| expand_placeholders(s, index, port);
        let program = match &self.program {
            Program::Exec(argv) => Program::Exec(argv.iter().map(|a| expand(a)).collect()),
            Program::Shell(line) => Program::Shell(expand(line)),
        };
        let mut env: BTreeMap<String, String> = self
            .env
            .iter()
            .map(|(k, v)| (k.clone(), expand(v)))
            .collect();
        env.insert("TEND_SERVICE".into(), self.name.clone());
        env.insert("TEND_INSTANCE".into(), index.to_string());
        if let Some(port) = port {
            env.entry("PORT".into()).or_insert_with(|| port.to_string());
        }
        InstanceSpec {
            name: self.instance_name(index),
            index,
            program,
            cwd: self.cwd.as_deref().map(expand),
            env,
        }
    }

    /// Whether an exit code counts as success.
    pub fn is_success(&self, code: i32) -> bool {
        self.exit_codes.contains(&code)
    }
}

/// Replace `{instance}` and `{port}` (when a port is defined); other braces stay as written.
pub fn expand_placeholders(s: &str, index: u32, port: Option<u32>) -> String {
    if !s.contains('{') {
        return s.to_string();
    }
    let mut out = s.replace("{instance}", &index.to_string());
    if let Some(port) = port {
        out = out.replace("{port}", &port.to_string());
    }
    out
}

impl Manifest {
    pub fn service(&self, name: &str) -> Option<&ServiceSpec> {
        self.shared_service(name).map(|s| &**s)
    }

    /// The service called `name`, as the shared spec every copy of the manifest points to.
    pub fn shared_service(&self, name: &str) -> Option<&std::sync::Arc<ServiceSpec>> {
        self.services.iter().find(|s| s.name == name)
    }

    pub fn socket(&self, name: &str) -> Option<&SocketSpec> {
        self.sockets.iter().find(|s| s.name == name)
    }

    /// The directory relative paths in the manifest are resolved from.
    pub fn base_dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_else(|| PathBuf::from("."))
    }
}
