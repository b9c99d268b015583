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
    /// Supervise exactly the manifest's services from now on: new ones are added (stopped),
    /// missing ones removed. Refused, changing nothing, when a service to remove is not at
    /// rest or a kept one has a different spec.
    Reconfigure {
        manifest: Box<crate::config::Manifest>,
        reply: oneshot::Sender<Result<(), String>>,
    },
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
    Notify(Box<crate::engine::notify::Notification>),
}
