//! One task per process instance: it feeds commands, exits and deadlines into the lifecycle,
//! carries out the effects it returns (spawn, signal, kill), and publishes what happened.
//! It makes no decisions of its own; those are in `lifecycle`.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::{Instant, sleep, sleep_until};

use crate::config::model::{Kind, Program, ServiceSpec};
use crate::engine::command::Outcome as ReloadOutcome;
use crate::engine::command::{InstanceCommand, Outcome};
use crate::engine::event::{Event, EventKind, InstanceStatus, StatusCell};
use crate::engine::handover::FrozenInstance;
use crate::engine::health::{Health, SpawnExec, Verdict};
use crate::engine::lifecycle::{Effect, ExitStatus, Input, Lifecycle, Policy, State};
use crate::engine::mailbox;
use crate::engine::spawn::{Credentials, SpawnRequest, Spawner};
use crate::engine::tree::{Containment, InstanceTree, RUN_ID_VAR};
use crate::logs::LogSink;

/// How often a stopping instance whose leader is gone checks whether the rest of its tree
/// has exited. Only runs during that short phase of a stop.
const TREE_POLL: Duration = Duration::from_millis(10);

/// Resource sampling: every instance samples its process tree `sample_every` apart, or
/// further apart when there are so many instances that sampling would cost more than the
/// budget. Without cgroups all instances sample on the same ticks, so that they share one
/// /proc scan; with cgroups each reads only its own, and the ticks are spread over the
/// interval in slots, so that thousands of instances never sample in one burst and yet
/// each wake-up of the runtime serves many of them.
#[derive(Debug, Clone)]
pub struct Sampling {
    pub sample_every: Duration,
    /// The instant ticks are aligned to.
    pub origin: Instant,
    /// How many instances the supervisor holds (it keeps this current).
    pub instances: Arc<std::sync::atomic::AtomicUsize>,
}

impl Sampling {
    /// Samples a second all instances together may take: one sample (a read of the
    /// cgroup's process list and of each process's /proc stat, and the wake-up's share)
    /// costs about 40 µs on a 2-core VM with 10 000 cgroups, so 150 a second are about
    /// 0.6 % of a core. Up to 300 instances at the default 2 s this changes nothing;
    /// 10 000 are sampled every 67 s.
    pub const MOST_PER_SECOND: f64 = 150.0;

    pub fn new(sample_every: Duration, origin: Instant) -> Sampling {
        Sampling {
            sample_every,
            origin,
            instances: Arc::default(),
        }
    }

    /// The slots that spread the instances' samples are at least this far apart, and each
    /// serves about `PER_SLOT` instances: a wake-up of the runtime costs here about as much
    /// as a sample, and a hundred or two samples together are a short enough burst.
    pub const SLOT: Duration = Duration::from_millis(250);
    pub const PER_SLOT: usize = 100;

    /// When in each interval an instance at `phase` (in [0, 1)) samples: the start of its
    /// slot. Up to 2 × `PER_SLOT` instances share one slot, the interval's start.
    pub fn offset(&self, every: Duration, phase: f64) -> Duration {
        let instances = self.instances.load(std::sync::atomic::Ordering::Relaxed);
        let slots = (every.as_secs_f64() / Self::SLOT.as_secs_f64())
            .min((instances / Self::PER_SLOT) as f64)
            .floor()
            .max(1.0);
        every.mul_f64((phase * slots).floor() / slots)
    }

    /// The next sampling instant after `now` of an instance at `phase` in the interval
    /// (see [`phase`]), or on the tick all instances share (`None`).
    pub fn next_after(&self, now: Instant, phase: Option<f64>) -> Instant {
        let every = self.every();
        let origin = match phase {
            Some(phase) => self.origin + self.offset(every, phase),
            None => self.origin,
        };
        if now < origin {
            return origin;
        }
        let ticks = (now - origin).as_nanos() / every.as_nanos().max(1) + 1;
        origin + every * u32::try_from(ticks).unwrap_or(u32::MAX)
    }

    /// The interval in force: `sample_every`, or longer to keep within the budget.
    pub fn every(&self) -> Duration {
        let instances = self.instances.load(std::sync::atomic::Ordering::Relaxed) as f64;
        let budget = Duration::from_secs_f64(instances / Self::MOST_PER_SECOND);
        self.sample_every.max(budget).max(Duration::from_millis(1))
    }
}

/// Where in the sampling interval an instance samples, as a fraction in [0, 1): fixed by
/// its name, so a restart keeps it, and spread evenly over many names.
fn phase(name: &str) -> f64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    name.hash(&mut hasher);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// What an instance task shares with the rest of the engine.
#[derive(Clone)]
pub struct InstanceContext {
    pub spawner: Spawner,
    pub containment: Arc<Containment>,
    pub events: broadcast::Sender<Event>,
    /// Tells the supervisor that this instance's status changed (by name).
    pub changes: mpsc::UnboundedSender<String>,
    pub logs: LogSink,
    pub base_dir: PathBuf,
    /// Given as NOTIFY_SOCKET to services whose readiness is sd_notify.
    pub notify_socket: PathBuf,
    /// How often to sample CPU and memory; `None`: never.
    pub sampling: Option<Sampling>,
    /// NVML, where a driver is present and some service uses GPUs.
    pub gpus: Option<Arc<crate::engine::resources::GpuSampler>>,
    /// Where event listeners' pipes go.
    pub listener_io: Option<mpsc::UnboundedSender<crate::engine::ListenerIo>>,
    /// The `[sockets]`, for the services that name them.
    pub sockets: Arc<crate::engine::sockets::SocketSet>,
}

/// What a pending reply is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Goal {
    Run,
    Stop,
}

pub struct InstanceTask {
    service: Arc<ServiceSpec>,
    /// `web` or `web:2`.
    name: String,
    index: u32,
    lifecycle: Lifecycle,
    tree: Option<InstanceTree>,
    exit: Option<oneshot::Receiver<ExitStatus>>,
    awaiting_tree: bool,
    credentials: Result<Option<Credentials>, String>,
    pending: Vec<(Goal, oneshot::Sender<Outcome>)>,
    waiting_reason: Option<String>,
    /// Why the command being applied was sent, when it says (a schedule, a watch).
    requested_reason: Option<String>,
    ctx: Arc<InstanceContext>,
    status: StatusCell,
    health: Health,
    usage: Usage,
    /// The process the program named its main one over sd_notify (MAINPID), and its exit.
    main: Option<(u32, oneshot::Receiver<ExitStatus>)>,
    /// The second process of a reload: the replacement until it takes over, then the old
    /// process while it stops (the lifecycle's [`Reload`] says which).
    second: Option<Box<Second>>,
    /// Who waits for the reload under way: answered when it is over.
    reload_replies: Vec<oneshot::Sender<ReloadOutcome>>,
    /// The reply of the reload request being stepped, answered at once if it is refused.
    reload_request: Option<oneshot::Sender<ReloadOutcome>>,
    /// Where in the sampling interval this instance samples: with cgroups, its own place
    /// (fixed by its name); without, `None`, the tick all instances share.
    sample_phase: Option<f64>,
    /// A newer spec (`tend apply`, rolling) than the running process's: the next process
    /// started, a reload's replacement first, runs it.
    next_spec: Option<Arc<ServiceSpec>>,
    /// Frozen for an upgrade: nothing is acted on until `Thaw`; commands wait in `deferred`.
    frozen: bool,
    deferred: Vec<InstanceCommand>,
}

