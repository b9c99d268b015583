//! The history over the API: past events with filters, the audit of actions, per-service
//! summaries and resource samples from SQLite (read off the runtime), and the live event
//! stream as server-sent events.

use std::convert::Infallible;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::api::logs::sse_json;
use crate::api::{ApiError, AppState, query_duration, unix_ms};
use crate::protocol::{ActionRow, EventRow, SampleRow, SummaryReport};
use crate::store::recorder::event_row;
use crate::store::{ActionFilter, EventFilter, History, StoreError};

/// Rows per answer unless `limit` says otherwise, and at most.
const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 10_000;

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct EventsQuery {
    /// Only this service's events.
    #[serde(default)]
    pub service: Option<String>,
    /// Only this instance's events (`web:2`).
    #[serde(default)]
    pub instance: Option<String>,
    /// Comma-separated kinds: state, spawn, exit, ready, probe, warning, reload.
    #[serde(default)]
    #[schemars(regex(
        pattern = r"^((state|spawn|exit|ready|probe|warning|reload)(,(state|spawn|exit|ready|probe|warning|reload))*)?$"
    ))]
    pub kind: Option<String>,
    /// Only events newer than this long ago: seconds or a duration like `1h`.
    #[serde(default)]
    #[schemars(schema_with = "crate::api::duration_schema")]
    pub since: Option<String>,
    /// Only events older than this long ago.
    #[serde(default)]
    #[schemars(schema_with = "crate::api::duration_schema")]
    pub until: Option<String>,
    /// The newest this many (default 1000, at most 10000), oldest first.
    #[serde(default)]
    #[schemars(range(min = 1, max = 10000))]
    pub limit: Option<usize>,
}

const KINDS: [&str; 7] = [
    "state", "spawn", "exit", "ready", "probe", "warning", "reload",
];

fn ago(text: &Option<String>, what: &str) -> Result<Option<i64>, ApiError> {
    ago_from(SystemTime::now(), text, what)
}

/// `text` back from `now`: one `now` for both ends of a window keeps `since <= until`.
fn ago_from(now: SystemTime, text: &Option<String>, what: &str) -> Result<Option<i64>, ApiError> {
    // An empty value (`?since=`) is no value, as in most query-string conventions.
    match text.as_deref().filter(|t| !t.trim().is_empty()) {
        None => Ok(None),
        Some(text) => {
            let span = query_duration(text, what)?;
            let at = now.checked_sub(span).unwrap_or(SystemTime::UNIX_EPOCH);
            Ok(Some(unix_ms(at)))
        }
    }
}

fn limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n @ 1..=MAX_LIMIT) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!(
            "`limit` must be between 1 and {MAX_LIMIT}, not {n}"
        ))),
    }
}

fn history(state: &AppState) -> Result<History, ApiError> {
    state.history.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "the history is off ([tend.history] enabled = false)",
        )
    })
}

/// Run a read on the blocking pool: SQLite must never run on the async workers.
async fn read<T: Send + 'static>(
    history: History,
    query: impl FnOnce(&History) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || query(&history))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| match e {
            StoreError::InvalidRange { .. } => ApiError::bad_request(e.to_string()),
            e => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("reading the history: {e}"),
            ),
        })
}

pub async fn events(
    State(state): State<AppState>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<Vec<EventRow>>, ApiError> {
    let Query(query) = query?;
    let kinds: Vec<String> = query
        .kind
        .iter()
        .flat_map(|k| k.split(','))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(String::from)
        .collect();
    if let Some(bad) = kinds.iter().find(|k| !KINDS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "unknown event kind `{bad}` ({})",
            KINDS.join(", ")
        )));
    }
    let filter = EventFilter {
        service: query.service,
        instance: query.instance,
        kinds,
        since_ms: ago(&query.since, "since")?,
        until_ms: ago(&query.until, "until")?,
        limit: limit(query.limit)?,
    };
    let history = history(&state)?;
    Ok(Json(read(history, move |h| h.events(&filter)).await?))
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct AuditQuery {
    /// Only actions newer than this long ago: seconds or a duration like `1h`.
    #[serde(default)]
    #[schemars(schema_with = "crate::api::duration_schema")]
    pub since: Option<String>,
    /// The newest this many (default 1000, at most 10000), oldest first.
    #[serde(default)]
    #[schemars(range(min = 1, max = 10000))]
    pub limit: Option<usize>,
}

