//! The manifest as written: serde types mirroring each table and key, with durations,
//! signals and ids still as text. They are both what parsing deserializes into and what
//! [`schema`](super::schema) describes, so editors' completion and tend never disagree.
//!
//! Every field is optional here; defaults and rules belong to validation.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// A tend manifest: `[tend]` daemon settings, one `[services.NAME]` table per service and
/// one `[sockets.NAME]` table per listening socket tend binds for them.
//
// The schema's root. The loader reads its parts (`RawDaemon`, each `RawService`) one by
// one, so that a broken service cannot hide another's errors; this type supplies the
// top-level key list and the whole-manifest schema.
#[expect(
    dead_code,
    reason = "parts are deserialized separately; this type describes the whole"
)]
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "tend manifest")]
pub struct RawManifest {
    /// Settings of the tend daemon itself.
    pub tend: Option<RawDaemon>,
    /// The services tend supervises, by name. A name is letters, digits, `_`, `.` and `-`,
    /// starting with a letter or digit; `all` is reserved.
    #[schemars(extend("propertyNames" = { "pattern": NAME_PATTERN }))]
    pub services: Option<BTreeMap<String, RawService>>,
    /// Listening sockets tend binds at startup and keeps open for its whole life, passed to
    /// the services that name them (systemd's socket passing: LISTEN_FDS, fds from 3). A
    /// name is letters, digits, `_`, `.` and `-`, starting with a letter or digit; it is
    /// the socket's name in LISTEN_FDNAMES.
    #[schemars(extend("propertyNames" = { "pattern": NAME_PATTERN, "maxLength": 255 }))]
    pub sockets: Option<BTreeMap<String, RawSocket>>,
}

/// One `[sockets.NAME]` table.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a table of socket settings")]
pub struct RawSocket {
    /// Where to listen: "tcp://0.0.0.0:8080", "tcp://[::]:8080" (an IP address, not a host
    /// name; port 0 lets the kernel pick) or "unix:/run/app/app.sock" (a relative path
    /// resolves against the manifest's directory).
    pub listen: Option<String>,
    /// Length of the queue of connections not yet accepted. Default: 4096 (the kernel caps
    /// it at net.core.somaxconn).
    #[schemars(range(min = 1, max = 65535))]
    pub backlog: Option<i64>,
    /// tcp only: set SO_REUSEPORT, so other processes (another tend, a program binding the
    /// port itself) may bind the same address too. Default: false.
    pub reuse_port: Option<bool>,
    /// unix only: the socket file's mode, as octal text such as "660". Default: "666"
    /// (the directory, owner and group decide who reaches it, as with systemd).
    pub mode: Option<ModeValue>,
    /// unix only: the socket file's owner, a user name or a numeric uid. Default: tend's user.
    pub owner: Option<IdValue>,
    /// unix only: the socket file's group, a group name or a numeric gid. Default: tend's group.
    pub group: Option<IdValue>,
}

/// Service and group names; `:` is left out because `web:2` names an instance.
pub const NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9_.-]*$";

/// The `[tend]` table.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a table of daemon settings")]
pub struct RawDaemon {
    /// Directory for tend's socket, pid file and logs. Relative paths resolve against the
    /// manifest's directory. Default: `.tend` beside the manifest.
    pub state_dir: Option<String>,
    /// The control socket's path, relative to the manifest's directory. Default:
    /// `tend.sock` in the state directory.
    pub socket: Option<String>,
    /// Whether to contain each instance in a cgroup v2 subtree. Default: `auto`.
    pub cgroups: Option<RawCgroups>,
    /// Rotation of tend's own log, `state_dir/tend.log`; the same defaults as a service's.
    pub log: Option<RawOwnLog>,
    /// How often each instance's CPU and memory are sampled; "0s" turns sampling off. Default: "2s".
    pub sample_every: Option<DurationValue>,
    /// At most this many instances starting (spawned, not yet ready) at once; the rest wait
    /// their turn in start order. Default: no limit.
    #[schemars(range(min = 1))]
    pub max_starting: Option<i64>,
    /// Raise tend's open-files limit (RLIMIT_NOFILE), which its children inherit, to at least
    /// this; tend refuses to start if it cannot (supervisord's `minfds`).
    #[schemars(range(min = 1))]
    pub min_fds: Option<i64>,
    /// The same for the number of processes (RLIMIT_NPROC; supervisord's `minprocs`).
    #[schemars(range(min = 1))]
    pub min_procs: Option<i64>,
    /// A group allowed to use the control socket (mode 0660); by default only tend's own user
    /// can (0600).
    pub socket_group: Option<IdValue>,
    /// The remote API: a TCP listener with bearer tokens, off by default.
    pub http: Option<RawHttp>,
    /// The event history in `state_dir/tend.db`.
    pub history: Option<RawHistory>,
    /// Webhooks or commands to run on chosen events (`[[tend.notify]]`).
    pub notify: Option<Vec<RawNotify>>,
}