/// A process of the instance beside its current one, during a reload: its own tree (and
/// cgroup), exit and probes, so that neither process is ever mistaken for the other.
struct Second {
    pid: u32,
    /// The spec it was started with.
    spec: Arc<ServiceSpec>,
    tree: InstanceTree,
    exit: Option<oneshot::Receiver<ExitStatus>>,
    health: Health,
    awaiting_tree: bool,
}

/// What sampling knows of the current process tree.
#[derive(Default)]
struct Usage {
    meter: crate::engine::resources::CpuMeter,
    /// CPU time of the runs that ended, and of the current run at its last sample: their
    /// sum is the instance's CPU counter, which must never go down across restarts.
    cpu_before: Duration,
    cpu_run: Duration,
    cpu_percent: Option<f64>,
    rss_bytes: Option<u64>,
    gpu_memory: Option<u64>,
    gpu_percent: Option<u32>,
    over_cpu: bool,
    over_memory: bool,
    limits_reported: bool,
}

impl Usage {
    fn cpu_seconds(&self) -> f64 {
        (self.cpu_before + self.cpu_run).as_secs_f64()
    }
}

impl InstanceTask {
    pub fn new(
        service: Arc<ServiceSpec>,
        index: u32,
        ctx: Arc<InstanceContext>,
    ) -> (InstanceTask, StatusCell) {
        let name = service.instance_name(index);
        let seed = seed_for(&name);
        let lifecycle = Lifecycle::new(Policy::from_spec(&service), seed);
        let credentials = resolve_credentials(&service);
        let health = Health::new(service.clone(), index);
        let initial = InstanceStatus {
            name: name.clone(),
            service: service.name.clone(),
            index,
            state: "stopped",
            pid: None,
            replacement_pid: None,
            started: None,
            ready: false,
            restarts: 0,
            restart_causes: [0; 4],
            last_exit: None,
            reason: String::new(),
            is_task: service.kind == Kind::Task,
            completed: false,
            generation: 0,
            health: health.health(),
            notify_status: None,
            notify_phase: None,
            probes: health.reports().to_vec(),
            cpu_percent: None,
            rss_bytes: None,
            cpu_seconds: 0.0,
            gpu_memory_bytes: None,
            gpu_percent: None,
            warning: None,
            changed_at: SystemTime::now(),
            last_start: None,
        };
        let status = StatusCell::new(initial);
        let receiver = status.clone();
        let sample_phase = ctx.containment.cgroup_root().map(|_| phase(&name));
        let task = InstanceTask {
            sample_phase,
            service,
            name,
            index,
            lifecycle,
            tree: None,
            exit: None,
            awaiting_tree: false,
            credentials,
            pending: Vec::new(),
            waiting_reason: None,
            requested_reason: None,
            ctx,
            status,
            health,
            usage: Usage::default(),
            main: None,
            second: None,
            reload_replies: Vec::new(),
            reload_request: None,
            next_spec: None,
            frozen: false,
            deferred: Vec::new(),
        };
        (task, receiver)
    }

    /// An instance handed over by the previous image of tend (an upgrade): its lifecycle
    /// goes on where it was, and a running process is followed again: its exit, its
    /// process group and cgroup, its probes. Must be called before the reaper's first sweep
    /// (which would otherwise reap an exit of the upgrade's gap as an orphan's).
    pub fn adopt(
        service: Arc<ServiceSpec>,
        index: u32,
        ctx: Arc<InstanceContext>,
        frozen: FrozenInstance,
    ) -> (InstanceTask, StatusCell) {
        let (mut task, status) = InstanceTask::new(service, index, ctx);
        let now = Instant::now();
        task.lifecycle = Lifecycle::thaw(
            Policy::from_spec(&task.service),
            seed_for(&task.name),
            frozen.lifecycle,
            now,
        );
        task.usage.cpu_before = Duration::from_secs_f64(frozen.cpu_seconds.max(0.0));
        let mut started = None;
        if let State::Running { pid, since, .. } = *task.lifecycle.state() {
            started = Some(since);
            let table = task.ctx.spawner.table().clone();
            let mut tree =
                task.ctx
                    .containment
                    .instance_slot(&task.service.name, index, frozen.alternate);
            tree.set_leader(frozen.leader.unwrap_or(pid));
            task.exit = Some(table.adopt(pid));
            if let Some(main) = frozen.main_pid.filter(|main| *main != pid) {
                task.main = Some((main, table.adopt(main)));
            }
            let cgroup = tree.cgroup_dir();
            task.tree = Some(tree);
            let credentials = task.credentials.clone().ok().flatten();
            let notify = task.health.uses_notify();
            let (_, exec) = request(&task.service, index, &task.ctx, credentials, cgroup, notify);
            if !frozen.ready {
                task.health.arm_log(&task.ctx.logs);
            }
            task.health.resume(
                Arc::new(exec),
                frozen.ready,
                frozen.startup_over,
                frozen.notify_status,
            );
        }
        let state = task.lifecycle.state().name();
        task.status.update(|status| {
            status.state = state;
            status.started = started;
            status.changed_at = frozen.changed_at;
            status.last_start = frozen.last_start;
        });
        task.publish();
        (task, status)
    }

    /// The instance as it is, for an upgrade; Err (what it is doing) while it is between
    /// two states, so the upgrade waits for it.
    fn freeze(&self) -> Result<FrozenInstance, String> {
        let busy = |what: &str| Err(format!("{} is {what}", self.name));
        // Reaping is held off during a freeze: an exit already delivered is one this task
        // has not acted on yet, and it must be, before anything is handed over.
        let exit_pending = self.exit.as_ref().is_some_and(|exit| !exit.is_empty())
            || self.main.as_ref().is_some_and(|(_, exit)| !exit.is_empty());
        if exit_pending {
            return busy("handling an exit");
        }
        if self.second.is_some() {
            return busy("reloading");
        }
        if self.awaiting_tree {
            return busy("stopping");
        }
        // A client waits for it to settle (a `tend start` for min_uptime): let it have its
        // answer first.
        if !self.pending.is_empty() {
            return busy("being waited for");
        }
        let lifecycle = self
            .lifecycle
            .freeze(Instant::now())
            .map_err(|state| format!("{} is {state}", self.name))?;
        let running = matches!(
            lifecycle.state,
            crate::engine::lifecycle::FrozenState::Running { .. }
        );
        let status = self.status.borrow();
        Ok(FrozenInstance {
            name: self.name.clone(),
            service: self.service.name.clone(),
            index: self.index,
            lifecycle,
            leader: self
                .tree
                .as_ref()
                .and_then(InstanceTree::leader)
                .filter(|_| running),
            alternate: self.tree.as_ref().is_some_and(InstanceTree::is_alternate),
            main_pid: self.main.as_ref().map(|(pid, _)| *pid),
            ready: self.health.ready(),
            startup_over: self.health.startup_over(),
            notify_status: self.health.notify_state().status.clone(),
            cpu_seconds: self.usage.cpu_seconds(),
            changed_at: status.changed_at,
            last_start: status.last_start,
        })
    }

