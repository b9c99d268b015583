//! supervisord event listeners: services with an `event_listener` table form a pool each;
//! tend turns the engine's events into supervisord's (PROCESS_STATE_*, TICK_*,
//! SUPERVISOR_STATE_CHANGE_RUNNING), buffers them per pool and writes them to READY
//! listener processes over their stdin, reading READY/RESULT from their stdout.
//! [`protocol`] is the byte-level part; this module owns pipes, timers and the pools.

pub mod protocol;

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::{broadcast, mpsc};

use crate::config::Manifest;
use crate::config::model::EventListenerSpec;
use crate::engine::ListenerIo;
use crate::engine::event::{Event as EngineEvent, EventKind as EngineKind};
use crate::engine::lifecycle::ExitStatus;
use crate::logs::{LogSink, Stream};
use protocol::{
    Event, EventPool, LenUnit, ListenerChannel, ListenerOutput, ListenerState, PendingEvent,
    ProcState, SerialCounter, TickClock,
};

/// supervisord's names for an instance: `(group, process)`.
pub type Names = Arc<dyn Fn(&str) -> Option<(String, String)> + Send + Sync>;

/// What the pools are fed from besides the engine.
pub struct Feeds {
    pub events: broadcast::Receiver<EngineEvent>,
    /// Each listener process's pipes as the engine spawns it.
    pub io: mpsc::UnboundedReceiver<ListenerIo>,
    /// `sendRemoteCommEvent`'s (type, data).
    pub remote: mpsc::UnboundedReceiver<(String, String)>,
    /// Fires when tend begins to stop everything (SUPERVISOR_STATE_CHANGE_STOPPING).
    pub stopping: tokio::sync::oneshot::Receiver<()>,
}

/// Run the pools until the engine's event stream ends.
pub async fn run(
    manifest: &Manifest,
    names: Names,
    identifier: String,
    logs: LogSink,
    feeds: Feeds,
) {
    let mut pools = Pools::new(manifest, names, identifier, logs);
    pools.serve(feeds).await;
}

struct Pool {
    service: String,
    /// Listener processes, in instance order (dispatch goes to the first READY one).
    members: Vec<Member>,
}

struct Member {
    instance: String,
    pid: u32,
    channel: ListenerChannel<PendingEvent>,
    stdin: mpsc::UnboundedSender<Vec<u8>>,
}

/// What tend knows of a process in supervisord's terms, to write events about it.
#[derive(Default)]
struct Tracked {
    state: Option<ProcState>,
    pid: u32,
    /// Failed starts in a row (supervisord's backoff count).
    tries: u32,
    last_exit: Option<ExitStatus>,
}

enum FromListener {
    Output {
        instance: String,
        pid: u32,
        bytes: Vec<u8>,
    },
    Closed {
        instance: String,
        pid: u32,
    },
    /// A line of an instance whose log events are on (PROCESS_LOG_*).
    Line {
        instance: String,
        channel: protocol::Channel,
        bytes: Vec<u8>,
    },
}

struct Pools {
    pools: Vec<Pool>,
    /// Each pool's event buffer, by the same index as `pools`.
    buffers: Vec<EventPool>,
    names: Names,
    identifier: String,
    serials: SerialCounter,
    tracked: HashMap<String, Tracked>,
    /// Exit codes that count as expected, per service.
    exit_codes: HashMap<String, Vec<i32>>,
    clock: TickClock,
    logs: LogSink,
    /// Per service, which streams' lines become PROCESS_LOG events (when a pool wants them).
    log_events: HashMap<String, (bool, bool)>,
    /// Instances whose lines are followed already (across restarts: one subscription).
    following: std::collections::HashSet<String>,
    from_listeners: (
        mpsc::UnboundedSender<FromListener>,
        mpsc::UnboundedReceiver<FromListener>,
    ),
}

impl Pools {
    fn new(manifest: &Manifest, names: Names, identifier: String, logs: LogSink) -> Pools {
        let (pools, buffers) = manifest
            .services
            .iter()
            .filter_map(|s| Some((s.name.clone(), s.event_listener.clone()?)))
            .map(|(service, spec)| pool(service, spec))
            .unzip();
        Pools {
            pools,
            buffers,
            names,
            identifier,
            serials: SerialCounter::new(),
            tracked: HashMap::new(),
            exit_codes: manifest
                .services
                .iter()
                .map(|s| (s.name.clone(), s.exit_codes.clone()))
                .collect(),
            clock: TickClock::new(),
            logs,
            log_events: manifest
                .services
                .iter()
                .filter(|s| s.logs.events_stdout || s.logs.events_stderr)
                .map(|s| (s.name.clone(), (s.logs.events_stdout, s.logs.events_stderr)))
                .collect(),
            following: std::collections::HashSet::new(),
            from_listeners: mpsc::unbounded_channel(),
        }
    }

