//! supervisord's event listener protocol, without I/O: event types and subscriptions,
//! payloads and envelopes byte for byte as supervisord writes them, the parser for what a
//! listener writes on its stdout (`PEventListenerDispatcher` in supervisord's
//! `dispatchers.py`) and a pool's event buffer (`EventListenerPool` in `process.py`).
//!
//! How the pieces fit (the caller owns pipes, processes and timers):
//!
//! 1. Something happens: build an [`Event`] and [`publish`] it to the pools. Every pool
//!    whose [`Subscription`] matches buffers it as a [`PendingEvent`]; a full buffer
//!    drops its oldest event (returned, so it can be logged).
//! 2. Whenever a listener may have become available (an event was buffered, a listener
//!    said `READY`, a listener process reached RUNNING), loop on
//!    [`EventPool::next_dispatch`]: write [`PendingEvent::envelope`] to the chosen
//!    listener's stdin and call [`ListenerChannel::dispatched`].
//! 3. Feed every chunk read from a listener's stdout to its [`ListenerChannel::feed`].
//!    supervisord also writes every one of those bytes, protocol tokens included, to the
//!    listener's stdout log when it has one; do the same with the chunk. A result that is
//!    not `OK`, or a protocol error while BUSY, hands the event back: give it to
//!    [`EventPool::rebuffer`].
//! 4. When a listener process exits, feed what is left in its pipe, then call
//!    [`ListenerChannel::exited`] and rebuffer the event it returns, if any.

use std::collections::VecDeque;
use std::sync::Arc;

pub use crate::config::events::{
    EventKind, EventType, ProcState, Subscription, parse_subscription,
};

// ---------------------------------------------------------------------------------------
// Events and payloads
// ---------------------------------------------------------------------------------------

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    Stdout,
    Stderr,
}

impl Channel {
    pub fn name(self) -> &'static str {
        match self {
            Channel::Stdout => "stdout",
            Channel::Stderr => "stderr",
        }
    }
}

/// The TICK periods, in seconds.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum TickPeriod {
    S5,
    S60,
    S3600,
}

impl TickPeriod {
    pub const ALL: [TickPeriod; 3] = [TickPeriod::S5, TickPeriod::S60, TickPeriod::S3600];

    pub fn seconds(self) -> u64 {
        match self {
            TickPeriod::S5 => 5,
            TickPeriod::S60 => 60,
            TickPeriod::S3600 => 3600,
        }
    }
}

