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
use crate::engine::command::{InstanceCommand, Outcome};
use crate::engine::event::{Event, EventKind, InstanceStatus, StatusCell};
use crate::engine::health::{Health, SpawnExec, Verdict};
use crate::engine::lifecycle::{Effect, ExitStatus, Input, Lifecycle, Policy, State};
use crate::engine::mailbox;
use crate::engine::spawn::{Credentials, SpawnRequest, Spawner};
use crate::engine::tree::{Containment, InstanceTree, RUN_ID_VAR};
use crate::logs::LogSink;

/// How often a stopping instance whose leader is gone checks whether the rest of its tree
/// has exited. Only runs during that short phase of a stop.
const TREE_POLL: Duration = Duration::from_millis(10);

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
    /// How often to sample CPU and memory, and the instant samples are aligned to (all
    /// instances sample together, so the /proc scan is shared).
    pub sampling: Option<(Duration, Instant)>,
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
    ctx: InstanceContext,
    status: StatusCell,
    health: Health,
    usage: Usage,
    /// The process the program named its main one over sd_notify (MAINPID), and its exit.
    main: Option<(u32, oneshot::Receiver<ExitStatus>)>,
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
        ctx: InstanceContext,
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
        let task = InstanceTask {
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
        };
        (task, receiver)
    }

    pub async fn run(mut self, mut commands: mailbox::Receiver<InstanceCommand>) {
        loop {
            let deadline = self.lifecycle.deadline();
            let watchdog = self.health.watchdog_due();
            let sample_at = self.next_sample();
            // One timer for all three: each is a few hundred bytes held by every idle task.
            let wake = [deadline, watchdog, sample_at].into_iter().flatten().min();
            let input = tokio::select! {
                biased;
                status = wait_exit(&mut self.exit) => {
                    self.exit = None;
                    // A MAINPID sent just before the leader exited may still be queued.
                    for queued in commands.take(|c| matches!(c, InstanceCommand::Notify(_))) {
                        if let InstanceCommand::Notify(message) = queued {
                            self.notified(&message);
                        }
                    }
                    if let Some(pid) = self.lifecycle.state().pid() {
                        self.emit(EventKind::Exited { pid, status });
                    }
                    Some(self.hand_over().unwrap_or(Input::Exited(status)))
                }
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
                    } else {
                        self.sample()
                    }
                }
                _ = sleep(TREE_POLL), if self.awaiting_tree => {
                    self.tree_is_empty().then_some(Input::TreeEmpty)
                }
            };
            if let Some(input) = input {
                // Boxed: the apply path (spawn, leftovers) is rarely running, and inline it would
                // make every idle instance's task carry its whole state.
                Box::pin(self.apply(input)).await;
            }
        }
        // The engine is gone: make sure nothing of ours outlives it.
        if let Some(tree) = &self.tree {
            let table = self.ctx.spawner.table().clone();
            tree.kill(&|pid| table.is_ours(pid));
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
            InstanceCommand::Notify(message) => self.notified(&message),
        }
    }

    fn notified(&mut self, message: &crate::engine::notify::Notification) -> Option<Input> {
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
        let (every, origin) = self.ctx.sampling?;
        if !matches!(self.lifecycle.state(), State::Running { .. }) {
            return None;
        }
        let now = Instant::now();
        let ticks = now.saturating_duration_since(origin).as_nanos() / every.as_nanos().max(1) + 1;
        Some(origin + every * u32::try_from(ticks).unwrap_or(u32::MAX))
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

    /// Write the service's cgroup limits into the instance's cgroup (before the spawn);
    /// where that is impossible, say so once.
    fn apply_limits(&mut self) {
        let limits = &self.service.resources;
        if limits.memory_max.is_none() && limits.cpu_max.is_none() && limits.pids_max.is_none() {
            return;
        }
        let result = match self.tree.as_ref().and_then(|t| t.cgroup_dir()) {
            Some(dir) => crate::engine::resources::apply_limits(
                &dir,
                limits.memory_max,
                limits.cpu_max,
                limits.pids_max,
            )
            .map_err(|e| e.to_string()),
            None => Err("tend is not managing cgroups here (cgroup v2 not writable)".into()),
        };
        if let Err(why) = result
            && !self.usage.limits_reported
        {
            self.usage.limits_reported = true;
            crate::logs::own::say(&format!(
                "{}: cannot apply memory_max/cpu_max/pids_max: {why}",
                self.name
            ));
        }
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
            }
            for effect in effects {
                if let Some(next) = self.carry_out(effect).await {
                    queue.push_back(next);
                }
            }
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
        }
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
        let credentials = match &self.credentials {
            Ok(credentials) => credentials.clone(),
            Err(reason) => {
                return Input::SpawnFailed {
                    reason: reason.clone(),
                };
            }
        };
        if self.tree.is_none() {
            self.tree = Some(
                self.ctx
                    .containment
                    .instance(&self.service.name, self.index),
            );
        }
        self.apply_limits();
        let tree = self.tree.as_mut().expect("UNWRAP: set just above");
        // Expanded here rather than kept: an idle instance should hold as little as possible.
        let spec = self.service.instance(self.index);
        let argv = match spec.program {
            Program::Exec(argv) => argv,
            Program::Shell(line) => vec!["/bin/sh".into(), "-c".into(), line],
        };
        let mut env: Vec<(String, String)> = spec.env.into_iter().collect();
        env.push((RUN_ID_VAR.into(), self.ctx.containment.run_id().to_string()));
        let gpus = self.service.resources.gpus_of(self.index);
        if !gpus.is_empty() {
            env.push(("CUDA_VISIBLE_DEVICES".into(), gpus.join(",")));
        }
        let probe_env = env.clone();
        if self.health.uses_notify() {
            env.push((
                "NOTIFY_SOCKET".into(),
                self.ctx.notify_socket.to_string_lossy().into_owned(),
            ));
            if let Some(watchdog) = self.service.watchdog {
                env.push(("WATCHDOG_USEC".into(), watchdog.as_micros().to_string()));
            }
        }
        let mut pid_env = if self.health.uses_notify() && self.service.watchdog.is_some() {
            vec!["WATCHDOG_PID".to_string()]
        } else {
            Vec::new()
        };
        // After `probe_env` was taken: an exec check is not handed the sockets, and its
        // LISTEN_PID would not be its own.
        let passed = self.ctx.sockets.for_service(&self.service);
        if !passed.fds.is_empty() {
            env.push(("LISTEN_FDS".into(), passed.fds.len().to_string()));
            env.push(("LISTEN_FDNAMES".into(), passed.names.join(":")));
            pid_env.push("LISTEN_PID".into());
        }
        let cwd = spec
            .cwd
            .map(PathBuf::from)
            .unwrap_or_else(|| self.ctx.base_dir.clone());
        let exec = SpawnExec {
            spawner: self.ctx.spawner.clone(),
            env: probe_env,
            cwd: cwd.clone(),
            credentials: credentials.clone(),
            umask: self.service.umask,
        };
        let request = SpawnRequest {
            argv,
            env,
            cwd,
            credentials,
            umask: self.service.umask,
            cgroup: tree.cgroup_dir(),
            pid_env,
            stdin_pipe: self.service.event_listener.is_some(),
            listen_fds: passed.fds,
        };
        self.health.stop();
        self.health.arm_log(&self.ctx.logs);
        self.usage.meter.reset();
        self.usage.cpu_before += std::mem::take(&mut self.usage.cpu_run);
        match self.ctx.spawner.spawn(request).await {
            Ok(child) => {
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
