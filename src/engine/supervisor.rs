//! The top-level actor: owns every instance task, resolves targets, gates starts on
//! dependencies, and orders stops (dependents first, then by priority). It reacts to status
//! changes reported by the instances; it never blocks on one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::config::model::{Condition, Manifest, OnUnready, ServiceSpec};
use crate::config::plan;
use crate::engine::command::{
    InstanceCommand, Outcome, Outcomes, ReloadGroup, ReloadMode, SupervisorCommand, Trigger,
    UnknownTarget,
};
use crate::engine::event::{Event, EventKind, InstanceStatus, StatusCell};
use crate::engine::handover::{Frozen, FrozenInstance};
use crate::engine::instance::{InstanceContext, InstanceTask};
use crate::engine::mailbox;

struct Handle {
    service: Arc<ServiceSpec>,
    commands: mailbox::Sender<InstanceCommand>,
    status: StatusCell,
    /// The status generation when a start was last sent: until the instance publishes a newer
    /// one, its old state (stopped, exited) must not be read as a failure.
    start_sent: Option<u64>,
}

impl Handle {
    fn send(&self, command: InstanceCommand) {
        if matches!(
            command,
            InstanceCommand::Stop { .. } | InstanceCommand::Kill
        ) {
            // A start still queued behind a stop would spawn a process only to stop it again
            // (a `down` during a mass start): withdraw it and say why.
            let withdrawn = self.commands.withdraw(|queued| {
                matches!(
                    queued,
                    InstanceCommand::Start { .. }
                        | InstanceCommand::Restart { .. }
                        | InstanceCommand::Wait { .. }
                )
            });
            for queued in withdrawn {
                if let InstanceCommand::Start {
                    reply: Some(reply), ..
                }
                | InstanceCommand::Restart {
                    reply: Some(reply), ..
                }
                | InstanceCommand::Wait {
                    reply: Some(reply), ..
                } = queued
                {
                    let _ = reply.send(Err("stopped before it started".into()));
                }
            }
        }
        self.commands.send(command);
    }

    fn state(&self) -> &'static str {
        self.status.borrow().state
    }

    fn start_in_flight(&self) -> bool {
        self.start_sent == Some(self.status.borrow().generation)
    }
}

/// An ordered stop in progress.
struct StopPlan {
    /// In the order they stop: the reverse of the start order.
    instances: Vec<String>,
    /// Those not sent their stop yet, in the same order: each waits for what must stop
    /// before it.
    waiting: Vec<String>,
    /// Where in `instances` the first one not stopped was at the last look: a stop of
    /// thousands of instances must not cost every evaluation a look at each of them.
    place: usize,
    replies: Vec<(String, oneshot::Receiver<Outcome>)>,
    done: Option<oneshot::Sender<Outcomes>>,
}

struct SettleWaiter {
    instances: Vec<String>,
    /// Where in `instances` the first one not settled was at the last look.
    place: usize,
    /// Running is not enough: wait until up for min_uptime.
    ready: bool,
    reply: oneshot::Sender<Result<Outcomes, UnknownTarget>>,
}

pub struct Supervisor {
    /// Each service's spec, shared with its instances (the manifest itself is not kept).
    services: HashMap<String, Arc<ServiceSpec>>,
    /// Instance names in start order: dependencies first, then priority, then file order.
    order: Vec<String>,
    instances: HashMap<String, Handle>,
    /// For each service, the services that must stop before it (its dependents, transitively,
    /// and independent services of higher priority that start after it).
    stop_after: HashMap<String, HashSet<String>>,
    /// Instances asked to start that have not been sent their start yet (held for dependencies).
    to_start: BTreeMap<String, StartRequest>,
    stop_plans: Vec<StopPlan>,
    settle_waiters: Vec<SettleWaiter>,
    shutting_down: bool,
    shutdown_replies: Vec<oneshot::Sender<()>>,
    /// Whether each depended-on service is ready now (all its instances running and ready);
    /// absent until it first was.
    dependency_ready: HashMap<String, bool>,
    /// Dependents stopped (`on_unready = "stop"`) or to restart (`"restart"`) because this
    /// dependency stopped being ready: instance → dependency.
    held: HashMap<String, String>,
    restart_on_return: HashMap<String, String>,
    /// `[tend] max_starting`: at most this many instances starting (not yet ready) at once.
    max_starting: Option<usize>,
    /// Each service and group name → its instances, in start order: resolving a target is a
    /// lookup, not a scan (the API asks for status hundreds of times a second).
    members: HashMap<String, Vec<String>>,
    /// The services others depend on while running (not `completed`), for
    /// `follow_dependencies`.
    depended: Vec<String>,
    /// What new instance tasks are given.
    ctx: Arc<InstanceContext>,
    /// Services being reloaded: one reload of a service at a time.
    reloading: HashSet<String>,
    /// What schedule and watch tasks are given.
    triggers: Triggers,
    /// Each service's schedule and watch tasks, aborted when it is removed (or tend stops).
    trigger_tasks: HashMap<String, Vec<AbortOnDrop>>,
    /// What file watches never react to (tend's state dir, the log files), kept current
    /// across reconfigurations.
    exclusions: tokio::sync::watch::Sender<Arc<crate::engine::watch::Exclusions>>,
    /// Frozen for an upgrade: commands but status wait in `deferred` until `Thaw`.
    frozen: bool,
    deferred: Vec<SupervisorCommand>,
    /// Instances handed over by the previous image, taken by `adopt` as it makes tasks.
    adopting: HashMap<String, FrozenInstance>,
}

/// What the supervisor needs to run schedules and file watches.
pub struct Triggers {
    /// The supervisor's own inbox, held weakly so that the engine can still end.
    pub commands: mpsc::WeakUnboundedSender<SupervisorCommand>,
    pub clock: Arc<dyn crate::engine::schedule::Clock>,
}

/// A task that ends with its owner.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct StartRequest {
    manual: bool,
    reply: Option<oneshot::Sender<Outcome>>,
    /// The last reason sent with `Wait`, so it is sent again only when it changes.
    told: Option<String>,
    /// Why it starts, when not a plain start (a schedule).
    reason: Option<String>,
}

