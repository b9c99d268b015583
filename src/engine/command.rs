//! The closed set of requests the engine accepts, each carrying the channel its answer goes to.

use tokio::sync::oneshot;

use crate::config::signal::Signal;
use crate::engine::event::InstanceStatus;

/// Whether an action reached its goal for one instance; the error says why not.
pub type Outcome = Result<(), String>;

/// Per-instance results of an action, in start order.
pub type Outcomes = Vec<(String, Outcome)>;

/// A name that matches no service, instance or group.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown target `{0}`: not a service, instance, group or `all`")]
pub struct UnknownTarget(pub String);

/// Requests to the supervisor. Targets are service names, instance names (`web:2`), group
/// names or `all`; an empty list means every instance.
#[derive(Debug)]
pub enum SupervisorCommand {
    Status {
        targets: Vec<String>,
        reply: oneshot::Sender<Result<Vec<std::sync::Arc<InstanceStatus>>, UnknownTarget>>,
    },
    Start {
        targets: Vec<String>,
        reply: oneshot::Sender<Result<Outcomes, UnknownTarget>>,
    },
    Stop {
        targets: Vec<String>,
        reply: oneshot::Sender<Result<Outcomes, UnknownTarget>>,
    },
    Restart {
        targets: Vec<String>,
        reply: oneshot::Sender<Result<Outcomes, UnknownTarget>>,
    },
    Signal {
        signal: Signal,
        targets: Vec<String>,
        reply: oneshot::Sender<Result<Outcomes, UnknownTarget>>,
    },
    /// Answer once every target instance is running or has settled in a failure; the answer
    /// lists the failures.
    WaitSettled {
        targets: Vec<String>,
        ready: bool,
        reply: oneshot::Sender<Result<Outcomes, UnknownTarget>>,
    },
    /// Start the autostart services, or the named services with their dependencies.
    StartInitial {
        services: Vec<String>,
        reply: oneshot::Sender<()>,
    },
    /// Stop everything in dependency order, then answer.
    Shutdown { reply: oneshot::Sender<()> },
    /// SIGKILL every instance's tree now.
    Kill,
    /// An sd_notify message: routed to the instance whose process tree sent it; `routed` is
    /// answered once it is in that instance's mailbox.
    Notify {
        message: Box<crate::engine::notify::Notification>,
        routed: oneshot::Sender<()>,
    },
    /// How to reload the targets: per service, its way of reloading and its instances, in
    /// start order. Marks those services as reloading until `ReloadEnd`; a service already
    /// reloading is listed as `refused`.
    ReloadPlan {
        targets: Vec<String>,
        /// New processes are wanted (`tend apply`): `reload_signal` does not do.
        replace: bool,
        reply: oneshot::Sender<Result<Vec<ReloadGroup>, UnknownTarget>>,
    },
    /// Reload one instance by overlap (see [`InstanceCommand::Reload`]).
    ReloadInstance {
        instance: String,
        timeout: std::time::Duration,
        reply: oneshot::Sender<Outcome>,
    },
    /// The reload of these services is over (whatever the outcome).
    ReloadEnd { services: Vec<String> },
    /// Supervise exactly the manifest's services from now on: new ones are added (stopped),
    /// missing ones removed, changed ones take their new spec: in their running instances
    /// when only supervisor settings or the count changed, else in new instances (stopped).
    /// Refused, changing nothing, when an instance to remove or replace is not at rest.
    Reconfigure {
        manifest: Box<crate::config::Manifest>,
        /// Changed services whose running instances keep running with the new spec, to be
        /// replaced by a reload (`tend apply`'s rolling reload): their tasks stay, and each
        /// process started from now on, a reload's replacement first, runs the new spec.
        /// Only services that can overlap ([`ReloadMode::overlaps`]) with an unchanged
        /// instance count; others listed here are replaced as usual.
        rolling: Vec<String>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Freeze every instance (see [`InstanceCommand::Freeze`]) and hold reaping, for an
    /// upgrade; refused when something is under way (a stop, a start waiting for its
    /// dependencies, a reload, an event listener running). While frozen, commands other
    /// than status wait for `Thaw`.
    Freeze {
        reply: oneshot::Sender<Result<crate::engine::handover::Frozen, String>>,
    },
    /// The upgrade did not happen: everything acts again, starting with what came meanwhile.
    Thaw,
    /// A schedule or a file watch of `service` fired (see `engine::schedule`,
    /// `engine::watch`); `reason` goes into the state changes it causes. The answer comes
    /// once the instances acted on are running again (a run: once it has ended).
    Trigger {
        service: String,
        action: Trigger,
        reason: String,
        reply: Option<oneshot::Sender<Result<Outcomes, UnknownTarget>>>,
    },
}

/// What a fired schedule or watch does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Restart the service's instances that are running now; leave the others alone
    /// (`cron_restart`).
    RestartRunning,
    /// Restart the instances that run or ended by themselves (backoff, fatal, exited: a
    /// fix to the code may be what they wait for); leave alone those stopped on purpose or
    /// never started (`watch`).
    RestartUnlessStopped,
    /// Start a run of each instance at rest; one still going is skipped, and the skip is
    /// recorded (`schedule`).
    Run,
}