    async fn serve(&mut self, feeds: Feeds) {
        let Feeds {
            mut events,
            mut io,
            mut remote,
            mut stopping,
        } = feeds;
        let mut announced = false;
        self.publish(&Event::SupervisorRunning);
        let mut ticks = tokio::time::interval(Duration::from_secs(1));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(event) => self.engine_event(&event),
                    // Missed events cannot be replayed; the next ones carry on.
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                Some(pipes) = io.recv() => self.adopt(pipes),
                Some((kind, data)) = remote.recv() => {
                    self.publish(&Event::RemoteCommunication { kind, data });
                }
                // Listeners stop last, so they still hear that everything is stopping.
                Ok(()) = &mut stopping, if !announced => {
                    announced = true;
                    self.publish(&Event::SupervisorStopping);
                }
                Some(message) = self.from_listeners.1.recv() => self.listener_said(message),
                _ = ticks.tick(), if !self.pools.is_empty() => {
                    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
                    for tick in self.clock.tick(now.as_secs()) {
                        self.publish(&tick);
                    }
                }
            }
            self.dispatch();
        }
    }

    /// A listener process was spawned: speak the protocol with it.
    fn adopt(&mut self, pipes: ListenerIo) {
        // A listener added while tend runs (supervisorctl add, reload) brings its pool.
        if !self.pools.iter().any(|p| p.service == pipes.service) {
            let (pool, buffer) = pool(pipes.service.clone(), pipes.listener.clone());
            self.pools.push(pool);
            self.buffers.push(buffer);
        }
        let index = self
            .pools
            .iter()
            .position(|p| p.service == pipes.service)
            .expect("UNWRAP: ensured just above");
        // `tend apply` restarted the listener with another subscription: its pool takes it,
        // and what the old one buffered (for events it asked for) is dropped.
        let buffer = &self.buffers[index];
        if buffer.subscription() != &pipes.listener.subscription
            || buffer.buffer_size() != pipes.listener.buffer_size.max(1)
        {
            let (_, fresh) = pool(pipes.service.clone(), pipes.listener.clone());
            self.buffers[index] = fresh;
        }
        // A member of the same name is a process that is gone (its exit may not have been
        // read yet): an event it was busy with goes back to the buffer.
        if let Some(at) = self.pools[index]
            .members
            .iter()
            .position(|m| m.instance == pipes.instance)
        {
            let mut gone = self.pools[index].members.remove(at);
            if let Some(event) = gone.channel.exited() {
                self.buffers[index].rebuffer(event);
            }
        }
        let pool = &mut self.pools[index];
        let (stdin_tx, stdin_rx) = mpsc::unbounded_channel();
        tokio::spawn(write_stdin(pipes.stdin, stdin_rx));
        tokio::spawn(read_stdout(
            pipes.instance.clone(),
            pipes.pid,
            pipes.stdout,
            pipes.log,
            self.from_listeners.0.clone(),
        ));
        pool.members.push(Member {
            instance: pipes.instance,
            pid: pipes.pid,
            channel: ListenerChannel::new(),
            stdin: stdin_tx,
        });
        pool.members.sort_by(|a, b| a.instance.cmp(&b.instance));
    }

    fn listener_said(&mut self, message: FromListener) {
        match message {
            FromListener::Output {
                instance,
                pid,
                bytes,
            } => {
                let Some((pool, member)) = self.member(&instance, pid) else {
                    return;
                };
                let outputs = self.pools[pool].members[member].channel.feed(&bytes);
                for output in outputs {
                    match output {
                        ListenerOutput::Ready | ListenerOutput::Result { ok: true, .. } => {}
                        ListenerOutput::Result {
                            ok: false, event, ..
                        } => {
                            if let Some(event) = event {
                                self.buffers[pool].rebuffer(event);
                            }
                        }
                        ListenerOutput::ProtocolError { message, event, .. } => {
                            crate::logs::own::say(&format!(
                                "{instance}: event listener protocol error, no more events for it: {message}"
                            ));
                            if let Some(event) = event {
                                self.buffers[pool].rebuffer(event);
                            }
                        }
                    }
                }
            }
            FromListener::Line {
                instance,
                channel,
                bytes,
            } => {
                let Some((group, process)) = (self.names)(&instance) else {
                    return;
                };
                let pid = self.tracked.get(&instance).map_or(0, |t| t.pid);
                self.publish(&Event::ProcessLog {
                    channel,
                    process,
                    group,
                    pid,
                    data: bytes,
                });
            }
            FromListener::Closed { instance, pid } => {
                if let Some((pool, member)) = self.member(&instance, pid) {
                    let mut gone = self.pools[pool].members.remove(member);
                    if let Some(event) = gone.channel.exited() {
                        self.buffers[pool].rebuffer(event);
                    }
                }
            }
        }
    }

    fn member(&self, instance: &str, pid: u32) -> Option<(usize, usize)> {
        self.pools.iter().enumerate().find_map(|(p, pool)| {
            let m = pool
                .members
                .iter()
                .position(|m| m.instance == instance && m.pid == pid)?;
            Some((p, m))
        })
    }

    /// Hand buffered events to READY listeners whose process is RUNNING.
    fn dispatch(&mut self) {
        for (pool, buffer) in self.pools.iter_mut().zip(&mut self.buffers) {
            loop {
                let tracked = &self.tracked;
                let candidates: Vec<(bool, ListenerState)> = pool
                    .members
                    .iter()
                    .map(|m| {
                        let running = tracked
                            .get(&m.instance)
                            .is_some_and(|t| t.state == Some(ProcState::Running));
                        (running, m.channel.state())
                    })
                    .collect();
                let Some((index, event)) = buffer.next_dispatch(candidates) else {
                    break;
                };
                // supervisord 4 counts `len` in characters (its Python 3 text); listeners
                // written for it, childutils among them, read that many.
                let envelope = event.envelope(&self.identifier, &pool.service, LenUnit::Chars);
                let member = &mut pool.members[index];
                if member.stdin.send(envelope).is_err() {
                    buffer.rebuffer(event);
                    break;
                }
                if let Err(event) = member.channel.dispatched(event) {
                    buffer.rebuffer(event);
                    break;
                }
            }
        }
    }

    fn publish(&mut self, event: &Event) {
        let dropped = protocol::publish(&mut self.buffers, &mut self.serials, event);
        for d in dropped {
            crate::logs::own::say(&format!(
                "event listener pool {}: buffer full, dropped event {} ({})",
                self.pools[d.pool].service,
                d.event.serial,
                d.event.kind.name()
            ));
        }
    }

    /// An engine event as supervisord's PROCESS_STATE_* events.
    fn engine_event(&mut self, event: &EngineEvent) {
        let next = {
            let tracked = self.tracked.entry(event.instance.clone()).or_default();
            match &event.kind {
                EngineKind::Spawned { pid } => {
                    tracked.pid = *pid;
                    self.follow_lines(&event.instance, &event.service);
                    None
                }
                EngineKind::Exited { status, .. } => {
                    tracked.last_exit = Some(*status);
                    // Leaving RUNNING on its own is EXITED; from STARTING it is BACKOFF (or
                    // EXITED), which the state change that follows says.
                    (tracked.state == Some(ProcState::Running)).then_some(ProcState::Exited)
                }
                EngineKind::Settled => Some(ProcState::Running),
                EngineKind::StateChanged { to, .. } => match *to {
                    "stopped" => Some(ProcState::Stopped),
                    "starting" | "running" => Some(ProcState::Starting),
                    "backoff" => Some(ProcState::Backoff),
                    "stopping" => Some(ProcState::Stopping),
                    "exited" => Some(ProcState::Exited),
                    "fatal" => Some(ProcState::Fatal),
                    _ => None,
                },
                // The replacement of a reload took over: the same RUNNING process to
                // supervisord's eyes, with another pid.
                EngineKind::Reload {
                    step: "replaced",
                    pid: Some(pid),
                    ..
                } => {
                    tracked.pid = *pid;
                    None
                }
                EngineKind::Warning { .. }
                | EngineKind::ProbeChanged { .. }
                | EngineKind::Reload { .. } => None,
            }
        };
        let Some(to) = next else { return };
        let tracked = self
            .tracked
            .get_mut(&event.instance)
            .expect("UNWRAP: inserted above");
        let from = tracked.state.unwrap_or(ProcState::Stopped);
        if tracked.state == Some(to) {
            return;
        }
        match to {
            ProcState::Backoff => tracked.tries += 1,
            ProcState::Running | ProcState::Stopped | ProcState::Fatal => tracked.tries = 0,
            _ => {}
        }
        tracked.state = Some(to);
        let (tries, pid, last_exit) = (tracked.tries, tracked.pid, tracked.last_exit);
        // States are tracked always (a pool may come later); the event is only built for
        // a pool that wants it.
        let kind = protocol::EventKind::ProcessState { state: to };
        if !self.buffers.iter().any(|b| b.subscription().matches(&kind)) {
            return;
        }
        let Some((group, process)) = (self.names)(&event.instance) else {
            return;
        };
        let codes = self.exit_codes.get(&event.service);
        let expected = matches!(last_exit, Some(ExitStatus::Code(code)) if codes.is_some_and(|c| c.contains(&code)));
        let state_event = Event::ProcessState {
            to,
            from,
            process,
            group,
            tries,
            expected,
            pid,
        };
        self.publish(&state_event);
    }
}