/// The `[tend.http]` table.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a table of listener settings")]
pub struct RawHttp {
    /// Address and port to listen on, e.g. "127.0.0.1:9100" or "[::]:9100".
    pub listen: Option<String>,
    /// File of `TOKEN ROLE` lines (roles: read, operate); must be mode 0600 or stricter.
    pub tokens_file: Option<String>,
    /// PEM certificate chain; with `tls_key`, the listener speaks HTTPS.
    pub tls_cert: Option<String>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<String>,
    /// Serve GET /metrics without a token. Default: false.
    pub metrics_public: Option<bool>,
    /// Concurrent connections at most. Default: 64.
    #[schemars(range(min = 1, max = 65536))]
    pub max_connections: Option<i64>,
    /// HTTP Basic credentials accepted as `operate` (what supervisorctl sends to a
    /// supervisord `[inet_http_server]`): `{ username, password }`, the password as text or
    /// `{SHA}` and its hex SHA-1.
    pub basic_auth: Option<RawBasicAuth>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(
    deny_unknown_fields,
    expecting = "a table with `username` and `password`"
)]
pub struct RawBasicAuth {
    pub username: String,
    pub password: String,
}

/// The `[tend.history]` table.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a table of history settings")]
pub struct RawHistory {
    /// Keep a history at all. Default: true.
    pub enabled: Option<bool>,
    /// How long events and samples are kept. Default: "7d".
    pub retention: Option<DurationValue>,
}

/// One `[[tend.notify]]` entry.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a table with `webhook` or `command`")]
pub struct RawNotify {
    /// The events to send. Default: all of them.
    pub on: Option<Vec<RawNoticeKind>>,
    /// Only these services. Default: all.
    pub services: Option<Vec<String>>,
    /// POST each event to this http:// or https:// URL.
    pub webhook: Option<String>,
    /// The webhook's body. Default: "json".
    pub format: Option<RawPayloadFormat>,
    /// Extra request headers, e.g. `{ Authorization = "Bearer …" }`.
    pub headers: Option<BTreeMap<String, String>>,
    /// Run this shell command with the event in its environment (TEND_EVENT, …).
    pub command: Option<String>,
    /// Per delivery attempt. Default: "10s".
    pub timeout: Option<DurationValue>,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(remote = "Self")]
#[serde(rename_all = "lowercase")]
pub enum RawNoticeKind {
    /// Gave up restarting.
    Fatal,
    /// Its liveness probe failed.
    Unhealthy,
    /// Restarted after a failure.
    Restarted,
    /// Running again after fatal, unhealthy or flapping.
    Recovered,
    /// Restarted three times within five minutes.
    Flapping,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(remote = "Self")]
#[serde(rename_all = "lowercase")]
pub enum RawPayloadFormat {
    /// tend's event object.
    Json,
    /// `{"text": …}` for Slack incoming webhooks.
    Slack,
    /// `{"content": …}` for Discord webhooks.
    Discord,
    /// The summary line as a plain body (ntfy).
    Text,
}

/// The `[tend.log]` table.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a table of rotation settings")]
pub struct RawOwnLog {
    /// Rotate before the file grows past this size. Default: "50MB".
    pub max_size: Option<SizeValue>,
    /// Also rotate once the file is this old, e.g. "1d". Default: never.
    pub rotate_every: Option<DurationValue>,
    /// Rotated files to keep. Default: 10.
    #[schemars(range(min = 0, max = 1000))]
    pub backups: Option<i64>,
    /// Gzip rotated files. Default: false.
    pub compress: Option<bool>,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(remote = "Self")]
#[serde(rename_all = "lowercase")]
pub enum RawCgroups {
    /// Use cgroup v2 where tend can write it; otherwise track processes without cgroups.
    Auto,
    /// Never create cgroups.
    Off,
}

