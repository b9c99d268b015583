//! The supervisor: the only part of tend that spawns, signals or waits on processes.
//! Commands come in through [`EngineHandle`] (channels to the supervisor actor, which owns one
//! task per instance); everything observable goes out on one broadcast of [`Event`]s.

pub mod backoff;
pub mod command;
pub mod event;
pub mod handover;
pub mod health;
pub mod instance;
pub mod lifecycle;
pub mod mailbox;
pub mod notify;
pub mod probe;
pub mod resources;
pub mod schedule;
pub mod sockets;
pub mod spawn;
pub mod supervisor;
pub mod tree;
pub mod watch;

use std::io;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::config::model::Manifest;
use crate::config::signal::Signal;
use crate::logs::LogSink;
use command::{Outcome, Outcomes, SupervisorCommand, UnknownTarget};
use event::{Event, InstanceStatus};
use instance::InstanceContext;
use spawn::{ProcessTable, Spawner};
use supervisor::Supervisor;
use tree::Containment;

/// Events buffered per subscriber; a slower subscriber misses the oldest (and is told so).
const EVENT_BUFFER: usize = 1024;

/// The engine has stopped and can answer no more requests.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the engine has stopped")]
pub struct EngineGone;

/// What the engine needs from the daemon that builds it.
pub struct EngineOptions {
    pub containment: Arc<Containment>,
    pub logs: LogSink,
    /// Where to bind the sd_notify socket (`state_dir/notify.sock`).
    pub notify_socket: std::path::PathBuf,
    /// Where an event listener's pipes go each time one is spawned; None: no one speaks
    /// the protocol, and listeners get no events.
    pub listener_io: Option<mpsc::UnboundedSender<ListenerIo>>,
    /// The `[sockets]` the daemon bound, passed to the services that name them.
    pub sockets: Arc<sockets::SocketSet>,
    /// Where `cron_restart` and `schedule` read the time and wait; None: the machine's
    /// clock and local time zone (tests bring their own).
    pub clock: Option<Arc<dyn schedule::Clock>>,
    /// Who forks: the daemon's main thread (see `spawn`); None: a thread of the engine's own.
    pub spawner: Option<Spawner>,
    /// The sd_notify socket the previous image of tend bound (an upgrade); None: bound at
    /// `notify_socket`.
    pub notify: Option<notify::NotifySocket>,
    /// The instances the previous image of tend handed over (an upgrade).
    pub adoption: Option<handover::Frozen>,
}

/// The pipes of a freshly spawned event listener process, for whoever speaks the protocol
/// with it. What it writes on stdout must also go to `log`, where its log expects it.
#[derive(Debug)]
pub struct ListenerIo {
    pub instance: String,
    pub service: String,
    /// The service's subscription: a pool added while tend runs is created from it.
    pub listener: crate::config::model::EventListenerSpec,
    pub pid: u32,
    /// Write end of its stdin.
    pub stdin: std::os::fd::OwnedFd,
    /// Read end of its stdout.
    pub stdout: std::os::fd::OwnedFd,
    /// Write end of the pipe its stdout log is read from.
    pub log: std::os::fd::OwnedFd,
}

/// The way in: cheap to clone, usable from any task.
#[derive(Clone)]
pub struct EngineHandle {
    commands: mpsc::UnboundedSender<SupervisorCommand>,
    events: broadcast::Sender<Event>,
    processes: ProcessTable,
    spawner: Spawner,
    /// The manifest's directory: where one-shot commands run.
    base_dir: std::path::PathBuf,
    sockets: Arc<sockets::SocketSet>,
    notify: Arc<notify::NotifySocket>,
    /// Holds the sd_notify reader between datagrams while true (an upgrade); the reader
    /// answers on `notify_parked`.
    notify_paused: Arc<tokio::sync::watch::Sender<bool>>,
    notify_parked: tokio::sync::watch::Receiver<bool>,
    sampling: Option<instance::Sampling>,
}