    /// The instance's task, until the engine is gone.
    pub fn run(
        self,
        commands: mailbox::Receiver<InstanceCommand>,
    ) -> impl Future<Output = ()> + Send {
        // Not `async fn run(mut self)`: that future would hold the task twice, as its argument
        // and as the local the argument is moved into (1.3 KB more for every instance).
        let mut task = self;
        async move { task.serve(commands).await }
    }

    async fn serve(&mut self, mut commands: mailbox::Receiver<InstanceCommand>) {
        loop {
            if self.frozen {
                // Nothing moves: no exit is delivered (reaping is held), no deadline, probe or
                // watchdog is acted on, until the upgrade happens or is given up.
                match commands.recv().await {
                    Some(InstanceCommand::Thaw) => {
                        self.frozen = false;
                        for command in std::mem::take(&mut self.deferred) {
                            if let Some(input) = self.command(command) {
                                Box::pin(self.apply(input)).await;
                            }
                        }
                    }
                    Some(InstanceCommand::Freeze { reply }) => {
                        let _ = reply.send(Err(format!("{} is frozen already", self.name)));
                    }
                    Some(other) => self.deferred.push(other),
                    None => break,
                }
                continue;
            }
            let deadline = self.lifecycle.deadline();
            let watchdog = self.health.watchdog_due();
            let second_watchdog = self.second.as_ref().and_then(|s| s.health.watchdog_due());
            let sample_at = self.next_sample();
            let awaiting_tree =
                self.awaiting_tree || self.second.as_ref().is_some_and(|s| s.awaiting_tree);
            let tree_poll = awaiting_tree.then(|| Instant::now() + TREE_POLL);
            // One timer for all: each is a hundred bytes held by every idle task.
            let wake = [deadline, watchdog, second_watchdog, tree_poll, sample_at]
                .into_iter()
                .flatten()
                .min();
            let input = tokio::select! {
                biased;
                status = wait_exit(&mut self.exit) => {
                    self.exit = None;
                    // A MAINPID sent just before the leader exited may still be queued.
                    for queued in commands.take(|c| matches!(c, InstanceCommand::Notify { .. })) {
                        if let InstanceCommand::Notify { message, leader } = queued {
                            self.notified(&message, leader);
                        }
                    }
                    if let Some(pid) = self.lifecycle.state().pid() {
                        self.emit(EventKind::Exited { pid, status });
                    }
                    Some(self.hand_over().unwrap_or(Input::Exited(status)))
                }
                happened = second_next(&mut self.second) => match happened {
                    SecondEvent::Exited(status) => {
                        // Not an `Exited` event: the instance's process is still running, and
                        // those who follow its states (event listeners) must not think
                        // otherwise.
                        if let Some(second) = &mut self.second {
                            second.exit = None;
                        }
                        Some(Input::SecondExited(status))
                    }
                    SecondEvent::Verdict(verdict) => self.second_judged(verdict),
                },
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => break,
                },
                verdict = self.health.next() => self.judged(verdict),
                _ = sleep_until_some(wake) => {
                    // Whichever came due; another due at the same time fires on the next turn.
                    let now = Instant::now();
                    if deadline.is_some_and(|at| now >= at) {
                        Some(Input::Tick)
                    } else if watchdog.is_some_and(|at| now >= at) {
                        let verdict = self.health.watchdog_expired();
                        self.judged(Some(verdict))
                    } else if second_watchdog.is_some_and(|at| now >= at) {
                        let verdict = self.second.as_mut().map(|s| s.health.watchdog_expired());
                        self.second_judged(verdict)
                    } else if tree_poll.is_some_and(|at| now >= at) {
                        if self.awaiting_tree && self.tree_is_empty() {
                            Some(Input::TreeEmpty)
                        } else if self.second.as_ref().is_some_and(|s| s.awaiting_tree)
                            && self.second_tree_is_empty()
                        {
                            Some(Input::SecondTreeEmpty)
                        } else {
                            None
                        }
                    } else {
                        self.sample()
                    }
                }
            };
            if let Some(input) = input {
                // Boxed: the apply path (spawn, leftovers) is rarely running, and inline it would
                // make every idle instance's task carry its whole state.
                Box::pin(self.apply(input)).await;
            }
        }
        // The engine is gone: make sure nothing of ours outlives it.
        let table = self.ctx.spawner.table().clone();
        if let Some(tree) = &self.tree {
            tree.kill(&|pid| table.is_ours(pid));
        }
        if let Some(second) = &self.second {
            second.tree.kill(&|pid| table.is_ours(pid));
        }
    }

    fn command(&mut self, command: InstanceCommand) -> Option<Input> {
        match command {
            InstanceCommand::Start {
                manual,
                reply,
                reason,
            } => {
                self.waiting_reason = None;
                self.requested_reason = reason;
                if let Some(reply) = reply {
                    self.pend(Goal::Run, reply);
                }
                Some(Input::Start { manual })
            }
            InstanceCommand::Wait {
                reason,
                blocked,
                reply,
            } => {
                self.waiting_reason = Some(reason.clone());
                if let Some(reply) = reply {
                    self.pend(Goal::Run, reply);
                }
                if blocked {
                    self.resolve(Goal::Run, Err(reason));
                }
                self.publish();
                Some(Input::Wait)
            }
            InstanceCommand::Stop { reply } => {
                self.waiting_reason = None;
                if let Some(reply) = reply {
                    self.pend(Goal::Stop, reply);
                }
                Some(Input::Stop)
            }
            InstanceCommand::Restart { reply, reason } => {
                self.requested_reason = reason;
                // Never answered from the state now: a running instance's goal already
                // holds, but a restart is done only once its successor runs.
                if let Some(reply) = reply {
                    self.pending.push((Goal::Run, reply));
                }
                Some(Input::Restart)
            }
            InstanceCommand::Signal { signal, reply } => {
                let outcome = match (&self.tree, self.lifecycle.state().pid()) {
                    (Some(tree), Some(_)) => {
                        let table = self.ctx.spawner.table().clone();
                        tree.signal(signal.number(), false, &|pid| table.is_ours(pid));
                        Ok(())
                    }
                    _ => Err(format!("not running ({})", self.lifecycle.state().name())),
                };
                let _ = reply.send(outcome);
                None
            }
            InstanceCommand::Kill => Some(Input::Kill),
            InstanceCommand::Notify { message, leader } => self.notified(&message, leader),
            InstanceCommand::Reload { timeout, reply } => {
                self.reload_request = Some(reply);
                let spec = self.next_spec.as_ref().unwrap_or(&self.service);
                Some(Input::Reload {
                    timeout,
                    // Without a readiness check a process is ready once up for min_uptime.
                    by_uptime: spec.readiness.is_none(),
                })
            }
            InstanceCommand::Freeze { reply } => {
                let frozen = self.freeze();
                self.frozen = frozen.is_ok();
                let _ = reply.send(frozen);
                None
            }
            InstanceCommand::Thaw => None,
            InstanceCommand::Respec(spec) => {
                self.next_spec = Some(spec);
                if !matches!(self.lifecycle.state(), State::Running { .. }) {
                    // No process runs the old spec (or it is stopping): take it now.
                    self.adopt_next_spec();
                    self.publish();
                }
                None
            }
        }
    }

    /// An sd_notify message from the tree of `sender_leader`: the replacement of a reload
    /// (its readiness), or the instance's process.
    fn notified(
        &mut self,
        message: &crate::engine::notify::Notification,
        sender_leader: u32,
    ) -> Option<Input> {
        if let Some(second) = &mut self.second
            && second.pid == sender_leader
        {
            // The old process saying goodbye (STOPPING=1) while it retires changes nothing.
            if self.lifecycle.replacement_pid() != Some(sender_leader) {
                return None;
            }
            let verdict = second.health.notified(message);
            return self.second_judged(verdict);
        }
        let State::Running { pid: leader, .. } = *self.lifecycle.state() else {
            return None;
        };
        if let Some(main) = message.main_pid
            && main != leader
            && self
                .main
                .as_ref()
                .is_none_or(|(watched, _)| *watched != main)
            && let Some(exit) = self.ctx.spawner.table().watch(main)
        {
            self.forget_main();
            self.main = Some((main, exit));
        }
        let verdict = self.health.notified(message);
        self.judged(verdict)
    }

    /// The leader exited: if the program named another live process its main one, follow
    /// that process instead of ending the run.
    fn hand_over(&mut self) -> Option<Input> {
        let (main, exit) = self.main.take()?;
        if nix::sys::signal::kill(nix::unistd::Pid::from_raw(main as i32), None).is_err() {
            self.ctx.spawner.table().forget(main);
            return None;
        }
        self.exit = Some(exit);
        Some(Input::MainPid { pid: main })
    }

    fn forget_main(&mut self) {
        if let Some((pid, _)) = self.main.take() {
            self.ctx.spawner.table().forget(pid);
        }
    }

    /// The next sampling tick while a process runs (aligned across instances).
    fn next_sample(&self) -> Option<Instant> {
        let sampling = self.ctx.sampling.as_ref()?;
        if !matches!(self.lifecycle.state(), State::Running { .. }) {
            return None;
        }
        Some(sampling.next_after(Instant::now(), self.sample_phase))
    }

    /// Sample the tree's CPU and memory; act on max_memory and the warnings.
    fn sample(&mut self) -> Option<Input> {
        let tree = self.tree.as_ref()?;
        let table = self.ctx.spawner.table().clone();
        // Resident memory summed over the tree's processes, not the cgroup's memory.current:
        // that counts page cache too, and a service that writes logs would trip max_memory.
        let pids = tree.members(&|pid| table.is_ours(pid));
        let usage = crate::engine::resources::tree_usage(&pids);
        let gpu = self
            .ctx
            .gpus
            .as_ref()
            .map(|gpus| crate::engine::resources::gpu_usage(&gpus.processes(), &pids));
        let now = std::time::Instant::now();
        self.usage.cpu_percent = self.usage.meter.percent(now, usage.cpu);
        self.usage.cpu_run = self.usage.cpu_run.max(usage.cpu);
        self.usage.rss_bytes = Some(usage.rss_bytes);
        self.usage.gpu_memory = gpu.map(|(memory, _)| memory);
        self.usage.gpu_percent = gpu.and_then(|(_, util)| util);
        self.status.update(|status| {
            status.cpu_percent = self.usage.cpu_percent;
            status.rss_bytes = self.usage.rss_bytes;
            status.cpu_seconds = self.usage.cpu_seconds();
            status.gpu_memory_bytes = self.usage.gpu_memory;
            status.gpu_percent = self.usage.gpu_percent;
        });
        let limits = self.service.resources.clone();
        if let (Some(max), Some(used)) = (limits.max_gpu_memory, self.usage.gpu_memory)
            && used > max
        {
            return Some(Input::Unhealthy {
                reason: format!(
                    "GPU memory {} over max_gpu_memory {}",
                    human_bytes(used),
                    human_bytes(max)
                ),
            });
        }
        let rss = usage.rss_bytes;
        if let Some(max) = limits.max_memory
            && rss > max
        {
            return Some(Input::Unhealthy {
                reason: format!(
                    "memory {} over max_memory {}",
                    human_bytes(rss),
                    human_bytes(max)
                ),
            });
        }
        if let Some(limit) = limits.warn_memory {
            let over = rss > limit;
            if over && !self.usage.over_memory {
                self.warn(format!(
                    "memory {} over warn_memory {}",
                    human_bytes(rss),
                    human_bytes(limit)
                ));
            }
            self.usage.over_memory = over;
        }
        if let (Some(limit), Some(cpu)) = (limits.warn_cpu, self.usage.cpu_percent) {
            let over = cpu > limit;
            if over && !self.usage.over_cpu {
                self.warn(format!("CPU {cpu:.0}% over warn_cpu {limit:.0}%"));
            }
            self.usage.over_cpu = over;
        }
        None
    }

    fn warn(&self, message: String) {
        crate::logs::own::say(&format!("{}: warning: {message}", self.name));
        self.emit(EventKind::Warning { message });
    }

    /// Act on what the probes concluded: publish a readiness change, or restart an
    /// unhealthy instance through the stop path.
    fn judged(&mut self, verdict: Option<Verdict>) -> Option<Input> {
        for (role, passing, detail) in self.health.take_transitions() {
            self.emit(EventKind::ProbeChanged {
                role: role.name(),
                passing,
                detail,
            });
        }
        match verdict? {
            Verdict::Changed => {
                self.publish();
                None
            }
            Verdict::Unhealthy(reason) => {
                if !matches!(self.lifecycle.state(), State::Running { .. }) {
                    return None;
                }
                Some(Input::Unhealthy { reason })
            }
        }
    }

    /// Take the newer spec: its settings, restart policy, credentials and probes, for the
    /// process about to start (or, at a reload, the one that just took over).
    fn adopt_next_spec(&mut self) {
        let Some(spec) = self.next_spec.take() else {
            return;
        };
        self.credentials = resolve_credentials(&spec);
        self.lifecycle.policy = Policy::from_spec(&spec);
        if !self.health.is_running() {
            self.health = Health::new(spec.clone(), self.index);
        }
        self.service = spec;
    }

    /// What the replacement's probes (or sd_notify) concluded: ready, or failed.
    fn second_judged(&mut self, verdict: Option<Verdict>) -> Option<Input> {
        let second = self.second.as_mut()?;
        // Not published as the instance's probe events: a replacement's failing liveness
        // is no unhealthy instance (nothing restarts); the reload's own events say it.
        second.health.take_transitions();
        let pid = second.pid;
        let ready = second.health.ready();
        if self.lifecycle.replacement_pid() != Some(pid) {
            return None;
        }
        match verdict? {
            Verdict::Changed if ready => Some(Input::ReplacementReady),
            Verdict::Changed => None,
            Verdict::Unhealthy(reason) => Some(Input::ReplacementUnhealthy { reason }),
        }
    }

    fn second_tree_is_empty(&mut self) -> bool {
        let table = self.ctx.spawner.table().clone();
        let Some(second) = &mut self.second else {
            return true;
        };
        let empty = second.tree.is_empty(true, &|pid| table.is_ours(pid));
        if empty {
            second.awaiting_tree = false;
        }
        empty
    }

    /// Queue a reply, answering at once when the goal already holds.
    fn pend(&mut self, goal: Goal, reply: oneshot::Sender<Outcome>) {
        let already = match (goal, self.lifecycle.state()) {
            (Goal::Stop, State::Stopped) => Some(Ok(())),
            (Goal::Run, State::Running { settled: true, .. })
                if self.service.kind == Kind::Service =>
            {
                Some(Ok(()))
            }
            _ => None,
        };
        match already {
            Some(outcome) => {
                let _ = reply.send(outcome);
            }
            None => self.pending.push((goal, reply)),
        }
    }

    fn resolve(&mut self, goal: Goal, outcome: Outcome) {
        let (done, rest): (Vec<_>, Vec<_>) = self.pending.drain(..).partition(|(g, _)| *g == goal);
        self.pending = rest;
        for (_, reply) in done {
            let _ = reply.send(outcome.clone());
        }
    }

    async fn apply(&mut self, input: Input) {
        // Only the input a command caused carries the command's reason, and only when it
        // changes the state (a start of a running instance changes nothing).
        let mut reason = self.requested_reason.take();
        let mut queue = VecDeque::from([input]);
        while let Some(input) = queue.pop_front() {
            let before = self.lifecycle.state().clone();
            let reload_before = self.lifecycle.reload().cloned();
            let effects = self.lifecycle.step(input, Instant::now());
            let after = self.lifecycle.state().clone();
            if let Some(why) = reason.take()
                && before.name() != after.name()
            {
                self.lifecycle.set_reason(why);
            }
            // Published before the effects run: while a spawn is in flight the supervisor must
            // see `starting`, not the `stopped` it came from (or a shutdown could finish early).
            if before != after {
                self.transitioned(&before, &after);
            } else if reload_before.as_ref() != self.lifecycle.reload() {
                // The replacement's pid routes its sd_notify messages: the supervisor must
                // know it as soon as it runs. (And the reason says how the reload goes.)
                self.publish();
            }
            for effect in effects {
                if let Some(next) = self.carry_out(effect).await {
                    queue.push_back(next);
                }
            }
        }
        if self.reload_request.is_some() {
            // Stepped and neither refused nor begun: cannot happen, but never leave a caller
            // waiting.
            self.reload_replies.extend(self.reload_request.take());
        }
    }

    async fn carry_out(&mut self, effect: Effect) -> Option<Input> {
        let table = self.ctx.spawner.table().clone();
        let owned = move |pid: u32| table.is_ours(pid);
        match effect {
            Effect::Spawn => Some(self.spawn().await),
            Effect::SignalTree(signal) => {
                if let Some(tree) = &self.tree {
                    tree.signal(signal.number(), true, &owned);
                }
                None
            }
            Effect::KillTree => {
                if let Some(tree) = &self.tree {
                    tree.kill(&owned);
                }
                None
            }
            Effect::AwaitTreeEmpty => {
                if self.tree_is_empty() {
                    Some(Input::TreeEmpty)
                } else {
                    self.awaiting_tree = true;
                    None
                }
            }
            Effect::StopLeftovers => {
                self.stop_leftovers().await;
                None
            }
            Effect::SpawnReplacement => {
                if let Some(reply) = self.reload_request.take() {
                    self.reload_replies.push(reply);
                }
                Some(self.spawn_replacement().await)
            }
            Effect::Promote => {
                self.promote();
                None
            }
            Effect::SignalSecond(signal) => {
                if let Some(second) = &self.second {
                    second.tree.signal(signal.number(), true, &owned);
                }
                None
            }
            Effect::KillSecond => {
                if let Some(second) = &self.second {
                    second.tree.kill(&owned);
                }
                None
            }
            Effect::AwaitSecondEmpty => {
                if self.second_tree_is_empty() {
                    Some(Input::SecondTreeEmpty)
                } else {
                    if let Some(second) = &mut self.second {
                        second.awaiting_tree = true;
                    }
                    None
                }
            }
            Effect::ReloadRefused(why) => {
                if let Some(reply) = self.reload_request.take() {
                    let _ = reply.send(Err(why));
                }
                None
            }
            Effect::ReloadFinished(outcome) => {
                self.reload_finished(outcome);
                None
            }
        }
    }

    /// The replacement is ready: it becomes the instance's process (tree, exit, probes), and
    /// the process it replaces becomes the second one, which the lifecycle now stops. The
    /// lifecycle has already made the replacement's pid the current one.
    fn promote(&mut self) {
        let Some(mut second) = self.second.take() else {
            return;
        };
        let Some(old_tree) = self.tree.replace(second.tree) else {
            // No current tree (cannot happen while running): nothing to retire.
            return;
        };
        let old_exit = std::mem::replace(&mut self.exit, second.exit.take());
        std::mem::swap(&mut self.health, &mut second.health);
        let mut old_health = second.health;
        // The old process's probes and MAINPID follow-up end here: it is only stopped now.
        old_health.stop();
        self.forget_main();
        // CPU counted so far stays in the counter; the meter starts over on the new tree.
        self.usage.meter.reset();
        self.usage.cpu_before += std::mem::take(&mut self.usage.cpu_run);
        let old_pid = old_tree.leader().unwrap_or_default();
        // The instance now runs the spec the replacement was started with (`tend apply`'s),
        // under its restart policy; the old process's stop was decided under the old one.
        if self
            .next_spec
            .as_ref()
            .is_some_and(|next| Arc::ptr_eq(next, &second.spec))
        {
            self.next_spec = None;
        }
        let old_spec = std::mem::replace(&mut self.service, second.spec.clone());
        if !Arc::ptr_eq(&old_spec, &self.service) {
            self.credentials = resolve_credentials(&self.service);
            self.lifecycle.policy = Policy::from_spec(&self.service);
        }
        self.second = Some(Box::new(Second {
            pid: old_pid,
            spec: old_spec,
            tree: old_tree,
            exit: old_exit,
            health: old_health,
            awaiting_tree: false,
        }));
        let pid = self.lifecycle.state().pid().unwrap_or_default();
        self.emit(EventKind::Reload {
            step: "replaced",
            pid: Some(pid),
            detail: format!("pid {pid} is ready and took over; stopping pid {old_pid}"),
        });
        self.publish();
    }

    /// The reload is over and its second process gone: answer who waited, and say how it went.
    fn reload_finished(&mut self, outcome: ReloadOutcome) {
        if let Some(second) = self.second.take() {
            second.tree.remove();
        }
        match &outcome {
            Ok(()) => {
                let pid = self.lifecycle.state().pid();
                crate::logs::own::say(&format!(
                    "{}: reloaded{}",
                    self.name,
                    pid.map(|p| format!(", now pid {p}")).unwrap_or_default()
                ));
                self.emit(EventKind::Reload {
                    step: "done",
                    pid,
                    detail: "the old process is gone".into(),
                });
            }
            Err(why) => {
                crate::logs::own::say(&format!("{}: reload failed: {why}", self.name));
                self.emit(EventKind::Reload {
                    step: "failed",
                    pid: self.lifecycle.state().pid(),
                    detail: why.clone(),
                });
            }
        }
        for reply in self.reload_replies.drain(..) {
            let _ = reply.send(outcome.clone());
        }
        self.publish();
    }

    fn tree_is_empty(&mut self) -> bool {
        let table = self.ctx.spawner.table().clone();
        let empty = self
            .tree
            .as_ref()
            .is_none_or(|t| t.is_empty(true, &|pid| table.is_ours(pid)));
        if empty {
            self.awaiting_tree = false;
        }
        empty
    }

    /// After the leader exited on its own, give what it left in its group the stop signal
    /// and, after `stop_timeout`, SIGKILL. Bounded; usually the group is already empty.
    async fn stop_leftovers(&mut self) {
        let Some(tree) = &self.tree else { return };
        let table = self.ctx.spawner.table().clone();
        let owned = |pid: u32| table.is_ours(pid);
        if tree.is_empty(false, &owned) {
            return;
        }
        tree.signal(self.service.stop_signal.number(), false, &owned);
        let deadline = Instant::now() + self.service.stop_timeout;
        while Instant::now() < deadline {
            if tree.is_empty(false, &owned) {
                return;
            }
            sleep(TREE_POLL).await;
        }
        tree.kill(&owned);
    }

    async fn spawn(&mut self) -> Input {
        // A new process runs the newest spec; nothing runs the old one any more.
        self.health.stop();
        self.adopt_next_spec();
        if let Err(reason) = &self.credentials {
            return Input::SpawnFailed {
                reason: reason.clone(),
            };
        }
        if self.tree.is_none() {
            self.tree = Some(
                self.ctx
                    .containment
                    .instance(&self.service.name, self.index),
            );
        }
        let cgroup = self.tree.as_ref().and_then(InstanceTree::cgroup_dir);
        apply_limits(
            &self.name,
            &self.service,
            cgroup.as_deref(),
            &mut self.usage.limits_reported,
        );
        let credentials = self.credentials.clone().ok().flatten();
        let (request, exec) = request(
            &self.service,
            self.index,
            &self.ctx,
            credentials,
            cgroup,
            self.health.uses_notify(),
        );
        self.health.stop();
        self.health.arm_log(&self.ctx.logs);
        self.usage.meter.reset();
        self.usage.cpu_before += std::mem::take(&mut self.usage.cpu_run);
        match self.ctx.spawner.spawn(request).await {
            Ok(child) => {
                let tree = self.tree.as_mut().expect("UNWRAP: set just above");
                tree.set_leader(child.pid);
                self.exit = Some(child.exit);
                let stdout = self.hand_to_listener_pool(child.pid, child.stdout, child.stdin);
                self.ctx
                    .logs
                    .capture(&self.service, self.index, stdout, child.stderr);
                self.health.start(Arc::new(exec));
                self.emit(EventKind::Spawned { pid: child.pid });
                Input::Spawned { pid: child.pid }
            }
            Err(error) => Input::SpawnFailed {
                reason: error.to_string(),
            },
        }
    }

    /// Start the replacement of a reload beside the current process: the same command and
    /// settings, the same sockets, in a tree (and cgroup) of its own, with probes of its own.
    /// Its output goes to the instance's log like the current process's.
    async fn spawn_replacement(&mut self) -> Input {
        // The replacement runs the newest spec (`tend apply`); the current process keeps
        // its own until it is replaced.
        let spec = self
            .next_spec
            .clone()
            .unwrap_or_else(|| self.service.clone());
        let credentials = match &self.next_spec {
            Some(next) => resolve_credentials(next),
            None => self.credentials.clone(),
        };
        let credentials = match credentials {
            Ok(credentials) => credentials,
            Err(reason) => return Input::ReplacementSpawnFailed { reason },
        };
        let alternate = !self.tree.as_ref().is_some_and(InstanceTree::is_alternate);
        let mut tree = self
            .ctx
            .containment
            .instance_slot(&spec.name, self.index, alternate);
        let cgroup = tree.cgroup_dir();
        apply_limits(
            &self.name,
            &spec,
            cgroup.as_deref(),
            &mut self.usage.limits_reported,
        );
        let mut health = Health::new(spec.clone(), self.index);
        let (request, exec) = request(
            &spec,
            self.index,
            &self.ctx,
            credentials,
            cgroup,
            health.uses_notify(),
        );
        // A log readiness pattern is matched on the instance's log, which both processes
        // write: a line only a starting process prints tells them apart.
        health.arm_log(&self.ctx.logs);
        match self.ctx.spawner.spawn(request).await {
            Ok(child) => {
                tree.set_leader(child.pid);
                // An event listener is never reloaded (the supervisor restarts it), so its
                // pipes need no pool here.
                self.ctx
                    .logs
                    .capture(&spec, self.index, child.stdout, child.stderr);
                health.start(Arc::new(exec));
                self.second = Some(Box::new(Second {
                    pid: child.pid,
                    spec: spec.clone(),
                    tree,
                    exit: Some(child.exit),
                    health,
                    awaiting_tree: false,
                }));
                self.emit(EventKind::Reload {
                    step: "started",
                    pid: Some(child.pid),
                    detail: format!(
                        "replacement pid {} started beside pid {}",
                        child.pid,
                        self.lifecycle.state().pid().unwrap_or_default()
                    ),
                });
                Input::ReplacementSpawned { pid: child.pid }
            }
            Err(error) => {
                tree.remove();
                Input::ReplacementSpawnFailed {
                    reason: error.to_string(),
                }
            }
        }
    }

    /// An event listener's stdin and stdout go to the pool that speaks the protocol with it;
    /// its log then reads a relay the pool copies stdout into. Returns what the log reads.
    fn hand_to_listener_pool(
        &self,
        pid: u32,
        stdout: std::os::fd::OwnedFd,
        stdin: Option<std::os::fd::OwnedFd>,
    ) -> std::os::fd::OwnedFd {
        let (Some(stdin), Some(pool), Some(listener)) =
            (stdin, &self.ctx.listener_io, &self.service.event_listener)
        else {
            return stdout;
        };
        let Ok((relay_read, relay_write)) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) else {
            return stdout;
        };
        let io = crate::engine::ListenerIo {
            instance: self.name.clone(),
            service: self.service.name.clone(),
            listener: listener.clone(),
            pid,
            stdin,
            stdout,
            log: relay_write,
        };
        match pool.send(io) {
            Ok(()) => relay_read,
            // Nobody speaks the protocol any more (shutting down): log stdout directly.
            Err(returned) => returned.0.stdout,
        }
    }

    fn transitioned(&mut self, before: &State, after: &State) {
        if !matches!(after, State::Running { .. } | State::Starting) {
            // No process to probe: a stopping one must not be judged by liveness either.
            self.health.stop();
            self.forget_main();
        }
        if matches!(after, State::Stopped)
            && let Some(tree) = self.tree.take()
        {
            tree.remove();
        }
        let is_task = self.service.kind == Kind::Task;
        match after {
            // A start has worked once the run counts as healthy: up for min_uptime.
            State::Running { settled: true, .. }
                if !is_task && !matches!(before, State::Running { settled: true, .. }) =>
            {
                self.emit(EventKind::Settled);
                self.resolve(Goal::Run, Ok(()))
            }
            State::Exited { success: true, .. } if is_task => self.resolve(Goal::Run, Ok(())),
            State::Exited { .. } | State::Fatal { .. } | State::Backoff { .. } => {
                let reason = self.lifecycle.reason().to_string();
                self.resolve(Goal::Run, Err(reason));
            }
            State::Stopped => {
                self.resolve(Goal::Stop, Ok(()));
                self.resolve(Goal::Run, Err("stopped before it was running".into()));
            }
            _ => {}
        }
        if before.name() != after.name() {
            let reason = match (after, &self.waiting_reason) {
                (State::Waiting, Some(why)) => why.clone(),
                _ => self.lifecycle.reason().to_string(),
            };
            self.emit(EventKind::StateChanged {
                from: before.name(),
                to: after.name(),
                reason,
            });
        }
        self.publish();
    }

    fn publish(&self) {
        let state = self.lifecycle.state();
        let (started, ready) = match state {
            State::Running { since, settled, .. } => (
                Some(*since),
                if self.health.has_readiness() {
                    self.health.ready()
                } else {
                    *settled
                },
            ),
            _ => (None, false),
        };
        let reason = match (state, &self.waiting_reason) {
            (State::Waiting, Some(why)) => why.clone(),
            _ => self.lifecycle.reason().to_string(),
        };
        let (generation, changed_at, last_start) = {
            let before = self.status.borrow();
            let now = SystemTime::now();
            let changed = before.state != state.name();
            let started_now = started.is_some() && before.started != started;
            (
                before.generation + 1,
                if changed { now } else { before.changed_at },
                if started_now {
                    Some(now)
                } else {
                    before.last_start
                },
            )
        };
        self.status.replace(InstanceStatus {
            name: self.name.clone(),
            service: self.service.name.clone(),
            index: self.index,
            state: state.name(),
            pid: state.pid(),
            replacement_pid: self.lifecycle.replacement_pid(),
            started,
            ready,
            restarts: self.lifecycle.restarts(),
            restart_causes: self.lifecycle.restart_causes(),
            last_exit: self.lifecycle.last_exit(),
            reason,
            is_task: self.service.kind == Kind::Task,
            completed: matches!(state, State::Exited { success: true, .. }),
            generation,
            health: self.health.health(),
            notify_status: self.health.notify_state().status.clone(),
            notify_phase: self.health.notify_phase(),
            probes: self.health.reports().to_vec(),
            cpu_percent: self.usage.cpu_percent.filter(|_| state.pid().is_some()),
            rss_bytes: self.usage.rss_bytes.filter(|_| state.pid().is_some()),
            cpu_seconds: self.usage.cpu_seconds(),
            gpu_memory_bytes: self.usage.gpu_memory.filter(|_| state.pid().is_some()),
            gpu_percent: self.usage.gpu_percent.filter(|_| state.pid().is_some()),
            warning: None,
            changed_at,
            last_start,
        });
        let _ = self.ctx.changes.send(self.name.clone());
    }

    fn emit(&self, kind: EventKind) {
        // No receivers is fine: nobody is listening right now.
        let _ = self.ctx.events.send(Event {
            at: SystemTime::now(),
            instance: self.name.clone(),
            service: self.service.name.clone(),
            kind,
        });
    }
}