impl Supervisor {
    /// The supervisor of `manifest`'s services; with `adoption`, the instances the previous
    /// image of tend handed over go on where they were (an upgrade).
    pub fn new(
        manifest: Manifest,
        ctx: InstanceContext,
        triggers: Triggers,
        adoption: Option<Frozen>,
    ) -> Supervisor {
        let (exclusions, _) =
            tokio::sync::watch::channel(Arc::new(crate::engine::watch::Exclusions::of(&manifest)));
        let mut supervisor = Supervisor {
            triggers,
            trigger_tasks: HashMap::new(),
            exclusions,
            members: HashMap::new(),
            depended: Vec::new(),
            services: HashMap::new(),
            order: Vec::new(),
            instances: HashMap::new(),
            stop_after: HashMap::new(),
            to_start: BTreeMap::new(),
            stop_plans: Vec::new(),
            settle_waiters: Vec::new(),
            shutting_down: false,
            dependency_ready: HashMap::new(),
            held: HashMap::new(),
            restart_on_return: HashMap::new(),
            max_starting: manifest.daemon.max_starting,
            shutdown_replies: Vec::new(),
            ctx: Arc::new(ctx),
            reloading: HashSet::new(),
            frozen: false,
            deferred: Vec::new(),
            adopting: HashMap::new(),
        };
        let adoption = adoption.unwrap_or_default();
        supervisor.adopting = adoption
            .instances
            .into_iter()
            .map(|instance| (instance.name.clone(), instance))
            .collect();
        supervisor.adopt(&manifest);
        for (name, orphan) in std::mem::take(&mut supervisor.adopting) {
            supervisor.let_go(&name, &orphan);
        }
        let known = |name: &String| supervisor.instances.contains_key(name);
        let held = adoption
            .held
            .into_iter()
            .filter(|(i, _)| known(i))
            .collect();
        let restart = adoption
            .restart_on_return
            .into_iter()
            .filter(|(i, _)| known(i))
            .collect();
        supervisor.held = held;
        supervisor.restart_on_return = restart;
        supervisor.dependency_ready = adoption.dependency_ready.into_iter().collect();
        supervisor
    }