impl Pools {
    /// Follow an instance's lines when its service sends PROCESS_LOG events and some pool
    /// subscribes to them. Lines written before its first spawn was seen are not sent.
    fn follow_lines(&mut self, instance: &str, service: &str) {
        let Some(&(stdout, stderr)) = self.log_events.get(service) else {
            return;
        };
        let wanted = self.buffers.iter().any(|b| {
            b.subscription()
                .matches(&protocol::EventKind::ProcessLogStdout)
                || b.subscription()
                    .matches(&protocol::EventKind::ProcessLogStderr)
        });
        if !wanted || !self.following.insert(instance.to_string()) {
            return;
        }
        let Some(log) = self.logs.instance(instance) else {
            self.following.remove(instance);
            return;
        };
        let mut lines = log.follow();
        let pool = self.from_listeners.0.clone();
        let instance = instance.to_string();
        tokio::spawn(async move {
            loop {
                match lines.recv().await {
                    Ok(line) => {
                        let channel = match line.stream {
                            Stream::Out if stdout => protocol::Channel::Stdout,
                            Stream::Err if stderr => protocol::Channel::Stderr,
                            _ => continue,
                        };
                        // The line as read, its newline included.
                        let message = FromListener::Line {
                            instance: instance.clone(),
                            channel,
                            bytes: line.bytes,
                        };
                        if pool.send(message).is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }
}

fn pool(service: String, spec: EventListenerSpec) -> (Pool, EventPool) {
    let buffer = EventPool::new(service.clone(), spec.subscription, spec.buffer_size);
    let pool = Pool {
        service,
        members: Vec::new(),
    };
    (pool, buffer)
}

/// Writes envelopes to a listener's stdin, in order, until the listener goes away.
async fn write_stdin(stdin: OwnedFd, mut envelopes: mpsc::UnboundedReceiver<Vec<u8>>) {
    let Ok(mut stdin) = pipe::Sender::from_owned_fd(stdin) else {
        return;
    };
    while let Some(envelope) = envelopes.recv().await {
        if stdin.write_all(&envelope).await.is_err() {
            return;
        }
    }
}

/// Reads a listener's stdout: every byte goes on to its log (as supervisord logs protocol
/// lines too) and to the pool.
async fn read_stdout(
    instance: String,
    pid: u32,
    stdout: OwnedFd,
    log: OwnedFd,
    pool: mpsc::UnboundedSender<FromListener>,
) {
    let closed = |instance: String| FromListener::Closed { instance, pid };
    let Ok(mut stdout) = pipe::Receiver::from_owned_fd(stdout) else {
        let _ = pool.send(closed(instance));
        return;
    };
    let mut log = pipe::Sender::from_owned_fd(log).ok();
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        match stdout.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(sink) = &mut log
                    && sink.write_all(&buffer[..n]).await.is_err()
                {
                    log = None;
                }
                let bytes = buffer[..n].to_vec();
                let message = FromListener::Output {
                    instance: instance.clone(),
                    pid,
                    bytes,
                };
                if pool.send(message).is_err() {
                    return;
                }
            }
        }
    }
    let _ = pool.send(closed(instance));
}
