//! supervisord's control interface on tend's socket, so the stock `supervisorctl` works:
//! XML-RPC at `/RPC2` and the `/logtail/…` and `/mainlogtail` streams `tail -f` reads.
//! A client of the engine like the JSON API; supervisord's names come from [`names`].

pub mod codec;
mod groups;
mod methods;
pub mod names;

use std::convert::Infallible;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use methods::{METHODS, supervisor_state};
pub use names::{GivenName, ProcessTable};

use super::AppState;
use crate::config::{ConfigErrors, Manifest};

/// What the XML-RPC interface knows beyond the engine.
pub struct Rpc {
    table: RwLock<Arc<ProcessTable>>,
    /// `[supervisord] identifier`; `supervisor` by default, as supervisord's.
    pub identifier: String,
    /// Set by `supervisor.shutdown`: every later call gets SHUTDOWN_STATE.
    pub shutting_down: AtomicBool,
    /// The configuration in force and the last one `reloadConfig` read; one change at a
    /// time, whether from supervisorctl or `tend apply`.
    config: tokio::sync::Mutex<Configs>,
    /// Reads the configuration file again (`reloadConfig`); None: it cannot be re-read.
    reread: Option<Reread>,
    /// `sendRemoteCommEvent`'s (type, data), for the event listener pools.
    pub remote_events: Option<tokio::sync::mpsc::UnboundedSender<(String, String)>>,
}

/// Reads the manifest file again, as it was read at start, with supervisord's names for its
/// processes: what `reloadConfig`, `supervisor.restart` and `tend apply` read.
pub type Reread = Box<dyn Fn() -> Result<Config, ConfigErrors> + Send + Sync>;

/// A manifest with the supervisord names given to its instances.
#[derive(Debug, Clone)]
pub struct Config {
    pub manifest: Manifest,
    pub names: Vec<GivenName>,
    /// The services whose count was set while tend runs (`tend scale`, the autoscaler):
    /// `manifest` holds that count. Empty for a file just read.
    pub overrides: crate::api::scale::Overrides,
}

pub struct Configs {
    /// What the engine supervises now, under the daemon settings it started with.
    pub active: Config,
    /// What `reloadConfig` read last, for `addProcessGroup`.
    pending: Option<Config>,
}

impl Rpc {
    pub fn new(active: Config, identifier: Option<String>, reread: Option<Reread>) -> Rpc {
        Rpc {
            table: RwLock::new(Arc::new(ProcessTable::new(&active.manifest, &active.names))),
            identifier: identifier.unwrap_or_else(|| "supervisor".into()),
            shutting_down: AtomicBool::new(false),
            config: tokio::sync::Mutex::new(Configs {
                active,
                pending: None,
            }),
            reread,
            remote_events: None,
        }
    }

    /// Where `sendRemoteCommEvent` sends its events.
    pub fn with_remote_events(
        mut self,
        events: tokio::sync::mpsc::UnboundedSender<(String, String)>,
    ) -> Rpc {
        self.remote_events = Some(events);
        self
    }

    /// The processes as they are now.
    pub fn table(&self) -> Arc<ProcessTable> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Read the manifest file again; None when this configuration cannot be re-read.
    pub fn reread(&self) -> Option<Result<Config, ConfigErrors>> {
        self.reread.as_ref().map(|reread| reread())
    }

    /// The configuration in force, held until the guard is dropped: no other change of the
    /// supervised set (supervisorctl's or another apply) can come in between.
    pub async fn configs(&self) -> tokio::sync::MutexGuard<'_, Configs> {
        self.config.lock().await
    }
}

/// Hand the engine the new set of services, then publish it to everything that names
/// services: supervisord's process table, the API's service list (and with it `critical`,
/// the counts and the autoscaled services). Changes nothing when the engine refuses.
pub async fn commit(state: &AppState, active: &mut Config, next: Config) -> Result<(), String> {
    commit_rolling(state, active, next, Vec::new()).await
}

/// [`commit`], where the running instances of the `rolling` services keep running with the
/// new spec until a reload replaces them (`tend apply`).
pub async fn commit_rolling(
    state: &AppState,
    active: &mut Config,
    mut next: Config,
    rolling: Vec<String>,
) -> Result<(), String> {
    // A count set for a service that is gone goes with it.
    next.overrides
        .retain(|name, _| next.manifest.service(name).is_some());
    state
        .engine
        .reconfigure(next.manifest.clone(), rolling)
        .await
        .map_err(|_| "the engine is not answering".to_string())??;
    *state.rpc.table.write().unwrap_or_else(|p| p.into_inner()) =
        Arc::new(ProcessTable::new(&next.manifest, &next.names));
    state.services.replace(&next.manifest, &next.overrides);
    *active = next;
    Ok(())
}

/// Bodies larger than this are refused: supervisorctl's calls are a few hundred bytes.
const MAX_BODY: usize = 1 << 20;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/RPC2", post(rpc2))
        .route("/RPC2/{*rest}", post(rpc2))
        .route("/logtail/{*spec}", get(logtail))
        .route("/mainlogtail", get(mainlogtail))
}

