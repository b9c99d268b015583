//! The wire contract between the daemon and its clients: JSON bodies of the control API.
//! Types only; the server (`api`) and the clients (`cli`, through `client`) both use them.

pub mod client;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::store::{ActionRow, EventRow, SampleRow, ServiceSummary};

/// The API's version prefix.
pub const API: &str = "/api/v1";

/// One instance, as `tend status --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InstanceInfo {
    /// `web` or `web:2`.
    pub name: String,
    pub service: String,
    /// The instance index.
    pub instance: u32,
    pub state: String,
    pub pid: Option<u32>,
    /// During a reload: the replacement starting beside `pid`, until it is ready and takes
    /// over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement_pid: Option<u32>,
    /// Milliseconds since the current process started, while there is one.
    pub uptime_ms: Option<u64>,
    pub restarts: u32,
    pub exit_code: Option<i32>,
    /// Name of the signal that ended the last run, like `SIGKILL`.
    pub exit_signal: Option<String>,
    /// Ready: its readiness probe passes (or, without one, up past `min_uptime`).
    pub ready: bool,
    /// `healthy`, `unhealthy`, `starting` (liveness not decided yet) or `none`.
    pub health: String,
    /// Why the instance is in its state.
    pub reason: String,
    /// The last `STATUS=` the program sent over sd_notify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_text: Option<String>,
    /// `reloading` or `stopping`, as the program announced over sd_notify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_phase: Option<String>,
    /// Each probe's last result (`tend health`).
    #[serde(default)]
    pub probes: Vec<ProbeInfo>,
    /// CPU of the whole process tree over the last sampling interval, in % of one core.
    pub cpu_percent: Option<f64>,
    /// Resident memory of the whole process tree at the last sample.
    pub rss_bytes: Option<u64>,
    /// CPU time used by all runs of the instance so far, in seconds.
    #[serde(default)]
    pub cpu_seconds: f64,
    /// GPU memory held by the tree's processes (where NVML is available).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_memory_bytes: Option<u64>,
    /// The highest GPU (SM) utilisation among the tree's processes, in %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_percent: Option<u32>,
    /// Something to know while it runs, like "db not ready".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// One probe of an instance and what it last said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProbeInfo {
    /// `readiness`, `liveness` or `startup`.
    pub role: String,
    /// `http`, `tcp`, `exec`, `log` or `notify`.
    pub kind: String,
    /// Whether it passes as its thresholds count; absent until they first decide.
    pub passing: Option<bool>,
    /// The last attempt's outcome.
    pub last_ok: Option<bool>,
    pub detail: String,
    /// The fallback check answered the last attempt.
    pub fallback: bool,
    pub took_ms: Option<f64>,
    /// Milliseconds since the Unix epoch of the last attempt.
    pub at_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ActionRequest {
    /// Services, instances (`web:2`), groups or `all`.
    #[schemars(length(min = 1))]
    pub targets: Vec<String>,
    /// For the `signal` action: a name like `HUP` or `SIGHUP`, or a number.
    #[schemars(schema_with = "signal_schema")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ActionResult {
    pub instance: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ActionResponse {
    pub results: Vec<ActionResult>,
}

impl ActionResponse {
    pub fn failures(&self) -> impl Iterator<Item = &ActionResult> {
        self.results.iter().filter(|r| !r.ok)
    }
}

/// Every 4xx/5xx answer carries this body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DaemonInfo {
    pub version: String,
    pub pid: u32,
    pub manifest: String,
    pub state_dir: String,
    pub uptime_ms: u64,
    /// Where the remote API listens (`[tend.http]`), as bound: with `:0` the port chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_listen: Option<String>,
    /// The `[sockets]` tend listens on for its services.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sockets: Vec<SocketInfo>,
    /// How many times tend re-executed itself in place (`tend upgrade`, SIGUSR2) since it
    /// started; `pid` and `uptime_ms` go on across them.
    #[serde(default)]
    pub upgrades: u32,
    /// The last upgrade that went as far as executing the new binary, and how it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_upgrade: Option<UpgradeInfo>,
}

/// One upgrade that executed a binary: the new one took over (`ok`), or it could not and
/// the binary it replaced took over again (`error` says why).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UpgradeInfo {
    /// Counts every upgrade that executed a binary, whatever its end.
    pub number: u32,
    pub at_ms: u64,
    /// The binary the upgrade executed.
    pub binary: String,
    /// The version that handed over, and the version running now.
    pub from_version: String,
    pub version: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /api/v1/actions/upgrade`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpgradeRequest {
    /// The binary to execute, an absolute path; by default the one tend was started from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub binary: Option<String>,
}

/// One of `[sockets]`, as bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SocketInfo {
    pub name: String,
    /// `tcp://ADDRESS:PORT` (the port the kernel chose, for port 0) or `unix:PATH`.
    pub address: String,
}