/// What a spawn of instance `index` of `service` needs: the request, and how its exec
/// probes run. `notify` gives it NOTIFY_SOCKET.
fn request(
    service: &ServiceSpec,
    index: u32,
    ctx: &InstanceContext,
    credentials: Option<Credentials>,
    cgroup: Option<PathBuf>,
    notify: bool,
) -> (SpawnRequest, SpawnExec) {
    // Expanded here rather than kept: an idle instance should hold as little as possible.
    let spec = service.instance(index);
    let argv = match spec.program {
        Program::Exec(argv) => argv,
        Program::Shell(line) => vec!["/bin/sh".into(), "-c".into(), line],
    };
    let mut env: Vec<(String, String)> = spec.env.into_iter().collect();
    env.push((RUN_ID_VAR.into(), ctx.containment.run_id().to_string()));
    let gpus = service.resources.gpus_of(index);
    if !gpus.is_empty() {
        env.push(("CUDA_VISIBLE_DEVICES".into(), gpus.join(",")));
    }
    let probe_env = env.clone();
    if notify {
        env.push((
            "NOTIFY_SOCKET".into(),
            ctx.notify_socket.to_string_lossy().into_owned(),
        ));
        if let Some(watchdog) = service.watchdog {
            env.push(("WATCHDOG_USEC".into(), watchdog.as_micros().to_string()));
        }
    }
    let mut pid_env = if notify && service.watchdog.is_some() {
        vec!["WATCHDOG_PID".to_string()]
    } else {
        Vec::new()
    };
    // After `probe_env` was taken: an exec check is not handed the sockets, and its
    // LISTEN_PID would not be its own.
    let passed = ctx.sockets.for_service(service);
    if !passed.fds.is_empty() {
        env.push(("LISTEN_FDS".into(), passed.fds.len().to_string()));
        env.push(("LISTEN_FDNAMES".into(), passed.names.join(":")));
        pid_env.push("LISTEN_PID".into());
    }
    let cwd = spec
        .cwd
        .map(PathBuf::from)
        .unwrap_or_else(|| ctx.base_dir.clone());
    let exec = SpawnExec {
        spawner: ctx.spawner.clone(),
        env: probe_env,
        cwd: cwd.clone(),
        credentials: credentials.clone(),
        umask: service.umask,
    };
    let request = SpawnRequest {
        argv,
        env,
        cwd,
        credentials,
        umask: service.umask,
        cgroup,
        pid_env,
        stdin_pipe: service.event_listener.is_some(),
        listen_fds: passed.fds,
    };
    (request, exec)
}