pub async fn audit(
    State(state): State<AppState>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Vec<ActionRow>>, ApiError> {
    let Query(query) = query?;
    let filter = ActionFilter {
        since_ms: ago(&query.since, "since")?,
        until_ms: None,
        limit: limit(query.limit)?,
    };
    let history = history(&state)?;
    Ok(Json(read(history, move |h| h.actions(&filter)).await?))
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct SummaryQuery {
    /// The window, back from now: seconds or a duration like `24h` (the default).
    #[serde(default)]
    #[schemars(schema_with = "crate::api::duration_schema")]
    pub window: Option<String>,
}

pub async fn summary(
    State(state): State<AppState>,
    query: Result<Query<SummaryQuery>, QueryRejection>,
) -> Result<Json<SummaryReport>, ApiError> {
    let Query(query) = query?;
    let now = SystemTime::now();
    let until_ms = unix_ms(now);
    // No window, or an empty one: the last day.
    let since_ms = ago_from(now, &query.window, "window")?
        .unwrap_or_else(|| unix_ms(now - Duration::from_secs(24 * 3600)));
    let history = history(&state)?;
    let services = read(history, move |h| h.summary(since_ms, until_ms)).await?;
    Ok(Json(SummaryReport {
        since_ms,
        until_ms,
        services,
    }))
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SamplesQuery {
    /// The instance (`web` or `web:2`).
    #[schemars(length(min = 1))]
    pub instance: String,
    /// From this long ago: seconds or a duration like `1h` (the default).
    #[serde(default)]
    #[schemars(schema_with = "crate::api::duration_schema")]
    pub since: Option<String>,
}

pub async fn samples(
    State(state): State<AppState>,
    query: Result<Query<SamplesQuery>, QueryRejection>,
) -> Result<Json<Vec<SampleRow>>, ApiError> {
    let Query(query) = query?;
    if query.instance.trim().is_empty() {
        return Err(ApiError::bad_request("`instance` must name an instance"));
    }
    let now = SystemTime::now();
    let until_ms = unix_ms(now);
    // No `since`, or an empty one: the last hour.
    let since_ms = ago_from(now, &query.since, "since")?
        .unwrap_or_else(|| unix_ms(now - Duration::from_secs(3600)));
    let history = history(&state)?;
    let instance = query.instance;
    Ok(Json(
        read(history, move |h| h.samples(&instance, since_ms, until_ms)).await?,
    ))
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct StreamQuery {
    /// Only this service's events.
    #[serde(default)]
    pub service: Option<String>,
}

/// Live events as server-sent events (`event: <kind>`, data: the event object as
/// `/api/v1/events` returns it). A client that falls behind gets an `event: lagged` with
/// the number of events it missed.
pub async fn stream(
    State(state): State<AppState>,
    query: Result<Query<StreamQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let service = query.service;
    let events =
        BroadcastStream::new(state.engine.subscribe()).filter_map(move |item| match item {
            Ok(event) if service.as_ref().is_none_or(|s| *s == event.service) => {
                let row = event_row(&event);
                Some(Ok::<_, Infallible>(sse_json(&row.kind.clone(), &row)))
            }
            Ok(_) => None,
            Err(BroadcastStreamRecvError::Lagged(n)) => {
                Some(Ok(sse_json("lagged", &serde_json::json!({ "missed": n }))))
            }
        });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}