/// One `[services.NAME]` table.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a table of service settings")]
pub struct RawService {
    /// The command line, split into words like a POSIX shell would (no shell is run unless
    /// `shell = true`). `${VAR}` and `${VAR:-default}` are expanded first. Set this or `args`.
    pub command: Option<String>,
    /// The program and its arguments, already split; `${VAR}` is expanded in each. Set this
    /// or `command`.
    pub args: Option<Vec<String>>,
    /// Run `command` through `/bin/sh -c`. Default: false.
    pub shell: Option<bool>,
    /// Working directory, relative to the manifest's directory; `${VAR}` is expanded.
    /// Default: the manifest's directory.
    pub cwd: Option<String>,
    /// Environment variables for the service, on top of tend's own environment. `${VAR}` in
    /// values is expanded from the env files, then tend's environment.
    pub env: Option<BTreeMap<String, EnvValue>>,
    /// Env file(s) in dotenv syntax, relative to the manifest's directory; later files
    /// override earlier ones, and `env` overrides them all. Their values are taken literally.
    pub env_file: Option<PathList>,
    /// User to run as: a name that exists on this machine, or a numeric uid.
    pub user: Option<IdValue>,
    /// Group to run as: a name that exists on this machine, or a numeric gid.
    pub group: Option<IdValue>,
    /// File mode creation mask, as octal text such as "022" (or an integer, taken as is).
    pub umask: Option<UmaskValue>,
    /// `service` (long-running, the default) or `task` (runs to completion).
    pub kind: Option<RawKind>,
    /// Start with `tend up`. Default: true.
    pub autostart: Option<bool>,
    /// How many copies to run, named `NAME:0`, `NAME:1`, ... Default: 1. With `autoscale`:
    /// the count it starts with, between `min` and `max` (default: `min`).
    #[schemars(range(min = 1, max = 10000))]
    pub instances: Option<i64>,
    /// Adjust the instances between `min` and `max` to keep the mean CPU per instance near
    /// `cpu`: up above it, down below half of it, at most one change per `cooldown`.
    pub autoscale: Option<RawAutoscale>,
    /// First port: instance N gets `port_base + N` as `{port}` and `PORT`.
    #[schemars(range(min = 1, max = 65535))]
    pub port_base: Option<i64>,
    /// When to restart. Default: `always` for services, `never` for tasks.
    pub restart: Option<RawRestart>,
    /// Exit codes that count as success. Default: [0].
    pub exit_codes: Option<Vec<i64>>,
    /// Delay between restarts, growing by `factor` from `initial` up to `max`.
    pub backoff: Option<RawBackoff>,
    /// How long a process must stay up to count as started well. Default: "1s".
    pub min_uptime: Option<DurationValue>,
    /// Restarts allowed within `restart_window` before tend gives up. Default: 10.
    #[schemars(range(min = 0))]
    pub max_restarts: Option<i64>,
    /// The window `max_restarts` counts over. Default: "60s".
    pub restart_window: Option<DurationValue>,
    /// What `max_restarts` counts: `window` (every automatic restart within
    /// `restart_window`, the default) or `unstable` (consecutive runs that ended before
    /// `min_uptime`, as supervisord's `startretries` and PM2's `max_restarts` do).
    pub restart_limit: Option<RawRestartLimit>,
    /// After giving up, wait this long and then try again. Default: never retry.
    pub cooldown: Option<DurationValue>,
    /// Signal that asks the service to stop: a name with or without SIG, or a number. Default: TERM.
    pub stop_signal: Option<SignalValue>,
    /// How long to wait after `stop_signal` before sending KILL. Default: "10s".
    pub stop_timeout: Option<DurationValue>,
    /// `tend reload`: instead of replacing the processes, send them this signal (HUP for
    /// programs that reload their configuration on it, as nginx does). Default: none.
    pub reload_signal: Option<SignalValue>,
    /// `tend reload` and `tend apply`: how long a replacement may take to become ready before
    /// it is stopped and the old process kept. Default: "60s".
    pub reload_timeout: Option<DurationValue>,
    /// `tend reload` and `tend apply`: how many instances are replaced at once. Default: 1.
    #[schemars(range(min = 1))]
    pub max_surge: Option<i64>,
    /// Services to start first: a list of names (wait until started), or a table of
    /// name = "started" | "healthy" | "completed".
    pub depends_on: Option<DependsOn>,
    /// Start order among services whose dependencies allow it: lower first. Default: 0.
    pub priority: Option<i64>,
    /// Groups this service belongs to, to act on several services by one name.
    pub groups: Option<Vec<String>>,
    /// Sockets from `[sockets]` this service receives, in this order, as fds 3, 4, ... with
    /// LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES set (systemd socket activation). Every
    /// instance gets the same sockets; the kernel spreads connections across them.
    pub sockets: Option<Vec<String>>,
    /// Where the output goes and how it is kept: files, rotation, timestamps, tail buffer.
    pub logs: Option<RawLogs>,
    /// When an instance is ready: a probe, a log line or sd_notify. Default: up for min_uptime.
    pub readiness: Option<RawProbe>,
    /// A probe whose failure past its threshold restarts the instance.
    pub liveness: Option<RawProbe>,
    /// A grace phase for slow starters: liveness is not checked until this probe passes.
    pub startup: Option<RawProbe>,
    /// With `readiness.notify`: restart an instance that stops sending WATCHDOG=1 for this long.
    pub watchdog: Option<DurationValue>,
    /// Restart an instance whose whole process tree holds more memory than this (resident).
    pub max_memory: Option<SizeValue>,
    /// Hard memory limit of the instance's cgroup (memory.max), where tend manages cgroups.
    pub memory_max: Option<SizeValue>,
    /// Hard CPU limit of the instance's cgroup (cpu.max): "150%" or 1.5 cores.
    pub cpu_max: Option<CpuValue>,
    /// Hard limit on processes in the instance's cgroup (pids.max).
    #[schemars(range(min = 1))]
    pub pids_max: Option<i64>,
    /// Record a warning when the tree uses more CPU than this ("90%" of one core), once per crossing.
    pub warn_cpu: Option<CpuValue>,
    /// Record a warning when the tree holds more memory than this, once per crossing.
    pub warn_memory: Option<SizeValue>,
    /// When this service goes fatal, stop everything and exit non-zero (so a container
    /// orchestrator restarts the whole container). Default: false.
    pub critical: Option<bool>,
    /// Run as a supervisord event listener: tend writes the subscribed events to the
    /// process's stdin and reads READY/RESULT from its stdout (supervisord's protocol).
    pub event_listener: Option<RawEventListener>,
    /// GPUs (indexes or UUIDs) shared out to the instances as CUDA_VISIBLE_DEVICES.
    pub gpus: Option<Vec<IdValue>>,
    /// How many of `gpus` each instance gets, round-robin by instance number. Default: all.
    #[schemars(range(min = 1))]
    pub gpus_per_instance: Option<i64>,
    /// Restart an instance whose processes hold more GPU memory than this (NVIDIA, via NVML).
    pub max_gpu_memory: Option<SizeValue>,
    /// Services only: restart the running instances on this cron schedule, in tend's local
    /// time: five fields (minute hour day-of-month month day-of-week) such as "0 3 * * *",
    /// or @hourly, @daily, @weekly, @monthly, @yearly. Instances that are not running are
    /// left alone.
    #[schemars(extend("examples" = ["0 3 * * *", "@daily", "*/30 9-17 * * mon-fri"]))]
    pub cron_restart: Option<String>,
    /// Tasks only: start a run on this cron schedule, in tend's local time ("*/5 * * * *",
    /// "@hourly"). A run still going when the next is due is not doubled: that one is
    /// skipped and recorded. A scheduled task does not start with `tend up` unless
    /// `autostart = true` says so.
    #[schemars(extend("examples" = ["*/5 * * * *", "0 2 * * *", "@hourly"]))]
    pub schedule: Option<String>,
    /// Runs of a scheduled task at once. Only 1 (the default) is supported: a run still going
    /// when the next is due makes tend skip that one.
    #[schemars(range(min = 1, max = 1))]
    pub max_concurrent: Option<i64>,
    /// Restart the running instances when files matching these globs change: paths relative
    /// to the manifest's directory, `*`, `?` and `[...]` within a name, `**` across
    /// directories, and a directory covers everything in it ("src/**/*.py", "config").
    pub watch: Option<PathList>,
    /// Changes to paths matching these globs never restart ("**/__pycache__", "*.log").
    /// tend's state directory and the services' log files are always ignored.
    pub watch_ignore: Option<PathList>,
    /// How long the watched files must be quiet after a change before the restart, so a
    /// burst of changes restarts once. Default: "500ms".
    pub watch_debounce: Option<DurationValue>,
}

