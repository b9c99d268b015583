//! The wire contract between the daemon and its clients: JSON bodies of the control API.
//! Types only; the server (`api`) and the clients (`cli`, through `client`) both use them.

pub mod client;

use serde::{Deserialize, Serialize};

/// The API's version prefix.
pub const API: &str = "/api/v1";

/// One instance, as `tend status --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// `web` or `web:2`.
    pub name: String,
    pub service: String,
    /// The instance index.
    pub instance: u32,
    pub state: String,
    pub pid: Option<u32>,
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionRequest {
    /// Services, instances (`web:2`), groups or `all`.
    pub targets: Vec<String>,
    /// For the `signal` action: a name like `HUP` or `SIGHUP`, or a number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionResult {
    pub instance: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionResponse {
    pub results: Vec<ActionResult>,
}

impl ActionResponse {
    pub fn failures(&self) -> impl Iterator<Item = &ActionResult> {
        self.results.iter().filter(|r| !r.ok)
    }
}

/// Every 4xx/5xx answer carries this body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub version: String,
    pub pid: u32,
    pub manifest: String,
    pub state_dir: String,
    pub uptime_ms: u64,
}
