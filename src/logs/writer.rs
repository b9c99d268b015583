//! The log writer thread: the only code that touches log files. Per instance it splits each
//! stream into lines, keeps the in-memory tail, feeds followers, formats (timestamps, JSON)
//! and appends to rotating files or tend's own stdout/stderr. A failing disk never stops it:
//! the bytes it could not write are counted, reported once, and writing resumes when the disk
//! does.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use crate::config::model::{LogFormat, LogSpec, LogTarget};
use crate::logs::line::{LineFormat, LineSplitter, TimestampFormat, format_line};
use crate::logs::rotate::{RotatingFile, RotationPolicy};
use crate::logs::{Console, InstanceLog, LogLine, Message, Stream, log_path};

/// A partial line (no newline yet) is written out after this long without more output.
const IDLE_FLUSH: Duration = Duration::from_millis(500);
/// After a write fails, wait this long before trying the disk again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

pub struct Writer {
    dir: PathBuf,
    channels: HashMap<Arc<str>, Channel>,
    console: Option<ConsolePrinter>,
    /// Reused for every formatted chunk.
    out: Vec<u8>,
}

/// Where one stream's formatted lines go.
enum Sink {
    File(Box<FileSink>),
    Inherit(Stream),
    Null,
}

struct FileSink {
    path: PathBuf,
    policy: RotationPolicy,
    file: Option<RotatingFile>,
    /// Bytes lost since the disk last worked; reported once when it starts failing and once
    /// when it recovers.
    lost: u64,
    retry_at: Option<Instant>,
}

struct Channel {
    log: Arc<InstanceLog>,
    splitters: [LineSplitter; 2],
    /// stdout's sink, and stderr's (None: merged into stdout's).
    sinks: [Sink; 2],
    format: LineFormat,
    dirty: bool,
}

fn index(stream: Stream) -> usize {
    match stream {
        Stream::Out => 0,
        Stream::Err => 1,
    }
}

impl Writer {
    pub fn new(dir: PathBuf, console: Option<Console>) -> Writer {
        Writer {
            dir,
            channels: HashMap::new(),
            console: console.map(ConsolePrinter::new),
            out: Vec::with_capacity(128 * 1024),
        }
    }