/// One event with the data its payload is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A process moved from `from` to `to`. Which of `tries`, `expected` and `pid` are
    /// sent depends on `to` (see [`Event::payload`]); supervisord renders them when the
    /// event is created, so pass the values current at the transition: `tries` is the
    /// backoff count, `pid` the process's pid (0 when it has none).
    ProcessState {
        to: ProcState,
        from: ProcState,
        process: String,
        group: String,
        tries: u32,
        expected: bool,
        pid: u32,
    },
    /// Output of a process with `stdout_events_enabled`/`stderr_events_enabled`.
    ProcessLog {
        channel: Channel,
        process: String,
        group: String,
        pid: u32,
        data: Vec<u8>,
    },
    /// What a process in capture mode printed between the XSUPERVISOR tokens.
    ProcessCommunication {
        channel: Channel,
        process: String,
        group: String,
        pid: u32,
        data: Vec<u8>,
    },
    /// `supervisor.sendRemoteCommEvent(type, data)`.
    RemoteCommunication {
        kind: String,
        data: String,
    },
    SupervisorRunning,
    SupervisorStopping,
    /// `when` is the start of the period that just began, in epoch seconds.
    Tick {
        period: TickPeriod,
        when: u64,
    },
    ProcessGroupAdded {
        group: String,
    },
    ProcessGroupRemoved {
        group: String,
    },
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::ProcessState { to, .. } => EventKind::ProcessState { state: *to },
            Event::ProcessLog {
                channel: Channel::Stdout,
                ..
            } => EventKind::ProcessLogStdout,
            Event::ProcessLog {
                channel: Channel::Stderr,
                ..
            } => EventKind::ProcessLogStderr,
            Event::ProcessCommunication {
                channel: Channel::Stdout,
                ..
            } => EventKind::ProcessCommunicationStdout,
            Event::ProcessCommunication {
                channel: Channel::Stderr,
                ..
            } => EventKind::ProcessCommunicationStderr,
            Event::RemoteCommunication { .. } => EventKind::RemoteCommunication,
            Event::SupervisorRunning => EventKind::SupervisorStateChangeRunning,
            Event::SupervisorStopping => EventKind::SupervisorStateChangeStopping,
            Event::Tick {
                period: TickPeriod::S5,
                ..
            } => EventKind::Tick5,
            Event::Tick {
                period: TickPeriod::S60,
                ..
            } => EventKind::Tick60,
            Event::Tick {
                period: TickPeriod::S3600,
                ..
            } => EventKind::Tick3600,
            Event::ProcessGroupAdded { .. } => EventKind::ProcessGroupAdded,
            Event::ProcessGroupRemoved { .. } => EventKind::ProcessGroupRemoved,
        }
    }

    /// The payload exactly as supervisord's `events.py` formats it:
    ///
    /// - `PROCESS_STATE_*`: `processname:P groupname:G from_state:S`, then ` tries:N` for
    ///   STARTING and BACKOFF, ` expected:0|1 pid:N` for EXITED, ` pid:N` for RUNNING,
    ///   STOPPING and STOPPED, nothing for FATAL and UNKNOWN. No newline at the end.
    /// - `PROCESS_LOG_*`: `processname:P groupname:G pid:N channel:stdout\n` + data.
    /// - `PROCESS_COMMUNICATION_*`: `processname:P groupname:G pid:N\n` + data.
    /// - `REMOTE_COMMUNICATION`: `type:T\n` + data.
    /// - `SUPERVISOR_STATE_CHANGE_*`: empty.
    /// - `TICK_*`: `when:EPOCH`, no newline.
    /// - `PROCESS_GROUP_*`: `groupname:G\n` (with the newline).
    ///
    /// Output data goes out as the raw bytes (see [`supervisor4_data`] for what
    /// supervisord 4 does with bytes that are not UTF-8).
    pub fn payload(&self) -> Vec<u8> {
        match self {
            Event::ProcessState {
                to,
                from,
                process,
                group,
                tries,
                expected,
                pid,
            } => {
                let mut s = format!(
                    "processname:{process} groupname:{group} from_state:{}",
                    from.name()
                );
                match to {
                    ProcState::Starting | ProcState::Backoff => s += &format!(" tries:{tries}"),
                    ProcState::Exited => {
                        s += &format!(" expected:{} pid:{pid}", u8::from(*expected))
                    }
                    ProcState::Running | ProcState::Stopping | ProcState::Stopped => {
                        s += &format!(" pid:{pid}")
                    }
                    ProcState::Fatal | ProcState::Unknown => {}
                }
                s.into_bytes()
            }
            Event::ProcessLog {
                channel,
                process,
                group,
                pid,
                data,
            } => {
                let mut v = format!(
                    "processname:{process} groupname:{group} pid:{pid} channel:{}\n",
                    channel.name()
                )
                .into_bytes();
                v.extend_from_slice(data);
                v
            }
            Event::ProcessCommunication {
                process,
                group,
                pid,
                data,
                ..
            } => {
                let mut v =
                    format!("processname:{process} groupname:{group} pid:{pid}\n").into_bytes();
                v.extend_from_slice(data);
                v
            }
            Event::RemoteCommunication { kind, data } => {
                format!("type:{kind}\n{data}").into_bytes()
            }
            Event::SupervisorRunning | Event::SupervisorStopping => Vec::new(),
            Event::Tick { when, .. } => format!("when:{when}").into_bytes(),
            Event::ProcessGroupAdded { group } | Event::ProcessGroupRemoved { group } => {
                format!("groupname:{group}\n").into_bytes()
            }
        }
    }
}

/// What supervisord 4 (Python 3) puts in a PROCESS_LOG / PROCESS_COMMUNICATION payload
/// for output data: the data itself when it is valid UTF-8, otherwise
/// `Undecodable: b'...'` (Python's `repr` of the bytes). Use it together with
/// [`LenUnit::Chars`] for listeners that read their stdin as text.
pub fn supervisor4_data(data: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if std::str::from_utf8(data).is_ok() {
        return std::borrow::Cow::Borrowed(data);
    }
    let mut out = b"Undecodable: ".to_vec();
    python_bytes_repr(&mut out, data);
    std::borrow::Cow::Owned(out)
}

