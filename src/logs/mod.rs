//! Capture of children's output: one reader task per pipe drains it without ever blocking the
//! child, and one writer thread appends to the per-instance files (and, in the foreground,
//! prints each line with a coloured instance prefix). Disk work never runs on the runtime.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};

/// Chunks queued between the readers and the writer thread. When the writer falls this far
/// behind, new output is counted as dropped instead of blocking the child.
const QUEUE_CHUNKS: usize = 1024;
const READ_CHUNK: usize = 64 * 1024;

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

struct Chunk {
    instance: Arc<str>,
    stem: Arc<str>,
    stream: Stream,
    bytes: Vec<u8>,
}

/// Handle to the log writer; cheap to clone.
#[derive(Clone)]
pub struct LogSink {
    queue: SyncSender<Chunk>,
    dropped: Arc<AtomicU64>,
    dropping: Arc<AtomicBool>,
}

impl LogSink {
    /// Start the writer thread for files under `dir`, echoing to the console when given.
    pub fn start(dir: PathBuf, console: Option<Console>) -> io::Result<LogSink> {
        std::fs::create_dir_all(&dir)?;
        let (queue, inbox) = mpsc::sync_channel::<Chunk>(QUEUE_CHUNKS);
        std::thread::Builder::new()
            .name("tend-logs".into())
            .spawn(move || {
                let mut writer = Writer::new(dir, console);
                for chunk in inbox {
                    writer.write(chunk);
                }
            })?;
        Ok(LogSink {
            queue,
            dropped: Arc::new(AtomicU64::new(0)),
            dropping: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Bytes that could not be queued because the writer was behind.
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Drain a child's stdout and stderr until both reach EOF (every writer, grandchildren
    /// included, has closed them). One task per instance serves both pipes.
    pub fn capture(&self, instance: &str, stem: &str, stdout: OwnedFd, stderr: OwnedFd) {
        let sink = self.clone();
        let instance: Arc<str> = instance.into();
        let stem: Arc<str> = stem.into();
        tokio::spawn(async move {
            use tokio::net::unix::pipe::Receiver;
            let mut out = Receiver::from_owned_fd(stdout).ok();
            let mut err = Receiver::from_owned_fd(stderr).ok();
            while out.is_some() || err.is_some() {
                let stream = tokio::select! {
                    ready = readable(&out) => if ready { Stream::Out } else { out = None; continue },
                    ready = readable(&err) => if ready { Stream::Err } else { err = None; continue },
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
                    Ok(Some(bytes)) => sink.send(Chunk {
                        instance: instance.clone(),
                        stem: stem.clone(),
                        stream,
                        bytes,
                    }),
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                        ) => {}
                    // EOF or a broken pipe: this stream is done.
                    Ok(None) | Err(_) => *pipe = None,
                }
            }
        });
    }

    fn send(&self, chunk: Chunk) {
        let len = chunk.bytes.len() as u64;
        let instance = chunk.instance.clone();
        match self.queue.try_send(chunk) {
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

struct Writer {
    dir: PathBuf,
    files: HashMap<(Arc<str>, Stream), Option<File>>,
    console: Option<ConsolePrinter>,
}

impl Writer {
    fn new(dir: PathBuf, console: Option<Console>) -> Writer {
        Writer {
            dir,
            files: HashMap::new(),
            console: console.map(ConsolePrinter::new),
        }
    }

    fn write(&mut self, chunk: Chunk) {
        let dir = &self.dir;
        let file = self
            .files
            .entry((chunk.stem.clone(), chunk.stream))
            .or_insert_with(|| {
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log_path(dir, &chunk.stem, chunk.stream))
                    .ok()
            });
        if let Some(f) = file {
            if f.write_all(&chunk.bytes).is_err() {
                // Reopen on the next chunk: the directory may have been recreated.
                *file = None;
            }
        } else {
            *file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(log_path(dir, &chunk.stem, chunk.stream))
                .ok();
            if let Some(f) = file {
                let _ = f.write_all(&chunk.bytes);
            }
        }
        if let Some(console) = &mut self.console {
            console.print(&chunk.instance, chunk.stream, &chunk.bytes);
        }
    }
}

struct ConsolePrinter {
    colour: bool,
    width: usize,
    colours: HashMap<String, &'static str>,
    partial: HashMap<(Arc<str>, Stream), Vec<u8>>,
    out: io::Stdout,
}

const PALETTE: [&str; 6] = ["36", "33", "32", "35", "34", "31"];

impl ConsolePrinter {
    fn new(console: Console) -> ConsolePrinter {
        let width = console.names.iter().map(|n| n.len()).max().unwrap_or(0);
        // Colours by position in the manifest: stable across runs and distinct for neighbours.
        let colours = console
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), PALETTE[i % PALETTE.len()]))
            .collect();
        ConsolePrinter {
            colour: console.colour,
            width,
            colours,
            partial: HashMap::new(),
            out: io::stdout(),
        }
    }

    fn print(&mut self, instance: &Arc<str>, stream: Stream, bytes: &[u8]) {
        let buffer = self.partial.entry((instance.clone(), stream)).or_default();
        buffer.extend_from_slice(bytes);
        let Some(last_newline) = buffer.iter().rposition(|b| *b == b'\n') else {
            // Hold a partial line, but never without bound.
            if buffer.len() < READ_CHUNK {
                return;
            }
            let line = std::mem::take(buffer);
            let prefix = self.prefix(instance);
            let mut out = self.out.lock();
            let _ = out.write_all(prefix.as_bytes());
            let _ = out.write_all(&line);
            let _ = out.write_all(b"\n");
            return;
        };
        let complete: Vec<u8> = buffer.drain(..=last_newline).collect();
        let prefix = self.prefix(instance);
        let mut out = self.out.lock();
        for line in complete.split_inclusive(|b| *b == b'\n') {
            let _ = out.write_all(prefix.as_bytes());
            let _ = out.write_all(line);
        }
        let _ = out.flush();
    }

    fn prefix(&self, instance: &str) -> String {
        let padded = format!("{instance:<width$}", width = self.width);
        match (self.colour, self.colours.get(instance)) {
            (true, Some(code)) => format!("\x1b[{code}m{padded} |\x1b[0m "),
            _ => format!("{padded} | "),
        }
    }
}

/// The last `lines` lines of a log file (all of it when shorter), reading only its tail.
pub fn tail(path: &Path, lines: usize) -> io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut start = len;
    let mut block = 64 * 1024u64;
    loop {
        start = start.saturating_sub(block);
        file.seek(SeekFrom::Start(start))?;
        let mut data = Vec::new();
        Read::by_ref(&mut file)
            .take(len - start)
            .read_to_end(&mut data)?;
        // One more newline than lines wanted, ignoring a trailing one.
        let body = data.strip_suffix(b"\n").unwrap_or(&data);
        let newlines = body.iter().filter(|b| **b == b'\n').count();
        if newlines >= lines || start == 0 {
            if lines == 0 {
                return Ok(Vec::new());
            }
            let mut count = 0;
            let cut = body.iter().rposition(|b| {
                if *b == b'\n' {
                    count += 1;
                }
                count == lines
            });
            let from = match cut {
                Some(i) if newlines >= lines => i + 1,
                _ => 0,
            };
            return Ok(data[from..].to_vec());
        }
        block *= 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_returns_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let body: String = (0..10_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, &body).unwrap();
        assert_eq!(tail(&path, 2).unwrap(), b"line 9998\nline 9999\n");
        assert_eq!(tail(&path, 0).unwrap(), b"");
        assert_eq!(tail(&path, 20_000).unwrap().len(), body.len());
        std::fs::write(&path, "a\nb").unwrap();
        assert_eq!(tail(&path, 1).unwrap(), b"b");
        assert_eq!(tail(&path, 5).unwrap(), b"a\nb");
    }

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
