//! The control server: HTTP/1.1 + JSON on the daemon's unix socket. It turns requests into
//! `EngineHandle` calls and engine types into `protocol` types; a bad request gets a 4xx with
//! a JSON error body, never a crash.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::signal::Signal;
use crate::engine::command::{Outcomes, UnknownTarget};
use crate::engine::event::InstanceStatus;
use crate::engine::lifecycle::ExitStatus;
use crate::engine::{EngineGone, EngineHandle};
use crate::logs::{self, Stream};
use crate::protocol::{
    ActionRequest, ActionResponse, ActionResult, DaemonInfo, ErrorBody, InstanceInfo,
};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub engine: EngineHandle,
    pub manifest: PathBuf,
    pub state_dir: PathBuf,
    pub log_dir: PathBuf,
    pub started: Instant,
    /// Notified when a client asks the daemon to shut down.
    pub shutdown: Arc<Notify>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/api/v1/info", get(info))
        .route("/api/v1/instances", get(instances))
        .route("/api/v1/actions/{action}", post(action))
        .route("/api/v1/services/{target}/{action}", post(service_action))
        .route("/api/v1/wait", get(wait))
        .route("/api/v1/logs/{instance}", get(log_tail))
        .route("/api/v1/shutdown", post(shutdown))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .with_state(state)
}

/// An error answer: status plus `{"error": "..."}`.
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}

impl From<EngineGone> for ApiError {
    fn from(e: EngineGone) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}

impl From<UnknownTarget> for ApiError {
    fn from(e: UnknownTarget) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, e.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("bad request body: {}", e.body_text()),
        )
    }
}

async fn info(State(state): State<AppState>) -> Json<DaemonInfo> {
    Json(DaemonInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
        manifest: state.manifest.display().to_string(),
        state_dir: state.state_dir.display().to_string(),
        uptime_ms: state.started.elapsed().as_millis() as u64,
    })
}

#[derive(Deserialize)]
struct TargetsQuery {
    /// Comma-separated targets; empty means all.
    #[serde(default)]
    targets: String,
    /// For `wait`: running instances must also be ready.
    #[serde(default)]
    ready: bool,
}

fn split_targets(targets: &str) -> Vec<String> {
    targets
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}

async fn instances(
    State(state): State<AppState>,
    Query(query): Query<TargetsQuery>,
) -> Result<Json<Vec<InstanceInfo>>, ApiError> {
    let statuses = state.engine.status(split_targets(&query.targets)).await??;
    let now = Instant::now();
    Ok(Json(
        statuses.iter().map(|s| instance_info(s, now)).collect(),
    ))
}

pub fn instance_info(status: &InstanceStatus, now: Instant) -> InstanceInfo {
    let (exit_code, exit_signal) = match status.last_exit {
        Some(ExitStatus::Code(code)) => (Some(code), None),
        Some(ExitStatus::Signal(number)) => (
            None,
            Some(
                Signal::from_number(number)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| format!("SIG{number}")),
            ),
        ),
        None => (None, None),
    };
    InstanceInfo {
        name: status.name.clone(),
        service: status.service.clone(),
        instance: status.index,
        state: status.state.to_string(),
        pid: status.pid,
        uptime_ms: status
            .started
            .map(|s| now.saturating_duration_since(s).as_millis() as u64),
        restarts: status.restarts,
        exit_code,
        exit_signal,
        ready: status.ready,
        reason: status.reason.clone(),
    }
}

async fn action(
    State(state): State<AppState>,
    Path(action): Path<String>,
    body: Result<Json<ActionRequest>, JsonRejection>,
) -> Result<Json<ActionResponse>, ApiError> {
    let Json(request) = body?;
    run_action(&state, &action, request).await
}

async fn service_action(
    State(state): State<AppState>,
    Path((target, action)): Path<(String, String)>,
    body: Option<Json<serde_json::Value>>,
) -> Result<Json<ActionResponse>, ApiError> {
    let signal =
        body.and_then(|Json(v)| v.get("signal").and_then(|s| s.as_str()).map(String::from));
    run_action(
        &state,
        &action,
        ActionRequest {
            targets: vec![target],
            signal,
        },
    )
    .await
}

async fn run_action(
    state: &AppState,
    action: &str,
    request: ActionRequest,
) -> Result<Json<ActionResponse>, ApiError> {
    if request.targets.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "no targets given"));
    }
    let engine = &state.engine;
    let outcomes = match action {
        "start" => engine.start(request.targets).await??,
        "stop" => engine.stop(request.targets).await??,
        "restart" => engine.restart(request.targets).await??,
        "signal" => {
            let name = request.signal.ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "the signal action needs a `signal`",
                )
            })?;
            let signal: Signal =
                name.parse()
                    .map_err(|e: crate::config::signal::UnknownSignal| {
                        ApiError::new(StatusCode::BAD_REQUEST, e.to_string())
                    })?;
            engine.signal(signal, request.targets).await??
        }
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("unknown action `{other}` (start, stop, restart, signal)"),
            ));
        }
    };
    Ok(Json(response(outcomes)))
}

fn response(outcomes: Outcomes) -> ActionResponse {
    ActionResponse {
        results: outcomes
            .into_iter()
            .map(|(instance, outcome)| ActionResult {
                instance,
                ok: outcome.is_ok(),
                error: outcome.err(),
            })
            .collect(),
    }
}

async fn wait(
    State(state): State<AppState>,
    Query(query): Query<TargetsQuery>,
) -> Result<Json<ActionResponse>, ApiError> {
    let outcomes = state
        .engine
        .wait_settled(split_targets(&query.targets), query.ready)
        .await??;
    Ok(Json(response(outcomes)))
}

#[derive(Deserialize)]
struct LogQuery {
    #[serde(default = "default_lines")]
    lines: usize,
    #[serde(default)]
    stream: Option<String>,
}

fn default_lines() -> usize {
    100
}

async fn log_tail(
    State(state): State<AppState>,
    Path(instance): Path<String>,
    Query(query): Query<LogQuery>,
) -> Result<Response, ApiError> {
    let statuses = state.engine.status(vec![instance.clone()]).await??;
    let [status] = statuses.as_slice() else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("`{instance}` names {} instances; name one", statuses.len()),
        ));
    };
    let streams = match query.stream.as_deref() {
        None | Some("all") => vec![Stream::Out, Stream::Err],
        Some("out") | Some("stdout") => vec![Stream::Out],
        Some("err") | Some("stderr") => vec![Stream::Err],
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("unknown stream `{other}` (out, err)"),
            ));
        }
    };
    let instances_of_service = state
        .engine
        .status(vec![status.service.clone()])
        .await??
        .len() as u32;
    let stem = logs::file_stem(&status.service, status.index, instances_of_service);
    let dir = state.log_dir.clone();
    let lines = query.lines;
    let body = tokio::task::spawn_blocking(move || {
        let mut body = Vec::new();
        for stream in streams {
            match logs::tail(&logs::log_path(&dir, &stem, stream), lines) {
                Ok(bytes) => body.extend(bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            if !body.is_empty() && !body.ends_with(b"\n") {
                body.push(b'\n');
            }
        }
        Ok(body)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading logs: {e}"),
        )
    })?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response())
}

async fn shutdown(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    // Answer first; the daemon stops its services once this response is on its way.
    let notify = state.shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1)).await;
        notify.notify_one();
    });
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "status": "shutting down" })),
    )
}