/// `readiness`, `liveness` or `startup`: exactly one check, and when to run it.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a table of probe settings")]
pub struct RawProbe {
    /// GET this URL (`http://` only; `{port}` and `{instance}` expand per instance).
    pub http: Option<String>,
    /// HTTP method. Default: "GET".
    pub method: Option<String>,
    /// Accepted HTTP status: one code or `[low, high]`. Default: `[200, 399]`.
    pub status: Option<RawStatus>,
    /// The response body must contain this text.
    pub body_contains: Option<String>,
    /// Extra request headers.
    pub headers: Option<BTreeMap<String, String>>,
    /// Connect to this `host:port`.
    pub tcp: Option<String>,
    /// Run this command (through `sh -c`) with the service's env and cwd; exit 0 passes.
    pub exec: Option<String>,
    /// Readiness only: ready at the first output line matching this regular expression.
    pub log: Option<String>,
    /// Readiness only: ready when the program sends READY=1 over sd_notify.
    pub notify: Option<bool>,
    /// Wait this long after the spawn before the first check. Default: "0s".
    pub initial_delay: Option<DurationValue>,
    /// Time between checks. Default: "10s".
    pub interval: Option<DurationValue>,
    /// A check slower than this fails. Default: "1s".
    pub timeout: Option<DurationValue>,
    /// Consecutive successes to pass. Default: 1.
    pub success_threshold: Option<i64>,
    /// Consecutive failures to fail. Default: 3.
    pub failure_threshold: Option<i64>,
    /// A second check tried when the first fails; the result says which one answered.
    pub fallback: Option<RawCheck>,
}

/// A `fallback` check: one of http, tcp or exec.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a table with http, tcp or exec")]
pub struct RawCheck {
    pub http: Option<String>,
    pub method: Option<String>,
    pub status: Option<RawStatus>,
    pub body_contains: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub tcp: Option<String>,
    pub exec: Option<String>,
}

/// An HTTP status: one code, or an inclusive range.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawStatus {
    One(i64),
    Range([i64; 2]),
}

