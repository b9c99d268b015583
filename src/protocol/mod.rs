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
    /// Up past `min_uptime` (later: readiness probes).
    pub ready: bool,
    /// Why the instance is in its state.
    pub reason: String,
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
