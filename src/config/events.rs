//! supervisord's event types, as an event listener's `events` names them: the concrete
//! kinds, their abstract parents, and a subscription made of both. Part of the manifest
//! model (a listener's `events` are validated with it); `listeners` sends the events.

// ---------------------------------------------------------------------------------------
// Event types and subscriptions
// ---------------------------------------------------------------------------------------

/// Process states (supervisord's `ProcessStates`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ProcState {
    Stopped,
    Starting,
    Running,
    Backoff,
    Stopping,
    Exited,
    Fatal,
    Unknown,
}

impl ProcState {
    pub const ALL: [ProcState; 8] = [
        ProcState::Stopped,
        ProcState::Starting,
        ProcState::Running,
        ProcState::Backoff,
        ProcState::Stopping,
        ProcState::Exited,
        ProcState::Fatal,
        ProcState::Unknown,
    ];

    /// The name supervisord prints (`from_state:` values, `statename`).
    pub fn name(self) -> &'static str {
        match self {
            ProcState::Stopped => "STOPPED",
            ProcState::Starting => "STARTING",
            ProcState::Running => "RUNNING",
            ProcState::Backoff => "BACKOFF",
            ProcState::Stopping => "STOPPING",
            ProcState::Exited => "EXITED",
            ProcState::Fatal => "FATAL",
            ProcState::Unknown => "UNKNOWN",
        }
    }

    /// The numeric code of the XML-RPC API (`state` in getProcessInfo).
    pub fn code(self) -> i32 {
        match self {
            ProcState::Stopped => 0,
            ProcState::Starting => 10,
            ProcState::Running => 20,
            ProcState::Backoff => 30,
            ProcState::Stopping => 40,
            ProcState::Exited => 100,
            ProcState::Fatal => 200,
            ProcState::Unknown => 1000,
        }
    }
}

/// A concrete event type: what an event is sent as (`eventname:`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// `PROCESS_STATE_<state>`: the state the process moved *to*.
    ProcessState {
        state: ProcState,
    },
    ProcessCommunicationStdout,
    ProcessCommunicationStderr,
    ProcessLogStdout,
    ProcessLogStderr,
    RemoteCommunication,
    SupervisorStateChangeRunning,
    SupervisorStateChangeStopping,
    Tick5,
    Tick60,
    Tick3600,
    ProcessGroupAdded,
    ProcessGroupRemoved,
}

impl EventKind {
    pub const ALL: [EventKind; 20] = [
        EventKind::ProcessState {
            state: ProcState::Stopped,
        },
        EventKind::ProcessState {
            state: ProcState::Starting,
        },
        EventKind::ProcessState {
            state: ProcState::Running,
        },
        EventKind::ProcessState {
            state: ProcState::Backoff,
        },
        EventKind::ProcessState {
            state: ProcState::Stopping,
        },
        EventKind::ProcessState {
            state: ProcState::Exited,
        },
        EventKind::ProcessState {
            state: ProcState::Fatal,
        },
        EventKind::ProcessState {
            state: ProcState::Unknown,
        },
        EventKind::ProcessCommunicationStdout,
        EventKind::ProcessCommunicationStderr,
        EventKind::ProcessLogStdout,
        EventKind::ProcessLogStderr,
        EventKind::RemoteCommunication,
        EventKind::SupervisorStateChangeRunning,
        EventKind::SupervisorStateChangeStopping,
        EventKind::Tick5,
        EventKind::Tick60,
        EventKind::Tick3600,
        EventKind::ProcessGroupAdded,
        EventKind::ProcessGroupRemoved,
    ];

