//! One instance's health: its readiness, liveness and startup probes (polled through `probe`,
//! or driven by a log line or sd_notify), the last result of each, and what they mean: ready
//! or not, and when the instance must be restarted (liveness, watchdog). Owned by the
//! instance task; probes run as their own tasks only while a process runs.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::model::{CheckSpec, ProbeSpec, ServiceSpec, expand_placeholders};
use crate::engine::probe::{self, Check, ExecRunner, HttpCheck, ProbeEvent, ProbeSettings};

/// Which probe a result belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Readiness,
    Liveness,
    Startup,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Readiness => "readiness",
            Role::Liveness => "liveness",
            Role::Startup => "startup",
        }
    }
}

/// The last result of one probe, for `tend health`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeReport {
    pub role: Role,
    /// `http`, `tcp`, `exec`, `log` or `notify`.
    pub kind: &'static str,
    /// Passing as its thresholds count (None until they first decide).
    pub passing: Option<bool>,
    pub last_ok: Option<bool>,
    pub detail: String,
    pub fallback: bool,
    pub took: Option<Duration>,
    pub at: Option<SystemTime>,
}

/// What a health change asks of the instance.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Readiness changed: publish.
    Changed,
    /// Liveness (or the watchdog) failed: restart through the stop path.
    Unhealthy(String),
}

/// What sd_notify told us about the current process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NotifyState {
    pub status: Option<String>,
    pub reloading: bool,
    pub stopping: bool,
}

pub struct Health {
    service: Arc<ServiceSpec>,
    index: u32,
    tasks: Vec<JoinHandle<()>>,
    /// One channel per probe of the current process (readiness, startup, liveness); replaced
    /// at each stop, so a late result of an earlier process's probe cannot arrive.
    inboxes: [Option<mpsc::UnboundedReceiver<ProbeEvent>>; 3],
    log_match: Option<oneshot::Receiver<String>>,
    ready: bool,
    running: bool,
    reports: Vec<ProbeReport>,
    notify: NotifyState,
    watchdog_due: Option<Instant>,
    exec: Option<Arc<dyn ExecRunner>>,
    /// Verdict flips not yet published as events: (role, passing, detail).
    transitions: Vec<(Role, bool, String)>,
}

impl Health {
    pub fn new(service: Arc<ServiceSpec>, index: u32) -> Health {
        let mut health = Health {
            service,
            index,
            tasks: Vec::new(),
            inboxes: [None, None, None],
            log_match: None,
            ready: false,
            running: false,
            reports: Vec::new(),
            notify: NotifyState::default(),
            watchdog_due: None,
            exec: None,
            transitions: Vec::new(),
        };
        health.reports = health.fresh_reports();
        health
    }

    /// Whether readiness comes from a probe (else it is "up past min_uptime").
    /// The verdict flips since the last call, oldest first.
    pub fn take_transitions(&mut self) -> Vec<(Role, bool, String)> {
        std::mem::take(&mut self.transitions)
    }

    pub fn has_readiness(&self) -> bool {
        self.service.readiness.is_some()
    }