/// Python's `repr(bytes)`.
fn python_bytes_repr(out: &mut Vec<u8>, data: &[u8]) {
    let quote = if data.contains(&b'\'') && !data.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    out.push(b'b');
    out.push(quote);
    for &b in data {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b if b == quote => out.extend_from_slice(&[b'\\', b]),
            0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
        }
    }
    out.push(quote);
}

/// Emits the TICK events the way supervisord's main loop does: the first call only
/// records the current period of each kind; later calls emit one event for each period
/// whose slice (`now - now % period`) changed, carrying the new slice's start.
#[derive(Clone, Debug, Default)]
pub struct TickClock {
    last: [Option<u64>; 3],
}

impl TickClock {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn tick(&mut self, now_secs: u64) -> Vec<Event> {
        let mut out = Vec::new();
        for (i, period) in TickPeriod::ALL.into_iter().enumerate() {
            let slice = now_secs - now_secs % period.seconds();
            let last = *self.last[i].get_or_insert(slice);
            if slice != last {
                self.last[i] = Some(slice);
                out.push(Event::Tick {
                    period,
                    when: slice,
                });
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// Envelope
// ---------------------------------------------------------------------------------------

/// What `len:` counts. supervisord's documentation says bytes, and supervisord 3 (Python
/// 2) sent bytes; supervisord 4 on Python 3 computes `len()` of a `str`, so it sends the
/// number of characters (open upstream issue #1243). They differ only for non-ASCII
/// payloads.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum LenUnit {
    #[default]
    Bytes,
    /// Unicode scalar values of the payload decoded as UTF-8 (invalid sequences count as
    /// one U+FFFD each).
    Chars,
}

/// The header line and payload supervisord writes to a listener's stdin:
/// `ver:3.0 server:S serial:N pool:P poolserial:N eventname:E len:N\n` + payload, with
/// `len` in bytes.
pub fn envelope(
    server: &str,
    serial: u64,
    pool: &str,
    pool_serial: u64,
    event_name: &str,
    payload: &[u8],
) -> Vec<u8> {
    envelope_in(
        LenUnit::Bytes,
        server,
        serial,
        pool,
        pool_serial,
        event_name,
        payload,
    )
}

/// [`envelope`] with `len` counted in `unit`.
pub fn envelope_in(
    unit: LenUnit,
    server: &str,
    serial: u64,
    pool: &str,
    pool_serial: u64,
    event_name: &str,
    payload: &[u8],
) -> Vec<u8> {
    let len = match unit {
        LenUnit::Bytes => payload.len(),
        LenUnit::Chars => String::from_utf8_lossy(payload).chars().count(),
    };
    let mut out = format!(
        "ver:3.0 server:{server} serial:{serial} pool:{pool} poolserial:{pool_serial} eventname:{event_name} len:{len}\n"
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

// ---------------------------------------------------------------------------------------
// The listener's side of the conversation
// ---------------------------------------------------------------------------------------

/// supervisord's `EventListenerStates`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ListenerState {
    /// Waiting for `READY\n`. Where every listener starts, and where it goes after a
    /// result.
    Acknowledged,
    /// May be sent an event.
    Ready,
    /// Has been sent an event; waiting for `RESULT <len>\n` and the result.
    Busy,
    /// Broke the protocol; gets no more events until its process is restarted.
    Unknown,
}

impl ListenerState {
    pub fn name(self) -> &'static str {
        match self {
            ListenerState::Acknowledged => "ACKNOWLEDGED",
            ListenerState::Ready => "READY",
            ListenerState::Busy => "BUSY",
            ListenerState::Unknown => "UNKNOWN",
        }
    }

    pub fn code(self) -> i32 {
        match self {
            ListenerState::Ready => 10,
            ListenerState::Busy => 20,
            ListenerState::Acknowledged => 30,
            ListenerState::Unknown => 40,
        }
    }
}

/// What [`ListenerChannel::feed`] saw. `E` is whatever the caller dispatched (normally a
/// [`PendingEvent`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenerOutput<E> {
    /// `READY\n` arrived: ACKNOWLEDGED → READY. Try dispatching.
    Ready,
    /// A whole result arrived: BUSY → ACKNOWLEDGED. `ok` is the verdict of supervisord's
    /// default result handler (the body is exactly `OK`). When `ok` is false the event was
    /// rejected and must be rebuffered at the head of its pool.
    Result {
        ok: bool,
        body: Vec<u8>,
        event: Option<E>,
    },
    /// The listener broke the protocol and is now UNKNOWN. If it was BUSY, `event` is the
    /// event it was processing, to rebuffer.
    ProtocolError {
        from: ListenerState,
        message: String,
        event: Option<E>,
    },
}

const READY_TOKEN: &[u8] = b"READY\n";
/// supervisord skips this many bytes (`RESULT `) of the result line without looking.
const RESULT_TOKEN_LEN: usize = 7;
/// A result line this long without a newline is a protocol error (supervisord would
/// buffer without bound).
const MAX_RESULT_LINE: usize = 128;

/// The state machine for one listener process's stdout.
#[derive(Clone, Debug)]
pub struct ListenerChannel<E> {
    state: ListenerState,
    buf: Vec<u8>,
    result_len: Option<usize>,
    result: Vec<u8>,
    event: Option<E>,
    max_result_len: usize,
}

impl<E> Default for ListenerChannel<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> ListenerChannel<E> {
    /// Results longer than this are a protocol error unless
    /// [`with_max_result_len`](Self::with_max_result_len) says otherwise.
    pub const DEFAULT_MAX_RESULT_LEN: usize = 1 << 20;

