//! `POST /api/v1/actions/upgrade` (and SIGUSR2): tend executes a binary in place of itself
//! (same pid), handing its children, their pipes and its sockets over. The daemon carries it
//! out; this module owns the request, its refusals as answers, and what `info` says of the
//! upgrades so far. A successful upgrade is never answered: the exec ends the connection.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use tokio::sync::{mpsc, oneshot};

use crate::api::{ApiError, AppState, Caller, unix_ms};
use crate::protocol::UpgradeInfo;

/// An upgrade asked for, for the daemon's loop.
#[derive(Debug)]
pub struct UpgradeRequest {
    /// The binary to execute (absolute); None: the one tend was started from.
    pub binary: Option<PathBuf>,
    pub caller: Caller,
    /// Answered only when the upgrade does not happen: the exec replaces whoever waits.
    pub refused: oneshot::Sender<Refusal>,
}

/// Why an upgrade did not happen; everything runs on as before.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Something under way, or the manifest changed since it was applied: 409.
    Busy(String),
    /// The binary is missing, not executable, or does not speak this handover: 422.
    Binary(String),
    /// Executing it failed, or the handover could not be written: 500.
    Failed(String),
}

impl Refusal {
    pub fn message(&self) -> &str {
        match self {
            Refusal::Busy(m) | Refusal::Binary(m) | Refusal::Failed(m) => m,
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> ApiError {
        let status = match refusal {
            Refusal::Busy(_) => StatusCode::CONFLICT,
            Refusal::Binary(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Refusal::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, format!("not upgraded: {}", refusal.message()))
    }
}

/// The way to the daemon's loop, and the upgrades so far.
#[derive(Debug, Default)]
pub struct Upgrades {
    requests: Option<mpsc::UnboundedSender<UpgradeRequest>>,
    record: RwLock<UpgradeRecord>,
}

/// What `info` says: how many upgrades took over, and the last one that executed a binary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpgradeRecord {
    pub upgrades: u32,
    pub last: Option<UpgradeOutcome>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpgradeOutcome {
    pub number: u32,
    pub at: SystemTime,
    pub binary: PathBuf,
    pub from_version: String,
    pub version: String,
    pub ok: bool,
    pub error: Option<String>,
}

impl Upgrades {
    /// Upgrades requested through the API go to `requests`; `record` is what happened
    /// before this image (an upgrade hands it over).
    pub fn new(requests: mpsc::UnboundedSender<UpgradeRequest>, record: UpgradeRecord) -> Self {
        Upgrades {
            requests: Some(requests),
            record: RwLock::new(record),
        }
    }

    pub fn record(&self) -> UpgradeRecord {
        self.record
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// An exec that did not take place (or was taken back): counted as an attempt.
    pub fn failed(&self, outcome: UpgradeOutcome) {
        self.record.write().unwrap_or_else(|p| p.into_inner()).last = Some(outcome);
    }
}

impl UpgradeOutcome {
    pub fn info(&self) -> UpgradeInfo {
        UpgradeInfo {
            number: self.number,
            at_ms: unix_ms(self.at) as u64,
            binary: self.binary.display().to_string(),
            from_version: self.from_version.clone(),
            version: self.version.clone(),
            ok: self.ok,
            error: self.error.clone(),
        }
    }
}

/// `POST /api/v1/actions/upgrade`: answered only with a refusal.
pub async fn upgrade(
    State(state): State<AppState>,
    caller: Option<axum::Extension<Caller>>,
    body: Result<Json<crate::protocol::UpgradeRequest>, JsonRejection>,
) -> ApiError {
    let request = match body {
        Ok(Json(request)) => request,
        Err(rejection) => return rejection.into(),
    };
    let binary = match request.binary.map(PathBuf::from) {
        Some(path) if !path.is_absolute() => {
            return ApiError::bad_request(format!(
                "binary: `{}` is not an absolute path",
                path.display()
            ));
        }
        other => other,
    };
    let Some(requests) = &state.upgrades.requests else {
        return ApiError::new(
            StatusCode::CONFLICT,
            "not upgraded: this tend cannot upgrade itself",
        );
    };
    let (refused, answer) = oneshot::channel();
    let request = UpgradeRequest {
        binary,
        caller: caller.map(|c| c.0).unwrap_or_else(Caller::unknown),
        refused,
    };
    if requests.send(request).is_err() {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "tend is shutting down");
    }
    match answer.await {
        Ok(refusal) => refusal.into(),
        Err(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "tend is shutting down"),
    }
}

/// One row of the audit for an upgrade, whoever asked (the API, SIGUSR2).
pub fn audit(state: &AppState, caller: Caller, ok: bool, result: String) {
    if let Some(history) = &state.history {
        super::control::audit(history, caller, "upgrade", "tend".into(), ok, result);
    }
}

/// Shared by the API's state and the daemon.
pub type SharedUpgrades = Arc<Upgrades>;
