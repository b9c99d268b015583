//! The control server: HTTP/1.1 + JSON on the daemon's unix socket. It turns requests into
//! `EngineHandle` calls and engine types into `protocol` types; a bad request gets a 4xx with
//! a JSON error body, never a crash.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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
use crate::logs::{LogLine, LogSink, Stream};
use crate::protocol::{
    ActionRequest, ActionResponse, ActionResult, DaemonInfo, ErrorBody, InstanceInfo,
};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub engine: EngineHandle,
    pub manifest: PathBuf,
    pub state_dir: PathBuf,
    pub logs: LogSink,
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
        .route("/api/v1/logs", get(logs))
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
        health: status.health.to_string(),
        reason: status.reason.clone(),
        status_text: status.notify_status.clone(),
        notify_phase: status.notify_phase.map(str::to_string),
        probes: status
            .probes
            .iter()
            .map(|p| crate::protocol::ProbeInfo {
                role: p.role.name().to_string(),
                kind: p.kind.to_string(),
                passing: p.passing,
                last_ok: p.last_ok,
                detail: p.detail.clone(),
                fallback: p.fallback,
                took_ms: p.took.map(|t| t.as_secs_f64() * 1000.0),
                at_ms: p.at.and_then(|at| {
                    at.duration_since(std::time::UNIX_EPOCH)
                        .ok()
                        .map(|d| d.as_millis() as u64)
                }),
            })
            .collect(),
        cpu_percent: status.cpu_percent,
        rss_bytes: status.rss_bytes,
        gpu_memory_bytes: status.gpu_memory_bytes,
        gpu_percent: status.gpu_percent,
        warning: status.warning.clone(),
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
    /// Comma-separated targets; empty means all.
    #[serde(default)]
    targets: String,
    /// Lines per instance from the in-memory tail.
    #[serde(default = "default_lines")]
    lines: usize,
    /// Only lines read in the last this many seconds.
    #[serde(default)]
    since: Option<f64>,
    #[serde(default)]
    stream: Option<String>,
    /// Keep the response open and send new lines as they come.
    #[serde(default)]
    follow: bool,
}

fn default_lines() -> usize {
    100
}

/// Log lines as newline-delimited JSON: `{"time", "instance", "stream", "line"}`; the tail
/// first (merged in time order across targets), then, with `follow`, new lines as they are
/// read, across restarts of the instances.
async fn logs(
    State(state): State<AppState>,
    Query(query): Query<LogQuery>,
) -> Result<Response, ApiError> {
    let statuses = state.engine.status(split_targets(&query.targets)).await??;
    let stream = match query.stream.as_deref() {
        None | Some("all") => None,
        Some("out") | Some("stdout") => Some(Stream::Out),
        Some("err") | Some("stderr") => Some(Stream::Err),
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("unknown stream `{other}` (out, err)"),
            ));
        }
    };
    let since = match query.since {
        Some(secs) if secs.is_finite() && secs >= 0.0 => {
            Some(SystemTime::now() - Duration::from_secs_f64(secs))
        }
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("`since` must be seconds, not {other}"),
            ));
        }
        None => None,
    };
    let mut lines: Vec<LogLine> = Vec::new();
    let mut followers = tokio_stream::StreamMap::new();
    for status in &statuses {
        let Some(log) = state.logs.instance(&status.name) else {
            continue;
        };
        // Read the tail and subscribe under one lock: no line is missed or sent twice.
        let tail = log.tail();
        lines.extend(
            tail.last(query.lines, stream, since)
                .into_iter()
                .map(|l| LogLine {
                    time: l.time,
                    instance: log.name.clone(),
                    stream: l.stream,
                    bytes: l.bytes,
                }),
        );
        if query.follow {
            followers.insert(
                status.name.clone(),
                tokio_stream::wrappers::BroadcastStream::new(log.follow()),
            );
        }
        drop(tail);
    }
    lines.sort_by_key(|l| l.time);
    let head: String = lines.iter().map(encode_line).collect();
    let head = tokio_stream::once(Ok::<_, std::convert::Infallible>(head));
    let body = if query.follow {
        use tokio_stream::StreamExt;
        let live = followers.filter_map(move |(instance, item)| match item {
            Ok(line) if stream.is_none_or(|s| s == line.stream) => Some(Ok(encode_line(&line))),
            Ok(_) => None,
            Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => {
                Some(Ok(encode_line(&LogLine {
                    time: SystemTime::now(),
                    instance: instance.into(),
                    stream: Stream::Err,
                    bytes: format!("[tend: {n} lines skipped: this client fell behind]\n")
                        .into_bytes(),
                })))
            }
        });
        axum::body::Body::from_stream(head.chain(live))
    } else {
        axum::body::Body::from_stream(head)
    };
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

fn encode_line(line: &LogLine) -> String {
    let mut time = Vec::with_capacity(24);
    crate::logs::line::rfc3339_millis(&mut time, line.time);
    let text = String::from_utf8_lossy(line.bytes.strip_suffix(b"\n").unwrap_or(&line.bytes));
    let mut encoded = serde_json::json!({
        "time": String::from_utf8_lossy(&time),
        "instance": &*line.instance,
        "stream": line.stream.name(),
        "line": text,
    })
    .to_string();
    encoded.push('\n');
    encoded
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