    /// Ready by its readiness probe (meaningful only with one).
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// `healthy`, `unhealthy`, `starting` (liveness not decided yet) or `none` (no liveness).
    pub fn health(&self) -> &'static str {
        let Some(liveness) = self.reports.iter().find(|r| r.role == Role::Liveness) else {
            return "none";
        };
        match (self.running, liveness.passing) {
            (false, _) => "none",
            (true, Some(true)) => "healthy",
            (true, Some(false)) => "unhealthy",
            (true, None) => "starting",
        }
    }

    pub fn reports(&self) -> &[ProbeReport] {
        &self.reports
    }

    pub fn notify_state(&self) -> &NotifyState {
        &self.notify
    }

    /// What the program said it is doing over sd_notify, if anything out of the ordinary.
    pub fn notify_phase(&self) -> Option<&'static str> {
        if self.notify.stopping {
            Some("stopping")
        } else if self.notify.reloading {
            Some("reloading")
        } else {
            None
        }
    }

    pub fn uses_notify(&self) -> bool {
        matches!(
            self.service.readiness.as_ref().map(|r| &r.check),
            Some(CheckSpec::Notify)
        )
    }

    /// Before the spawn: arm log readiness, so no line passes unseen.
    pub fn arm_log(&mut self, logs: &crate::logs::LogSink) {
        if let Some(CheckSpec::Log(pattern)) = self.service.readiness.as_deref().map(|r| &r.check) {
            // Validated when the manifest was loaded.
            if let Ok(regex) = crate::config::model::line_pattern(pattern) {
                self.log_match = Some(logs.watch_for(&self.service, self.index, regex));
            }
        }
    }

    /// A process is running: start its polled probes (startup first, liveness after it).
    /// Call [`Health::stop`] (and [`Health::arm_log`]) before the spawn, this after it.
    pub fn start(&mut self, exec: Arc<dyn ExecRunner>) {
        self.running = true;
        self.exec = Some(exec);
        if let Some(readiness) = self.service.readiness.clone()
            && readiness.is_polled()
        {
            self.spawn_probe(Role::Readiness, &readiness);
        }
        match self.service.startup.clone() {
            Some(startup) => self.spawn_probe(Role::Startup, &startup),
            None => self.start_liveness(),
        }
        if let Some(watchdog) = self.service.watchdog {
            self.watchdog_due = Some(Instant::now() + watchdog);
        }
    }

    /// A process handed over by an upgrade: its checks start again where they were. Ready
    /// stays ready until its readiness probe says otherwise (an sd_notify or log readiness
    /// says so only once per process), and a startup probe that passed is not run again.
    /// The watchdog gets a whole period from now.
    pub fn resume(
        &mut self,
        exec: Arc<dyn ExecRunner>,
        ready: bool,
        startup_over: bool,
        notify_status: Option<String>,
    ) {
        self.running = true;
        self.exec = Some(exec);
        if let Some(readiness) = self.service.readiness.clone()
            && readiness.is_polled()
        {
            self.spawn_probe(Role::Readiness, &readiness);
        }
        match self.service.startup.clone() {
            Some(startup) if !startup_over => self.spawn_probe(Role::Startup, &startup),
            Some(_) => {
                self.record(Role::Startup, |r| r.passing = Some(true));
                self.start_liveness();
            }
            None => self.start_liveness(),
        }
        if let Some(watchdog) = self.service.watchdog {
            self.watchdog_due = Some(Instant::now() + watchdog);
        }
        if ready && self.has_readiness() {
            self.ready = true;
            self.record(Role::Readiness, |r| {
                r.passing = Some(true);
                r.detail = "ready before tend was upgraded".into();
            });
        }
        self.notify.status = notify_status;
    }

    /// Whether the startup phase is over: its probe passed, or there is none.
    pub fn startup_over(&self) -> bool {
        self.service.startup.is_none()
            || self
                .reports
                .iter()
                .any(|r| r.role == Role::Startup && r.passing == Some(true))
    }

    /// Whether a process is being checked (between [`Health::start`] and [`Health::stop`]).
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// The process is gone (or going): stop its probes and forget what they said.
    pub fn stop(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        self.inboxes = [None, None, None];
        self.running = false;
        self.ready = false;
        self.watchdog_due = None;
        self.notify = NotifyState::default();
        let log_armed = self.log_match.take();
        drop(log_armed);
        self.reports = self.fresh_reports();
    }

    /// When the watchdog fires, if it is armed.
    pub fn watchdog_due(&self) -> Option<Instant> {
        self.watchdog_due
    }

    pub fn watchdog_expired(&mut self) -> Verdict {
        self.watchdog_due = None;
        let limit = self.service.watchdog.unwrap_or_default();
        Verdict::Unhealthy(format!(
            "watchdog: no WATCHDOG=1 within {}",
            crate::engine::lifecycle::human(limit)
        ))
    }

    /// Wait for the next probe signal or log match and say what it means; `None` when it
    /// changes nothing the instance acts on.
    pub async fn next(&mut self) -> Option<Verdict> {
        let [readiness, startup, liveness] = &mut self.inboxes;
        tokio::select! {
            event = receive(readiness) => self.probe_event(Role::Readiness, event?),
            event = receive(startup) => self.probe_event(Role::Startup, event?),
            event = receive(liveness) => self.probe_event(Role::Liveness, event?),
            line = wait_line(&mut self.log_match) => {
                self.log_match = None;
                let line = line?;
                let detail = format!("matched: {line}");
                self.record(Role::Readiness, |r| {
                    r.passing = Some(true);
                    r.last_ok = Some(true);
                    r.detail = detail.clone();
                    r.at = Some(SystemTime::now());
                });
                let verdict = self.set_ready(true);
                if verdict.is_some() {
                    self.transitions.push((Role::Readiness, true, detail));
                }
                verdict
            }
        }
    }

    /// An sd_notify message from this instance's process.
    pub fn notified(&mut self, message: &crate::engine::notify::Notification) -> Option<Verdict> {
        if let Some(status) = &message.status {
            self.notify.status = Some(status.clone());
        }
        if message.reloading {
            self.notify.reloading = true;
        }
        if message.stopping {
            self.notify.stopping = true;
        }
        if message.watchdog
            && let Some(limit) = self.service.watchdog
        {
            self.watchdog_due = Some(Instant::now() + limit);
        }
        if message.watchdog_trigger {
            return Some(self.watchdog_expired());
        }
        let mut verdict = None;
        if message.ready && self.uses_notify() {
            self.notify.reloading = false;
            self.record(Role::Readiness, |r| {
                r.passing = Some(true);
                r.last_ok = Some(true);
                r.detail = "READY=1".into();
                r.at = Some(SystemTime::now());
            });
            verdict = self.set_ready(true);
            if verdict.is_some() {
                self.transitions
                    .push((Role::Readiness, true, "READY=1".into()));
            }
        }
        if message.reloading && self.uses_notify() {
            let changed = self.set_ready(false);
            if changed.is_some() {
                self.transitions
                    .push((Role::Readiness, false, "RELOADING=1".into()));
            }
            verdict = changed.or(verdict);
        }
        verdict.or(Some(Verdict::Changed))
    }

    fn probe_event(&mut self, role: Role, event: ProbeEvent) -> Option<Verdict> {
        match event {
            ProbeEvent::Result(result) => {
                self.record(role, |r| {
                    r.last_ok = Some(result.ok);
                    r.detail = result.detail.clone();
                    r.fallback = result.fallback;
                    r.took = Some(result.took);
                    r.at = Some(result.at);
                });
                None
            }
            ProbeEvent::Passing(result) => {
                self.record(role, |r| r.passing = Some(true));
                self.transitions.push((role, true, result.detail));
                match role {
                    Role::Readiness => self.set_ready(true),
                    Role::Startup => {
                        // The grace phase is over: liveness takes over, startup stops.
                        self.start_liveness();
                        Some(Verdict::Changed)
                    }
                    Role::Liveness => Some(Verdict::Changed),
                }
            }
            ProbeEvent::Failing { reason, .. } => {
                self.record(role, |r| r.passing = Some(false));
                self.transitions.push((role, false, reason.clone()));
                match role {
                    Role::Readiness => self.set_ready(false),
                    Role::Liveness => Some(Verdict::Unhealthy(format!("liveness: {reason}"))),
                    Role::Startup => Some(Verdict::Unhealthy(format!("startup: {reason}"))),
                }
            }
        }
    }

    fn set_ready(&mut self, ready: bool) -> Option<Verdict> {
        if !self.running || self.ready == ready {
            return None;
        }
        self.ready = ready;
        Some(Verdict::Changed)
    }

    fn start_liveness(&mut self) {
        if let Some(liveness) = self.service.liveness.clone() {
            self.spawn_probe(Role::Liveness, &liveness);
        }
    }

    fn spawn_probe(&mut self, role: Role, spec: &ProbeSpec) {
        let Some(exec) = self.exec.clone() else {
            return;
        };
        let port = self
            .service
            .port_base
            .map(|base| u32::from(base) + self.index);
        let expand = |text: &str| expand_placeholders(text, self.index, port);
        let Some(check) = to_check(&spec.check, &expand) else {
            return;
        };
        let settings = ProbeSettings {
            check,
            fallback: spec.fallback.as_ref().and_then(|f| to_check(f, &expand)),
            initial_delay: spec.initial_delay + until_next_slot(Instant::now()),
            interval: spec.interval,
            timeout: spec.timeout,
            success_threshold: spec.success_threshold,
            failure_threshold: spec.failure_threshold,
        };
        let (events, inbox) = mpsc::unbounded_channel();
        self.inboxes[slot(role)] = Some(inbox);
        self.tasks
            .push(tokio::spawn(probe::run(settings, exec, events)));
    }

    fn record(&mut self, role: Role, update: impl FnOnce(&mut ProbeReport)) {
        if let Some(report) = self.reports.iter_mut().find(|r| r.role == role) {
            update(report);
        }
    }

    fn fresh_reports(&self) -> Vec<ProbeReport> {
        [
            (Role::Readiness, &self.service.readiness),
            (Role::Startup, &self.service.startup),
            (Role::Liveness, &self.service.liveness),
        ]
        .into_iter()
        .filter_map(|(role, spec)| {
            let spec = spec.as_ref()?;
            Some(ProbeReport {
                role,
                kind: kind_of(&spec.check),
                passing: None,
                last_ok: None,
                detail: String::new(),
                fallback: false,
                took: None,
                at: None,
            })
        })
        .collect()
    }
}