/// One service and its instances (`GET /api/v1/services`, `GET /api/v1/services/{name}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceInfo {
    pub name: String,
    /// `service` (long-running) or `task` (runs to completion).
    pub kind: String,
    /// The instances' state when they agree, else the most pressing one (fatal, backoff,
    /// starting, ...).
    pub state: String,
    /// Every instance ready.
    pub ready: bool,
    /// Started by `tend up` without naming it.
    pub autostart: bool,
    /// The services it waits for.
    pub depends_on: Vec<String>,
    /// How many instances it has now: the manifest's `instances`, or what `tend scale` or
    /// the autoscaler set.
    #[serde(default)]
    pub count: u32,
    /// Present while the count is not the manifest's own: set by `tend scale` or the
    /// autoscaler, kept until the manifest's `instances` changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaled: Option<Scaled>,
    /// The manifest's `autoscale`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<AutoscaleInfo>,
    pub instances: Vec<InstanceInfo>,
}

/// Who set a service's count while tend runs, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Scaled {
    /// The manifest's `instances`.
    pub manifest: u32,
    /// `tend scale` or `autoscale`.
    pub by: String,
    /// The last change: `tend scale by uid 1000: 2 → 4`, `cpu 85% > 70% target: 2 → 3`.
    pub reason: String,
    /// When, in unix milliseconds.
    pub at_ms: i64,
}

/// `autoscale = { min, max, cpu, cooldown }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AutoscaleInfo {
    pub min: u32,
    pub max: u32,
    /// The target mean CPU per running instance, in % of one core.
    pub cpu_percent: f64,
    pub cooldown_ms: u64,
}

/// `POST /api/v1/actions/scale`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleRequest {
    /// A service (not an instance or a group).
    #[schemars(length(min = 1))]
    pub service: String,
    /// The number of instances it is to have. To stop them all and keep the count, use the
    /// `stop` action.
    #[schemars(range(min = 1, max = 10000))]
    #[serde(deserialize_with = "whole_number")]
    pub instances: u32,
}

/// A JSON number with no fraction, as JSON Schema's `integer` counts them: `4` or `4.0`.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = f64::deserialize(d)?;
    if n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&n) {
        Ok(n as u32)
    } else {
        Err(serde::de::Error::custom(format!(
            "expected a whole number of instances, not {n}"
        )))
    }
}

/// What `POST /api/v1/actions/scale` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScaleResponse {
    pub service: String,
    /// The count before and after.
    pub from: u32,
    pub to: u32,
    /// The manifest's `instances`: the count an apply that changes it brings back.
    pub manifest: u32,
    /// Instances stopped: the highest indices, for a smaller count (or, from one instance
    /// named like its service, that instance, which comes back as `NAME:0`).
    pub stopped: Vec<String>,
    /// Instances started, each with its outcome: the new indices, when the service runs.
    pub started: Vec<ActionResult>,
    /// Whether the service runs: when it does not, new instances are added stopped.
    pub running: bool,
    /// Every instance that was to start did.
    pub ok: bool,
}

/// `GET /ready`: whether every autostart service is ready.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReadyReport {
    pub ready: bool,
    /// The autostart instances that are not ready, with their state.
    pub not_ready: Vec<NotReady>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NotReady {
    pub instance: String,
    pub state: String,
    pub reason: String,
}

/// `GET /health` and `GET /live`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Liveness {
    /// `ok`, or what is wrong.
    pub status: String,
}

/// `POST /api/v1/shutdown`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ShutdownResponse {
    pub status: String,
}

/// `POST /api/v1/session` on the TCP listener: the dashboard's login.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// A token of the tokens file; the session gets its role.
    #[schemars(length(min = 1, max = 4096))]
    pub token: String,
}

/// `GET /api/v1/session`: who the caller is; also the answer to a login.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionInfo {
    /// `read` or `operate`.
    pub role: String,
    /// The caller as the audit names it.
    pub who: String,
    /// `unix` (the socket: no login), `token` (a bearer token with each request) or
    /// `session` (the dashboard's cookie).
    pub via: String,
    /// For a session: send it as `X-CSRF-Token` with every request that is not a GET.
    pub csrf_token: Option<String>,
    /// For a session: when it ends if it is not used again (Unix milliseconds).
    pub expires_ms: Option<u64>,
}

/// `DELETE /api/v1/session`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LogoutResponse {
    /// The request came with a live session, which is now gone.
    pub ended: bool,
}