/// Start the engine inside the current tokio runtime: the reaper, the spawner thread, the
/// supervisor and one task per instance. Nothing is started until asked.
pub fn start(manifest: Manifest, options: EngineOptions) -> io::Result<EngineHandle> {
    // The SIGCHLD stream must exist before the first spawn, or an early exit goes unnoticed.
    let sigchld = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())?;
    let spawner = match options.spawner {
        Some(spawner) => spawner,
        None => Spawner::start(ProcessTable::default())?,
    };
    let table = spawner.table().clone();
    let (events, _) = broadcast::channel(EVENT_BUFFER);
    let (changes_tx, changes_rx) = mpsc::unbounded_channel();
    let (commands, inbox) = mpsc::unbounded_channel();
    let notify = Arc::new(match options.notify {
        Some(adopted) => adopted,
        None => notify::NotifySocket::bind(&options.notify_socket)?,
    });
    let notify_path = notify.path().to_path_buf();
    let (notify_paused, mut paused) = tokio::sync::watch::channel(false);
    let (parked, notify_parked) = tokio::sync::watch::channel(false);
    let forward = commands.clone();
    let reader = notify.clone();
    tokio::spawn(async move {
        // Read without pause: a sender such as systemd-notify waits for us, and its /proc
        // entry, which places it in an instance, lasts only until it exits.
        loop {
            let message = tokio::select! {
                biased;
                _ = until(&mut paused, true) => {
                    // Between two datagrams, every one read so far in its instance's mailbox:
                    // the rest wait in the socket (for the next image, in an upgrade).
                    let _ = parked.send(true);
                    if !until(&mut paused, false).await {
                        break;
                    }
                    let _ = parked.send(false);
                    continue;
                }
                message = reader.recv() => match message {
                    Ok(message) => message,
                    Err(_) => break,
                },
            };
            // Wait until the message is in its instance's mailbox before reading the next
            // datagram: systemd-notify's barrier is that next datagram, so a program that
            // sends MAINPID and then exits is known to have been heard first.
            let (routed, done) = oneshot::channel();
            let message = Box::new(message);
            if forward
                .send(SupervisorCommand::Notify { message, routed })
                .is_err()
            {
                break;
            }
            let _ = done.await;
        }
    });
    let base_dir = manifest.base_dir();
    let sampling = manifest
        .daemon
        .sample_every
        .map(|every| instance::Sampling::new(every, tokio::time::Instant::now()));
    let ctx = InstanceContext {
        spawner: spawner.clone(),
        containment: options.containment,
        events: events.clone(),
        changes: changes_tx,
        logs: options.logs,
        base_dir: manifest.base_dir(),
        notify_socket: notify_path,
        sampling: sampling.clone(),
        gpus: load_gpus(&manifest),
        listener_io: options.listener_io,
        sockets: options.sockets.clone(),
    };
    let triggers = supervisor::Triggers {
        commands: commands.downgrade(),
        clock: options
            .clock
            .unwrap_or_else(|| Arc::new(schedule::SystemClock)),
    };
    // Handed-over processes are registered in the table as their tasks are made, before the
    // reaper's first sweep: an exit of the upgrade's gap is theirs, not an orphan's.
    let supervisor = Supervisor::new(manifest, ctx, triggers, options.adoption);
    tokio::spawn(spawn::reap_forever(table.clone(), sigchld));
    tokio::spawn(supervisor.run(inbox, changes_rx));
    Ok(EngineHandle {
        commands,
        events,
        processes: table,
        spawner,
        base_dir,
        sockets: options.sockets,
        notify,
        notify_paused: Arc::new(notify_paused),
        notify_parked,
        sampling,
    })
}

/// Wait until the flag is `value`; false once its sender is gone.
async fn until(flag: &mut tokio::sync::watch::Receiver<bool>, value: bool) -> bool {
    flag.wait_for(|v| *v == value).await.is_ok()
}

/// Tells the supervisor that a service's reload is over when dropped.
struct ReloadEnd {
    commands: mpsc::UnboundedSender<SupervisorCommand>,
    service: String,
}

impl Drop for ReloadEnd {
    fn drop(&mut self) {
        let _ = self.commands.send(SupervisorCommand::ReloadEnd {
            services: vec![std::mem::take(&mut self.service)],
        });
    }
}

fn fail_all(instances: &[String], why: &str) -> Outcomes {
    instances
        .iter()
        .map(|name| (name.clone(), Err(why.to_string())))
        .collect()
}

/// NVML, loaded only when a service uses GPUs; its absence turns the GPU figures off.
fn load_gpus(manifest: &Manifest) -> Option<Arc<resources::GpuSampler>> {
    let wanted = manifest
        .services
        .iter()
        .any(|s| !s.resources.gpus.is_empty() || s.resources.max_gpu_memory.is_some());
    if !wanted || manifest.daemon.sample_every.is_none() {
        return None;
    }
    match resources::GpuSampler::load() {
        Some(sampler) => {
            crate::logs::own::say(&format!(
                "NVML: {} GPU(s); sampling GPU memory and utilisation",
                sampler.device_count()
            ));
            Some(Arc::new(sampler))
        }
        None => {
            crate::logs::own::say(
                "no NVIDIA driver (libnvidia-ml.so.1): GPUs are assigned, not sampled; max_gpu_memory is off",
            );
            None
        }
    }
}