    /// A fresh listener: ACKNOWLEDGED, as supervisord starts every listener process.
    pub fn new() -> Self {
        Self::with_max_result_len(Self::DEFAULT_MAX_RESULT_LEN)
    }

    pub fn with_max_result_len(max_result_len: usize) -> Self {
        ListenerChannel {
            state: ListenerState::Acknowledged,
            buf: Vec::new(),
            result_len: None,
            result: Vec::new(),
            event: None,
            max_result_len,
        }
    }

    pub fn state(&self) -> ListenerState {
        self.state
    }

    /// The event being processed (BUSY only).
    pub fn event(&self) -> Option<&E> {
        self.event.as_ref()
    }

    /// The envelope for `event` has been written to the listener's stdin: READY → BUSY.
    /// Refused (the event handed back) unless READY.
    pub fn dispatched(&mut self, event: E) -> Result<(), E> {
        if self.state != ListenerState::Ready {
            return Err(event);
        }
        self.state = ListenerState::Busy;
        self.event = Some(event);
        self.result_len = None;
        self.result.clear();
        Ok(())
    }

    /// The listener process is gone (reaped). Feed whatever was still in its stdout pipe
    /// first, as supervisord drains before it handles the exit. Returns the event it was
    /// processing, if it died BUSY, to rebuffer; the channel is reset to a fresh
    /// ACKNOWLEDGED one for the next process.
    pub fn exited(&mut self) -> Option<E> {
        let event = self.event.take();
        *self = Self::with_max_result_len(self.max_result_len);
        event
    }

