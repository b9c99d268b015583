//! The control server: one axum router serving the JSON/SSE API, tend's own health, the
//! metrics, the OpenAPI document and the web dashboard, on the unix socket and (with tokens)
//! on TCP. Handlers turn requests into `EngineHandle` calls; a bad request gets a 4xx with a
//! JSON body, never a crash.

pub mod apply;
pub mod autoscale;
pub mod control;
pub mod dashboard;
pub mod history;
pub mod logs;
pub mod metrics;
pub mod openapi;
pub mod readiness;
pub mod remote;
pub mod scale;
pub mod session;
pub mod tokens;
pub mod upgrade;
pub mod xmlrpc;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::model::{AutoscaleSpec, Kind, Manifest};
use crate::engine::command::UnknownTarget;
use crate::engine::{EngineGone, EngineHandle};
use crate::logs::LogSink;
use crate::protocol::ErrorBody;
use crate::store::History;

pub use remote::Caller;
pub use tokens::Role;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub engine: EngineHandle,
    pub manifest: PathBuf,
    pub state_dir: PathBuf,
    pub logs: LogSink,
    pub started: Instant,
    /// The same moment on the wall clock (for `process_start_time_seconds`).
    pub started_at: SystemTime,
    /// Notified when a client asks the daemon to shut down.
    pub shutdown: Arc<Notify>,
    /// What the manifest says of each service, in manifest order (it changes with `tend
    /// apply` and when supervisorctl adds or removes a group).
    pub services: Arc<ServiceList>,
    /// None when `[tend.history] enabled = false`.
    pub history: Option<History>,
    /// The remote API's bound address, when it listens.
    pub http_listen: Option<std::net::SocketAddr>,
    /// supervisord's XML-RPC interface: its names for the instances.
    pub rpc: Arc<xmlrpc::Rpc>,
    /// `tend upgrade`: the way to the daemon's loop, and the upgrades so far.
    pub upgrades: Arc<upgrade::Upgrades>,
}

/// The parts of a service's spec that the API reports.
#[derive(Debug, Clone)]
pub struct ServiceMeta {
    pub name: String,
    pub kind: Kind,
    pub autostart: bool,
    pub depends_on: Vec<String>,
    /// Going fatal ends tend.
    pub critical: bool,
    /// The instances in force.
    pub instances: u32,
    /// Who set that count while tend runs, if it is not the manifest's.
    pub scaled: Option<scale::Override>,
    pub autoscale: Option<AutoscaleSpec>,
}

impl ServiceMeta {
    pub fn of(manifest: &Manifest, overrides: &scale::Overrides) -> Vec<ServiceMeta> {
        manifest
            .services
            .iter()
            .map(|s| ServiceMeta {
                name: s.name.clone(),
                kind: s.kind,
                autostart: s.autostart,
                depends_on: s.depends_on.iter().map(|d| d.service.clone()).collect(),
                critical: s.critical,
                instances: s.instances,
                scaled: overrides.get(&s.name).cloned(),
                autoscale: s.autoscale.clone(),
            })
            .collect()
    }
}

/// The supervised services' [`ServiceMeta`], replaced whole when the set changes: readers
/// take a cheap snapshot, and [`ServiceList::changes`] hears of each replacement.
#[derive(Debug)]
pub struct ServiceList {
    current: std::sync::RwLock<Arc<Vec<ServiceMeta>>>,
    changed: tokio::sync::watch::Sender<()>,
}

impl Default for ServiceList {
    fn default() -> Self {
        ServiceList {
            current: Default::default(),
            changed: tokio::sync::watch::Sender::new(()),
        }
    }
}

impl ServiceList {
    pub fn new(manifest: &Manifest) -> ServiceList {
        let list = ServiceList::default();
        list.replace(manifest, &scale::Overrides::new());
        list
    }