impl EngineHandle {
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// How far apart each instance's CPU and memory are sampled now (`sample_every`,
    /// stretched with the instance count); `None` when sampling is off.
    pub fn sampling_every(&self) -> Option<std::time::Duration> {
        self.sampling.as_ref().map(instance::Sampling::every)
    }

    /// Run a shell command to its end through the engine's spawner (the one place that
    /// forks), in the manifest's directory with tend's environment plus `env`: for
    /// notifications.
    pub async fn run_command(
        &self,
        command: &str,
        env: Vec<(String, String)>,
        timeout: std::time::Duration,
    ) -> Result<i32, spawn::RunOnceError> {
        let request = spawn::SpawnRequest {
            argv: vec!["/bin/sh".into(), "-c".into(), command.to_string()],
            env,
            cwd: self.base_dir.clone(),
            credentials: None,
            umask: None,
            cgroup: None,
            pid_env: Vec::new(),
            stdin_pipe: false,
            listen_fds: Vec::new(),
        };
        spawn::run_once(&self.spawner, request, timeout).await
    }

    /// The `[sockets]` tend listens on.
    pub fn sockets(&self) -> &sockets::SocketSet {
        &self.sockets
    }

    /// The `[sockets]`, shared (an upgrade hands them over).
    pub fn socket_set(&self) -> Arc<sockets::SocketSet> {
        self.sockets.clone()
    }

    /// The sd_notify socket services are given.
    pub fn notify_socket(&self) -> &notify::NotifySocket {
        &self.notify
    }

    /// Run `argv` to its end through the spawner, keeping what it printed (an upgrade's
    /// check of the new binary): in the manifest's directory, with tend's environment.
    pub async fn run_printing(
        &self,
        argv: Vec<String>,
        timeout: std::time::Duration,
    ) -> Result<spawn::Printed, spawn::RunOnceError> {
        let request = spawn::SpawnRequest {
            argv,
            env: Vec::new(),
            cwd: self.base_dir.clone(),
            credentials: None,
            umask: None,
            cgroup: None,
            pid_env: Vec::new(),
            stdin_pipe: false,
            listen_fds: Vec::new(),
        };
        spawn::run_printing(&self.spawner, request, timeout).await
    }

    /// Freeze the engine for an upgrade: the sd_notify reader stops between datagrams,
    /// reaping is held off, and every instance answers with its state and then acts on
    /// nothing (see [`SupervisorCommand::Freeze`]). Err says what is under way; then nothing
    /// stays frozen.
    pub async fn freeze(&self) -> Result<Result<handover::Frozen, String>, EngineGone> {
        self.notify_paused.send_replace(true);
        let mut parked = self.notify_parked.clone();
        if parked.wait_for(|p| *p).await.is_err() {
            return Err(EngineGone);
        }
        let frozen = self.ask(|reply| SupervisorCommand::Freeze { reply }).await;
        if !matches!(frozen, Ok(Ok(_))) {
            self.thaw();
        }
        frozen
    }

    /// Undo [`EngineHandle::freeze`]: the upgrade did not happen.
    pub fn thaw(&self) {
        let _ = self.commands.send(SupervisorCommand::Thaw);
        self.notify_paused.send_replace(false);
    }

    /// Replace tend's image in place (see [`spawn::ExecImage`]); returns only when that
    /// failed.
    pub async fn exec(&self, image: spawn::ExecImage) -> io::Error {
        self.spawner.exec(image).await
    }