    /// Feeds bytes read from the listener's stdout. Follows supervisord's
    /// `handle_listener_state_change`:
    ///
    /// - ACKNOWLEDGED: waits for 6 bytes; `READY\n` → READY, anything else → UNKNOWN.
    /// - READY: any byte at all → UNKNOWN (even a second `READY\n`).
    /// - BUSY: a line, of which the first 7 bytes (meant to be `RESULT `) are skipped and
    ///   the rest must be an integer as Python's `int()` reads it (surrounding ASCII
    ///   whitespace allowed, so `RESULT 2\r\n` works); then exactly that many bytes of
    ///   result → ACKNOWLEDGED. A bad line → UNKNOWN and the event is handed back.
    /// - UNKNOWN: everything is discarded.
    ///
    /// Bytes left after a transition are handled in the new state, so one chunk may hold
    /// `RESULT 2\nOKREADY\n`.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<ListenerOutput<E>> {
        let mut out = Vec::new();
        if self.state == ListenerState::Unknown || bytes.is_empty() {
            return out;
        }
        self.buf.extend_from_slice(bytes);
        loop {
            match self.state {
                ListenerState::Unknown => {
                    self.buf.clear();
                    return out;
                }
                ListenerState::Acknowledged => {
                    if self.buf.len() < READY_TOKEN.len() {
                        return out;
                    }
                    if !self.buf.starts_with(READY_TOKEN) {
                        let msg = format!("expected READY\\n, got {}", show(&self.buf));
                        out.push(self.protocol_error(msg));
                        return out;
                    }
                    self.buf.drain(..READY_TOKEN.len());
                    self.state = ListenerState::Ready;
                    out.push(ListenerOutput::Ready);
                }
                ListenerState::Ready => {
                    if self.buf.is_empty() {
                        return out;
                    }
                    let msg = format!("unexpected output while READY: {}", show(&self.buf));
                    out.push(self.protocol_error(msg));
                    return out;
                }
                ListenerState::Busy => match self.result_len {
                    None => {
                        let Some(nl) = self.buf.iter().position(|&b| b == b'\n') else {
                            if self.buf.len() > MAX_RESULT_LINE {
                                let msg =
                                    format!("bad result line: {} (no newline)", show(&self.buf));
                                out.push(self.protocol_error(msg));
                            }
                            return out;
                        };
                        let line: Vec<u8> = self.buf.drain(..=nl).collect();
                        let line = &line[..nl];
                        match python_int(line.get(RESULT_TOKEN_LEN..).unwrap_or_default()) {
                            Some(n) if n <= self.max_result_len => {
                                self.result_len = Some(n);
                                self.result.clear();
                            }
                            parsed => {
                                let why = if parsed.is_some() { " (too long)" } else { "" };
                                let msg = format!("bad result line: {}{why}", show(line));
                                out.push(self.protocol_error(msg));
                                return out;
                            }
                        }
                    }
                    Some(n) => {
                        let take = (n - self.result.len()).min(self.buf.len());
                        self.result.extend(self.buf.drain(..take));
                        if self.result.len() < n {
                            return out;
                        }
                        let body = std::mem::take(&mut self.result);
                        self.result_len = None;
                        self.state = ListenerState::Acknowledged;
                        out.push(ListenerOutput::Result {
                            ok: body == b"OK",
                            body,
                            event: self.event.take(),
                        });
                    }
                },
            }
        }
    }

    fn protocol_error(&mut self, message: String) -> ListenerOutput<E> {
        let from = self.state;
        self.state = ListenerState::Unknown;
        self.buf.clear();
        self.result.clear();
        self.result_len = None;
        ListenerOutput::ProtocolError {
            from,
            message,
            event: self.event.take(),
        }
    }
}

/// Python's `int(b)` for a non-negative result: ASCII whitespace around, an optional
/// sign, decimal digits with single underscores between them. Negative numbers are
/// refused (supervisord would wait forever for a negative amount of result).
fn python_int(b: &[u8]) -> Option<usize> {
    let s = std::str::from_utf8(b).ok()?;
    let s = s.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c'));
    let (neg, digits) = match s.as_bytes().first()? {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    if !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        return None;
    }
    let n: usize = digits.replace('_', "").parse().ok()?;
    if neg && n != 0 { None } else { Some(n) }
}

/// Bytes for a log message: printable ASCII as is, the rest escaped, at most 60 shown.
fn show(b: &[u8]) -> String {
    let shown: String = b
        .iter()
        .take(60)
        .flat_map(|&c| std::ascii::escape_default(c))
        .map(char::from)
        .collect();
    if b.len() > 60 {
        format!("'{shown}'...")
    } else {
        format!("'{shown}'")
    }
}

// ---------------------------------------------------------------------------------------
// Pools
// ---------------------------------------------------------------------------------------

/// supervisord's serial counters: 0, 1, 2, … wrapping to 0 after `i64::MAX` (Python's
/// `sys.maxsize`). One global counter numbers events; each pool numbers its own.
#[derive(Clone, Debug, Default)]
pub struct SerialCounter {
    next: u64,
}

impl SerialCounter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn next_serial(&mut self) -> u64 {
        let s = self.next;
        self.next = if s >= i64::MAX as u64 { 0 } else { s + 1 };
        s
    }
}

/// An event waiting in (or taken from) a pool's buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingEvent {
    /// The global serial: the same in every pool the event went to.
    pub serial: u64,
    /// This pool's serial, kept when the event is rebuffered.
    pub pool_serial: u64,
    pub kind: EventKind,
    /// Rendered when the event happened, shared between pools.
    pub payload: Arc<[u8]>,
}