    pub fn current(&self) -> Arc<Vec<ServiceMeta>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn replace(&self, manifest: &Manifest, overrides: &scale::Overrides) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(ServiceMeta::of(manifest, overrides));
        self.changed.send_replace(());
    }

    /// Marked changed at each [`ServiceList::replace`].
    pub fn changes(&self) -> tokio::sync::watch::Receiver<()> {
        self.changed.subscribe()
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(readiness::health))
        .route("/live", get(readiness::live))
        .route("/ready", get(readiness::ready))
        .route("/metrics", get(metrics::metrics))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/info", get(control::info))
        .route("/api/v1/services", get(control::services))
        .route("/api/v1/services/{name}", get(control::service))
        .route(
            "/api/v1/services/{target}/signal",
            post(control::target_signal),
        )
        .route(
            "/api/v1/services/{target}/{action}",
            post(control::service_action),
        )
        .route("/api/v1/instances", get(control::instances))
        .route("/api/v1/actions/signal", post(control::signal_action))
        .route("/api/v1/actions/scale", post(scale::scale))
        .route("/api/v1/actions/upgrade", post(upgrade::upgrade))
        .route("/api/v1/actions/{action}", post(control::action))
        .route("/api/v1/wait", get(control::wait))
        .route("/api/v1/shutdown", post(control::shutdown))
        .route("/api/v1/plan", get(apply::plan))
        .route("/api/v1/apply", post(apply::apply))
        .route("/api/v1/logs", get(logs::lines))
        .route("/api/v1/logs/stream", get(logs::stream))
        .route("/api/v1/events", get(history::events))
        .route("/api/v1/events/stream", get(history::stream))
        .route("/api/v1/audit", get(history::audit))
        .route("/api/v1/summary", get(history::summary))
        .route("/api/v1/samples", get(history::samples))
        .route(
            session::PATH,
            get(session::current)
                .post(session::login)
                .delete(session::logout),
        )
        .merge(dashboard::routes())
        .merge(xmlrpc::routes())
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "this endpoint does not take that method",
            )
        })
        .with_state(state)
}

/// An error answer: status plus `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
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
        // A body of the wrong shape is a bad request like any other (axum would say 422);
        // only a missing content type (415) and an oversized body (413) keep their own.
        let status = match e.status() {
            StatusCode::UNSUPPORTED_MEDIA_TYPE | StatusCode::PAYLOAD_TOO_LARGE => e.status(),
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, format!("bad request body: {}", e.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::bad_request(format!("bad query: {}", e.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        ApiError::bad_request(format!("bad path: {}", e.body_text()))
    }
}

/// A JSON answer serialized into one buffer sized up front: listings of hundreds of
/// instances run to 100 KB, and growing a small buffer there costs more than the encoding.
pub fn json_sized<T: serde::Serialize>(value: &T, capacity: usize) -> Response {
    let mut body = Vec::with_capacity(capacity);
    match serde_json::to_writer(&mut body, value) {
        Ok(()) => (
            [(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the answer: {e}"),
        )
        .into_response(),
    }
}

/// Bytes of JSON per instance in a listing, a little over what one usually takes.
pub const JSON_PER_INSTANCE: usize = 768;

/// Comma-separated targets; empty means all.
pub fn split_targets(targets: &str) -> Vec<String> {
    targets
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}

/// The schema of a time span in a query: seconds, or a duration like `10m` or `1h30m`
/// (up to nine digits a part, so no spelling overflows), or empty for none.
pub fn duration_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": ["string", "null"],
        "pattern": r"^ *([0-9]{1,9}(\.[0-9]{1,9})?|([0-9]{1,9}(\.[0-9]{1,9})? *(ms|s|m|h|d) *)+)? *$",
    })
}

/// A time span in a query: seconds (`600`) or a duration as the manifest writes it (`10m`).
pub fn query_duration(value: &str, what: &str) -> Result<std::time::Duration, ApiError> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        if (0.0..1e12).contains(&secs) {
            return Ok(std::time::Duration::from_secs_f64(secs));
        }
        return Err(ApiError::bad_request(format!(
            "`{what}` must be a non-negative number of seconds or a duration like 10m, not {value}"
        )));
    }
    crate::config::duration::parse(value).map_err(|e| {
        ApiError::bad_request(format!(
            "`{what}` must be seconds or a duration like 10m: {e}"
        ))
    })
}

pub use crate::store::unix_ms;