/// Write the service's cgroup limits into an instance's cgroup (before the spawn); where
/// that is impossible, say so once (`reported`).
fn apply_limits(
    name: &str,
    service: &ServiceSpec,
    cgroup: Option<&std::path::Path>,
    reported: &mut bool,
) {
    let limits = &service.resources;
    if limits.memory_max.is_none() && limits.cpu_max.is_none() && limits.pids_max.is_none() {
        return;
    }
    let result = match cgroup {
        Some(dir) => crate::engine::resources::apply_limits(
            dir,
            limits.memory_max,
            limits.cpu_max,
            limits.pids_max,
        )
        .map_err(|e| e.to_string()),
        None => Err("tend is not managing cgroups here (cgroup v2 not writable)".into()),
    };
    if let Err(why) = result
        && !*reported
    {
        *reported = true;
        crate::logs::own::say(&format!(
            "{name}: cannot apply memory_max/cpu_max/pids_max: {why}"
        ));
    }
}

/// 1.2GB, 850MB, 12kB: decimal units, as sizes are written in the manifest.
fn human_bytes(bytes: u64) -> String {
    let units = [("GB", 1e9), ("MB", 1e6), ("kB", 1e3)];
    for (unit, size) in units {
        if bytes as f64 >= size {
            return format!("{:.1}{unit}", bytes as f64 / size).replace(".0", "");
        }
    }
    format!("{bytes}B")
}

