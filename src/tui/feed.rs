//! The daemon's side of `tend top`: tasks that read the API and hand what they learn to the
//! app as [`Input`]s, and carry out its [`Request`]s. Everything goes through
//! `protocol::client`, as for the CLI.
//!
//! - The poller reads `GET /api/v1/services` (the services with their instances) once a
//!   second, and at once when the event stream says something happened; while the daemon
//!   does not answer it retries with backoff and says so.
//! - The event stream (`/api/v1/events/stream`) only nudges the poller, so a restart shows
//!   within milliseconds, while a storm of events costs at most five polls a second.
//! - One log stream (`/api/v1/logs?follow=true`, NDJSON) for what the log pane follows; a
//!   new target aborts the old stream. A stream that ends is opened again with backoff.
//! - Each action is a task of its own: a restart waits for `min_uptime`, the UI does not.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::protocol::client::Client;
use crate::protocol::{
    API, ActionRequest, ActionResponse, ScaleRequest, ScaleResponse, ServiceInfo,
};

use super::app::{Input, LogLine, Outcome, Request};

/// How often the instances are read when nothing happens.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Events can come by the hundred (many instances flapping): polls they cause are at least
/// this far apart, so the daemon is not asked for every instance back to back.
const MIN_GAP: Duration = Duration::from_millis(200);
/// A log stream opens only once the selection has rested this long: holding `j` through
/// hundreds of rows must not open a connection per row.
const SETTLE: Duration = Duration::from_millis(150);

/// The delay before retry `attempt` (1, 2, ...): 250 ms doubling, at most 5 s.
pub fn backoff(attempt: u32) -> Duration {
    let ms = 250u64.saturating_mul(1 << attempt.saturating_sub(1).min(5));
    Duration::from_millis(ms.min(5000))
}