impl Drop for Health {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn kind_of(check: &CheckSpec) -> &'static str {
    match check {
        CheckSpec::Http { .. } => "http",
        CheckSpec::Tcp(_) => "tcp",
        CheckSpec::Exec(_) => "exec",
        CheckSpec::Log(_) => "log",
        CheckSpec::Notify => "notify",
    }
}

fn to_check(check: &CheckSpec, expand: &dyn Fn(&str) -> String) -> Option<Check> {
    match check {
        CheckSpec::Http {
            url,
            method,
            status,
            body_contains,
            headers,
        } => Some(Check::Http(HttpCheck {
            url: expand(url),
            method: method.clone(),
            status: *status,
            body_contains: body_contains.clone(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.clone(), expand(v)))
                .collect(),
        })),
        CheckSpec::Tcp(address) => Some(Check::Tcp(expand(address))),
        CheckSpec::Exec(command) => Some(Check::Exec(expand(command))),
        CheckSpec::Log(_) | CheckSpec::Notify => None,
    }
}

/// Probes start on a shared 100 ms grid, and their drift-free interval keeps them on it:
/// probes in one slot wake tend together instead of once each (200 services probed every
/// second: 4.0-4.6% of a core instead of 5.1-5.7%, bench/health.py). The price is that
/// probes of one slot reach their servers at the same moment. A fresh connection per
/// attempt stays, so a server that stops accepting is still seen.
const PROBE_GRID: Duration = Duration::from_millis(100);