/// The `logs` table.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a table of log settings")]
pub struct RawLogs {
    /// Write stderr into the stdout log (one file, in order). Default: false.
    pub merge: Option<bool>,
    /// Where stdout goes: a file path, "inherit" (tend's own stdout: no rotation) or "null".
    /// Default: state_dir/logs/NAME.out.log.
    pub stdout: Option<String>,
    /// Where stderr goes, like `stdout`. Default: state_dir/logs/NAME.err.log.
    pub stderr: Option<String>,
    /// Rotate a file before it grows past this size. Default: "50MB".
    pub max_size: Option<SizeValue>,
    /// Also rotate a file once it is this old, e.g. "1d". Default: never.
    pub rotate_every: Option<DurationValue>,
    /// Rotated files to keep. Default: 10.
    #[schemars(range(min = 0, max = 1000))]
    pub backups: Option<i64>,
    /// Gzip rotated files. Default: false.
    pub compress: Option<bool>,
    /// Prefix each line with the time it was read (RFC 3339, milliseconds, UTC). Default: false.
    pub timestamps: Option<bool>,
    /// strftime-like pattern for timestamps: %Y %m %d %H %M %S %3f %6f %z %%.
    pub timestamp_format: Option<String>,
    /// "plain" (the bytes as written) or "json" (one object per line). Default: "plain".
    pub format: Option<RawLogFormat>,
    /// Lines kept in memory per instance for `tend logs`. Default: 1000.
    #[schemars(range(min = 0, max = 1000000))]
    pub tail: Option<i64>,
    /// Lines longer than this are split, with a marker. Default: "64KiB".
    pub max_line: Option<SizeValue>,
    /// Also send each line to the local syslog daemon (RFC 5424; the service is the app-name,
    /// stdout at severity info, stderr at warning). Default: false.
    pub syslog: Option<bool>,
    /// The syslog daemon's datagram socket. Default: "/dev/log".
    pub syslog_socket: Option<String>,
    /// Also send each line to the systemd journal (its native protocol), when its socket
    /// exists. Default: false.
    pub journal: Option<bool>,
    /// The journal's socket. Default: "/run/systemd/journal/socket".
    pub journal_socket: Option<String>,
    /// Streams whose lines go to event listeners as PROCESS_LOG_STDOUT / _STDERR events
    /// (supervisord's `stdout_events_enabled`): "stdout", "stderr". Default: none.
    pub events: Option<Vec<RawStream>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(remote = "Self")]
#[serde(rename_all = "lowercase")]
pub enum RawLogFormat {
    /// The bytes as the program wrote them (with a timestamp prefix if asked).
    Plain,
    /// One JSON object per line: time, service, instance, stream, line.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(remote = "Self")]
#[serde(rename_all = "lowercase")]
pub enum RawKind {
    /// Long-running; restarted by policy.
    Service,
    /// Runs to completion; success satisfies `completed` dependencies.
    Task,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(remote = "Self")]
#[serde(rename_all = "kebab-case")]
pub enum RawRestart {
    /// Restart whenever the process exits.
    Always,
    /// Restart when the exit code is not in `exit_codes`, or on a signal.
    OnFailure,
    /// Never restart.
    Never,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(remote = "Self")]
#[serde(rename_all = "lowercase")]
pub enum RawRestartLimit {
    /// Automatic restarts within `restart_window`.
    Window,
    /// Consecutive runs that ended before `min_uptime` (failed starts); a stable run resets
    /// the count and is restarted at once.
    Unstable,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(remote = "Self")]
#[serde(rename_all = "lowercase")]
pub enum RawGrowth {
    /// Each delay is `factor` times the one before.
    Exponential,
    /// The n-th delay is n times `initial` (supervisord's 1 s, 2 s, 3 s).
    Linear,
}

/// The `autoscale` table.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a table of autoscale settings")]
pub struct RawAutoscale {
    /// The fewest instances. Default: 1.
    #[schemars(range(min = 1, max = 10000))]
    pub min: Option<i64>,
    /// The most instances. Required.
    #[schemars(range(min = 1, max = 10000))]
    pub max: Option<i64>,
    /// The target mean CPU per running instance: "70%" of one core, or a number of cores
    /// (0.7). Required.
    pub cpu: Option<CpuValue>,
    /// The least time between two changes of the count. Default: "1m".
    pub cooldown: Option<DurationValue>,
}

/// The `event_listener` table.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a table of event listener settings")]
pub struct RawEventListener {
    /// supervisord event types (`PROCESS_STATE_FATAL`, `TICK_60`, `PROCESS_STATE`, ...).
    pub events: Option<Vec<String>>,
    /// Events kept for the listeners while they are busy; the oldest is dropped past this.
    /// Default: 10.
    #[schemars(range(min = 1))]
    pub buffer_size: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(remote = "Self")]
#[serde(rename_all = "lowercase")]
pub enum RawStream {
    Stdout,
    Stderr,
}

/// The `backoff` table.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a table of backoff settings")]
pub struct RawBackoff {
    /// First delay. Default: "1s".
    pub initial: Option<DurationValue>,
    /// Largest delay; at least `initial`. Default: "30s".
    pub max: Option<DurationValue>,
    /// Growth per restart, at least 1.0. Default: 2.0.
    #[schemars(range(min = 1.0))]
    pub factor: Option<f64>,
    /// Random spread in [0, 1]: each delay is scaled by 1 ± jitter. Default: 0.1.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub jitter: Option<f64>,
    /// `exponential` (the default: `factor` per restart) or `linear` (`initial` × n).
    pub growth: Option<RawGrowth>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(remote = "Self")]
#[serde(rename_all = "lowercase")]
pub enum RawCondition {
    /// The dependency has been started.
    Started,
    /// The dependency is ready (running past its `min_uptime`).
    Healthy,
    /// The dependency is a task that exited successfully.
    Completed,
}

/// What a dependent does when a dependency stops being ready while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(remote = "Self")]
#[serde(rename_all = "lowercase")]
pub enum RawOnUnready {
    /// Keep running; status shows a warning.
    #[default]
    Ignore,
    /// Stop while the dependency is unready; start again once it is ready.
    Stop,
    /// Keep running; restart once the dependency is ready again (to reconnect).
    Restart,
}

/// One `depends_on` entry's value: a condition, or a table with the condition and what to
/// do when the dependency stops being ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawDependency {
    pub condition: RawCondition,
    pub on_unready: Option<RawOnUnready>,
}