/// `GET /api/v1/summary`: per service, over a window of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SummaryReport {
    /// The window's start and end, unix milliseconds.
    pub since_ms: i64,
    pub until_ms: i64,
    pub services: Vec<ServiceSummary>,
}

/// `POST /api/v1/actions/signal`: like [`ActionRequest`], with the signal required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalRequest {
    /// Services, instances (`web:2`), groups or `all`.
    #[schemars(length(min = 1))]
    pub targets: Vec<String>,
    /// A name like `HUP` or `SIGHUP`, or a number.
    #[schemars(schema_with = "required_signal_schema")]
    pub signal: String,
}

/// `POST /api/v1/services/{target}/signal`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetSignal {
    /// A name like `HUP` or `SIGHUP`, or a number.
    #[schemars(schema_with = "required_signal_schema")]
    pub signal: String,
}

fn required_signal_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "enum": crate::config::signal::Signal::spellings(),
    })
}

fn signal_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": ["string", "null"],
        "enum": crate::config::signal::Signal::spellings()
            .into_iter()
            .map(serde_json::Value::from)
            .chain([serde_json::Value::Null])
            .collect::<Vec<_>>(),
    })
}

/// `GET /api/v1/plan`: what `tend apply` would do, comparing the manifest file as it reads
/// now with the one the daemon runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlanReport {
    /// The file read (the one the daemon was started with).
    pub manifest: String,
    /// Services in the file that the daemon does not supervise yet.
    pub added: Vec<String>,
    /// Services the daemon supervises that the file no longer has.
    pub removed: Vec<String>,
    pub changed: Vec<ServiceChangeInfo>,
    pub unchanged: Vec<String>,
    /// `[tend]` settings that differ (`tend.http`, `tend.state_dir`): tend takes them only
    /// when it starts (`tend down && tend up`); apply leaves them.
    pub daemon_changes: Vec<String>,
    /// Services whose count was set while tend runs (`tend scale`, autoscale) and which the
    /// manifest's `instances` has not changed since: the apply keeps their count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept_counts: Vec<KeptCount>,
}

/// A count set while tend runs that an apply keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KeptCount {
    pub name: String,
    pub instances: u32,
    /// The manifest's `instances`.
    pub manifest: u32,
    /// `tend scale` or `autoscale`.
    pub by: String,
}

impl PlanReport {
    /// Whether applying it would change any service.
    pub fn changes_services(&self) -> bool {
        !self.added.is_empty() || !self.removed.is_empty() || !self.changed.is_empty()
    }

    /// Whether the file says nothing new at all (`[tend]` included).
    pub fn is_empty(&self) -> bool {
        !self.changes_services() && self.daemon_changes.is_empty()
    }
}

/// One service whose settings differ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceChangeInfo {
    pub name: String,
    /// `restart`: its instances are replaced (those running are started again); `reload`:
    /// the same, by a rolling reload (a service with `[sockets]` and the same instance
    /// count: a new process beside each running instance, the old one stopped once the new
    /// one is ready); `scale`:
    /// instances are added or the highest removed, the others untouched; `update`: only
    /// supervisor settings (autostart, priority, groups, depends_on, critical), no process
    /// is touched.
    pub action: String,
    /// The manifest keys that differ: `command`, `env.PORT`, `logs.max_size`,
    /// `depends_on.db`, `instances`...
    pub settings: Vec<String>,
    /// For `scale`: the number of instances before and after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<ScaleInfo>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScaleInfo {
    pub from: u32,
    pub to: u32,
}

/// `POST /api/v1/apply`: the plan and what was done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApplyReport {
    pub plan: PlanReport,
    /// Instances stopped: those of removed and restarted services that were running, and
    /// those a scale took away.
    pub stopped: Vec<String>,
    /// Instances started (restarted services that were running, added autostart services,
    /// new instances of a running scaled service), each with its outcome.
    pub started: Vec<ActionResult>,
    /// Instances of changed services with `[sockets]` replaced by a rolling reload (a new
    /// process beside each, ready before the old one stopped), each with its outcome. One
    /// that failed still runs its old process.
    #[serde(default)]
    pub reloaded: Vec<ActionResult>,
    /// Every instance that was to start (or be reloaded) did.
    pub ok: bool,
}

/// 422 from `GET /api/v1/plan` and `POST /api/v1/apply`: the manifest does not read or
/// does not validate; nothing was changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ManifestErrors {
    /// Every error, one per line, as `FILE:LINE: KEY: MESSAGE`.
    pub error: String,
    pub errors: Vec<ManifestError>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ManifestError {
    pub file: String,
    /// Absent when the error concerns the whole file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The dotted key (`services.web.depends_on`); empty for the whole file.
    pub key: String,
    pub message: String,
}