pub struct Feed {
    socket: PathBuf,
    tx: mpsc::UnboundedSender<Input>,
    nudge: Arc<Notify>,
    logs: Option<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Feed {
    /// Start the poller and the event stream.
    pub fn start(socket: &Path, tx: mpsc::UnboundedSender<Input>) -> Feed {
        let nudge = Arc::new(Notify::new());
        let tasks = vec![
            tokio::spawn(poll(Client::new(socket), tx.clone(), nudge.clone())),
            tokio::spawn(events(Client::new(socket), nudge.clone())),
        ];
        Feed {
            socket: socket.to_path_buf(),
            tx,
            nudge,
            logs: None,
            tasks,
        }
    }

    pub fn request(&mut self, request: Request) {
        match request {
            Request::Quit => {}
            Request::FollowLogs {
                target,
                lines,
                generation,
            } => {
                if let Some(old) = self.logs.take() {
                    old.abort();
                }
                self.logs = Some(tokio::spawn(follow(
                    Client::new(&self.socket),
                    target,
                    lines,
                    generation,
                    self.tx.clone(),
                )));
            }
            action => {
                let client = Client::new(&self.socket);
                let tx = self.tx.clone();
                let nudge = self.nudge.clone();
                tokio::spawn(async move {
                    let outcome = act(&client, &action).await;
                    let _ = tx.send(Input::Done {
                        request: action,
                        outcome,
                    });
                    nudge.notify_one();
                });
            }
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        for task in self.tasks.iter().chain(&self.logs) {
            task.abort();
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn poll(client: Client, tx: mpsc::UnboundedSender<Input>, nudge: Arc<Notify>) {
    let path = format!("{API}/services");
    let mut attempt = 0;
    while !tx.is_closed() {
        match client.get::<Vec<ServiceInfo>>(&path).await {
            Ok(services) => {
                let polled = tokio::time::Instant::now();
                attempt = 0;
                let _ = tx.send(Input::Snapshot {
                    services,
                    at_ms: now_ms(),
                });
                tokio::select! {
                    _ = tokio::time::sleep(POLL_EVERY) => {}
                    _ = nudge.notified() => tokio::time::sleep_until(polled + MIN_GAP).await,
                }
            }
            Err(error) => {
                attempt += 1;
                let retry_in = backoff(attempt);
                let _ = tx.send(Input::Disconnected {
                    error: error.to_string(),
                    attempt,
                    retry_in,
                });
                tokio::time::sleep(retry_in).await;
            }
        }
    }
}

/// Nudge the poller on every event the daemon publishes. Reconnects with backoff; what is
/// wrong with the daemon is the poller's to say.
async fn events(client: Client, nudge: Arc<Notify>) {
    let path = format!("{API}/events/stream");
    let mut attempt = 0;
    loop {
        let _ = client
            .stream_opened(
                &path,
                || attempt = 0,
                |chunk| {
                    // Keep-alive comments are not events.
                    if chunk.windows(6).any(|w| w == b"event:") {
                        nudge.notify_one();
                    }
                },
            )
            .await;
        attempt += 1;
        tokio::time::sleep(backoff(attempt)).await;
    }
}

/// One line of `/api/v1/logs` (the fields the pane shows).
#[derive(Deserialize)]
struct WireLine {
    instance: String,
    stream: String,
    line: String,
}

/// Follow a target's output until aborted, opening the stream again when it ends.
async fn follow(
    client: Client,
    target: Option<String>,
    lines: usize,
    generation: u64,
    tx: mpsc::UnboundedSender<Input>,
) {
    tokio::time::sleep(SETTLE).await;
    let path = format!(
        "{API}/logs?targets={}&lines={lines}&follow=true",
        encode(target.as_deref().unwrap_or(""))
    );
    let mut attempt = 0;
    loop {
        let mut pending: Vec<u8> = Vec::new();
        let result = client
            .stream_opened(
                &path,
                || {
                    attempt = 0;
                    let _ = tx.send(Input::LogsStarted { generation });
                },
                |chunk| {
                    let lines = parse_lines(&mut pending, chunk);
                    if !lines.is_empty() {
                        let _ = tx.send(Input::Logs { generation, lines });
                    }
                },
            )
            .await;
        let error = match result {
            Ok(()) => "the stream ended".to_string(),
            Err(error) => error.to_string(),
        };
        if tx.send(Input::LogsEnded { generation, error }).is_err() {
            return;
        }
        attempt += 1;
        tokio::time::sleep(backoff(attempt)).await;
    }
}

/// The complete NDJSON lines of `pending` + `chunk`; a partial last line waits in
/// `pending` for the next chunk.
pub fn parse_lines(pending: &mut Vec<u8>, chunk: &[u8]) -> Vec<LogLine> {
    pending.extend_from_slice(chunk);
    let Some(end) = pending.iter().rposition(|b| *b == b'\n') else {
        return Vec::new();
    };
    let lines = pending[..end]
        .split(|b| *b == b'\n')
        .filter_map(|record| serde_json::from_slice::<WireLine>(record).ok())
        .map(|w| LogLine::new(&w.instance, w.stream == "stderr", &w.line))
        .collect();
    pending.drain(..=end);
    lines
}

async fn act(client: &Client, request: &Request) -> Outcome {
    let result = match request {
        Request::Scale { service, instances } => client
            .post::<_, ScaleResponse>(
                &format!("{API}/actions/scale"),
                &ScaleRequest {
                    service: service.clone(),
                    instances: *instances,
                },
            )
            .await
            .map(Outcome::Scaled),
        _ => client
            .post::<_, ActionResponse>(
                &format!("{API}/actions/{}", request.verb()),
                &ActionRequest {
                    targets: vec![request.target().to_string()],
                    signal: None,
                },
            )
            .await
            .map(Outcome::Acted),
    };
    result.unwrap_or_else(|e| Outcome::Failed(e.to_string()))
}

/// A query value, percent-encoded (instance names are plain, but a group could be anything).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b',' | b'~' | b':' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_five_seconds() {
        let ms: Vec<u128> = (1..=8).map(|a| backoff(a).as_millis()).collect();
        assert_eq!(ms, [250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
    }

    #[test]
    fn a_line_split_across_chunks_is_read_once_whole() {
        let mut pending = Vec::new();
        let first = br#"{"time":"t","instance":"web:0","stream":"stdout","line":"hel"#;
        assert!(parse_lines(&mut pending, first).is_empty());
        let rest = b"lo\"}\n{\"time\":\"t\",\"instance\":\"db\",\"stream\":\"stderr\",\"line\":\"\\u001b[31mred\\tx\"}\n";
        let lines = parse_lines(&mut pending, rest);
        assert_eq!(
            lines,
            [
                LogLine::new("web:0", false, "hello"),
                LogLine {
                    instance: "db".into(),
                    stderr: true,
                    text: "red     x".into()
                }
            ]
        );
        assert!(pending.is_empty());
    }
}