impl Default for RawDependency {
    fn default() -> Self {
        RawDependency {
            condition: RawCondition::Started,
            on_unready: None,
        }
    }
}

/// The table form of a `depends_on` entry.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDependencyTable {
    /// What to wait for. Default: "started".
    pub condition: Option<RawCondition>,
    /// What to do when the dependency stops being ready: "ignore" (default), "stop", "restart".
    pub on_unready: Option<RawOnUnready>,
}

impl<'de> Deserialize<'de> for RawDependency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DependencyVisitor;

        impl<'de> Visitor<'de> for DependencyVisitor {
            type Value = RawDependency;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a condition or a table with condition and on_unready")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<RawDependency, E> {
                use serde::de::IntoDeserializer;
                Ok(RawDependency {
                    condition: RawCondition::deserialize(value.into_deserializer())?,
                    on_unready: None,
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawDependency, A::Error> {
                let table =
                    RawDependencyTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawDependency {
                    condition: table.condition.unwrap_or(RawCondition::Started),
                    on_unready: table.on_unready,
                })
            }
        }

        deserializer.deserialize_any(DependencyVisitor)
    }
}

impl JsonSchema for RawDependency {
    fn schema_name() -> Cow<'static, str> {
        "Dependency".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let condition = generator.subschema_for::<RawCondition>();
        let table = generator.subschema_for::<RawDependencyTable>();
        json_schema!({ "anyOf": [condition, table] })
    }
}

