//! Capture of children's output: one reader task per instance drains both pipes without ever
//! blocking the child; one writer thread splits lines, keeps each instance's in-memory tail,
//! feeds `logs -f` followers, and appends to rotating files (or tend's own stdout/stderr).
//! Disk work never runs on the runtime.

pub mod line;
pub mod rotate;
pub mod tail;
mod writer;

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::sync::broadcast;

use crate::config::model::{LogSpec, ServiceSpec};
use tail::Tail;

/// Chunks queued between the readers and the writer thread (at most 64 KiB each). When the
/// writer falls this far behind, new output is counted as dropped instead of blocking the
/// child; the loss is reported.
const QUEUE_CHUNKS: usize = 1024;
const READ_CHUNK: usize = 64 * 1024;
/// Lines buffered per `logs -f` follower before it is told it fell behind.
const FOLLOW_BUFFER: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Out,
    Err,
}

impl Stream {
    pub fn suffix(self) -> &'static str {
        match self {
            Stream::Out => "out",
            Stream::Err => "err",
        }
    }

    /// The name used in JSON logs and the API.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Out => "stdout",
            Stream::Err => "stderr",
        }
    }
}

/// File name stem for an instance's logs: `web` for a single instance, `web.2` otherwise.
pub fn file_stem(service: &str, index: u32, instances: u32) -> String {
    if instances == 1 {
        service.to_string()
    } else {
        format!("{service}.{index}")
    }
}

/// `DIR/STEM.out.log` or `DIR/STEM.err.log`.
pub fn log_path(dir: &Path, stem: &str, stream: Stream) -> PathBuf {
    dir.join(format!("{stem}.{}.log", stream.suffix()))
}

/// Where foreground output goes: prefixed lines on tend's stdout.
#[derive(Debug, Clone)]
pub struct Console {
    pub colour: bool,
    /// Instance names, to align prefixes and pick stable colours.
    pub names: Vec<String>,
}

/// One line as followers receive it.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub time: SystemTime,
    pub instance: Arc<str>,
    pub stream: Stream,
    pub bytes: Vec<u8>,
}

/// Everything kept about one instance's output; lives as long as the daemon, across restarts.
#[derive(Debug)]
pub struct InstanceLog {
    pub name: Arc<str>,
    pub service: String,
    pub index: u32,
    stem: String,
    spec: LogSpec,
    tail: Mutex<Tail>,
    follow: broadcast::Sender<LogLine>,
}

impl InstanceLog {
    /// The tail, locked. The writer holds this lock while it adds lines and feeds followers,
    /// so reading the tail and subscribing under it sees every line exactly once.
    pub fn tail(&self) -> MutexGuard<'_, Tail> {
        self.tail.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Subscribe to new lines (call while holding [`InstanceLog::tail`] to leave no gap).
    pub fn follow(&self) -> broadcast::Receiver<LogLine> {
        self.follow.subscribe()
    }
}

enum Message {
    Chunk {
        log: Arc<InstanceLog>,
        stream: Stream,
        time: SystemTime,
        bytes: Vec<u8>,
    },
    /// A pipe reached EOF: write out its partial line.
    Closed {
        log: Arc<InstanceLog>,
        stream: Stream,
    },
}

/// Handle to the log writer; cheap to clone.
#[derive(Clone)]
pub struct LogSink {
    queue: SyncSender<Message>,
    registry: Arc<Mutex<HashMap<String, Arc<InstanceLog>>>>,
    dropped: Arc<AtomicU64>,
    dropping: Arc<AtomicBool>,
}