    pub fn run(mut self, inbox: Receiver<Message>) {
        loop {
            // Block without a timeout unless something is waiting for time to pass: a partial
            // line to flush, a disk to retry, a file to rotate by age.
            let message = match self.next_deadline() {
                None => match inbox.recv() {
                    Ok(message) => Some(message),
                    Err(_) => break,
                },
                Some(deadline) => {
                    match inbox.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                        Ok(message) => Some(message),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            match message {
                Some(message) => self.handle(message),
                None => self.on_timer(),
            }
            // Flush buffered file data whenever the queue runs dry, so files are current for
            // anyone reading them.
            match inbox.try_recv() {
                Ok(message) => self.handle(message),
                Err(_) => self.flush_files(),
            }
        }
        self.flush_partials();
        self.flush_files();
    }

    fn handle(&mut self, message: Message) {
        match message {
            Message::Chunk {
                log,
                stream,
                time,
                bytes,
            } => self.chunk(&log, stream, time, &bytes, false),
            Message::Closed { log, stream } => {
                self.chunk(&log, stream, SystemTime::now(), &[], true)
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut deadline: Option<Instant> = None;
        let mut consider = |at: Instant| deadline = Some(deadline.map_or(at, |d| d.min(at)));
        for channel in self.channels.values() {
            if channel.splitters.iter().any(LineSplitter::has_partial) {
                consider(Instant::now() + IDLE_FLUSH);
            }
            for sink in &channel.sinks {
                if let Sink::File(file) = sink {
                    if let Some(at) = file.retry_at {
                        consider(at);
                    }
                    if let Some(every) = file.policy.rotate_every {
                        // Age rotation of an idle file: check once a second at most.
                        consider(
                            Instant::now()
                                + every
                                    .min(Duration::from_secs(1))
                                    .max(Duration::from_millis(200)),
                        );
                    }
                }
            }
        }
        deadline
    }

    fn on_timer(&mut self) {
        self.flush_partials();
        let now = SystemTime::now();
        for channel in self.channels.values_mut() {
            for sink in &mut channel.sinks {
                if let Sink::File(file) = sink {
                    if let Some(rotating) = &mut file.file {
                        let _ = rotating.rotate_if_due(now);
                    }
                    if file.retry_at.is_some_and(|at| Instant::now() >= at) && file.lost > 0 {
                        // Nothing new to write; the next chunk will try the disk again.
                        file.retry_at = None;
                    }
                }
            }
        }
    }

    fn flush_partials(&mut self) {
        let names: Vec<Arc<str>> = self
            .channels
            .iter()
            .filter(|(_, c)| c.splitters.iter().any(LineSplitter::has_partial))
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            let log = self.channels[&name].log.clone();
            for stream in [Stream::Out, Stream::Err] {
                if self.channels[&name].splitters[index(stream)].has_partial() {
                    self.chunk(&log, stream, SystemTime::now(), &[], true);
                }
            }
        }
    }

    fn flush_files(&mut self) {
        for channel in self.channels.values_mut() {
            if !channel.dirty {
                continue;
            }
            channel.dirty = false;
            for sink in &mut channel.sinks {
                match sink {
                    Sink::File(sink) => {
                        if let Some(file) = &mut sink.file {
                            let _ = file.flush();
                        }
                    }
                    Sink::Inherit(Stream::Out) => {
                        let _ = io::stdout().flush();
                    }
                    _ => {}
                }
            }
        }
    }

    /// Handle `bytes` read from one stream at `time`; `flush` also writes out a partial line.
    fn chunk(
        &mut self,
        log: &Arc<InstanceLog>,
        stream: Stream,
        time: SystemTime,
        bytes: &[u8],
        flush: bool,
    ) {
        let dir = self.dir.clone();
        let channel = self
            .channels
            .entry(log.name.clone())
            .or_insert_with(|| Channel::new(log, &dir, time));
        self.out.clear();
        let out = &mut self.out;
        let format = &channel.format;
        let log = &channel.log;
        let following = log.follow.receiver_count() > 0;
        let mut console_lines: Vec<u8> = Vec::new();
        let echo =
            self.console.is_some() && !matches!(channel.sinks[index(stream)], Sink::Inherit(_));
        {
            let mut tail = log.tail();
            let mut emit = |line: &[u8]| {
                tail.push(time, stream, line);
                if following {
                    let _ = log.follow.send(LogLine {
                        time,
                        instance: log.name.clone(),
                        stream,
                        bytes: line.to_vec(),
                    });
                }
                format_line(
                    out,
                    format,
                    time,
                    &log.service,
                    log.index,
                    stream.name(),
                    line,
                );
                if echo {
                    console_lines.extend_from_slice(line);
                }
            };
            let splitter = &mut channel.splitters[index(stream)];
            splitter.feed(bytes, &mut emit);
            if flush {
                splitter.flush(&mut emit);
            }
        }
        if !self.out.is_empty() {
            let target = if channel.log.spec.merge {
                0
            } else {
                index(stream)
            };
            write_to(
                &mut channel.sinks[target],
                &channel.log.name,
                &self.out,
                time,
            );
            channel.dirty = true;
        }
        if let (Some(console), false) = (&mut self.console, console_lines.is_empty()) {
            console.print(&channel.log.name, &console_lines);
        }
    }
}

impl Channel {
    fn new(log: &Arc<InstanceLog>, dir: &std::path::Path, now: SystemTime) -> Channel {
        let spec = &log.spec;
        let sink = |stream: Stream, target: &LogTarget| match target {
            LogTarget::Null => Sink::Null,
            LogTarget::Inherit => Sink::Inherit(stream),
            LogTarget::File(path) => {
                let path = path
                    .clone()
                    .unwrap_or_else(|| log_path(dir, &log.stem, stream));
                let policy = policy(spec);
                let file = open(&path, policy, now, &log.name);
                Sink::File(Box::new(FileSink {
                    path,
                    policy,
                    file,
                    lost: 0,
                    retry_at: None,
                }))
            }
        };
        let stdout = sink(Stream::Out, &spec.stdout);
        let stderr = if spec.merge {
            Sink::Null
        } else {
            sink(Stream::Err, &spec.stderr)
        };
        let format = match (spec.format, spec.timestamps) {
            (LogFormat::Json, _) => LineFormat::Json,
            (LogFormat::Plain, false) => LineFormat::Plain,
            (LogFormat::Plain, true) => LineFormat::Timestamped(
                spec.timestamp_format
                    .as_deref()
                    .and_then(|p| TimestampFormat::parse(p).ok())
                    .unwrap_or(TimestampFormat::Rfc3339Millis),
            ),
        };
        Channel {
            log: log.clone(),
            splitters: [
                LineSplitter::new(spec.max_line),
                LineSplitter::new(spec.max_line),
            ],
            sinks: [stdout, stderr],
            format,
            dirty: false,
        }
    }
}

fn policy(spec: &LogSpec) -> RotationPolicy {
    RotationPolicy {
        max_size: spec.max_size,
        rotate_every: spec.rotate_every,
        backups: spec.backups,
        compress: spec.compress,
    }
}

fn open(
    path: &std::path::Path,
    policy: RotationPolicy,
    now: SystemTime,
    instance: &str,
) -> Option<RotatingFile> {
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    match RotatingFile::open(path.to_path_buf(), policy, now) {
        Ok(file) => Some(file),
        Err(e) => {
            crate::daemon::say(&format!(
                "{instance}: cannot open {}: {e}; output is kept in memory only until it can",
                path.display()
            ));
            None
        }
    }
}

fn write_to(sink: &mut Sink, instance: &str, data: &[u8], time: SystemTime) {
    match sink {
        Sink::Null => {}
        Sink::Inherit(Stream::Out) => {
            let _ = io::stdout().write_all(data);
        }
        Sink::Inherit(Stream::Err) => {
            let _ = io::stderr().write_all(data);
        }
        Sink::File(file) => {
            if file.retry_at.is_some_and(|at| Instant::now() < at) {
                file.lost += data.len() as u64;
                return;
            }
            if file.file.is_none() {
                // A deleted log directory comes back; one replaced by a file keeps failing.
                if let Some(parent) = file.path.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                file.file = RotatingFile::open(file.path.clone(), file.policy, time).ok();
            }
            let result = match &mut file.file {
                Some(rotating) => write_bounded(rotating, file.policy.max_size, data, time),
                None => Err(io::Error::other("cannot open the file")),
            };
            match result {
                Ok(()) => {
                    if file.lost > 0 {
                        crate::daemon::say(&format!(
                            "{instance}: writing {} again; {} bytes of output could not be written meanwhile",
                            file.path.display(),
                            file.lost
                        ));
                        file.lost = 0;
                    }
                    file.retry_at = None;
                }
                Err(e) => {
                    if file.lost == 0 {
                        crate::daemon::say(&format!(
                            "{instance}: cannot write {}: {e}; counting lost output until the disk recovers",
                            file.path.display()
                        ));
                    }
                    file.lost += data.len() as u64;
                    file.retry_at = Some(Instant::now() + RETRY_AFTER);
                    // Reopen on the next try: the directory may come back, or the file be replaced.
                    file.file = None;
                }
            }
        }
    }
}

/// Write `data` (whole lines) so that no file grows past `max` unless a single line is larger:
/// cut it at the last line that still fits, and let the next piece start a fresh file.
fn write_bounded(
    file: &mut RotatingFile,
    max: Option<u64>,
    mut data: &[u8],
    time: SystemTime,
) -> io::Result<()> {
    let Some(max) = max else {
        return file.write(data, time);
    };
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    while !data.is_empty() {
        let room = max.saturating_sub(usize::try_from(file.len()).unwrap_or(usize::MAX));
        let fits =
            |limit: usize| memchr::memrchr(b'\n', &data[..limit.min(data.len())]).map(|i| i + 1);
        let cut = if data.len() <= room {
            data.len()
        } else if let Some(cut) = fits(room) {
            cut
        } else if let Some(cut) = fits(max) {
            // Nothing fits in what is left: this piece goes to a fresh file.
            cut
        } else {
            // One line longer than a whole file: it goes whole into a file of its own.
            memchr::memchr(b'\n', data).map_or(data.len(), |i| i + 1)
        };
        file.write(&data[..cut], time)?;
        data = &data[cut..];
    }
    Ok(())
}

struct ConsolePrinter {
    colour: bool,
    width: usize,
    colours: HashMap<String, &'static str>,
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
            out: io::stdout(),
        }
    }

    /// Print complete lines (each ends in a newline), each with the instance's prefix.
    fn print(&mut self, instance: &str, lines: &[u8]) {
        let padded = format!("{instance:<width$}", width = self.width);
        let prefix = match (self.colour, self.colours.get(instance)) {
            (true, Some(code)) => format!("\x1b[{code}m{padded} |\x1b[0m "),
            _ => format!("{padded} | "),
        };
        let mut out = self.out.lock();
        for line in lines.split_inclusive(|b| *b == b'\n') {
            let _ = out.write_all(prefix.as_bytes());
            let _ = out.write_all(line);
        }
        let _ = out.flush();
    }
}