    /// A handed-over instance the manifest no longer has (the new image read it
    /// differently): nothing could supervise its process, so it is killed, and said so.
    fn let_go(&self, name: &str, orphan: &FrozenInstance) {
        let crate::engine::lifecycle::FrozenState::Running { pid, .. } = orphan.lifecycle.state
        else {
            return;
        };
        let group = orphan.leader.unwrap_or(pid);
        crate::logs::own::say(&format!(
            "{name}: not in the manifest as this tend reads it; killing its process group {group}"
        ));
        if group > 1 {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(group as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    /// Take the manifest's services as the supervised set: spawn tasks for the services not
    /// supervised yet, and recompute every order and index from the manifest.
    fn adopt(&mut self, manifest: &Manifest) {
        let service_order = crate::config::start_order(manifest);
        // Not `manifest.shared_service`, a search of the list: once per service, that was
        // quadratic.
        let by_name: HashMap<&str, &Arc<ServiceSpec>> = manifest
            .services
            .iter()
            .map(|s| (s.name.as_str(), s))
            .collect();
        self.order.clear();
        for name in &service_order {
            let spec = match self.services.get(name) {
                Some(kept) => kept.clone(),
                None => {
                    let spec = (*by_name
                        .get(name.as_str())
                        .expect("UNWRAP: start_order lists manifest services"))
                    .clone();
                    self.services.insert(name.clone(), spec.clone());
                    spec
                }
            };
            for index in 0..spec.instances {
                let instance_name = spec.instance_name(index);
                if !self.instances.contains_key(&instance_name) {
                    let (task, status) = match self.adopting.remove(&instance_name) {
                        Some(frozen) => {
                            InstanceTask::adopt(spec.clone(), index, self.ctx.clone(), frozen)
                        }
                        None => InstanceTask::new(spec.clone(), index, self.ctx.clone()),
                    };
                    let (commands, inbox) = mailbox::mailbox();
                    tokio::spawn(task.run(inbox));
                    self.instances.insert(
                        instance_name.clone(),
                        Handle {
                            service: spec.clone(),
                            commands,
                            status,
                            start_sent: None,
                        },
                    );
                }
                self.order.push(instance_name);
            }
        }
        if let Some(sampling) = &self.ctx.sampling {
            sampling
                .instances
                .store(self.instances.len(), std::sync::atomic::Ordering::Relaxed);
        }
        self.stop_after = stop_constraints(manifest, &service_order);
        self.exclusions
            .send_replace(Arc::new(crate::engine::watch::Exclusions::of(manifest)));
        if !self.shutting_down {
            for name in &service_order {
                if !self.trigger_tasks.contains_key(name) {
                    let spec = self.services[name].clone();
                    let tasks = self.start_triggers(&spec);
                    if !tasks.is_empty() {
                        self.trigger_tasks.insert(name.clone(), tasks);
                    }
                }
            }
        }
        self.members.clear();
        for name in &self.order {
            let spec = &self.instances[name].service;
            for key in std::iter::once(&spec.name).chain(spec.groups.iter()) {
                let list = self.members.entry(key.clone()).or_default();
                // A group named like its own service lists each instance once.
                if list.last() != Some(name) {
                    list.push(name.clone());
                }
            }
        }
        let mut depended: Vec<String> = self
            .services
            .values()
            .flat_map(|s| s.depends_on.iter())
            .filter(|d| d.condition != Condition::Completed)
            .map(|d| d.service.clone())
            .collect();
        depended.sort();
        depended.dedup();
        self.depended = depended;
    }

    /// [`SupervisorCommand::Reconfigure`]. A kept service whose spec changed is taken in one
    /// of two ways, decided by [`plan::compare`]: when only supervisor settings or the count
    /// (between 2 or more) differ, its instances keep running with the new spec (a scale
    /// drops the highest indices and adds new ones, stopped); otherwise every instance is
    /// replaced by a new task, stopped. Whatever leaves must be at rest.
    fn reconfigure(&mut self, manifest: &Manifest, rolling: &[String]) -> Result<(), String> {
        if self.shutting_down {
            return Err("tend is shutting down".into());
        }
        if let Some(why) = self.ctx.sockets.refuse_change(&manifest.sockets) {
            return Err(why);
        }
        // Services whose every instance is replaced, and those whose running instances
        // take the new spec as they are.
        let mut replaced: Vec<&Arc<ServiceSpec>> = Vec::new();
        let mut updated: Vec<&Arc<ServiceSpec>> = Vec::new();
        // Changed services whose tasks stay and take the new spec for their next process.
        let mut respecced: Vec<&Arc<ServiceSpec>> = Vec::new();
        let mut leaving_instances: HashSet<String> = HashSet::new();
        let mut removed: Vec<String> = Vec::new();
        // Changed services whose schedule or watch tasks must start again.
        let mut retriggered: Vec<String> = Vec::new();
        for (name, kept) in &self.services {
            match manifest.shared_service(name) {
                None => {
                    removed.push(name.clone());
                    leaving_instances.extend((0..kept.instances).map(|i| kept.instance_name(i)));
                }
                Some(spec) if **kept == **spec => {}
                Some(spec) => {
                    if (&kept.cron_restart, &kept.schedule, &kept.watch)
                        != (&spec.cron_restart, &spec.schedule, &spec.watch)
                    {
                        // `adopt` starts them again from the new spec.
                        retriggered.push(name.clone());
                    }
                    let restart = plan::compare(kept, spec)
                        .iter()
                        .any(|s| s.effect == plan::Effect::Restart);
                    if restart
                        && rolling.contains(name)
                        && kept.instances == spec.instances
                        && ReloadMode::overlaps(kept)
                        && ReloadMode::overlaps(spec)
                    {
                        respecced.push(spec);
                        continue;
                    }
                    let first_leaving = if restart {
                        replaced.push(spec);
                        0
                    } else {
                        updated.push(spec);
                        spec.instances
                    };
                    leaving_instances
                        .extend((first_leaving..kept.instances).map(|i| kept.instance_name(i)));
                }
            }
        }
        let leaving: Vec<String> = self
            .order
            .iter()
            .filter(|i| leaving_instances.contains(*i))
            .cloned()
            .collect();
        if let Some(busy) = leaving.iter().find(|i| {
            let handle = &self.instances[*i];
            !matches!(handle.state(), "stopped" | "exited" | "fatal")
                || self.to_start.contains_key(*i)
                || handle.start_in_flight()
        }) {
            return Err(format!("instance `{busy}` is not stopped"));
        }
        for spec in &manifest.services {
            if let Some(missing) = spec
                .depends_on
                .iter()
                .find(|d| manifest.service(&d.service).is_none())
            {
                return Err(format!(
                    "service `{}` depends on `{}`, which would not be supervised",
                    spec.name, missing.service
                ));
            }
        }
        for name in &removed {
            self.services.remove(name);
            self.dependency_ready.remove(name);
            self.trigger_tasks.remove(name);
        }
        for name in &retriggered {
            self.trigger_tasks.remove(name);
        }
        // `adopt` gives a replaced service its new spec and new tasks; its readiness as a
        // dependency is kept, so dependents see it come back.
        for spec in replaced {
            self.services.remove(&spec.name);
        }
        for instance in &leaving {
            // Dropping the handle closes its mailbox: the task ends.
            self.instances.remove(instance);
            self.held.remove(instance);
            self.restart_on_return.remove(instance);
        }
        for spec in respecced {
            let spec = spec.clone();
            for handle in self.instances.values_mut() {
                if handle.service.name == spec.name {
                    handle.service = spec.clone();
                    handle.send(InstanceCommand::Respec(spec.clone()));
                }
            }
            self.services.insert(spec.name.clone(), spec);
        }
        for spec in updated {
            // The tasks keep the spec they were made with: it differs only in what the
            // supervisor reads, which it reads from the handle.
            let spec = spec.clone();
            for handle in self.instances.values_mut() {
                if handle.service.name == spec.name {
                    handle.service = spec.clone();
                }
            }
            self.services.insert(spec.name.clone(), spec);
        }
        // A plan finishes when every instance in it has been signalled and answered: drop
        // the leaving ones from all three, or it would wait for them for ever.
        for plan in &mut self.stop_plans {
            plan.instances.retain(|i| !leaving.contains(i));
            plan.waiting.retain(|i| !leaving.contains(i));
            plan.replies.retain(|(i, _)| !leaving.contains(i));
            plan.place = 0;
        }
        for waiter in &mut self.settle_waiters {
            waiter.instances.retain(|i| !leaving.contains(i));
        }
        self.adopt(manifest);
        Ok(())
    }

    pub async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<SupervisorCommand>,
        mut changes: mpsc::UnboundedReceiver<String>,
    ) {
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => break,
                },
                Some(_) = changes.recv() => {
                    // Coalesce a burst of changes into one evaluation.
                    while changes.try_recv().is_ok() {}
                }
            }
            if !self.frozen {
                self.evaluate();
            }
        }
    }

    fn command(&mut self, command: SupervisorCommand) {
        if self.frozen
            && !matches!(
                command,
                SupervisorCommand::Status { .. }
                    | SupervisorCommand::Freeze { .. }
                    | SupervisorCommand::Thaw
                    | SupervisorCommand::Notify { .. }
            )
        {
            // Carried out if the upgrade does not happen; if it does, its client's
            // connection ends with the old image.
            self.deferred.push(command);
            return;
        }
        match command {
            SupervisorCommand::Freeze { reply } => self.freeze(reply),
            SupervisorCommand::Thaw => self.thaw(),
            SupervisorCommand::Status { targets, reply } => {
                // The API asks for everything hundreds of times a second: no name is cloned
                // and each instance is looked up once.
                let snapshot = |handle: &Handle| {
                    let mut status = handle.status.snapshot();
                    if let Some(warning) = self.dependency_warning(handle, &status) {
                        std::sync::Arc::make_mut(&mut status).warning = Some(warning);
                    }
                    status
                };
                let result = if targets.is_empty() || targets.iter().any(|t| t == "all") {
                    Ok(self
                        .order
                        .iter()
                        .map(|n| snapshot(&self.instances[n]))
                        .collect())
                } else {
                    self.resolve(&targets)
                        .map(|names| names.iter().map(|n| snapshot(&self.instances[n])).collect())
                };
                let _ = reply.send(result);
            }
            SupervisorCommand::Start { targets, reply } => match self.resolve(&targets) {
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
                Ok(names) => {
                    let receivers = self.request_start(&names, true, None);
                    tokio::spawn(collect(receivers, reply));
                }
            },
            SupervisorCommand::Stop { targets, reply } => match self.resolve(&targets) {
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
                Ok(names) => {
                    // A user's stop wins over a dependency's return.
                    for name in &names {
                        self.held.remove(name);
                        self.restart_on_return.remove(name);
                    }
                    let (done, answer) = oneshot::channel();
                    self.plan_stop(names, Some(done));
                    tokio::spawn(async move {
                        let _ = reply.send(Ok(answer.await.unwrap_or_default()));
                    });
                }
            },
            SupervisorCommand::Restart { targets, reply } => match self.resolve(&targets) {
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
                Ok(names) => {
                    for name in &names {
                        self.to_start.remove(name);
                    }
                    self.fan_out(
                        names,
                        |tx| InstanceCommand::Restart {
                            reply: Some(tx),
                            reason: None,
                        },
                        reply,
                    );
                }
            },
            SupervisorCommand::Signal {
                signal,
                targets,
                reply,
            } => match self.resolve(&targets) {
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
                Ok(names) => self.fan_out(
                    names,
                    |tx| InstanceCommand::Signal { signal, reply: tx },
                    reply,
                ),
            },
            SupervisorCommand::WaitSettled {
                targets,
                ready,
                reply,
            } => match self.resolve(&targets) {
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
                Ok(instances) => self.settle_waiters.push(SettleWaiter {
                    instances,
                    place: 0,
                    ready,
                    reply,
                }),
            },
            SupervisorCommand::StartInitial { services, reply } => {
                self.start_initial(&services);
                let _ = reply.send(());
            }
            SupervisorCommand::Shutdown { reply } => {
                self.shutting_down = true;
                // No schedule or file change starts anything from now on.
                self.trigger_tasks.clear();
                self.to_start.clear();
                for waiter in self.settle_waiters.drain(..) {
                    let outcomes = waiter
                        .instances
                        .iter()
                        .map(|n| (n.clone(), Err("tend is shutting down".to_string())))
                        .collect();
                    let _ = waiter.reply.send(Ok(outcomes));
                }
                self.shutdown_replies.push(reply);
                let all = self.order.clone();
                self.plan_stop(all, None);
            }
            SupervisorCommand::Kill => {
                self.to_start.clear();
                for handle in self.instances.values() {
                    handle.send(InstanceCommand::Kill);
                }
            }
            SupervisorCommand::Notify { message, routed } => {
                self.route_notification(message);
                let _ = routed.send(());
            }
            SupervisorCommand::ReloadPlan {
                targets,
                replace,
                reply,
            } => {
                let _ = reply.send(
                    self.resolve(&targets)
                        .map(|names| self.reload_plan(&names, replace)),
                );
            }
            SupervisorCommand::ReloadInstance {
                instance,
                timeout,
                reply,
            } => match self.instances.get(&instance) {
                Some(handle) => handle.send(InstanceCommand::Reload { timeout, reply }),
                None => {
                    let _ = reply.send(Err("no longer supervised".into()));
                }
            },
            SupervisorCommand::ReloadEnd { services } => {
                for service in services {
                    self.reloading.remove(&service);
                }
            }
            SupervisorCommand::Reconfigure {
                manifest,
                rolling,
                reply,
            } => {
                let _ = reply.send(self.reconfigure(&manifest, &rolling));
            }
            SupervisorCommand::Trigger {
                service,
                action,
                reason,
                reply,
            } => {
                let reply = reply.unwrap_or_else(|| oneshot::channel().0);
                self.trigger(&service, action, reason, reply);
            }
        }
    }

    /// [`SupervisorCommand::Freeze`].
    fn freeze(&mut self, reply: oneshot::Sender<Result<Frozen, String>>) {
        if let Some(busy) = self.busy() {
            let _ = reply.send(Err(busy));
            return;
        }
        self.frozen = true;
        self.ctx.spawner.table().pause_reaping();
        let answers: Vec<_> = self
            .order
            .iter()
            .map(|name| {
                let (tx, rx) = oneshot::channel();
                self.instances[name].send(InstanceCommand::Freeze { reply: tx });
                rx
            })
            .collect();
        let pairs = |map: &HashMap<String, String>| -> Vec<(String, String)> {
            map.iter().map(|(a, b)| (a.clone(), b.clone())).collect()
        };
        let mut frozen = Frozen {
            instances: Vec::new(),
            held: pairs(&self.held),
            restart_on_return: pairs(&self.restart_on_return),
            dependency_ready: self
                .dependency_ready
                .iter()
                .map(|(service, ready)| (service.clone(), *ready))
                .collect(),
        };
        // Not awaited here: instances answer from their own tasks, and the supervisor must
        // stay free to answer status meanwhile.
        tokio::spawn(async move {
            for answer in answers {
                match answer.await {
                    Ok(Ok(instance)) => frozen.instances.push(instance),
                    Ok(Err(busy)) => {
                        let _ = reply.send(Err(busy));
                        return;
                    }
                    Err(_) => {
                        let _ = reply.send(Err("an instance went away".into()));
                        return;
                    }
                }
            }
            let _ = reply.send(Ok(frozen));
        });
    }

    /// What keeps the engine from being handed over now, in words.
    fn busy(&self) -> Option<String> {
        if self.frozen {
            return Some("an upgrade is already under way".into());
        }
        if self.shutting_down {
            return Some("tend is shutting down".into());
        }
        if !self.stop_plans.is_empty() {
            return Some("a stop is under way".into());
        }
        if let Some(name) = self.to_start.keys().next() {
            return Some(format!("{name} is waiting to start"));
        }
        if let Some(service) = self.reloading.iter().next() {
            return Some(format!("a reload of {service} is under way"));
        }
        if !self.settle_waiters.is_empty() {
            return Some("a start is being waited for".into());
        }
        // A listener's stdin and stdout belong to its pool's tasks, which are not handed
        // over.
        self.order.iter().find_map(|name| {
            let handle = &self.instances[name];
            (handle.service.event_listener.is_some()
                && !matches!(handle.state(), "stopped" | "exited" | "fatal"))
            .then(|| {
                format!(
                    "event listener {name} runs, and listeners cannot be handed over; stop it first"
                )
            })
        })
    }

    /// [`SupervisorCommand::Thaw`]: act again, starting with what waited.
    fn thaw(&mut self) {
        if !self.frozen {
            return;
        }
        self.frozen = false;
        for handle in self.instances.values() {
            handle.send(InstanceCommand::Thaw);
        }
        self.ctx.spawner.table().resume_reaping();
        for command in std::mem::take(&mut self.deferred) {
            self.command(command);
        }
    }

    /// The schedule and watch tasks `spec` asks for.
    fn start_triggers(&self, spec: &ServiceSpec) -> Vec<AbortOnDrop> {
        let mut tasks = Vec::new();
        let schedules = [
            (spec.cron_restart.as_ref(), Trigger::RestartRunning),
            (spec.schedule.as_ref(), Trigger::Run),
        ];
        for (cron, action) in schedules {
            if let Some(cron) = cron {
                let task = tokio::spawn(crate::engine::schedule::run(
                    spec.name.clone(),
                    cron.clone(),
                    action,
                    self.triggers.clock.clone(),
                    self.triggers.commands.clone(),
                ));
                tasks.push(AbortOnDrop(task.abort_handle()));
            }
        }
        if let Some(watch) = &spec.watch {
            let task = tokio::spawn(crate::engine::watch::run(
                spec.name.clone(),
                watch.clone(),
                self.ctx.base_dir.clone(),
                self.exclusions.subscribe(),
                self.triggers.commands.clone(),
            ));
            tasks.push(AbortOnDrop(task.abort_handle()));
        }
        tasks
    }

    /// [`SupervisorCommand::Trigger`]: decided against the states of now, so that a run
    /// still going is never doubled and an instance at rest is never restarted.
    fn trigger(
        &mut self,
        service: &str,
        action: Trigger,
        reason: String,
        reply: oneshot::Sender<Result<Outcomes, UnknownTarget>>,
    ) {
        let names: Vec<String> = self
            .order
            .iter()
            .filter(|n| self.instances[*n].service.name == service)
            .cloned()
            .collect();
        if self.shutting_down || names.is_empty() {
            let _ = reply.send(Ok(Vec::new()));
            return;
        }
        match action {
            Trigger::RestartRunning | Trigger::RestartUnlessStopped => {
                let wanted: &[&str] = if action == Trigger::RestartRunning {
                    &["running"]
                } else {
                    &["running", "backoff", "fatal", "exited"]
                };
                let running: Vec<String> = names
                    .into_iter()
                    .filter(|n| {
                        wanted.contains(&self.instances[n].state())
                            && !self.to_start.contains_key(n)
                    })
                    .collect();
                if running.is_empty() {
                    let what = if action == Trigger::RestartRunning {
                        "not running"
                    } else {
                        "stopped"
                    };
                    crate::logs::own::say(&format!(
                        "{service}: {reason}: {what}; nothing to restart"
                    ));
                    let _ = reply.send(Ok(Vec::new()));
                    return;
                }
                for name in &running {
                    self.to_start.remove(name);
                }
                self.fan_out(
                    running,
                    |tx| InstanceCommand::Restart {
                        reply: Some(tx),
                        reason: Some(reason.clone()),
                    },
                    reply,
                );
            }
            Trigger::Run => {
                let mut idle = Vec::new();
                for name in names {
                    let handle = &self.instances[&name];
                    let state = handle.state();
                    let at_rest = matches!(state, "stopped" | "exited" | "fatal")
                        && !self.to_start.contains_key(&name)
                        && !handle.start_in_flight();
                    if at_rest {
                        idle.push(name);
                        continue;
                    }
                    let state = if self.to_start.contains_key(&name) || state == "stopped" {
                        "waiting to start"
                    } else {
                        state
                    };
                    let message = format!("{reason}: skipped, the previous run is still {state}");
                    crate::logs::own::say(&format!("{name}: {message}"));
                    let _ = self.ctx.events.send(Event {
                        at: std::time::SystemTime::now(),
                        instance: name.clone(),
                        service: service.to_string(),
                        kind: EventKind::Warning { message },
                    });
                }
                if idle.is_empty() {
                    let _ = reply.send(Ok(Vec::new()));
                    return;
                }
                // Like `tend start`: dependencies start too, and a fatal task is tried again.
                let receivers = self.request_start(&idle, true, Some(reason));
                tokio::spawn(collect(receivers, reply));
            }
        }
    }

    /// [`SupervisorCommand::ReloadPlan`]: the named instances grouped by service, in start
    /// order, each service with the way it reloads; they are marked as reloading.
    fn reload_plan(&mut self, names: &[String], replace: bool) -> Vec<ReloadGroup> {
        let mut groups: Vec<ReloadGroup> = Vec::new();
        for name in names {
            let spec = &self.instances[name].service;
            match groups.iter_mut().find(|g| g.service == spec.name) {
                Some(group) => group.instances.push(name.clone()),
                None => groups.push(ReloadGroup {
                    service: spec.name.clone(),
                    mode: ReloadMode::of(spec, replace),
                    instances: vec![name.clone()],
                    surge: spec.max_surge.max(1) as usize,
                    timeout: spec.reload_timeout,
                    refused: None,
                }),
            }
        }
        for group in &mut groups {
            group.refused = if self.shutting_down {
                Some("tend is shutting down".into())
            } else if !self.reloading.insert(group.service.clone()) {
                Some(format!(
                    "a reload of {} is already under way",
                    group.service
                ))
            } else {
                None
            };
        }
        groups
    }

    /// Hand an sd_notify message to the instance whose process (or a descendant of it)
    /// sent it; a sender tend cannot place is ignored, as systemd ignores one outside the unit.
    fn route_notification(&self, message: Box<crate::engine::notify::Notification>) {
        // The replacement of a reload is a leader too: its READY=1 is what ends the overlap.
        let leaders: HashMap<u32, &Handle> = self
            .instances
            .values()
            .flat_map(|handle| {
                let status = handle.status.borrow();
                [status.pid, status.replacement_pid]
                    .into_iter()
                    .flatten()
                    .map(move |pid| (pid, handle))
            })
            .collect();
        let pids: HashSet<u32> = leaders.keys().copied().collect();
        let owner = crate::engine::notify::owner_of(message.pid, &pids, &HashMap::new());
        if let Some((leader, handle)) = owner.and_then(|pid| Some((pid, leaders.get(&pid)?))) {
            handle.send(InstanceCommand::Notify { message, leader });
        }
    }

    /// Send each instance a command carrying its own reply channel; answer `reply` with all
    /// the outcomes once every instance has answered (without blocking the supervisor).
    fn fan_out(
        &self,
        names: Vec<String>,
        command: impl Fn(oneshot::Sender<Outcome>) -> InstanceCommand,
        reply: oneshot::Sender<Result<Outcomes, UnknownTarget>>,
    ) {
        let receivers = names
            .into_iter()
            .map(|name| {
                let (tx, rx) = oneshot::channel();
                self.instances[&name].send(command(tx));
                (name, rx)
            })
            .collect();
        tokio::spawn(collect(receivers, reply));
    }

    /// Instance names for targets, in start order, without duplicates.
    fn resolve(&self, targets: &[String]) -> Result<Vec<String>, UnknownTarget> {
        if targets.is_empty() || targets.iter().any(|t| t == "all") {
            return Ok(self.order.clone());
        }
        if let [target] = targets {
            if self.instances.contains_key(target) {
                return Ok(vec![target.clone()]);
            }
            return match self.members.get(target) {
                Some(names) => Ok(names.clone()),
                None => Err(UnknownTarget(target.clone())),
            };
        }
        let mut wanted = HashSet::new();
        for target in targets {
            if self.instances.contains_key(target) {
                wanted.insert(target.clone());
            } else if let Some(names) = self.members.get(target) {
                wanted.extend(names.iter().cloned());
            } else {
                return Err(UnknownTarget(target.clone()));
            }
        }
        Ok(self
            .order
            .iter()
            .filter(|n| wanted.contains(*n))
            .cloned()
            .collect())
    }

    /// Ask instances (and, transitively, their dependencies) to start; returns the reply
    /// channels of the named instances.
    pub fn request_start(
        &mut self,
        names: &[String],
        manual: bool,
        reason: Option<String>,
    ) -> Vec<(String, oneshot::Receiver<Outcome>)> {
        if self.shutting_down {
            return names
                .iter()
                .map(|n| {
                    let (tx, rx) = oneshot::channel();
                    let _ = tx.send(Err("tend is shutting down".into()));
                    (n.clone(), rx)
                })
                .collect();
        }
        let mut receivers = Vec::new();
        for name in names {
            let (tx, rx) = oneshot::channel();
            self.to_start.insert(
                name.clone(),
                StartRequest {
                    manual,
                    reply: Some(tx),
                    told: None,
                    reason: reason.clone(),
                },
            );
            receivers.push((name.clone(), rx));
        }
        // Dependencies that are not running yet are started too (like systemd's Requires=).
        let mut services: Vec<String> = names
            .iter()
            .map(|n| self.instances[n].service.name.clone())
            .collect();
        let mut seen: HashSet<String> = services.iter().cloned().collect();
        while let Some(service) = services.pop() {
            let spec = self.services[&service].clone();
            for dep in &spec.depends_on {
                if seen.insert(dep.service.clone()) {
                    services.push(dep.service.clone());
                }
                for name in &self.order {
                    let handle = &self.instances[name];
                    let idle = matches!(handle.state(), "stopped" | "exited" | "fatal");
                    let satisfied_task = dep.condition == Condition::Completed
                        && is_completed(&handle.status.borrow());
                    if handle.service.name == dep.service
                        && idle
                        && !satisfied_task
                        && !self.to_start.contains_key(name)
                    {
                        self.to_start.insert(
                            name.clone(),
                            StartRequest {
                                manual: false,
                                reply: None,
                                told: None,
                                reason: None,
                            },
                        );
                    }
                }
            }
        }
        receivers
    }

    /// Autostart: every instance of every autostart service (or of the named services).
    pub fn start_initial(&mut self, services: &[String]) {
        let names: Vec<String> = self
            .order
            .iter()
            .filter(|n| {
                let spec = &self.instances[*n].service;
                if services.is_empty() {
                    spec.autostart
                } else {
                    services.contains(&spec.name)
                }
            })
            .cloned()
            .collect();
        let _ = self.request_start(&names, false, None);
    }

    /// Whether the dependencies of `name` hold; Err(reason, blocked) when they do not.
    fn dependencies(&self, name: &str) -> Result<(), (String, bool)> {
        let spec = &self.instances[name].service;
        for dep in &spec.depends_on {
            for (other, handle) in &self.instances {
                if handle.service.name != dep.service {
                    continue;
                }
                let status = handle.status.borrow().clone();
                let holds = match dep.condition {
                    Condition::Started => status.state == "running",
                    Condition::Healthy => status.state == "running" && status.ready,
                    Condition::Completed => is_completed(&status),
                };
                if holds {
                    continue;
                }
                let pending = self.to_start.contains_key(other) || handle.start_in_flight();
                let failed = match status.state {
                    "fatal" | "exited" | "stopped" => !pending,
                    _ => false,
                };
                let wanted = match dep.condition {
                    Condition::Started => "started",
                    Condition::Healthy => "healthy",
                    Condition::Completed => "completed",
                };
                let why = if failed {
                    format!(
                        "waiting for {} ({wanted}): it is {}",
                        dep.service,
                        describe(&status)
                    )
                } else if status.state == "running" && dep.condition == Condition::Healthy {
                    format!("waiting for {}: not ready", dep.service)
                } else {
                    format!("waiting for {} ({wanted})", dep.service)
                };
                return Err((why, failed));
            }
        }
        Ok(())
    }

    /// React to the current state of every instance: release starts whose dependencies hold,
    /// advance ordered stops, answer settled waiters.
    fn evaluate(&mut self) {
        if !self.to_start.is_empty() {
            self.release_starts();
        }
        self.follow_dependencies();
        self.advance_stops();
        self.answer_settled();
    }

    /// Send their start to the held instances whose dependencies (and start slot) allow it;
    /// tell the others why they wait.
    fn release_starts(&mut self) {
        let names: Vec<String> = self
            .order
            .iter()
            .filter(|n| self.to_start.contains_key(*n))
            .cloned()
            .collect();
        let mut starting = self.starting();
        for name in names {
            let allowed = self
                .dependencies(&name)
                .and_then(|()| match self.max_starting {
                    Some(max) if starting >= max => Err((
                        format!(
                            "waiting for a start slot ({starting} starting, max_starting = {max})"
                        ),
                        false,
                    )),
                    _ => Ok(()),
                });
            match allowed {
                Ok(()) => {
                    starting += 1;
                    let request = self
                        .to_start
                        .remove(&name)
                        .expect("UNWRAP: listed just above");
                    let handle = self
                        .instances
                        .get_mut(&name)
                        .expect("UNWRAP: to_start holds known names");
                    handle.start_sent = Some(handle.status.borrow().generation);
                    handle.send(InstanceCommand::Start {
                        manual: request.manual,
                        reply: request.reply,
                        reason: request.reason,
                    });
                }
                Err((reason, blocked)) => {
                    let request = self
                        .to_start
                        .get_mut(&name)
                        .expect("UNWRAP: listed just above");
                    if request.told.as_deref() != Some(reason.as_str()) {
                        request.told = Some(reason.clone());
                        let reply = request.reply.take();
                        self.instances[&name].send(InstanceCommand::Wait {
                            reason,
                            blocked,
                            reply,
                        });
                    }
                }
            }
        }
    }

    /// Instances spawned but not ready yet (a task: until it has been running a moment), which
    /// `max_starting` bounds.
    fn starting(&self) -> usize {
        self.instances
            .values()
            .filter(|handle| {
                // Before the borrow below: it takes the same lock.
                if handle.start_in_flight() {
                    return true;
                }
                let status = handle.status.borrow();
                status.state == "starting"
                    || (status.state == "running" && !status.ready && !status.is_task)
            })
            .count()
    }

    /// Follow depended-on services while they run: when one stops being ready, stop its
    /// `on_unready = "stop"` dependents; when it is ready again, start them again and restart
    /// the `"restart"` ones. A dependency's `ready` only falls after its readiness probe's
    /// failure threshold, which keeps a flapping check from cascading.
    fn follow_dependencies(&mut self) {
        if self.shutting_down {
            return;
        }
        for service in self.depended.clone() {
            let ready = self.service_ready(&service);
            let was = self.dependency_ready.insert(service.clone(), ready);
            match (was, ready) {
                (Some(true), false) => self.dependency_lost(&service),
                (Some(false), true) => self.dependency_back(&service),
                _ => {}
            }
        }
    }

    fn service_ready(&self, service: &str) -> bool {
        let mut any = false;
        for handle in self.instances.values() {
            if handle.service.name == service {
                any = true;
                let status = handle.status.borrow();
                if status.state != "running" || !status.ready {
                    return false;
                }
            }
        }
        any
    }

    /// The running instances whose service reacts to `dependency` with `reaction`.
    fn dependents(&self, dependency: &str, reaction: OnUnready) -> Vec<String> {
        self.order
            .iter()
            .filter(|name| {
                let handle = &self.instances[*name];
                handle.status.borrow().is_live()
                    && handle
                        .service
                        .depends_on
                        .iter()
                        .any(|d| d.service == dependency && d.on_unready == reaction)
            })
            .cloned()
            .collect()
    }

    fn dependency_lost(&mut self, dependency: &str) {
        let stop = self.dependents(dependency, OnUnready::Stop);
        for name in &stop {
            crate::logs::own::say(&format!(
                "{name}: stopping until {dependency} is ready again"
            ));
            self.held.insert(name.clone(), dependency.to_string());
        }
        if !stop.is_empty() {
            self.plan_stop(stop, None);
        }
        for name in self.dependents(dependency, OnUnready::Restart) {
            crate::logs::own::say(&format!(
                "{name}: {dependency} is not ready; restarting once it is"
            ));
            self.restart_on_return.insert(name, dependency.to_string());
        }
    }

    fn dependency_back(&mut self, dependency: &str) {
        let held: Vec<String> = self
            .held
            .iter()
            .filter(|(_, d)| d.as_str() == dependency)
            .map(|(n, _)| n.clone())
            .collect();
        for name in &held {
            self.held.remove(name);
        }
        if !held.is_empty() {
            // Through the normal start path: its dependency conditions are checked again.
            let _ = self.request_start(&held, false, None);
        }
        let restart: Vec<String> = self
            .restart_on_return
            .iter()
            .filter(|(_, d)| d.as_str() == dependency)
            .map(|(n, _)| n.clone())
            .collect();
        for name in restart {
            self.restart_on_return.remove(&name);
            crate::logs::own::say(&format!("{name}: restarting: {dependency} is ready again"));
            self.instances[&name].send(InstanceCommand::Restart {
                reply: None,
                reason: None,
            });
        }
    }

    /// "db is not ready" for a running instance whose dependency is down (what `ignore`
    /// dependents show; the others are being stopped or will restart).
    fn dependency_warning(&self, handle: &Handle, status: &InstanceStatus) -> Option<String> {
        if status.state != "running" || handle.service.depends_on.is_empty() {
            return None;
        }
        let down: Vec<&str> = handle
            .service
            .depends_on
            .iter()
            .filter(|d| self.dependency_ready.get(&d.service) == Some(&false))
            .map(|d| d.service.as_str())
            .collect();
        (!down.is_empty()).then(|| format!("{} not ready", down.join(", ")))
    }

    fn plan_stop(&mut self, names: Vec<String>, done: Option<oneshot::Sender<Outcomes>>) {
        for name in &names {
            self.to_start.remove(name);
        }
        // Stop in reverse start order.
        let instances: Vec<String> = names.into_iter().rev().collect();
        self.stop_plans.push(StopPlan {
            waiting: instances.clone(),
            instances,
            place: 0,
            replies: Vec::new(),
            done,
        });
    }

    fn advance_stops(&mut self) {
        let plans = std::mem::take(&mut self.stop_plans);
        for mut plan in plans {
            // The services with an instance in the plan not stopped yet, gathered once a
            // pass and only when an instance has something to wait for.
            let mut unstopped: Option<HashSet<&str>> = None;
            for name in std::mem::take(&mut plan.waiting) {
                let service = &self.instances[&name].service.name;
                let must_wait = self
                    .stop_after
                    .get(service)
                    .filter(|after| !after.is_empty())
                    .is_some_and(|after| {
                        let unstopped = unstopped.get_or_insert_with(|| {
                            plan.instances
                                .iter()
                                .map(|other| &self.instances[other])
                                .filter(|handle| handle.state() != "stopped")
                                .map(|handle| handle.service.name.as_str())
                                .collect()
                        });
                        after.iter().any(|s| unstopped.contains(s.as_str()))
                    });
                if must_wait {
                    plan.waiting.push(name);
                } else {
                    let (tx, rx) = oneshot::channel();
                    self.instances[&name].send(InstanceCommand::Stop { reply: Some(tx) });
                    plan.replies.push((name, rx));
                }
            }
            let stopped = |name: &String| self.instances[name].state() == "stopped";
            while plan.place < plan.instances.len() && stopped(&plan.instances[plan.place]) {
                plan.place += 1;
            }
            // One whole look before the plan ends, for one started again meanwhile.
            let finished = plan.waiting.is_empty()
                && plan.place == plan.instances.len()
                && plan.instances.iter().all(stopped);
            if !finished {
                if plan.place == plan.instances.len() {
                    plan.place = 0;
                }
                self.stop_plans.push(plan);
                continue;
            }
            if let Some(done) = plan.done.take() {
                let replies = std::mem::take(&mut plan.replies);
                tokio::spawn(async move {
                    let mut outcomes = Vec::new();
                    for (name, rx) in replies.into_iter().rev() {
                        outcomes.push((name, rx.await.unwrap_or(Ok(()))));
                    }
                    let _ = done.send(outcomes);
                });
            }
        }
        if self.shutting_down
            && self.stop_plans.is_empty()
            && self
                .order
                .iter()
                .all(|n| self.instances[n].state() == "stopped")
        {
            for reply in self.shutdown_replies.drain(..) {
                let _ = reply.send(());
            }
        }
    }

    /// Answer the waiters (`up`, `start`: "until they run") whose instances have all
    /// settled. Each waiter keeps its place, the first instance not settled at the last
    /// look, and looks there first: while it has not settled nothing else is looked at, so
    /// that starting thousands of instances costs each evaluation one look per waiter, not
    /// one per instance (that was a quadratic start: 3 000 services in 5.5 s).
    fn answer_settled(&mut self) {
        let waiters = std::mem::take(&mut self.settle_waiters);
        for mut waiter in waiters {
            let ready = waiter.ready;
            let unsettled = |names: &[String]| {
                names
                    .iter()
                    .position(|name| self.settlement(name, ready).is_none())
            };
            if let Some(offset) = unsettled(&waiter.instances[waiter.place..]) {
                waiter.place += offset;
                self.settle_waiters.push(waiter);
                continue;
            }
            // All settled from its place on; one settled before may have started again.
            let outcomes: Option<Outcomes> = waiter
                .instances
                .iter()
                .map(|name| Some((name.clone(), self.settlement(name, ready)?)))
                .collect();
            match outcomes {
                Some(outcomes) => {
                    let _ = waiter.reply.send(Ok(outcomes));
                }
                None => {
                    waiter.place = unsettled(&waiter.instances).unwrap_or(0);
                    self.settle_waiters.push(waiter);
                }
            }
        }
    }

    /// What a waiter is told of `name` now; `None` while it has not settled.
    fn settlement(&self, name: &str, ready: bool) -> Option<Outcome> {
        let handle = &self.instances[name];
        // Before the borrow below: it takes the same lock.
        let in_flight = handle.start_in_flight();
        let status = handle.status.borrow();
        match status.state {
            "running" if status.ready || !ready => Some(Ok(())),
            "exited" if is_completed(&status) => Some(Ok(())),
            "exited" | "fatal" | "backoff" => {
                Some(Err(format!("{}: {}", status.state, status.reason)))
            }
            "stopped" if !self.to_start.contains_key(name) && !in_flight => Some(Ok(())),
            "waiting" | "stopped" => {
                drop(status);
                // Held back by a dependency that will not come: settled, with the reason.
                let (why, _) = self
                    .to_start
                    .get(name)
                    .and_then(|_| self.dependencies(name).err())
                    .filter(|(_, blocked)| *blocked)?;
                Some(Err(why))
            }
            _ => None,
        }
    }
}