async fn rpc2(
    State(state): State<AppState>,
    caller: Option<axum::Extension<super::remote::Caller>>,
    body: Bytes,
) -> Response {
    if body.len() > MAX_BODY {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request too large\n").into_response();
    }
    let call = match codec::parse_call(&body) {
        Ok(call) if !call.method.is_empty() => call,
        Ok(_) => return (StatusCode::BAD_REQUEST, "empty method name\n").into_response(),
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let rpc = state.rpc.clone();
    let answer = methods::call(&state, &rpc, &call.method, &call.params).await;
    if methods::changes_something(&call.method)
        && let Some(history) = &state.history
    {
        let caller = caller.map_or_else(super::remote::Caller::unknown, |c| c.0);
        let targets = call
            .params
            .iter()
            .filter_map(codec::Value::as_str)
            .next()
            .unwrap_or("all")
            .to_string();
        let (ok, result) = match &answer {
            Ok(_) => (true, "ok".to_string()),
            Err(fault) => (false, fault.text.clone()),
        };
        super::control::audit(history, caller, &call.method, targets, ok, result);
    }
    let text = match answer {
        Ok(value) => codec::response(&value),
        Err(fault) => codec::fault(fault.code, &fault.text),
    };
    xml(text)
}

fn xml(text: String) -> Response {
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    response
}

/// `GET /logtail/NAMESPEC[/stdout|stderr]`: the last KiB of the file, then what is
/// appended, until the client goes away.
async fn logtail(State(state): State<AppState>, Path(spec): Path<String>) -> Response {
    let (namespec, channel) = match spec.rsplit_once('/') {
        Some((name, channel @ ("stdout" | "stderr"))) => (name.to_string(), channel),
        _ => (spec.clone(), "stdout"),
    };
    let namespec = percent_decode(&namespec);
    let table = state.rpc.table();
    let process = match table.resolve(&namespec) {
        Some(names::Resolved::Process(p)) => p,
        _ => return (StatusCode::NOT_FOUND, "no such process\n").into_response(),
    };
    let file = if channel == "stderr" {
        process.stderr_log.clone()
    } else {
        process.stdout_log.clone()
    };
    match file {
        Some(file) => follow(file),
        None => (StatusCode::NOT_FOUND, "no log file\n").into_response(),
    }
}

async fn mainlogtail(State(state): State<AppState>) -> Response {
    follow(state.state_dir.join("tend.log"))
}

/// The most a follower reads from its file at one check.
const MAX_FOLLOW_READ: u64 = 1 << 20;

/// How often a followed file is checked for new bytes, as supervisord does.
const FOLLOW_EVERY: Duration = Duration::from_millis(100);

/// Stream `path` as supervisord's tail handler does: chunked, the last 1024 bytes first,
/// then new bytes; a truncation is announced and a rotated file reopened.
fn follow(path: PathBuf) -> Response {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(16);
    tokio::spawn(async move {
        let mut offset: Option<u64> = None;
        let mut inode = None;
        let mut interval = tokio::time::interval(FOLLOW_EVERY);
        loop {
            interval.tick().await;
            if sender.is_closed() {
                return;
            }
            let file = path.clone();
            let read = tokio::task::spawn_blocking(move || read_new(&file, offset, inode));
            let Ok((chunk, next, now_inode)) = read.await else {
                return;
            };
            offset = next;
            inode = now_inode;
            if !chunk.is_empty() && sender.send(Ok(Bytes::from(chunk))).await.is_err() {
                return;
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(receiver));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain;charset=utf-8"),
    );
    headers.insert("X-Accel-Buffering", HeaderValue::from_static("no"));
    response
}

/// The bytes of `path` past `offset` (first time: the last 1024), where to read next, and
/// the file's inode. Reading a rotated file starts the new one from its beginning.
fn read_new(
    path: &std::path::Path,
    offset: Option<u64>,
    inode: Option<u64>,
) -> (Vec<u8>, Option<u64>, Option<u64>) {
    let Ok(mut file) = std::fs::File::open(path) else {
        return (Vec::new(), offset, inode);
    };
    let Ok(meta) = file.metadata() else {
        return (Vec::new(), offset, inode);
    };
    let size = meta.len();
    let mut out = Vec::new();
    let start = match offset {
        None => size.saturating_sub(1024),
        Some(_) if inode.is_some_and(|i| i != meta.ino()) => 0,
        Some(at) if size < at => {
            out.extend_from_slice(b"==> File truncated <==\n");
            0
        }
        Some(at) => at,
    };
    // At most this much per check: a follower of a fast writer catches up over a few
    // checks instead of holding the whole burst in memory.
    let end = size.min(start + MAX_FOLLOW_READ);
    if end > start && file.seek(SeekFrom::Start(start)).is_ok() {
        let _ = file.take(end - start).read_to_end(&mut out);
    }
    (out, Some(end.max(start)), Some(meta.ino()))
}

/// `%XX` escapes as Python's `urllib.parse.quote` writes them (supervisorctl quotes names).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_escapes_decode() {
        assert_eq!(percent_decode("grp%3Aweb"), "grp:web");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("plain"), "plain");
    }

    #[test]
    fn following_reads_the_last_kib_then_new_bytes_and_sees_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        std::fs::write(&path, vec![b'a'; 3000]).unwrap();
        let (first, at, inode) = read_new(&path, None, None);
        assert_eq!(first.len(), 1024);
        assert_eq!(at, Some(3000));
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"new\n"))
            .unwrap();
        let (next, at, inode) = read_new(&path, at, inode);
        assert_eq!(next, b"new\n");
        std::fs::write(&path, b"xy").unwrap();
        let (after, at, _) = read_new(&path, at, inode);
        assert_eq!(after, b"==> File truncated <==\nxy");
        assert_eq!(at, Some(2));
    }
}
