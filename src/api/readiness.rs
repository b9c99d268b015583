//! tend's own health for container HEALTHCHECKs and Kubernetes probes: `/health` (the
//! process answers), `/live` (the engine answers too) and `/ready` (every autostart
//! service is ready).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::api::AppState;
use crate::protocol::{Liveness, NotReady, ReadyReport};

/// How long the engine may take to answer `/live` before tend counts as wedged.
const LIVE_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn health() -> Json<Liveness> {
    Json(Liveness {
        status: "ok".into(),
    })
}

pub async fn live(State(state): State<AppState>) -> (StatusCode, Json<Liveness>) {
    match tokio::time::timeout(LIVE_TIMEOUT, state.engine.status(Vec::new())).await {
        Ok(Ok(Ok(_))) => (
            StatusCode::OK,
            Json(Liveness {
                status: "ok".into(),
            }),
        ),
        Ok(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Liveness {
                status: "the engine has stopped".into(),
            }),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Liveness {
                status: format!("the engine did not answer within {LIVE_TIMEOUT:?}"),
            }),
        ),
    }
}

/// Ready when every instance of the autostart services that is meant to run is ready (a
/// task: completed). An instance at `stopped` is not meant to run: never started (`tend up`
/// named other services) or stopped on request; one that failed for good is `fatal` or
/// `exited`, and counts.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<ReadyReport>) {
    let metas = state.services.current();
    let autostart: std::collections::HashSet<&str> = metas
        .iter()
        .filter(|m| m.autostart)
        .map(|m| m.name.as_str())
        .collect();
    // Everything, filtered here: naming each service as a target would cost a scan each.
    let statuses = match state.engine.status(Vec::new()).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let not_ready: Vec<NotReady> = match statuses {
        Ok(statuses) => statuses
            .into_iter()
            .filter(|s| autostart.contains(s.service.as_str()) && s.state != "stopped")
            .filter(|s| !(s.ready || (s.is_task && s.completed)))
            .map(|s| NotReady {
                instance: s.name.clone(),
                state: s.state.to_string(),
                reason: s.reason.clone(),
            })
            .collect(),
        Err(e) => vec![NotReady {
            instance: "tend".into(),
            state: "unknown".into(),
            reason: e,
        }],
    };
    let ready = not_ready.is_empty();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(ReadyReport { ready, not_ready }))
}