async fn wait_exit(exit: &mut Option<oneshot::Receiver<ExitStatus>>) -> ExitStatus {
    match exit {
        Some(receiver) => match receiver.await {
            Ok(status) => status,
            // The reaper never drops a sender without sending; if it did, never wake.
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

enum SecondEvent {
    Exited(ExitStatus),
    Verdict(Option<Verdict>),
}

/// The exit of a reload's second process, or a verdict of its probes; never, while there
/// is none.
/// The second process's exit or verdict, never without one. Boxed, and so allocated, only
/// while there is one (a reload): inline, every idle task would carry its 270 bytes.
fn second_next(
    second: &mut Option<Box<Second>>,
) -> std::pin::Pin<Box<dyn Future<Output = SecondEvent> + Send + '_>> {
    let Some(second) = second else {
        // A zero-sized future: boxing it allocates nothing.
        return Box::pin(std::future::pending());
    };
    Box::pin(async move {
        let Second { exit, health, .. } = &mut **second;
        tokio::select! {
            biased;
            status = wait_exit(exit) => SecondEvent::Exited(status),
            verdict = health.next() => SecondEvent::Verdict(verdict),
        }
    })
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// A per-instance jitter seed: stable for a name, different between instances.
fn seed_for(name: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes().chain(std::process::id().to_le_bytes()) {
        hash ^= byte as u64;
        hash = hash.wrapping_mul(0x100_0000_01b3);
    }
    hash
}

/// Resolve `user`/`group` once, before any fork. Switching users needs root; running as the
/// named user already is fine too.
fn resolve_credentials(service: &ServiceSpec) -> Result<Option<Credentials>, String> {
    use nix::unistd::{Gid, Group, Uid, User, getgrouplist};
    use std::ffi::CString;
    let Some(user_name) = &service.user else {
        if let Some(group) = &service.group {
            return Err(format!(
                "group `{group}` without user is not supported; set `user` too"
            ));
        }
        return Ok(None);
    };
    let user = match user_name.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)),
        Err(_) => User::from_name(user_name),
    }
    .map_err(|e| format!("looking up user `{user_name}`: {e}"))?
    .ok_or_else(|| format!("no such user `{user_name}`"))?;
    let gid = match &service.group {
        Some(group_name) => match group_name.parse::<u32>() {
            Ok(gid) => Gid::from_raw(gid),
            Err(_) => {
                Group::from_name(group_name)
                    .map_err(|e| format!("looking up group `{group_name}`: {e}"))?
                    .ok_or_else(|| format!("no such group `{group_name}`"))?
                    .gid
            }
        },
        None => user.gid,
    };
    let current = Uid::effective();
    if !current.is_root() {
        if current == user.uid {
            return Ok(None);
        }
        return Err(format!(
            "cannot run as `{user_name}`: tend is not running as root"
        ));
    }
    let c_name = CString::new(user.name.clone()).map_err(|e| e.to_string())?;
    let mut groups: Vec<u32> = getgrouplist(&c_name, gid)
        .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
        .unwrap_or_else(|_| vec![gid.as_raw()]);
    if !groups.contains(&gid.as_raw()) {
        groups.push(gid.as_raw());
    }
    Ok(Some(Credentials {
        uid: user.uid.as_raw(),
        gid: gid.as_raw(),
        groups,
        user: user.name,
        home: user.dir.to_string_lossy().into_owned(),
    }))
}