fn is_completed(status: &InstanceStatus) -> bool {
    status.state == "exited" && status.completed
}

fn describe(status: &InstanceStatus) -> String {
    if status.reason.is_empty() {
        status.state.to_string()
    } else {
        format!("{} ({})", status.state, status.reason)
    }
}

async fn collect(
    receivers: Vec<(String, oneshot::Receiver<Outcome>)>,
    reply: oneshot::Sender<Result<Outcomes, UnknownTarget>>,
) {
    let mut outcomes = Vec::new();
    for (name, rx) in receivers {
        let outcome = rx
            .await
            .unwrap_or_else(|_| Err("the instance went away".into()));
        outcomes.push((name, outcome));
    }
    let _ = reply.send(Ok(outcomes));
}

/// For each service, the services that must be stopped before it starts stopping: services
/// later in start order that depend on it (transitively) or have a higher priority number.
/// Only later services count, so dependency order always wins over priority. Linear in the
/// services and their dependencies where priorities are equal: with 5 000 services, looking
/// at every pair was a good part of the daemon's start.
fn stop_constraints(manifest: &Manifest, order: &[String]) -> HashMap<String, HashSet<String>> {
    let position: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let by_name: HashMap<&str, &ServiceSpec> = manifest
        .services
        .iter()
        .map(|s| (s.name.as_str(), &**s))
        .collect();
    let mut result: HashMap<String, HashSet<String>> = manifest
        .services
        .iter()
        .map(|s| (s.name.clone(), HashSet::new()))
        .collect();
    for other in &manifest.services {
        let Some(&theirs) = position.get(other.name.as_str()) else {
            continue;
        };
        // Everything `other` depends on, however indirectly, waits for it.
        let mut all: HashSet<&str> = HashSet::new();
        let mut stack: Vec<&str> = other
            .depends_on
            .iter()
            .map(|d| d.service.as_str())
            .collect();
        while let Some(dep) = stack.pop() {
            if all.insert(dep)
                && let Some(s) = by_name.get(dep)
            {
                stack.extend(s.depends_on.iter().map(|d| d.service.as_str()));
            }
        }
        for dep in all {
            if position.get(dep).is_some_and(|&at| at < theirs)
                && let Some(after) = result.get_mut(dep)
            {
                after.insert(other.name.clone());
            }
        }
    }
    let mut by_priority: BTreeMap<i64, Vec<(&str, usize)>> = BTreeMap::new();
    for spec in &manifest.services {
        if let Some(&at) = position.get(spec.name.as_str()) {
            by_priority
                .entry(spec.priority)
                .or_default()
                .push((spec.name.as_str(), at));
        }
    }
    for spec in &manifest.services {
        let Some(&mine) = position.get(spec.name.as_str()) else {
            continue;
        };
        let after = result
            .get_mut(&spec.name)
            .expect("UNWRAP: one entry per service");
        let higher = (
            std::ops::Bound::Excluded(spec.priority),
            std::ops::Bound::Unbounded,
        );
        for (_, group) in by_priority.range(higher) {
            for &(name, at) in group {
                if at > mine {
                    after.insert(name.to_string());
                }
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(text: &str) -> Manifest {
        crate::config::from_text(
            std::path::Path::new("/srv/tend.toml"),
            text,
            crate::config::document::Format::Toml,
            &|_| None,
            &|path| Err(std::io::Error::other(format!("no {}", path.display()))),
        )
        .expect("a valid manifest")
    }

    fn names(set: &HashSet<String>) -> Vec<&str> {
        let mut names: Vec<&str> = set.iter().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// A service waits, before it stops, for the later services that depend on it however
    /// indirectly, and for the later ones with a higher priority number; never for an
    /// earlier one.
    #[test]
    fn stops_wait_for_later_dependents_and_higher_priorities() {
        let manifest = manifest(
            r#"
            [services.db]
            command = "db"
            [services.cache]
            command = "cache"
            [services.api]
            command = "api"
            depends_on = ["db"]
            [services.web]
            command = "web"
            depends_on = ["api"]
            [services.batch]
            command = "batch"
            priority = 10
            [services.early]
            command = "early"
            priority = -5
            "#,
        );
        let order = crate::config::start_order(&manifest);
        let after = stop_constraints(&manifest, &order);
        assert_eq!(names(&after["db"]), ["api", "batch", "web"]);
        assert_eq!(names(&after["api"]), ["batch", "web"]);
        assert_eq!(names(&after["web"]), ["batch"]);
        assert_eq!(names(&after["cache"]), ["batch"]);
        assert!(after["batch"].is_empty());
        assert_eq!(
            names(&after["early"]),
            ["api", "batch", "cache", "db", "web"]
        );
    }

    #[test]
    fn equal_priorities_without_dependencies_wait_for_nothing() {
        let text: String = (0..300)
            .map(|i| format!("[services.s{i}]\ncommand = \"sleep 1\"\n"))
            .collect();
        let manifest = manifest(&text);
        let order = crate::config::start_order(&manifest);
        let after = stop_constraints(&manifest, &order);
        assert_eq!(after.len(), 300);
        assert!(after.values().all(HashSet::is_empty));
    }
}