impl LogSink {
    /// Start the writer thread for default files under `dir`, echoing to the console when given.
    pub fn start(dir: PathBuf, console: Option<Console>) -> io::Result<LogSink> {
        std::fs::create_dir_all(&dir)?;
        let (queue, inbox) = mpsc::sync_channel::<Message>(QUEUE_CHUNKS);
        std::thread::Builder::new()
            .name("tend-logs".into())
            .spawn(move || writer::Writer::new(dir, console).run(inbox))?;
        Ok(LogSink {
            queue,
            registry: Arc::default(),
            dropped: Arc::new(AtomicU64::new(0)),
            dropping: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Bytes that could not be queued because the writer was behind.
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The log of an instance, if it ever produced a process.
    pub fn instance(&self, name: &str) -> Option<Arc<InstanceLog>> {
        self.registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    fn register(&self, service: &ServiceSpec, index: u32) -> Arc<InstanceLog> {
        let name = service.instance_name(index);
        let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        registry
            .entry(name.clone())
            .or_insert_with(|| {
                Arc::new(InstanceLog {
                    name: name.into(),
                    service: service.name.clone(),
                    index,
                    stem: file_stem(&service.name, index, service.instances),
                    spec: service.logs.clone(),
                    tail: Mutex::new(Tail::new(service.logs.tail)),
                    follow: broadcast::channel(FOLLOW_BUFFER).0,
                })
            })
            .clone()
    }

    /// Drain a child's stdout and stderr until both reach EOF (every writer, grandchildren
    /// included, has closed them). One task per instance serves both pipes.
    pub fn capture(&self, service: &ServiceSpec, index: u32, stdout: OwnedFd, stderr: OwnedFd) {
        let sink = self.clone();
        let log = self.register(service, index);
        tokio::spawn(async move {
            use tokio::net::unix::pipe::Receiver;
            let mut out = Receiver::from_owned_fd(stdout).ok();
            let mut err = Receiver::from_owned_fd(stderr).ok();
            while out.is_some() || err.is_some() {
                let stream = tokio::select! {
                    ready = readable(&out) => if ready { Stream::Out } else { out = None; sink.closed(&log, Stream::Out); continue },
                    ready = readable(&err) => if ready { Stream::Err } else { err = None; sink.closed(&log, Stream::Err); continue },
                };
                let pipe = match stream {
                    Stream::Out => &mut out,
                    Stream::Err => &mut err,
                };
                let Some(receiver) = pipe.as_ref() else {
                    continue;
                };
                // Read into a per-thread scratch buffer and copy out only what arrived, so idle
                // pipes hold no buffer at all (hundreds of instances stay cheap).
                let read = SCRATCH.with(|scratch| {
                    let mut scratch = scratch.borrow_mut();
                    match receiver.try_read(&mut scratch[..]) {
                        Ok(0) => Ok(None),
                        Ok(n) => Ok(Some(scratch[..n].to_vec())),
                        Err(e) => Err(e),
                    }
                });
                match read {
                    Ok(Some(bytes)) => sink.send(Message::Chunk {
                        log: log.clone(),
                        stream,
                        time: SystemTime::now(),
                        bytes,
                    }),
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                        ) => {}
                    // EOF or a broken pipe: this stream is done.
                    Ok(None) | Err(_) => {
                        *pipe = None;
                        sink.closed(&log, stream);
                    }
                }
            }
        });
    }

    fn closed(&self, log: &Arc<InstanceLog>, stream: Stream) {
        // Rare and tiny, and it carries the last partial line out: worth waiting for, but
        // never on the runtime thread.
        if let Err(TrySendError::Full(message)) = self.queue.try_send(Message::Closed {
            log: log.clone(),
            stream,
        }) {
            let queue = self.queue.clone();
            tokio::task::spawn_blocking(move || queue.send(message));
        }
    }

    fn send(&self, message: Message) {
        let Message::Chunk { log, bytes, .. } = &message else {
            return;
        };
        let len = bytes.len() as u64;
        let instance = log.name.clone();
        match self.queue.try_send(message) {
            Ok(()) => {
                if self.dropping.swap(false, Ordering::Relaxed) {
                    crate::daemon::say(&format!(
                        "log writer caught up; {} bytes of output dropped so far",
                        self.dropped_bytes()
                    ));
                }
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                // The child must not block on tend: count the loss and say so once per episode.
                self.dropped.fetch_add(len, Ordering::Relaxed);
                if !self.dropping.swap(true, Ordering::Relaxed) {
                    crate::daemon::say(&format!(
                        "log writer is behind; dropping output (first from {instance}) until it catches up"
                    ));
                }
            }
        }
    }
}

/// Whether the pipe has something to read (or is closed: the read then says so); a missing
/// pipe never becomes readable.
async fn readable(pipe: &Option<tokio::net::unix::pipe::Receiver>) -> bool {
    match pipe {
        Some(receiver) => receiver.readable().await.is_ok(),
        None => std::future::pending().await,
    }
}

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; READ_CHUNK].into_boxed_slice());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_and_paths() {
        assert_eq!(file_stem("web", 0, 1), "web");
        assert_eq!(file_stem("web", 2, 4), "web.2");
        assert_eq!(
            log_path(Path::new("/l"), "web.2", Stream::Err),
            PathBuf::from("/l/web.2.err.log")
        );
    }
}
