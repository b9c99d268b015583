//! Capture of children's output: one reader task per instance drains both pipes into pooled
//! chunks (memory, or kernel pipes for big plain output: see [`splice`]); one writer thread
//! takes each instance's pending chunks as a batch, splits lines, keeps the in-memory tail,
//! feeds `logs -f` followers, and appends to rotating files (or tend's own stdout/stderr).
//! Disk work never runs on the runtime. Memory in flight is capped by a fixed budget of
//! chunks, whatever the children write.

pub mod forward;
pub mod line;
pub mod own;
pub mod rotate;
pub mod splice;
pub mod tail;
mod writer;

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, watch};

use crate::config::model::{LogFormat, LogSpec, LogTarget, ServiceSpec};
use splice::ChunkPipe;
use tail::{TAIL_BYTES, Tail};

/// Size of one chunk of captured output: the unit of the in-flight budget and of file writes.
const CHUNK: usize = 64 * 1024;
/// Chunks in flight between the readers and the writer, all instances together: the memory
/// cap of the pipeline (1 MiB of tend's memory; chunk pipes hold up to 4 MiB of the
/// children's pages). A reader that finds none free waits, so the child waits on its pipe as
/// it would on a slow file, unless the writer is stuck (below).
const CHUNKS_IN_FLIGHT: usize = 16;
/// A read into a chunk with less room than this starts a new chunk instead, so reads stay big.
const MIN_ROOM: usize = 8 * 1024;
/// How long a reader waits for the writer before it starts dropping output (counted and
/// reported) so that a stalled disk never blocks a child for longer.
const STALL: Duration = Duration::from_secs(2);
/// A partial line at most this long is moved from a full chunk to the next one, so a chunk
/// usually ends at a line boundary and is written straight from where it was read.
const CARRY_MAX: usize = 4 * 1024;
/// Lines buffered per `logs -f` follower before it is told it fell behind.
const FOLLOW_BUFFER: usize = 4096;
/// The newest lines of each instance's tail handed to the next image in an upgrade, at most
/// this many bytes: enough for `logs` and a `logs -f` following on, while hundreds of
/// instances with full tails still make a handover of a few MiB, not hundreds.
const TAIL_HANDED_OVER: usize = 64 * 1024;
/// What a busy child's pipe is grown to (see [`Reader::grow_pipe`]).
const BIG_PIPE: libc::c_int = 1024 * 1024;
/// A pipe holding at least this much is spliced rather than read, where the log allows it:
/// below it, the calls a splice takes (move, probe, write, discard the partial line) cost
/// more than the copies they save.
const SPLICE_MIN: usize = 32 * 1024;

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

    fn index(self) -> usize {
        match self {
            Stream::Out => 0,
            Stream::Err => 1,
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

/// File name stem for an instance's logs: `web` for a single instance, `web.2` when the
/// names carry the index ([`ServiceSpec::is_numbered`]).
pub fn file_stem(service: &str, index: u32, numbered: bool) -> String {
    if numbered {
        format!("{service}.{index}")
    } else {
        service.to_string()
    }
}

/// `DIR/STEM.out.log` or `DIR/STEM.err.log`.
pub fn log_path(dir: &Path, stem: &str, stream: Stream) -> PathBuf {
    dir.join(format!("{stem}.{}.log", stream.suffix()))
}

/// The file an instance's `stream` is written to, if it goes to a file: `None` when it is
/// discarded, inherited, or (stderr) merged into stdout.
pub fn file_of(spec: &LogSpec, dir: &Path, stem: &str, stream: Stream) -> Option<PathBuf> {
    let target = match stream {
        Stream::Out => &spec.stdout,
        Stream::Err if spec.merge => return None,
        Stream::Err => &spec.stderr,
    };
    match target {
        LogTarget::File(path) => Some(path.clone().unwrap_or_else(|| log_path(dir, stem, stream))),
        LogTarget::Inherit | LogTarget::Null => None,
    }
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
    /// Made when the first follower subscribes: a broadcast channel allocates all its slots
    /// at once (hundreds of KiB), which every idle instance would otherwise carry.
    follow: std::sync::OnceLock<broadcast::Sender<LogLine>>,
    /// Output read but not yet taken by the writer.
    pending: Mutex<Pending>,
    /// A readiness pattern to match against each line, until the first match.
    watch: Mutex<Option<LineWatch>>,
    /// Bytes captured from each stream ([`Stream::Out`], [`Stream::Err`]) and dropped in
    /// stalls, over the daemon's life: the log counters of the metrics.
    captured: [AtomicU64; 2],
    dropped: AtomicU64,
    /// Bytes of it that went to a file by splice, never copied through tend's memory.
    spliced: AtomicU64,
    /// Counts the logs this instance had: its log settings changed while tend ran (`tend
    /// apply`), and the writer replaces its files and format when a newer one shows up.
    generation: u64,
    /// Per stream ([`Stream::index`]): whether its settings let it be spliced.
    splice: [bool; 2],
}

/// Log readiness: the first line (of either stream) that matches `pattern` is sent.
#[derive(Debug)]
struct LineWatch {
    pattern: regex::bytes::Regex,
    matched: tokio::sync::oneshot::Sender<String>,
}

impl InstanceLog {
    /// The tail, locked. The writer holds this lock while it adds lines and feeds followers,
    /// so reading the tail and subscribing under it sees every line exactly once.
    pub fn tail(&self) -> MutexGuard<'_, Tail> {
        self.tail.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes captured from `stream` so far.
    pub fn captured_bytes(&self, stream: Stream) -> u64 {
        self.captured[stream.index()].load(Ordering::Relaxed)
    }

    /// Bytes of this instance's output dropped because the writer was stalled.
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Bytes of this instance's output written to its files by splice.
    pub fn spliced_bytes(&self) -> u64 {
        self.spliced.load(Ordering::Relaxed)
    }

    /// Subscribe to new lines (call while holding [`InstanceLog::tail`] to leave no gap).
    pub fn follow(&self) -> broadcast::Receiver<LogLine> {
        self.follow
            .get_or_init(|| broadcast::channel(FOLLOW_BUFFER).0)
            .subscribe()
    }

    /// Where to send lines, if anyone follows.
    fn followers(&self) -> Option<&broadcast::Sender<LogLine>> {
        self.follow.get().filter(|s| s.receiver_count() > 0)
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn watch(&self) -> MutexGuard<'_, Option<LineWatch>> {
        self.watch.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn watching(&self) -> bool {
        self.watch().is_some()
    }

    /// Whether each line must pass through tend now: someone follows, or a readiness
    /// pattern waits for its line.
    fn needs_lines(&self) -> bool {
        self.followers().is_some() || self.watching()
    }

    /// Send the line if it matches the armed pattern (and disarm); false once nothing is armed.
    fn check_watch(&self, line: &[u8]) -> bool {
        let mut watch = self.watch();
        let Some(armed) = watch.as_ref() else {
            return false;
        };
        if armed.pattern.is_match(line) {
            if let Some(armed) = watch.take() {
                let text = String::from_utf8_lossy(line).trim_end().to_string();
                let _ = armed.matched.send(text);
            }
            return false;
        }
        true
    }
}

/// What the reader has handed over and the writer not yet taken.
#[derive(Debug, Default)]
struct Pending {
    chunks: Vec<Chunk>,
    /// Streams that reached EOF after the bytes in `chunks`: their partial line goes out.
    closed: [bool; 2],
    /// The writer has been told about this instance and will take everything here.
    queued: bool,
}

/// Bytes read from the pipes in the order they arrived, with which stream and when.
#[derive(Debug)]
struct Chunk {
    buf: Box<[u8]>,
    /// The bytes are in this kernel pipe instead of `buf` (then empty), all of one stream:
    /// spliced from the child's pipe, not read.
    pipe: Option<ChunkPipe>,
    /// A splice into `pipe` came back short: its slots are used up, whatever its byte count.
    sealed: bool,
    len: usize,
    segments: Vec<Segment>,
    /// A unit of the in-flight budget, released when the writer is done with the chunk.
    _budget: OwnedSemaphorePermit,
}

/// `chunk.buf[previous end..end]` came from `stream`, read at `time`.
#[derive(Debug, Clone, Copy)]
struct Segment {
    end: usize,
    stream: Stream,
    time: SystemTime,
}

impl Chunk {
    fn room(&self) -> usize {
        let capacity = self
            .pipe
            .as_ref()
            .map_or(self.buf.len(), ChunkPipe::capacity);
        capacity.saturating_sub(self.len)
    }

    fn record(&mut self, stream: Stream, time: SystemTime, n: usize) {
        self.len += n;
        // Reads of one stream within a millisecond share a segment: timestamps are in
        // milliseconds, and line-by-line writers would otherwise cost a segment per line.
        if let Some(last) = self.segments.last_mut()
            && last.stream == stream
            && time
                .duration_since(last.time)
                .is_ok_and(|d| d < Duration::from_millis(1))
        {
            last.end = self.len;
            return;
        }
        self.segments.push(Segment {
            end: self.len,
            stream,
            time,
        });
    }

    /// Move the partial line at the end of a full chunk into `next`, when it is short and all
    /// in the last segment, so that this chunk ends at a line boundary.
    fn carry_partial(&mut self, next: &mut Chunk) {
        let Some(&last) = self.segments.last() else {
            return;
        };
        if self.pipe.is_some() || next.pipe.is_some() {
            return;
        }
        let start = self
            .segments
            .len()
            .checked_sub(2)
            .map_or(0, |i| self.segments[i].end);
        let segment = &self.buf[start..self.len];
        let Some(newline) = memchr::memrchr(b'\n', segment) else {
            return;
        };
        let partial = segment.len() - newline - 1;
        if partial == 0 || partial > CARRY_MAX || partial > next.room() {
            return;
        }
        let from = self.len - partial;
        next.buf[next.len..next.len + partial].copy_from_slice(&self.buf[from..self.len]);
        next.record(last.stream, last.time, partial);
        self.len = from;
        if let Some(segment) = self.segments.last_mut() {
            segment.end = from;
        }
    }
}

/// Why the writer wakes up.
enum Wake {
    /// An instance has something pending (sent once until taken).
    Instance(Arc<InstanceLog>),
    /// tend's own log has lines queued.
    Own,
    /// Write out everything (partial lines included), then answer.
    Close(tokio::sync::oneshot::Sender<()>),
    /// An upgrade: write out every complete line and flush, then keep each partial line
    /// as it is (no idle flush) and answer with them, until `Release`.
    Hold(tokio::sync::oneshot::Sender<Vec<Partial>>),
    /// The upgrade did not happen: partial lines are flushed when idle again.
    Release,
    /// Write tend's own queued messages and flush the files, then answer.
    Sync(tokio::sync::oneshot::Sender<()>),
    /// The partial lines the previous image of tend held for an instance (an upgrade):
    /// its next output continues them.
    Seed(Arc<InstanceLog>, [Vec<u8>; 2]),
}

/// An instance's unfinished lines (stdout's, stderr's), as the writer held them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Partial {
    pub instance: String,
    pub lines: [Vec<u8>; 2],
}

/// Where tend's own log goes.
#[derive(Debug, Clone)]
pub struct OwnLogTarget {
    /// `state_dir/tend.log`.
    pub path: PathBuf,
    /// Its rotation (the other fields are not used).
    pub rotation: LogSpec,
    /// Also print each line on stderr (the foreground).
    pub to_stderr: bool,
    /// tend's stdout and stderr are this file (a detached daemon): point them at the new file
    /// after each rotation, so a panic or `inherit` output lands in the current log.
    pub redirect_std: bool,
}

/// Shared by the readers and the writer.
struct Pipeline {
    wake: Mutex<Sender<Wake>>,
    budget: Arc<Semaphore>,
    /// Chunk buffers the writer is done with, for the readers to reuse.
    pool: Mutex<Vec<Box<[u8]>>>,
    /// Chunk pipes likewise, empty.
    pipes: Mutex<Vec<ChunkPipe>>,
    /// Output is echoed on the console: every line passes through tend, so none is spliced.
    console: bool,
    /// Bytes dropped because the writer was stalled, all instances together.
    dropped: AtomicU64,
    /// Capture tasks still reading a pipe.
    readers: AtomicUsize,
    /// Told when a capture task ends (for `pause`).
    reader_gone: tokio::sync::Notify,
    /// True while an upgrade holds capture: readers stop between reads and park their pipes.
    pause: watch::Sender<bool>,
    parked: Mutex<Vec<ParkedPipes>>,
}

/// The pipes a capture task was reading when capture was paused (an upgrade): an instance's
/// log and the read ends still open.
#[derive(Debug)]
pub struct ParkedPipes {
    pub log: Arc<InstanceLog>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// Everything kept of one instance's output, to hand to the next image of tend.
#[derive(Debug, Clone, PartialEq)]
pub struct LogState {
    pub instance: String,
    pub service: String,
    pub index: u32,
    pub tail: Vec<tail::TailLine>,
    /// The unfinished line of stdout and of stderr.
    pub partial: [Vec<u8>; 2],
    /// Bytes captured from stdout and stderr, and dropped in stalls (counters that never go
    /// down).
    pub captured: [u64; 2],
    pub dropped: u64,
}

/// Capture held for an upgrade: the parked pipes and what each instance's log holds.
#[derive(Debug)]
pub struct Paused {
    pub pipes: Vec<ParkedPipes>,
    pub logs: Vec<LogState>,
}

impl Pipeline {
    fn notify(&self, log: &Arc<InstanceLog>) {
        let _ = self
            .wake
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Wake::Instance(log.clone()));
    }

    fn buffer(&self) -> Box<[u8]> {
        self.pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_else(|| vec![0u8; CHUNK].into_boxed_slice())
    }

    fn recycle(&self, buf: Box<[u8]>) {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < CHUNKS_IN_FLIGHT {
            pool.push(buf);
        }
    }

    fn pipe(&self) -> Option<ChunkPipe> {
        let pooled = self.pipes.lock().unwrap_or_else(|p| p.into_inner()).pop();
        pooled.or_else(|| ChunkPipe::new().ok())
    }

    /// Keep an empty pipe for reuse; one that still holds bytes (an error left them) is
    /// closed instead.
    fn recycle_pipe(&self, pipe: ChunkPipe) {
        if splice::available(pipe.reader()) > 0 {
            return;
        }
        let mut pipes = self.pipes.lock().unwrap_or_else(|p| p.into_inner());
        if pipes.len() < CHUNKS_IN_FLIGHT {
            pipes.push(pipe);
        }
    }

    /// Give the pooled buffers back to the allocator and close the pooled pipes (the writer
    /// does this when idle).
    fn trim(&self) {
        self.pool.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.pipes.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// Handle to the log writer; cheap to clone.
#[derive(Clone)]
pub struct LogSink {
    pipeline: Arc<Pipeline>,
    registry: Arc<Mutex<HashMap<String, Arc<InstanceLog>>>>,
}

impl LogSink {
    /// Start the writer thread for default files under `dir`, echoing to the console when
    /// given; from now on tend's own messages go to `own` too.
    pub fn start(dir: PathBuf, console: Option<Console>, own: OwnLogTarget) -> io::Result<LogSink> {
        std::fs::create_dir_all(&dir)?;
        let (wake, inbox) = mpsc::channel();
        let own_wake = Mutex::new(wake.clone());
        own::install(
            Box::new(move || {
                let _ = own_wake
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .send(Wake::Own);
            }),
            own.to_stderr,
        );
        let pipeline = Arc::new(Pipeline {
            wake: Mutex::new(wake),
            budget: Arc::new(Semaphore::new(CHUNKS_IN_FLIGHT)),
            pool: Mutex::new(Vec::new()),
            pipes: Mutex::new(Vec::new()),
            console: console.is_some(),
            dropped: AtomicU64::new(0),
            readers: AtomicUsize::new(0),
            reader_gone: tokio::sync::Notify::new(),
            pause: watch::Sender::new(false),
            parked: Mutex::new(Vec::new()),
        });
        let shared = pipeline.clone();
        crate::background::spawn("tend-logs", move || {
            writer::Writer::new(dir, console, own, shared).run(inbox)
        })?;
        Ok(LogSink {
            pipeline,
            registry: Arc::default(),
        })
    }

    /// Bytes dropped because the writer was stalled for longer than a child may be held.
    pub fn dropped_bytes(&self) -> u64 {
        self.pipeline.dropped.load(Ordering::Relaxed)
    }

    /// Wait (at most `limit`) until every pipe reached EOF and the writer wrote out what it
    /// had, partial lines and tend's own last messages included: the end of a clean shutdown.
    pub async fn close(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.pipeline.readers.load(Ordering::Acquire) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (done, written) = tokio::sync::oneshot::channel();
        let _ = self
            .pipeline
            .wake
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Wake::Close(done));
        let _ = tokio::time::timeout_at(deadline, written).await;
    }

    /// Hold capture for an upgrade, within `limit`: every reader stops between two reads
    /// and parks its pipes (what children write meanwhile waits in the kernel's pipe
    /// buffers, and a child whose buffer is full waits), and the writer writes out every
    /// complete line and keeps each partial one. Err when a reader did not stop in time;
    /// then capture goes on.
    pub async fn pause(&self, limit: Duration) -> Result<Paused, String> {
        let pipeline = &self.pipeline;
        pipeline.pause.send_replace(true);
        let stopped = tokio::time::timeout(limit, async {
            loop {
                let gone = pipeline.reader_gone.notified();
                tokio::pin!(gone);
                gone.as_mut().enable();
                if pipeline.readers.load(Ordering::Acquire) == 0 {
                    return;
                }
                gone.await;
            }
        })
        .await;
        let parked =
            || std::mem::take(&mut *pipeline.parked.lock().unwrap_or_else(|p| p.into_inner()));
        if stopped.is_err() {
            self.resume(parked());
            return Err(format!(
                "the log readers did not stop within {} s",
                limit.as_secs()
            ));
        }
        let (held, partials) = tokio::sync::oneshot::channel();
        self.wake(Wake::Hold(held));
        let Ok(Ok(partials)) = tokio::time::timeout(limit, partials).await else {
            self.resume(parked());
            return Err("the log writer did not answer".into());
        };
        let pipes = parked();
        let logs = self
            .registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|log| LogState {
                instance: log.name.to_string(),
                service: log.service.clone(),
                index: log.index,
                tail: newest(log.tail().last(usize::MAX, None, None), TAIL_HANDED_OVER),
                partial: partials
                    .iter()
                    .find(|p| *p.instance == *log.name)
                    .map(|p| p.lines.clone())
                    .unwrap_or_default(),
                captured: [Stream::Out, Stream::Err].map(|s| log.captured_bytes(s)),
                dropped: log.dropped_bytes(),
            })
            .collect();
        Ok(Paused { pipes, logs })
    }

    /// Capture again after [`LogSink::pause`] (the upgrade did not happen), reading the
    /// parked pipes where they were.
    pub fn resume(&self, pipes: Vec<ParkedPipes>) {
        self.pipeline.pause.send_replace(false);
        self.wake(Wake::Release);
        for parked in pipes {
            self.read_pipes(parked.log, parked.stdout, parked.stderr);
        }
    }

    /// Take over an instance's log from the previous image of tend (an upgrade): its tail,
    /// its counters and its unfinished lines.
    pub fn seed(&self, service: &ServiceSpec, state: LogState) {
        let log = self.register(service, state.index);
        {
            let mut tail = log.tail();
            for line in &state.tail {
                tail.push(line.time, line.stream, &line.bytes);
            }
        }
        for (stream, bytes) in state.captured.iter().enumerate() {
            log.captured[stream].store(*bytes, Ordering::Relaxed);
        }
        log.dropped.store(state.dropped, Ordering::Relaxed);
        if state.partial.iter().any(|p| !p.is_empty()) {
            self.wake(Wake::Seed(log, state.partial));
        }
    }

    /// Read pipes the previous image of tend was reading (an upgrade) into an instance's
    /// log.
    pub fn recapture(
        &self,
        service: &ServiceSpec,
        index: u32,
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
    ) {
        let log = self.register(service, index);
        self.read_pipes(log, stdout, stderr);
    }

    /// Wait (briefly) until tend's own messages so far are in its log: the last thing an
    /// image says before the exec.
    pub async fn flush_own(&self) {
        let (done, written) = tokio::sync::oneshot::channel();
        self.wake(Wake::Sync(done));
        let _ = tokio::time::timeout(Duration::from_secs(1), written).await;
    }

    fn wake(&self, wake: Wake) {
        let _ = self
            .pipeline
            .wake
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(wake);
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
        let stem = file_stem(&service.name, index, service.is_numbered());
        let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let previous = match registry.get(name.as_str()) {
            Some(log) if log.spec == service.logs && log.stem == stem => return log.clone(),
            previous => previous.cloned(),
        };
        // New, or its log settings changed (`tend apply` replaced the instance): a new log,
        // which keeps the tail, the followers and the counters of the one it succeeds.
        let mut tail = Tail::new(service.logs.tail);
        let follow = std::sync::OnceLock::new();
        let mut captured = [0, 0];
        let mut dropped = 0;
        let mut spliced = 0;
        if let Some(previous) = &previous {
            for line in previous.tail().last(usize::MAX, None, None) {
                tail.push(line.time, line.stream, &line.bytes);
            }
            if let Some(sender) = previous.follow.get() {
                let _ = follow.set(sender.clone());
            }
            captured = [Stream::Out, Stream::Err].map(|s| previous.captured_bytes(s));
            dropped = previous.dropped_bytes();
            spliced = previous.spliced_bytes();
        }
        let log = Arc::new(InstanceLog {
            name: name.as_str().into(),
            service: service.name.clone(),
            index,
            stem,
            spec: service.logs.clone(),
            tail: Mutex::new(tail),
            follow,
            pending: Mutex::default(),
            watch: Mutex::default(),
            captured: captured.map(AtomicU64::new),
            dropped: AtomicU64::new(dropped),
            spliced: AtomicU64::new(spliced),
            generation: previous.map_or(0, |p| p.generation + 1),
            splice: [Stream::Out, Stream::Err].map(|s| may_splice(&service.logs, s)),
        });
        registry.insert(name, log.clone());
        log
    }

    /// Arm log readiness for an instance's next process: the first output line matching
    /// `pattern` is sent on the returned channel. Call before [`LogSink::capture`] so that no
    /// line can pass unseen; a new call replaces the previous watch.
    pub fn watch_for(
        &self,
        service: &ServiceSpec,
        index: u32,
        pattern: regex::bytes::Regex,
    ) -> tokio::sync::oneshot::Receiver<String> {
        let (matched, receiver) = tokio::sync::oneshot::channel();
        *self.register(service, index).watch() = Some(LineWatch { pattern, matched });
        receiver
    }

    /// Drain a child's stdout and stderr until both reach EOF (every writer, grandchildren
    /// included, has closed them). One task per instance serves both pipes.
    pub fn capture(&self, service: &ServiceSpec, index: u32, stdout: OwnedFd, stderr: OwnedFd) {
        let log = self.register(service, index);
        self.read_pipes(log, Some(stdout), Some(stderr));
    }

    fn read_pipes(&self, log: Arc<InstanceLog>, stdout: Option<OwnedFd>, stderr: Option<OwnedFd>) {
        let pipeline = self.pipeline.clone();
        pipeline.readers.fetch_add(1, Ordering::AcqRel);
        let mut pause = pipeline.pause.subscribe();
        tokio::spawn(async move {
            use tokio::net::unix::pipe::Receiver;
            let mut pipes = [
                stdout.and_then(|fd| Receiver::from_owned_fd(fd).ok()),
                stderr.and_then(|fd| Receiver::from_owned_fd(fd).ok()),
            ];
            let splice = log.splice.map(|allowed| allowed && !pipeline.console);
            let mut reader = Reader {
                pipeline,
                log,
                dropping: 0,
                splice,
                grown: [false; 2],
            };
            while pipes.iter().any(Option::is_some) {
                let (stream, open) = tokio::select! {
                    biased;
                    _ = paused(&mut pause) => {
                        // Between two reads: nothing read is held here, so the pipes can go
                        // to whoever reads them next.
                        let [stdout, stderr] = pipes.map(|pipe| pipe.and_then(|p| p.into_nonblocking_fd().ok()));
                        reader.pipeline.parked.lock().unwrap_or_else(|p| p.into_inner()).push(ParkedPipes {
                            log: reader.log.clone(),
                            stdout,
                            stderr,
                        });
                        break;
                    }
                    open = readable(&pipes[0]) => (Stream::Out, open),
                    open = readable(&pipes[1]) => (Stream::Err, open),
                };
                let pipe = &mut pipes[stream.index()];
                let open = open
                    && match pipe.as_ref() {
                        Some(receiver) => reader.read(stream, receiver).await,
                        None => false,
                    };
                if !open {
                    *pipe = None;
                    reader.closed(stream);
                }
            }
            reader.pipeline.readers.fetch_sub(1, Ordering::AcqRel);
            reader.pipeline.reader_gone.notify_waiters();
        });
    }
}

/// The newest of `lines` (oldest first) that fit in `bytes`.
fn newest(mut lines: Vec<tail::TailLine>, bytes: usize) -> Vec<tail::TailLine> {
    let mut total = 0;
    let keep = lines
        .iter()
        .rev()
        .take_while(|line| {
            total += line.bytes.len();
            total <= bytes
        })
        .count();
    lines.drain(..lines.len() - keep);
    lines
}

/// Until capture is paused (never, once its sender is gone).
async fn paused(pause: &mut watch::Receiver<bool>) {
    if pause.wait_for(|p| *p).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Whether `stream` of an instance with these settings may go to its file by splice: plain
/// lines into a file, nothing that needs every line (syslog, the journal), and a line limit
/// that the probe and the tail both handle.
fn may_splice(spec: &LogSpec, stream: Stream) -> bool {
    let target = match stream {
        Stream::Out => &spec.stdout,
        Stream::Err if spec.merge => &spec.stdout,
        Stream::Err => &spec.stderr,
    };
    matches!(target, LogTarget::File(_))
        && spec.format == LogFormat::Plain
        && !spec.timestamps
        && spec.syslog.is_none()
        && spec.journal.is_none()
        && (splice::MIN_MAX_LINE..TAIL_BYTES).contains(&spec.max_line)
}

/// One instance's reading side.
struct Reader {
    pipeline: Arc<Pipeline>,
    log: Arc<InstanceLog>,
    /// Bytes dropped in the current stall (0: not dropping).
    dropping: u64,
    /// Per stream: splice big reads (the log allows it and the kernel has not refused).
    splice: [bool; 2],
    /// Per stream: the pipe was grown (or that was tried).
    grown: [bool; 2],
}

enum Room {
    Chunk(Chunk),
    /// The writer is stalled: read and count.
    Drop,
}

/// What a splice attempt did.
enum Spliced {
    /// Bytes moved into a chunk pipe: look at the pipe again.
    Moved,
    /// The writer is stalled: the pipe was drained and counted; whether it is still open.
    Dropped(bool),
    /// Nothing moved: read instead.
    No,
}

impl Reader {
    /// Read what the pipe has; false once it is closed (EOF or error).
    async fn read(&mut self, stream: Stream, receiver: &tokio::net::unix::pipe::Receiver) -> bool {
        loop {
            if self.splice[stream.index()] && !self.log.needs_lines() {
                let waiting = splice::available(receiver.as_fd());
                if waiting >= SPLICE_MIN {
                    match self.splice(stream, receiver, waiting).await {
                        Spliced::Moved => continue,
                        Spliced::Dropped(open) => return open,
                        Spliced::No => {}
                    }
                }
            }
            let mut chunk = match self.room().await {
                Room::Chunk(chunk) => chunk,
                Room::Drop => return self.drop_read(receiver),
            };
            let start = chunk.len;
            let result = receiver.try_read(&mut chunk.buf[start..]);
            let (open, read) = match result {
                Ok(0) => (false, 0),
                Ok(n) => {
                    chunk.record(stream, SystemTime::now(), n);
                    self.log.captured[stream.index()].fetch_add(n as u64, Ordering::Relaxed);
                    self.grow_pipe(stream, receiver, n);
                    (true, n)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => (true, 0),
                Err(e) => (e.kind() == io::ErrorKind::WouldBlock, 0),
            };
            let read_more = read > 0 && chunk.room() < MIN_ROOM;
            self.hand_over(chunk);
            if !read_more {
                return open;
            }
            // The chunk filled: the pipe may hold more; a new chunk takes it.
        }
    }

    /// Move what the pipe holds (`waiting` bytes) into a chunk pipe without reading it.
    async fn splice(
        &mut self,
        stream: Stream,
        receiver: &tokio::net::unix::pipe::Receiver,
        waiting: usize,
    ) -> Spliced {
        let open = {
            let mut pending = self.log.pending();
            match pending.chunks.last() {
                Some(last)
                    if last.pipe.is_some()
                        && !last.sealed
                        && last.segments.first().is_some_and(|s| s.stream == stream)
                        && last.room() >= SPLICE_MIN =>
                {
                    pending.chunks.pop()
                }
                _ => None,
            }
        };
        let mut chunk = match open {
            Some(chunk) => chunk,
            None => {
                let Some(pipe) = self.pipeline.pipe() else {
                    return Spliced::No;
                };
                let Some(permit) = self.permit().await else {
                    self.pipeline.recycle_pipe(pipe);
                    return Spliced::Dropped(self.drop_read(receiver));
                };
                Chunk {
                    buf: Box::default(),
                    pipe: Some(pipe),
                    sealed: false,
                    len: 0,
                    segments: Vec::new(),
                    _budget: permit,
                }
            }
        };
        let want = waiting.min(chunk.room());
        let moved = match &chunk.pipe {
            Some(pipe) => pipe.fill(receiver.as_fd(), want),
            None => Ok(0),
        };
        let result = match moved {
            Ok(n) if n > 0 => {
                chunk.record(stream, SystemTime::now(), n);
                self.log.captured[stream.index()].fetch_add(n as u64, Ordering::Relaxed);
                self.grow_pipe(stream, receiver, n);
                // Short: the chunk pipe ran out of slots (the child's writes were small).
                chunk.sealed = n < want;
                Spliced::Moved
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && chunk.len > 0 => {
                chunk.sealed = true;
                Spliced::Moved
            }
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => {
                // This pipe cannot be spliced from (not a pipe, an old kernel): read it.
                self.splice[stream.index()] = false;
                Spliced::No
            }
            _ => Spliced::No,
        };
        self.hand_over(chunk);
        result
    }

    /// The chunk to read into: the open one if it has room, else a new one from the budget.
    async fn room(&mut self) -> Room {
        let open = {
            let mut pending = self.log.pending();
            match pending.chunks.last() {
                Some(last) if last.pipe.is_none() && last.room() >= MIN_ROOM => {
                    pending.chunks.pop()
                }
                _ => None,
            }
        };
        if let Some(chunk) = open {
            return Room::Chunk(chunk);
        }
        let Some(permit) = self.permit().await else {
            return Room::Drop;
        };
        let mut chunk = Chunk {
            buf: self.pipeline.buffer(),
            pipe: None,
            sealed: false,
            len: 0,
            segments: Vec::new(),
            _budget: permit,
        };
        // A full chunk may still sit in pending (the writer has not taken it): end it at a
        // line boundary when that is cheap.
        if let Some(last) = self.log.pending().chunks.last_mut() {
            last.carry_partial(&mut chunk);
        }
        Room::Chunk(chunk)
    }

    /// A unit of the in-flight budget: at once if free, else after waiting for the writer
    /// at most [`STALL`]; `None` means drop (said once per stall, as is the recovery).
    /// Every chunk takes one unit, whatever it holds: with units of different sizes a reader
    /// that needs several could wait out a writer that frees them one at a time.
    async fn permit(&mut self) -> Option<OwnedSemaphorePermit> {
        let budget = self.pipeline.budget.clone();
        let permit = match budget.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) if self.dropping > 0 => None,
            // Boxed: the wait (a timer and an acquire) is rare, and inline it would sit in
            // every idle reader's task.
            Err(_) => Box::pin(tokio::time::timeout(STALL, budget.acquire_owned()))
                .await
                .ok()
                .and_then(Result::ok),
        };
        let Some(permit) = permit else {
            if self.dropping == 0 {
                own::say(&format!(
                    "{}: the log writer has not kept up for {}s; dropping this output (counted) until it does",
                    self.log.name,
                    STALL.as_secs()
                ));
            }
            return None;
        };
        if self.dropping > 0 {
            own::say(&format!(
                "{}: the log writer caught up; {} bytes of output were dropped meanwhile",
                self.log.name, self.dropping
            ));
            self.dropping = 0;
        }
        Some(permit)
    }

    /// Put a chunk (back) in the instance's pending queue and tell the writer, unless it was
    /// told already. An empty chunk changes nothing there: a read that found the pipe
    /// empty or closed wakes no one (at every exit, that wake-up was a thread switch).
    fn hand_over(&self, mut chunk: Chunk) {
        if chunk.len == 0 {
            // Nothing was read into it (the read only found the pipe empty): reuse it.
            match chunk.pipe.take() {
                Some(pipe) => self.pipeline.recycle_pipe(pipe),
                None => self.pipeline.recycle(std::mem::take(&mut chunk.buf)),
            }
            return;
        }
        let notify = {
            let mut pending = self.log.pending();
            pending.chunks.push(chunk);
            !std::mem::replace(&mut pending.queued, true)
        };
        if notify {
            self.pipeline.notify(&self.log);
        }
    }

    fn drop_read(&mut self, receiver: &tokio::net::unix::pipe::Receiver) -> bool {
        let mut scratch = [0u8; 16 * 1024];
        loop {
            match receiver.try_read(&mut scratch) {
                Ok(0) => return false,
                Ok(n) => {
                    self.dropping += n as u64;
                    self.pipeline.dropped.fetch_add(n as u64, Ordering::Relaxed);
                    self.log.dropped.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return e.kind() == io::ErrorKind::WouldBlock,
            }
        }
    }

    fn closed(&self, stream: Stream) {
        let notify = {
            let mut pending = self.log.pending();
            pending.closed[stream.index()] = true;
            !std::mem::replace(&mut pending.queued, true)
        };
        if notify {
            self.pipeline.notify(&self.log);
        }
    }
}

impl Reader {
    /// Give a busy pipe room for more than the default 64 KiB, so a fast writer blocks less
    /// often while tend writes; idle pipes keep the default. Best effort and tried once: the
    /// kernel caps pipe memory per user, and a refusal only means the default stays.
    fn grow_pipe(
        &mut self,
        stream: Stream,
        receiver: &tokio::net::unix::pipe::Receiver,
        read: usize,
    ) {
        if read < 60 * 1024 || std::mem::replace(&mut self.grown[stream.index()], true) {
            return;
        }
        let fd = receiver.as_raw_fd();
        // SAFETY: F_GETPIPE_SZ/F_SETPIPE_SZ on a pipe descriptor we own; no memory is passed.
        unsafe {
            if libc::fcntl(fd, libc::F_GETPIPE_SZ) < BIG_PIPE {
                libc::fcntl(fd, libc::F_SETPIPE_SZ, BIG_PIPE);
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

#[cfg(test)]
mod capture_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(budget: &Arc<Semaphore>) -> Chunk {
        Chunk {
            buf: vec![0u8; CHUNK].into_boxed_slice(),
            pipe: None,
            sealed: false,
            len: 0,
            segments: Vec::new(),
            _budget: budget.clone().try_acquire_owned().unwrap(),
        }
    }

    fn fill(chunk: &mut Chunk, stream: Stream, time: SystemTime, bytes: &[u8]) {
        chunk.buf[chunk.len..chunk.len + bytes.len()].copy_from_slice(bytes);
        chunk.record(stream, time, bytes.len());
    }

    #[test]
    fn reads_of_one_stream_within_a_millisecond_share_a_segment() {
        let budget = Arc::new(Semaphore::new(2));
        let mut c = chunk(&budget);
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1);
        fill(&mut c, Stream::Out, t, b"a\n");
        fill(&mut c, Stream::Out, t + Duration::from_micros(500), b"b\n");
        fill(&mut c, Stream::Err, t + Duration::from_micros(600), b"e\n");
        fill(&mut c, Stream::Err, t + Duration::from_millis(5), b"f\n");
        let ends: Vec<(usize, Stream)> = c.segments.iter().map(|s| (s.end, s.stream)).collect();
        assert_eq!(ends, [(4, Stream::Out), (6, Stream::Err), (8, Stream::Err)]);
        drop(c);
        assert_eq!(
            budget.available_permits(),
            2,
            "the budget comes back with the chunk"
        );
    }

    #[test]
    fn a_full_chunk_hands_its_short_partial_line_to_the_next() {
        let budget = Arc::new(Semaphore::new(4));
        let t = SystemTime::UNIX_EPOCH;
        let mut full = chunk(&budget);
        fill(&mut full, Stream::Err, t, b"err\n");
        fill(&mut full, Stream::Out, t, b"one\ntwo\nthr");
        let mut next = chunk(&budget);
        full.carry_partial(&mut next);
        assert_eq!(&full.buf[..full.len], b"err\none\ntwo\n");
        assert_eq!(full.segments.last().unwrap().end, full.len);
        assert_eq!(&next.buf[..next.len], b"thr");
        assert_eq!(next.segments[0].stream, Stream::Out);

        // A last segment without a newline (a long line) stays where it is.
        let mut long = chunk(&budget);
        fill(&mut long, Stream::Out, t, b"a\n");
        fill(&mut long, Stream::Err, t, b"no newline here");
        let mut next = chunk(&budget);
        long.carry_partial(&mut next);
        assert_eq!(long.len, 17);
        assert_eq!(next.len, 0);
    }

    /// An upgrade's log path in one process: capture paused with a partial line held,
    /// output written meanwhile waiting in the pipe, and a second sink (the next image's)
    /// seeded and reading the same pipe: the file has every line once, and whole.
    #[tokio::test]
    async fn a_paused_capture_hands_over_its_pipe_and_partial_line() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let manifest_path = dir.path().join("tend.toml");
        std::fs::write(&manifest_path, "[services.w]\ncommand = \"true\"\n").unwrap();
        let manifest = crate::config::load(&manifest_path).unwrap();
        let spec = &manifest.services[0];
        let sink = || {
            LogSink::start(
                dir.path().join("logs"),
                None,
                OwnLogTarget {
                    path: dir.path().join("tend.log"),
                    rotation: LogSpec::default(),
                    to_stderr: false,
                    redirect_std: false,
                },
            )
            .unwrap()
        };
        let file = dir.path().join("logs/w.out.log");
        let read = || std::fs::read_to_string(&file).unwrap_or_default();
        let old = sink();
        let (out_read, out_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let (err_read, _err_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let mut child = std::fs::File::from(out_write);
        old.capture(spec, 0, out_read, err_read);
        child.write_all(b"one\ntw").unwrap();
        reads(&file, "one\n").await;

        let paused = old.pause(Duration::from_secs(5)).await.expect("paused");
        assert_eq!(paused.pipes.len(), 1);
        assert_eq!(paused.logs[0].partial, [b"tw".to_vec(), Vec::new()]);
        assert_eq!(paused.logs[0].tail.len(), 1, "the tail: one\\n");
        child.write_all(b"o\nthree\n").unwrap();
        // Nothing reads now: the old writer keeps its partial line as it is.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(read(), "one\n");

        let new = sink();
        new.seed(spec, paused.logs[0].clone());
        let parked = paused.pipes.into_iter().next().unwrap();
        new.recapture(spec, 0, parked.stdout, parked.stderr);
        reads(&file, "one\ntwo\nthree\n").await;
        let log = new.instance("w:0").or_else(|| new.instance("w")).unwrap();
        assert_eq!(log.tail().len(), 3, "the tail goes on");
        assert_eq!(log.captured_bytes(Stream::Out), 14, "counted once");
        drop(old);
    }

    /// Wait (bounded) until `file` holds exactly `want`.
    async fn reads(file: &Path, want: &str) {
        for _ in 0..1000 {
            if std::fs::read_to_string(file).is_ok_and(|text| text == want) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{} never read {want:?}", file.display());
    }

    #[test]
    fn an_upgrade_hands_over_the_newest_lines_that_fit() {
        let line = |n: u8| tail::TailLine {
            time: SystemTime::UNIX_EPOCH,
            stream: Stream::Out,
            bytes: vec![n; 10],
        };
        let lines: Vec<_> = (1..=5).map(line).collect();
        let kept: Vec<u8> = newest(lines.clone(), 25)
            .iter()
            .map(|l| l.bytes[0])
            .collect();
        assert_eq!(kept, [4, 5]);
        assert_eq!(newest(lines.clone(), 1000), lines);
        assert!(newest(lines, 9).is_empty());
    }

    #[test]
    fn stems_and_paths() {
        assert_eq!(file_stem("web", 0, false), "web");
        assert_eq!(file_stem("web", 2, true), "web.2");
        assert_eq!(
            log_path(Path::new("/l"), "web.2", Stream::Err),
            PathBuf::from("/l/web.2.err.log")
        );
    }
}