/// How a service is reloaded (`tend reload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadMode {
    /// `reload_signal`: the signal is sent to each instance's process group.
    Signal(Signal),
    /// The service receives `[sockets]`: each instance's replacement starts beside it, and
    /// the old process stops once the replacement is ready. No connection is refused.
    Overlap,
    /// No sockets, several instances: a rolling restart, each instance stopped, started and
    /// ready before the next (a replacement could not bind the old one's port).
    RollingRestart,
    /// One instance, no sockets: a plain restart.
    Restart,
}

impl ReloadMode {
    /// How `spec` is reloaded; with `replace` (new processes wanted), never by signal.
    pub fn of(spec: &crate::config::model::ServiceSpec, replace: bool) -> ReloadMode {
        if let Some(signal) = spec.reload_signal.filter(|_| !replace) {
            ReloadMode::Signal(signal)
        } else if ReloadMode::overlaps(spec) {
            ReloadMode::Overlap
        } else if spec.instances > 1 {
            ReloadMode::RollingRestart
        } else {
            ReloadMode::Restart
        }
    }

    /// Whether a replacement can run beside an instance's process: the service receives
    /// `[sockets]` (the old and the new process accept on the same socket; without one, the
    /// new process could not bind the port the old one holds). A long-running service, not
    /// an event listener (whose pipes belong to its pool).
    pub fn overlaps(spec: &crate::config::model::ServiceSpec) -> bool {
        !spec.sockets.is_empty()
            && spec.kind == crate::config::model::Kind::Service
            && spec.event_listener.is_none()
    }

    pub fn describe(self) -> String {
        match self {
            ReloadMode::Signal(signal) => format!("sending SIG{} (reload_signal)", signal.name()),
            ReloadMode::Overlap => "replacing each instance beside the running one".into(),
            ReloadMode::RollingRestart => {
                "restarting one instance after another (no sockets to share)".into()
            }
            ReloadMode::Restart => "restarting (no sockets to share)".into(),
        }
    }
}

/// One service's part of a reload.
#[derive(Debug, Clone)]
pub struct ReloadGroup {
    pub service: String,
    pub mode: ReloadMode,
    /// Its target instances, in start order.
    pub instances: Vec<String>,
    /// How many are replaced at once (`max_surge`).
    pub surge: usize,
    /// How long a replacement may take to become ready (`reload_timeout`).
    pub timeout: std::time::Duration,
    /// Why this reload of the service does nothing (another one is under way).
    pub refused: Option<String>,
}

/// Requests to one instance task.
#[derive(Debug)]
pub enum InstanceCommand {
    Start {
        manual: bool,
        reply: Option<oneshot::Sender<Outcome>>,
        /// Why, when not a plain start (a schedule): the state change says so.
        reason: Option<String>,
    },
    /// Wants to run but must wait for its dependencies; `blocked` says a dependency failed.
    Wait {
        reason: String,
        blocked: bool,
        reply: Option<oneshot::Sender<Outcome>>,
    },
    Stop {
        reply: Option<oneshot::Sender<Outcome>>,
    },
    Restart {
        reply: Option<oneshot::Sender<Outcome>>,
        /// Why, when not a request (`cron_restart`, `watch`): the state change says so.
        reason: Option<String>,
    },
    Signal {
        signal: Signal,
        reply: oneshot::Sender<Outcome>,
    },
    Kill,
    /// An sd_notify message from the tree of `leader` (the instance's process, or the
    /// replacement of a reload).
    Notify {
        message: Box<crate::engine::notify::Notification>,
        leader: u32,
    },
    /// The service's spec changed (`tend apply`, rolling): a process started from now on
    /// runs `spec`; a running one is left as it is until a reload replaces it.
    Respec(std::sync::Arc<crate::config::model::ServiceSpec>),
    /// Replace the running process by a new one without a gap (see
    /// [`crate::engine::lifecycle::Input::Reload`]); answered once the reload is over.
    Reload {
        timeout: std::time::Duration,
        reply: oneshot::Sender<Outcome>,
    },
    /// Stop acting on anything until `Thaw` (an upgrade), answering with the instance as it
    /// is; refused (Err, and nothing frozen) while it is between two states.
    Freeze {
        reply: oneshot::Sender<Result<crate::engine::handover::FrozenInstance, String>>,
    },
    /// Act again: the commands that came while frozen are carried out now.
    Thaw,
}