fn until_next_slot(now: Instant) -> Duration {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let origin = *ORIGIN.get_or_init(|| now);
    let grid = PROBE_GRID.as_nanos();
    let into = now.saturating_duration_since(origin).as_nanos() % grid;
    if into == 0 {
        Duration::ZERO
    } else {
        Duration::from_nanos((grid - into) as u64)
    }
}

fn slot(role: Role) -> usize {
    match role {
        Role::Readiness => 0,
        Role::Startup => 1,
        Role::Liveness => 2,
    }
}

/// The next event of a probe; never, when there is no such probe.
async fn receive(inbox: &mut Option<mpsc::UnboundedReceiver<ProbeEvent>>) -> Option<ProbeEvent> {
    let Some(receiver) = inbox else {
        return std::future::pending().await;
    };
    let event = receiver.recv().await;
    if event.is_none() {
        // The probe task ended (it never does on its own): stop listening rather than spin.
        *inbox = None;
    }
    event
}

async fn wait_line(receiver: &mut Option<oneshot::Receiver<String>>) -> Option<String> {
    match receiver {
        Some(receiver) => receiver.await.ok(),
        None => std::future::pending().await,
    }
}

/// Exec probes run like the service itself (its env, cwd, user, umask), through the spawner
/// (the one place that forks); a probe that outlives its timeout is killed with its group.
pub struct SpawnExec {
    pub spawner: crate::engine::spawn::Spawner,
    pub env: Vec<(String, String)>,
    pub cwd: std::path::PathBuf,
    pub credentials: Option<crate::engine::spawn::Credentials>,
    pub umask: Option<u32>,
}

impl ExecRunner for SpawnExec {
    fn run(
        &self,
        command: &str,
        timeout: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<i32, String>> + Send>> {
        let request = crate::engine::spawn::SpawnRequest {
            argv: vec!["/bin/sh".into(), "-c".into(), command.to_string()],
            env: self.env.clone(),
            cwd: self.cwd.clone(),
            credentials: self.credentials.clone(),
            umask: self.umask,
            cgroup: None,
            pid_env: Vec::new(),
            stdin_pipe: false,
            listen_fds: Vec::new(),
        };
        let spawner = self.spawner.clone();
        Box::pin(async move {
            use crate::engine::spawn::RunOnceError;
            match crate::engine::spawn::run_once(&spawner, request, timeout).await {
                Ok(code) => Ok(code),
                Err(RunOnceError::Spawn(e)) => Err(e),
                Err(RunOnceError::Lost) => Err("exec: lost track of the check".into()),
                Err(RunOnceError::TimedOut) => Err(format!(
                    "exec timed out after {}",
                    crate::engine::lifecycle::human(timeout)
                )),
            }
        })
    }
}