impl PendingEvent {
    /// The bytes to write to the listener's stdin.
    pub fn envelope(&self, server: &str, pool: &str, unit: LenUnit) -> Vec<u8> {
        envelope_in(
            unit,
            server,
            self.serial,
            pool,
            self.pool_serial,
            self.kind.name(),
            &self.payload,
        )
    }
}

/// One `[eventlistener:x]` pool's buffer.
#[derive(Clone, Debug)]
pub struct EventPool {
    name: String,
    subscription: Subscription,
    buffer_size: usize,
    queue: VecDeque<PendingEvent>,
    serials: SerialCounter,
}

impl EventPool {
    /// `buffer_size` is the `buffer_size=` setting (supervisord's default is 10; the
    /// config must refuse values below 1, as supervisord does). 0 is treated as 1.
    pub fn new(name: impl Into<String>, subscription: Subscription, buffer_size: usize) -> Self {
        EventPool {
            name: name.into(),
            subscription,
            buffer_size: buffer_size.max(1),
            queue: VecDeque::new(),
            serials: SerialCounter::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn subscription(&self) -> &Subscription {
        &self.subscription
    }

    pub fn buffer_size(&self) -> usize {
        self.buffer_size
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The buffered events, oldest (next to go) first.
    pub fn events(&self) -> impl Iterator<Item = &PendingEvent> {
        self.queue.iter()
    }

    /// Buffers a new event at the tail, numbering it with this pool's next serial. When
    /// the buffer is full, the oldest event is dropped first and returned.
    pub fn accept(
        &mut self,
        serial: u64,
        kind: EventKind,
        payload: Arc<[u8]>,
    ) -> Option<PendingEvent> {
        let pool_serial = self.serials.next_serial();
        let dropped = self.make_room();
        self.queue.push_back(PendingEvent {
            serial,
            pool_serial,
            kind,
            payload,
        });
        dropped
    }

    /// Puts an event a listener rejected, or did not finish, back at the head of the
    /// buffer so it goes out next, keeping its serials. When the buffer is full the
    /// oldest *waiting* event is dropped and returned (supervisord pops index 0, then
    /// inserts the rebuffered one there).
    pub fn rebuffer(&mut self, event: PendingEvent) -> Option<PendingEvent> {
        let dropped = self.make_room();
        self.queue.push_front(event);
        dropped
    }

    fn make_room(&mut self) -> Option<PendingEvent> {
        if self.queue.len() >= self.buffer_size {
            self.queue.pop_front()
        } else {
            None
        }
    }

    /// The next dispatch, if there is one: the oldest buffered event and the first
    /// listener, in pool order, whose process is RUNNING and whose channel is READY.
    /// `listeners` yields `(process is RUNNING, listener state)` for each process of
    /// the pool in its configured order. Call it in a loop until it returns `None`;
    /// for each, write the envelope and call [`ListenerChannel::dispatched`].
    pub fn next_dispatch<I>(&mut self, listeners: I) -> Option<(usize, PendingEvent)>
    where
        I: IntoIterator<Item = (bool, ListenerState)>,
    {
        if self.queue.is_empty() {
            return None;
        }
        let index = listeners
            .into_iter()
            .position(|(running, state)| running && state == ListenerState::Ready)?;
        let event = self.queue.pop_front()?;
        Some((index, event))
    }
}

/// An event that fell out of a full buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dropped {
    /// Index into the `pools` slice given to [`publish`].
    pub pool: usize,
    pub event: PendingEvent,
}

/// Offers `event` to every pool: if at least one subscribes, the event takes the next
/// global serial and is buffered, once, in each pool that subscribes. An event nobody
/// subscribes to uses up no serial (supervisord numbers events when a pool accepts them).
pub fn publish(
    pools: &mut [EventPool],
    serials: &mut SerialCounter,
    event: &Event,
) -> Vec<Dropped> {
    let kind = event.kind();
    let mut dropped = Vec::new();
    if !pools.iter().any(|p| p.subscription.matches(&kind)) {
        return dropped;
    }
    let serial = serials.next_serial();
    let payload: Arc<[u8]> = event.payload().into();
    for (i, pool) in pools.iter_mut().enumerate() {
        if pool.subscription.matches(&kind)
            && let Some(event) = pool.accept(serial, kind, payload.clone())
        {
            dropped.push(Dropped { pool: i, event });
        }
    }
    dropped
}

#[cfg(test)]
mod tests;