#[cfg(test)]
mod sampling_tests {
    use super::Sampling;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    #[test]
    fn phases_are_fixed_by_name_and_spread_over_the_interval() {
        assert_eq!(super::phase("web:3"), super::phase("web:3"));
        let mut buckets = [0u32; 10];
        for i in 0..10_000 {
            let phase = super::phase(&format!("s{i:05}"));
            assert!((0.0..1.0).contains(&phase), "{phase}");
            buckets[(phase * 10.0) as usize] += 1;
        }
        // A burst would put them all in one tenth; evenly spread is 1 000 each.
        assert!(
            buckets.iter().all(|&n| (800..1200).contains(&n)),
            "{buckets:?}"
        );
    }

    #[tokio::test]
    async fn the_next_sample_is_the_next_tick_of_the_instance_s_slot() {
        let origin = tokio::time::Instant::now();
        let sampling = Sampling::new(Duration::from_secs(2), origin);
        let second = Duration::from_secs(1);
        // The shared tick: the interval's start, whatever the count.
        assert_eq!(sampling.next_after(origin, None), origin + 2 * second);
        assert_eq!(
            sampling.next_after(origin + 3 * second, None),
            origin + 4 * second
        );
        // 10 000 instances: every 66.7 s, in 100 slots; phase 0.5 is the 51st slot.
        sampling.instances.store(10_000, Ordering::Relaxed);
        let every = sampling.every();
        let slot = every.mul_f64(50.0 / 100.0);
        assert_eq!(sampling.next_after(origin, Some(0.5)), origin + slot);
        assert_eq!(
            sampling.next_after(origin + slot, Some(0.5)),
            origin + slot + every
        );
    }