    /// The name in `eventname:` and in `events=`.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::ProcessState { state } => match state {
                ProcState::Stopped => "PROCESS_STATE_STOPPED",
                ProcState::Starting => "PROCESS_STATE_STARTING",
                ProcState::Running => "PROCESS_STATE_RUNNING",
                ProcState::Backoff => "PROCESS_STATE_BACKOFF",
                ProcState::Stopping => "PROCESS_STATE_STOPPING",
                ProcState::Exited => "PROCESS_STATE_EXITED",
                ProcState::Fatal => "PROCESS_STATE_FATAL",
                ProcState::Unknown => "PROCESS_STATE_UNKNOWN",
            },
            EventKind::ProcessCommunicationStdout => "PROCESS_COMMUNICATION_STDOUT",
            EventKind::ProcessCommunicationStderr => "PROCESS_COMMUNICATION_STDERR",
            EventKind::ProcessLogStdout => "PROCESS_LOG_STDOUT",
            EventKind::ProcessLogStderr => "PROCESS_LOG_STDERR",
            EventKind::RemoteCommunication => "REMOTE_COMMUNICATION",
            EventKind::SupervisorStateChangeRunning => "SUPERVISOR_STATE_CHANGE_RUNNING",
            EventKind::SupervisorStateChangeStopping => "SUPERVISOR_STATE_CHANGE_STOPPING",
            EventKind::Tick5 => "TICK_5",
            EventKind::Tick60 => "TICK_60",
            EventKind::Tick3600 => "TICK_3600",
            EventKind::ProcessGroupAdded => "PROCESS_GROUP_ADDED",
            EventKind::ProcessGroupRemoved => "PROCESS_GROUP_REMOVED",
        }
    }

    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The abstract type this one is a subtype of (besides `EVENT`), if any.
    pub fn parent(self) -> Option<EventType> {
        Some(match self {
            EventKind::ProcessState { .. } => EventType::ProcessState,
            EventKind::ProcessCommunicationStdout | EventKind::ProcessCommunicationStderr => {
                EventType::ProcessCommunication
            }
            EventKind::ProcessLogStdout | EventKind::ProcessLogStderr => EventType::ProcessLog,
            EventKind::SupervisorStateChangeRunning | EventKind::SupervisorStateChangeStopping => {
                EventType::SupervisorStateChange
            }
            EventKind::Tick5 | EventKind::Tick60 | EventKind::Tick3600 => EventType::Tick,
            EventKind::ProcessGroupAdded | EventKind::ProcessGroupRemoved => {
                EventType::ProcessGroup
            }
            EventKind::RemoteCommunication => return None,
        })
    }
}

/// A name that may appear in `events=`: an abstract parent or a concrete kind.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// `EVENT`: every event.
    Event,
    ProcessState,
    ProcessCommunication,
    ProcessLog,
    SupervisorStateChange,
    Tick,
    ProcessGroup,
    Kind(EventKind),
}

impl EventType {
    pub const ABSTRACT: [EventType; 7] = [
        EventType::Event,
        EventType::ProcessState,
        EventType::ProcessCommunication,
        EventType::ProcessLog,
        EventType::SupervisorStateChange,
        EventType::Tick,
        EventType::ProcessGroup,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EventType::Event => "EVENT",
            EventType::ProcessState => "PROCESS_STATE",
            EventType::ProcessCommunication => "PROCESS_COMMUNICATION",
            EventType::ProcessLog => "PROCESS_LOG",
            EventType::SupervisorStateChange => "SUPERVISOR_STATE_CHANGE",
            EventType::Tick => "TICK",
            EventType::ProcessGroup => "PROCESS_GROUP",
            EventType::Kind(k) => k.name(),
        }
    }

    /// Exact, upper-case name.
    pub fn from_name(name: &str) -> Option<EventType> {
        EventType::ABSTRACT
            .into_iter()
            .find(|t| t.name() == name)
            .or_else(|| EventKind::from_name(name).map(EventType::Kind))
    }

    /// Whether an event of `kind` is an instance of this type (Python's `isinstance`).
    pub fn covers(self, kind: EventKind) -> bool {
        match self {
            EventType::Event => true,
            EventType::Kind(k) => k == kind,
            parent => kind.parent() == Some(parent),
        }
    }
}

/// The parsed `events=` of one listener pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    types: Vec<EventType>,
}

impl Subscription {
    pub fn matches(&self, kind: &EventKind) -> bool {
        self.types.iter().any(|t| t.covers(*kind))
    }

    /// The distinct types named, in the order first named.
    pub fn types(&self) -> &[EventType] {
        &self.types
    }
}

/// Parses an `[eventlistener:x] events=` value as supervisord does: comma-separated,
/// each item trimmed and upper-cased, duplicates ignored. An empty value is an error
/// (supervisord: the section "requires an events line"), and so is an unknown name,
/// including the empty item of `A,,B` or a trailing comma.
pub fn parse_subscription(events: &str) -> Result<Subscription, String> {
    if events.trim().is_empty() {
        return Err("an event listener needs at least one event type in events=".into());
    }
    let mut types = Vec::new();
    for item in events.split(',') {
        let name = item.trim().to_ascii_uppercase();
        let t = EventType::from_name(&name)
            .ok_or_else(|| format!("unknown event type {name:?} in events="))?;
        if !types.contains(&t) {
            types.push(t);
        }
    }
    Ok(Subscription { types })
}
