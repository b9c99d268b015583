//! Log lines over the API: the in-memory tail, then optionally the live lines, as
//! newline-delimited JSON (`/api/v1/logs`, what `tend logs` reads) or as server-sent events
//! (`/api/v1/logs/stream`, for browsers).

use std::convert::Infallible;
use std::time::SystemTime;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::{Stream as AsyncStream, StreamExt};

use crate::api::{ApiError, AppState, query_duration, split_targets};
use crate::logs::{LogLine, Stream};

#[derive(Debug, Deserialize, JsonSchema)]
pub struct LogQuery {
    /// Comma-separated targets; empty: all.
    #[serde(default)]
    pub targets: String,
    /// Lines per instance from the in-memory tail.
    #[serde(default = "default_lines")]
    #[schemars(range(max = 1000000))]
    pub lines: usize,
    /// Only lines read in the last this long: seconds, or a duration like `10m`.
    #[serde(default)]
    #[schemars(schema_with = "crate::api::duration_schema")]
    pub since: Option<String>,
    /// `out`, `err` or `all` (the default).
    #[serde(default)]
    pub stream: Option<String>,
    /// Keep the response open and send new lines as they come (`/api/v1/logs` only; the SSE
    /// stream always follows).
    #[serde(default)]
    pub follow: bool,
}

fn default_lines() -> usize {
    100
}

/// One line on the wire.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LogEntry {
    /// RFC 3339 with milliseconds, UTC.
    pub time: String,
    pub instance: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The line without its newline; invalid UTF-8 replaced.
    pub line: String,
}

/// The tail and, with `follow`, the live lines of each target.
struct Selection {
    head: Vec<LogLine>,
    live: tokio_stream::StreamMap<String, BroadcastStream<LogLine>>,
    stream: Option<Stream>,
}

async fn select(state: &AppState, query: &LogQuery, follow: bool) -> Result<Selection, ApiError> {
    let statuses = state.engine.status(split_targets(&query.targets)).await??;
    let stream = match query.stream.as_deref() {
        None | Some("all") => None,
        Some("out") | Some("stdout") => Some(Stream::Out),
        Some("err") | Some("stderr") => Some(Stream::Err),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown stream `{other}` (out, err, all)"
            )));
        }
    };
    let since = match query.since.as_deref().filter(|t| !t.trim().is_empty()) {
        Some(text) => Some(
            SystemTime::now()
                .checked_sub(query_duration(text, "since")?)
                .unwrap_or(SystemTime::UNIX_EPOCH),
        ),
        None => None,
    };
    let logs: Vec<_> = statuses
        .iter()
        .filter_map(|status| Some((status.name.clone(), state.logs.instance(&status.name)?)))
        .collect();
    let lines = query.lines;
    // Off the runtime: a tail holding spliced lines reads them back from their files.
    let tails = tokio::task::spawn_blocking(move || {
        logs.into_iter()
            .map(|(name, log)| {
                // Read the tail and subscribe under one lock: no line is missed or sent twice.
                let mut tail = log.tail();
                let head: Vec<LogLine> = tail
                    .last(lines, stream, since)
                    .into_iter()
                    .map(|l| LogLine {
                        time: l.time,
                        instance: log.name.clone(),
                        stream: l.stream,
                        bytes: l.bytes,
                    })
                    .collect();
                let live = follow.then(|| log.follow());
                drop(tail);
                (name, head, live)
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading the tail: {e}"),
        )
    })?;
    let mut head: Vec<LogLine> = Vec::new();
    let mut live = tokio_stream::StreamMap::new();
    for (name, lines, receiver) in tails {
        head.extend(lines);
        if let Some(receiver) = receiver {
            live.insert(name, BroadcastStream::new(receiver));
        }
    }
    head.sort_by_key(|l| l.time);
    Ok(Selection { head, live, stream })
}

/// The live lines that pass the stream filter; a follower that fell behind is told how
/// many lines it missed, in a line of its own.
fn live_entries(
    live: tokio_stream::StreamMap<String, BroadcastStream<LogLine>>,
    stream: Option<Stream>,
) -> impl AsyncStream<Item = LogEntry> {
    live.filter_map(move |(instance, item)| match item {
        Ok(line) if stream.is_none_or(|s| s == line.stream) => Some(entry(&line)),
        Ok(_) => None,
        Err(BroadcastStreamRecvError::Lagged(n)) => Some(entry(&LogLine {
            time: SystemTime::now(),
            instance: instance.into(),
            stream: Stream::Err,
            bytes: format!("[tend: {n} lines skipped: this client fell behind]\n").into_bytes(),
        })),
    })
}

/// Log lines as newline-delimited JSON: the tail first (merged in time order across
/// targets), then, with `follow`, new lines as they are read, across restarts.
pub async fn lines(
    State(state): State<AppState>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let selection = select(&state, &query, query.follow).await?;
    let head: String = selection.head.iter().map(|l| ndjson(&entry(l))).collect();
    let head = tokio_stream::once(Ok::<_, Infallible>(head));
    let body = if query.follow {
        let live = live_entries(selection.live, selection.stream).map(|e| Ok(ndjson(&e)));
        axum::body::Body::from_stream(head.chain(live))
    } else {
        axum::body::Body::from_stream(head)
    };
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// The same lines as server-sent events (`event: log`, data: one JSON object), always
/// following.
pub async fn stream(
    State(state): State<AppState>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let selection = select(&state, &query, true).await?;
    let head = tokio_stream::iter(selection.head.iter().map(entry).collect::<Vec<_>>());
    let events = head
        .chain(live_entries(selection.live, selection.stream))
        .map(|e| Ok::<_, Infallible>(sse_json("log", &e)));
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

pub fn sse_json(name: &str, value: &impl Serialize) -> SseEvent {
    SseEvent::default()
        .event(name)
        .data(serde_json::to_string(value).unwrap_or_else(|_| "{}".into()))
}

fn entry(line: &LogLine) -> LogEntry {
    let mut time = Vec::with_capacity(24);
    crate::logs::line::rfc3339_millis(&mut time, line.time);
    LogEntry {
        time: String::from_utf8_lossy(&time).into_owned(),
        instance: line.instance.to_string(),
        stream: line.stream.name().to_string(),
        line: String::from_utf8_lossy(line.bytes.strip_suffix(b"\n").unwrap_or(&line.bytes))
            .into_owned(),
    }
}

fn ndjson(entry: &LogEntry) -> String {
    let mut text = serde_json::to_string(entry).unwrap_or_default();
    text.push('\n');
    text
}