    #[tokio::test]
    async fn samples_share_slots_of_a_hundred_at_least_a_quarter_second_apart() {
        let sampling = Sampling::new(Duration::from_secs(2), tokio::time::Instant::now());
        let slots = |instances: usize, every: Duration| {
            sampling.instances.store(instances, Ordering::Relaxed);
            let offsets: std::collections::BTreeSet<Duration> = (0..instances)
                .map(|i| sampling.offset(every, super::phase(&format!("s{i:05}"))))
                .collect();
            assert!(offsets.iter().all(|o| *o < every));
            offsets
        };
        let many = slots(10_000, Duration::from_secs(67));
        assert_eq!(many.len(), 100, "a hundred instances a slot");
        assert_eq!(many.first(), Some(&Duration::ZERO));
        assert_eq!(many.iter().nth(1), Some(&Duration::from_millis(670)));
        assert_eq!(
            slots(10_000, Duration::from_secs(10)).len(),
            40,
            "slots no closer than 250 ms"
        );
        assert_eq!(slots(1_000, Duration::from_secs(7)).len(), 10);
        // Few instances sample together, on the interval's start, as without cgroups.
        assert_eq!(slots(150, Duration::from_secs(2)).len(), 1);
        assert_eq!(slots(10_000, Duration::from_millis(100)).len(), 1);
    }

    #[tokio::test]
    async fn many_instances_stretch_the_interval_to_the_budget() {
        let sampling = Sampling::new(Duration::from_secs(2), tokio::time::Instant::now());
        for (instances, every) in [
            (0, 2.0),
            (200, 2.0),
            (300, 2.0),
            (600, 4.0),
            (1_500, 10.0),
            (10_000, 10_000.0 / 150.0),
        ] {
            sampling.instances.store(instances, Ordering::Relaxed);
            assert_eq!(
                sampling.every(),
                Duration::from_secs_f64(every),
                "{instances}"
            );
        }
    }
}

#[cfg(test)]
mod footprint_tests {
    /// Every instance's task holds this future for as long as tend runs: at 10 000 services
    /// each kilobyte here is 10 MB. It was 3.7 KB when it held the task twice and every
    /// rarely used branch inline; 1.8 KB since.
    #[test]
    fn an_idle_instance_task_stays_small() {
        fn output_size<A, B, R>(_: fn(A, B) -> R) -> usize {
            std::mem::size_of::<R>()
        }
        let task = std::mem::size_of::<super::InstanceTask>();
        let future = output_size(super::InstanceTask::run as fn(_, _) -> _);
        assert!(task <= 1_400, "InstanceTask is {task} bytes");
        assert!(
            future <= task + 1_000,
            "the task's future is {future} bytes for a task of {task}: something large is held \
             across the idle wait (a second copy of the task, an unboxed rare branch)"
        );
    }
}