/// A scalar as written, for keys that accept more than one type.
#[derive(Debug, Clone, PartialEq)]
pub enum Loose {
    Text(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
}

impl fmt::Display for Loose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loose::Text(s) => write!(f, "{s}"),
            Loose::Integer(i) => write!(f, "{i}"),
            Loose::Float(x) => write!(f, "{x}"),
            Loose::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// Reads a [`Loose`] scalar, accepting only the kinds a key allows.
struct LooseVisitor {
    expecting: &'static str,
    numbers: bool,
    floats: bool,
    bools: bool,
}

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Loose, E> {
        Ok(Loose::Text(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Loose, E> {
        if self.numbers {
            Ok(Loose::Integer(v))
        } else {
            Err(E::invalid_type(de::Unexpected::Signed(v), &self))
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Loose, E> {
        match i64::try_from(v) {
            Ok(v) => self.visit_i64(v),
            Err(_) => Err(E::invalid_value(de::Unexpected::Unsigned(v), &self)),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Loose, E> {
        if self.floats {
            Ok(Loose::Float(v))
        } else {
            Err(E::invalid_type(de::Unexpected::Float(v), &self))
        }
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Loose, E> {
        if self.bools {
            Ok(Loose::Bool(v))
        } else {
            Err(E::invalid_type(de::Unexpected::Bool(v), &self))
        }
    }
}

/// Declares a newtype over [`Loose`] with its accepted kinds and its JSON Schema.
macro_rules! loose_type {
    ($(#[$doc:meta])* $name:ident, $expecting:literal, numbers: $numbers:literal,
     floats: $floats:literal, bools: $bools:literal, schema: $schema:tt) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name(pub Loose);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer
                    .deserialize_any(LooseVisitor {
                        expecting: $expecting,
                        numbers: $numbers,
                        floats: $floats,
                        bools: $bools,
                    })
                    .map($name)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!($schema)
            }
        }
    };
}

loose_type!(
    /// A duration such as "500ms", "10s", "1m30s" or "1.5h". Numbers are read so that a
    /// missing unit gets a helpful error rather than a type error.
    DurationValue, "a duration such as \"10s\"", numbers: true, floats: true, bools: false,
    schema: {
        "type": "string",
        "description": "A duration: numbers with units ms, s, m, h, d, e.g. \"500ms\", \"10s\", \"1m30s\", \"1.5h\".",
        "pattern": "^\\s*(\\+?([0-9]+\\.?[0-9]*|\\.[0-9]+)\\s*(ms|s|m|h|d)\\s*)+$",
        "examples": ["500ms", "10s", "1m30s"]
    }
);

loose_type!(
    /// A size such as "50MB" or "64KiB", or a number of bytes.
    SizeValue, "a size such as \"50MB\"", numbers: true, floats: false, bools: false,
    schema: {
        "type": ["string", "integer"],
        "description": "A size: a number with unit B, KB, MB, GB (1000) or KiB, MiB, GiB (1024), or bytes.",
        "examples": ["50MB", "64KiB"]
    }
);

loose_type!(
    /// A share of CPU: "150%" or a number of CPUs (1.5).
    CpuValue, "a CPU share such as \"150%\" or 1.5", numbers: true, floats: true, bools: false,
    schema: {
        "type": ["string", "number"],
        "description": "A share of CPU: a percentage of one core (\"150%\") or a number of cores (1.5).",
        "examples": ["50%", "150%", 2]
    }
);

loose_type!(
    /// A signal: a name ("TERM", "SIGTERM") or a number.
    SignalValue, "a signal name such as \"TERM\" or a number", numbers: true, floats: false, bools: false,
    schema: {
        "type": ["string", "integer"],
        "description": "A signal: HUP, INT, QUIT, ABRT, KILL, USR1, USR2, PIPE, ALRM, TERM, CONT, STOP, TSTP, TTIN, TTOU, WINCH (with or without SIG), or its number.",
        "examples": ["TERM", "SIGINT", "HUP"]
    }
);

loose_type!(
    /// A user or group: a name, or a numeric id.
    IdValue, "a name or a numeric id", numbers: true, floats: false, bools: false,
    schema: { "type": ["string", "integer"], "minimum": 0 }
);

loose_type!(
    /// A umask: octal text such as "022", or an integer taken as is (TOML `0o022`).
    UmaskValue, "octal text such as \"022\" or an integer", numbers: true, floats: false, bools: false,
    schema: {
        "anyOf": [
            { "type": "string", "pattern": "^[0-7]{1,4}$" },
            { "type": "integer", "minimum": 0, "maximum": 511 }
        ],
        "examples": ["022", "077"]
    }
);

loose_type!(
    /// A file mode: octal text such as "660", or an integer taken as is (TOML `0o660`).
    ModeValue, "octal text such as \"660\" or an integer", numbers: true, floats: false, bools: false,
    schema: {
        "anyOf": [
            { "type": "string", "pattern": "^[0-7]{1,4}$" },
            { "type": "integer", "minimum": 0, "maximum": 511 }
        ],
        "examples": ["660", "600"]
    }
);

loose_type!(
    /// An environment variable's value; integers and booleans are written as text.
    EnvValue, "a string, an integer or a boolean", numbers: true, floats: false, bools: true,
    schema: { "type": ["string", "integer", "boolean"] }
);

/// One path or a list of paths (`env_file`).
#[derive(Debug, Clone, PartialEq)]
pub struct PathList(pub Vec<String>);

impl<'de> Deserialize<'de> for PathList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PathListVisitor;

        impl<'de> Visitor<'de> for PathListVisitor {
            type Value = PathList;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a path or an array of paths")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<PathList, E> {
                Ok(PathList(vec![v.to_string()]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PathList, A::Error> {
                let mut paths = Vec::new();
                while let Some(path) = seq.next_element::<String>()? {
                    paths.push(path);
                }
                Ok(PathList(paths))
            }
        }

        deserializer.deserialize_any(PathListVisitor)
    }
}

impl JsonSchema for PathList {
    fn schema_name() -> Cow<'static, str> {
        "PathList".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": "string" },
                { "type": "array", "items": { "type": "string" } }
            ]
        })
    }
}

/// `depends_on`: names in file order, each with the condition to wait for.
#[derive(Debug, Clone, PartialEq)]
pub struct DependsOn {
    /// True when written as a table (`{ db = "healthy" }`) rather than a list.
    pub table: bool,
    pub entries: Vec<(String, RawDependency)>,
}

impl<'de> Deserialize<'de> for DependsOn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DependsOnVisitor;

        impl<'de> Visitor<'de> for DependsOnVisitor {
            type Value = DependsOn;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of service names or a table of name = condition")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DependsOn, A::Error> {
                let mut entries = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    entries.push((name, RawDependency::default()));
                }
                Ok(DependsOn {
                    table: false,
                    entries,
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DependsOn, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, RawDependency>()? {
                    entries.push(entry);
                }
                Ok(DependsOn {
                    table: true,
                    entries,
                })
            }
        }

        deserializer.deserialize_any(DependsOnVisitor)
    }
}

impl JsonSchema for DependsOn {
    fn schema_name() -> Cow<'static, str> {
        "DependsOn".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let condition = generator.subschema_for::<RawDependency>();
        json_schema!({
            "anyOf": [
                {
                    "type": "array",
                    "items": { "type": "string", "pattern": NAME_PATTERN },
                    "uniqueItems": true
                },
                {
                    "type": "object",
                    "propertyNames": { "pattern": NAME_PATTERN },
                    "additionalProperties": condition
                }
            ]
        })
    }
}

/// The keys a table type accepts, read from its schema so they cannot drift from serde's.
pub fn field_names<T: JsonSchema>() -> Vec<String> {
    let schema = schemars::schema_for!(T);
    schema
        .get("properties")
        .and_then(|p| p.as_object())
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// The names of these enums are read from strings only. serde's derive also reads an enum
/// from a one-key map (`{fatal: null}`, which YAML writes `- fatal:`, easily a typo), a
/// form TOML cannot express: `tend import` of such a YAML manifest wrote one that did not
/// load. Each enum derives `Deserialize` as `remote = "Self"` (an inherent function) and
/// this is its trait impl, which takes the string first.
macro_rules! named_by_strings {
    ($($ty:ident),* $(,)?) => {$(
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let name = String::deserialize(deserializer)?;
                $ty::deserialize(de::value::StringDeserializer::<D::Error>::new(name))
            }
        }
    )*};
}