    /// Whether a pid is a child tend spawned and has not reaped yet.
    pub fn is_own_child(&self, pid: u32) -> bool {
        self.processes.is_ours(pid)
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> SupervisorCommand,
    ) -> Result<T, EngineGone> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(make(reply)).map_err(|_| EngineGone)?;
        answer.await.map_err(|_| EngineGone)
    }

    /// Snapshots of the targets' instances (all for none), in start order: shared, not copied.
    pub async fn status(
        &self,
        targets: Vec<String>,
    ) -> Result<Result<Vec<Arc<InstanceStatus>>, UnknownTarget>, EngineGone> {
        self.ask(|reply| SupervisorCommand::Status { targets, reply })
            .await
    }

    pub async fn start(
        &self,
        targets: Vec<String>,
    ) -> Result<Result<Outcomes, UnknownTarget>, EngineGone> {
        self.ask(|reply| SupervisorCommand::Start { targets, reply })
            .await
    }

    pub async fn stop(
        &self,
        targets: Vec<String>,
    ) -> Result<Result<Outcomes, UnknownTarget>, EngineGone> {
        self.ask(|reply| SupervisorCommand::Stop { targets, reply })
            .await
    }

    pub async fn restart(
        &self,
        targets: Vec<String>,
    ) -> Result<Result<Outcomes, UnknownTarget>, EngineGone> {
        self.ask(|reply| SupervisorCommand::Restart { targets, reply })
            .await
    }

    pub async fn signal(
        &self,
        signal: Signal,
        targets: Vec<String>,
    ) -> Result<Result<Outcomes, UnknownTarget>, EngineGone> {
        self.ask(|reply| SupervisorCommand::Signal {
            signal,
            targets,
            reply,
        })
        .await
    }

    pub async fn wait_settled(
        &self,
        targets: Vec<String>,
        ready: bool,
    ) -> Result<Result<Outcomes, UnknownTarget>, EngineGone> {
        self.ask(|reply| SupervisorCommand::WaitSettled {
            targets,
            ready,
            reply,
        })
        .await
    }

    /// Reload the targets, service by service, each the way it reloads
    /// ([`command::ReloadMode`]): by overlap, `max_surge` instances at a time, each
    /// replacement ready before the process it replaces stops; a failed replacement stops
    /// the service's reload, and the instances not reached keep their processes. Answers once
    /// it is over, per instance. Runs on a task of its own: a client that goes away does not
    /// cut it short.
    pub async fn reload(
        &self,
        targets: Vec<String>,
    ) -> Result<Result<Outcomes, UnknownTarget>, EngineGone> {
        self.reload_or_replace(targets, false).await
    }

    /// [`EngineHandle::reload`] for new processes (`tend apply`'s rolling reload):
    /// `reload_signal` is not used.
    pub async fn replace(
        &self,
        targets: Vec<String>,
    ) -> Result<Result<Outcomes, UnknownTarget>, EngineGone> {
        self.reload_or_replace(targets, true).await
    }

    async fn reload_or_replace(
        &self,
        targets: Vec<String>,
        replace: bool,
    ) -> Result<Result<Outcomes, UnknownTarget>, EngineGone> {
        let groups = match self
            .ask(|reply| SupervisorCommand::ReloadPlan {
                targets,
                replace,
                reply,
            })
            .await?
        {
            Ok(groups) => groups,
            Err(unknown) => return Ok(Err(unknown)),
        };
        let engine = self.clone();
        let task = tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for group in groups {
                outcomes.extend(engine.reload_service(group).await);
            }
            outcomes
        });
        task.await.map(Ok).map_err(|_| EngineGone)
    }

    async fn reload_service(&self, group: command::ReloadGroup) -> Outcomes {
        use command::ReloadMode;
        if let Some(why) = group.refused {
            return group
                .instances
                .into_iter()
                .map(|name| (name, Err(why.clone())))
                .collect();
        }
        // Whatever happens below (even a panic), the service may be reloaded again after.
        let _end = ReloadEnd {
            commands: self.commands.clone(),
            service: group.service.clone(),
        };
        let service = group.service.clone();
        let mode = group.mode;
        crate::logs::own::say(&format!(
            "{service}: reloading {}: {}",
            group.instances.join(", "),
            mode.describe()
        ));
        if let ReloadMode::Signal(signal) = mode {
            let outcomes = match self.signal(signal, group.instances.clone()).await {
                Ok(Ok(outcomes)) => outcomes,
                Ok(Err(unknown)) => fail_all(&group.instances, &unknown.to_string()),
                Err(gone) => fail_all(&group.instances, &gone.to_string()),
            };
            for (instance, outcome) in &outcomes {
                let (step, detail) = match outcome {
                    Ok(()) => (
                        "signalled",
                        format!("sent SIG{} (reload_signal)", signal.name()),
                    ),
                    Err(why) => ("failed", why.clone()),
                };
                self.emit(&service, instance, step, None, detail);
            }
            return outcomes;
        }
        let mut outcomes: Outcomes = Vec::new();
        let mut failed: Option<String> = None;
        for batch in group.instances.chunks(group.surge) {
            if let Some(first) = &failed {
                for name in batch {
                    outcomes.push((
                        name.clone(),
                        Err(format!(
                            "not reloaded: the reload of {service} stopped when {first} failed"
                        )),
                    ));
                }
                continue;
            }
            let mut running = Vec::new();
            for name in batch {
                let engine = self.clone();
                let name = name.clone();
                let service = service.clone();
                let timeout = group.timeout;
                running.push(tokio::spawn(async move {
                    let outcome = engine.reload_one(mode, &service, &name, timeout).await;
                    (name, outcome)
                }));
            }
            for task in running {
                let (name, outcome) = task
                    .await
                    .unwrap_or_else(|_| (String::new(), Err("the reload task failed".into())));
                if let Err(why) = &outcome
                    && failed.is_none()
                    && !why.starts_with("not running")
                {
                    // An instance that was not running was not replaced either, but says
                    // nothing about the new processes: the others are still reloaded.
                    failed = Some(name.clone());
                }
                outcomes.push((name, outcome));
            }
        }
        outcomes
    }

    /// One instance's reload (not by signal).
    async fn reload_one(
        &self,
        mode: command::ReloadMode,
        service: &str,
        name: &str,
        timeout: std::time::Duration,
    ) -> Outcome {
        use command::ReloadMode;
        match mode {
            ReloadMode::Overlap => {
                let (reply, answer) = oneshot::channel();
                let sent = self.commands.send(SupervisorCommand::ReloadInstance {
                    instance: name.to_string(),
                    timeout,
                    reply,
                });
                if sent.is_err() {
                    return Err(EngineGone.to_string());
                }
                answer
                    .await
                    .unwrap_or_else(|_| Err("the instance went away".into()))
            }
            ReloadMode::RollingRestart | ReloadMode::Restart | ReloadMode::Signal(_) => {
                // A reload replaces what runs; starting what does not is `tend start`'s.
                let state = match self.status(vec![name.to_string()]).await {
                    Ok(Ok(statuses)) => statuses.first().map_or("gone", |s| s.state),
                    Ok(Err(unknown)) => return Err(unknown.to_string()),
                    Err(gone) => return Err(gone.to_string()),
                };
                if state != "running" {
                    return Err(format!("not running ({state})"));
                }
                self.emit(
                    service,
                    name,
                    "started",
                    None,
                    "restarting: without sockets to share, a reload is a restart".into(),
                );
                let names = vec![name.to_string()];
                let restarted = match self.restart(names.clone()).await {
                    Ok(Ok(mut outcomes)) => outcomes.pop().map_or(Ok(()), |(_, o)| o),
                    Ok(Err(unknown)) => Err(unknown.to_string()),
                    Err(gone) => Err(gone.to_string()),
                };
                // Ready (its readiness check passed) before the next instance goes down.
                let outcome = match restarted {
                    Ok(()) => match self.wait_settled(names, true).await {
                        Ok(Ok(mut outcomes)) => outcomes.pop().map_or(Ok(()), |(_, o)| o),
                        Ok(Err(unknown)) => Err(unknown.to_string()),
                        Err(gone) => Err(gone.to_string()),
                    },
                    failed => failed,
                };
                let (step, detail) = match &outcome {
                    Ok(()) => ("done", "restarted and ready".to_string()),
                    Err(why) => ("failed", why.clone()),
                };
                self.emit(service, name, step, None, detail);
                outcome
            }
        }
    }

    /// Record a reload step of an instance on the event channel.
    fn emit(
        &self,
        service: &str,
        instance: &str,
        step: &'static str,
        pid: Option<u32>,
        detail: String,
    ) {
        let _ = self.events.send(Event {
            at: std::time::SystemTime::now(),
            instance: instance.to_string(),
            service: service.to_string(),
            kind: event::EventKind::Reload { step, pid, detail },
        });
    }

    /// Supervise exactly `manifest`'s services from now on (see
    /// [`SupervisorCommand::Reconfigure`]).
    pub async fn reconfigure(
        &self,
        manifest: Manifest,
        rolling: Vec<String>,
    ) -> Result<Result<(), String>, EngineGone> {
        self.ask(|reply| SupervisorCommand::Reconfigure {
            manifest: Box::new(manifest),
            rolling,
            reply,
        })
        .await
    }

    /// Start the autostart services (or the named services, with their dependencies).
    pub async fn start_initial(&self, services: Vec<String>) -> Result<(), EngineGone> {
        self.ask(|reply| SupervisorCommand::StartInitial { services, reply })
            .await
    }

    /// Stop everything in order; returns once all is stopped.
    pub async fn shutdown(&self) -> Result<(), EngineGone> {
        self.ask(|reply| SupervisorCommand::Shutdown { reply })
            .await
    }

    /// SIGKILL every instance's tree now (does not wait).
    pub fn kill(&self) {
        let _ = self.commands.send(SupervisorCommand::Kill);
    }
}