named_by_strings!(
    RawNoticeKind,
    RawPayloadFormat,
    RawCgroups,
    RawLogFormat,
    RawKind,
    RawRestart,
    RawRestartLimit,
    RawGrowth,
    RawStream,
    RawCondition,
    RawOnUnready,
);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(value: serde_json::Value) -> Result<RawService, String> {
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    /// Found by fuzz/run (manifest_yaml): `- fatal:` (a map) was read as `fatal`, and the
    /// TOML `tend import` wrote for it did not load.
    #[test]
    fn enum_names_are_strings_only() {
        let read = |value: serde_json::Value| {
            serde_json::from_value::<RawNotify>(value).map_err(|e| e.to_string())
        };
        let on = read(json!({"on": ["fatal", "flapping"]}))
            .unwrap()
            .on
            .unwrap();
        assert!(matches!(
            on[..],
            [RawNoticeKind::Fatal, RawNoticeKind::Flapping]
        ));
        let error = read(json!({"on": [{"fatal": null}]})).unwrap_err();
        assert!(error.contains("expected a string"), "{error}");
        let error = read(json!({"on": ["fatl"]})).unwrap_err();
        assert!(
            error.contains("unknown variant `fatl`, expected one of"),
            "{error}"
        );
        let error = service(json!({"restart": {"always": null}})).unwrap_err();
        assert!(error.contains("expected a string"), "{error}");
        assert!(matches!(
            service(json!({"restart": "on-failure"})).unwrap().restart,
            Some(RawRestart::OnFailure)
        ));
    }

    #[test]
    fn loose_values_accept_only_their_kinds() {
        let raw = service(json!({
            "env": {"A": "x", "B": 1, "C": true},
            "umask": "022",
            "user": 1000,
            "stop_signal": 9,
            "min_uptime": 10,
        }))
        .unwrap();
        let env = raw.env.unwrap();
        assert_eq!(env["B"], EnvValue(Loose::Integer(1)));
        assert_eq!(env["C"], EnvValue(Loose::Bool(true)));
        assert_eq!(raw.min_uptime, Some(DurationValue(Loose::Integer(10))));
        let err = service(json!({"env": {"A": 1.5}})).unwrap_err();
        assert!(
            err.contains("expected a string, an integer or a boolean"),
            "{err}"
        );
        let err = service(json!({"stop_signal": true})).unwrap_err();
        assert!(err.contains("expected a signal name"), "{err}");
    }

    #[test]
    fn depends_on_reads_lists_and_tables_in_order() {
        let raw = service(json!({"depends_on": ["b", "a"]})).unwrap();
        let deps = raw.depends_on.unwrap();
        assert!(!deps.table);
        assert_eq!(
            deps.entries,
            [
                ("b".into(), RawDependency::default()),
                ("a".into(), RawDependency::default())
            ]
        );
        let raw = service(json!({"depends_on": {"db": "healthy"}})).unwrap();
        assert_eq!(
            raw.depends_on.unwrap().entries,
            [(
                "db".into(),
                RawDependency {
                    condition: RawCondition::Healthy,
                    on_unready: None
                }
            )]
        );
        let raw = service(
            json!({"depends_on": {"db": {"condition": "healthy", "on_unready": "restart"}}}),
        )
        .unwrap();
        assert_eq!(
            raw.depends_on.unwrap().entries[0].1,
            RawDependency {
                condition: RawCondition::Healthy,
                on_unready: Some(RawOnUnready::Restart)
            }
        );
        let err = service(json!({"depends_on": {"db": {"condition": "healthy", "when": 1}}}))
            .unwrap_err();
        assert!(err.contains("unknown field `when`"), "{err}");
        let err = service(json!({"depends_on": {"db": "ready"}})).unwrap_err();
        assert!(err.contains("unknown variant `ready`"), "{err}");
        let err = service(json!({"depends_on": "db"})).unwrap_err();
        assert!(
            err.contains("an array of service names or a table"),
            "{err}"
        );
    }

    #[test]
    fn env_file_takes_one_path_or_many() {
        let raw = service(json!({"env_file": ".env"})).unwrap();
        assert_eq!(raw.env_file, Some(PathList(vec![".env".into()])));
        let raw = service(json!({"env_file": ["a", "b"]})).unwrap();
        assert_eq!(raw.env_file, Some(PathList(vec!["a".into(), "b".into()])));
    }

    #[test]
    fn field_names_come_from_the_schema() {
        let names = field_names::<RawService>();
        assert!(names.contains(&"command".to_string()));
        assert!(names.contains(&"stop_timeout".to_string()));
        assert_eq!(
            field_names::<RawManifest>(),
            ["services", "sockets", "tend"]
        );
    }
}
