//! Notifications: tells someone outside (a webhook, a command) when an instance goes fatal,
//! turns unhealthy, restarts, flaps or recovers. Owns the classification of engine events into
//! notices, one bounded queue and delivery task per `[[tend.notify]]` target, and the retries.

mod classify;
mod command;
mod queue;
mod webhook;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;

use crate::engine::event::Event;

pub use classify::{Classifier, FLAP_RESTARTS, FLAP_WINDOW, RECOVERY_UPTIME};
pub use queue::QUEUE_CAPACITY;
pub use webhook::{MAX_ATTEMPTS, RETRY_AFTER_CAP, RETRY_DELAYS};

/// What a target waits for a reply (webhook attempt) or a command to finish, unless configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How often instances are checked for having stayed up long enough to count as recovered:
/// nothing else happens on a healthy instance, so no event would tell us.
const TICK: Duration = Duration::from_secs(5);

pub use crate::config::model::{NoticeKind, NotifySpec, NotifyTarget, PayloadFormat};

/// How the summary line says it: "web:2 is fatal", "web:2 restarted".
fn phrase(kind: NoticeKind) -> &'static str {
    match kind {
        NoticeKind::Fatal => "is fatal",
        NoticeKind::Unhealthy => "is unhealthy",
        NoticeKind::Restarted => "restarted",
        NoticeKind::Recovered => "recovered",
        NoticeKind::Flapping => "is flapping",
    }
}

/// Something worth telling someone about one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub kind: NoticeKind,
    pub at: SystemTime,
    pub service: String,
    pub instance: String,
    /// In words, from the engine ("exited with code 3; 5 restarts within 1m, giving up").
    pub reason: String,
    /// How the last run ended, where that matters: "exit code 3" or "SIGKILL".
    pub exit: Option<String>,
}

impl Notice {
    /// One line for chat and plain-text targets: `tend@host: web:2 is fatal: <reason>`.
    pub fn summary(&self, host: &str) -> String {
        let mut line = format!("tend@{host}: {} {}", self.instance, phrase(self.kind));
        if !self.reason.is_empty() {
            line.push_str(": ");
            line.push_str(&self.reason);
        } else if let Some(exit) = &self.exit {
            line.push_str(": ");
            line.push_str(exit);
        }
        line
    }
}

/// Runs a notification command. tend implements it with its own spawner (the only place it
/// forks, so its one reaper sees every child); this module never starts processes itself.
pub trait CommandRunner: Send + Sync + 'static {
    /// Run `/bin/sh -c command` with the daemon's environment plus `env`, killing it after
    /// `timeout`. `Ok` is the exit status as a shell reports it (128 + N for signal N); `Err`
    /// is why it could not run or did not finish.
    fn run(
        &self,
        command: &str,
        env: Vec<(String, String)>,
        timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<i32, String>> + Send>>;
}

/// Where delivery problems go: tend's own log. Called from `observe` too, so it must be quick.
pub type Report = Arc<dyn Fn(String) + Send + Sync>;

/// Checks one spec the way [`Notifier::start`] will (URL, header names and values, timeouts), so
/// the config module can reject a bad manifest at load instead of at the first notice.
pub fn validate(spec: &NotifySpec) -> Result<(), String> {
    match &spec.target {
        NotifyTarget::Webhook {
            url,
            format,
            headers,
            timeout,
        } => {
            check_timeout(*timeout)?;
            webhook::Webhook::new(url, *format, headers, *timeout, "".into()).map(drop)
        }
        NotifyTarget::Command { command, timeout } => {
            check_timeout(*timeout)?;
            if command.trim().is_empty() {
                return Err("notify command is empty".into());
            }
            Ok(())
        }
    }
}

fn check_timeout(timeout: Duration) -> Result<(), String> {
    if timeout.is_zero() {
        return Err("notify timeout must be more than 0s".into());
    }
    Ok(())
}

/// The running notification side: classify on the caller's thread, deliver on one task per
/// target. Needs a tokio runtime (it spawns in `start`).
pub struct Notifier {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    ticker: Option<JoinHandle<()>>,
}

struct Shared {
    classifier: Mutex<Classifier>,
    routes: Vec<Route>,
    report: Report,
}

struct Route {
    on: Vec<NoticeKind>,
    services: Vec<String>,
    queue: Arc<queue::Queue>,
    /// For reports: the URL without its path (Slack and Discord keep the secret there).
    label: String,
}

enum Target {
    Webhook(webhook::Webhook),
    Command(command::Command),
}

impl Target {
    async fn deliver(&mut self, notice: &Notice, report: &(dyn Fn(String) + Send + Sync)) {
        match self {
            Target::Webhook(hook) => hook.deliver(notice, report).await,
            Target::Command(command) => command.deliver(notice, report).await,
        }
    }
}

impl Notifier {
    /// Starts one delivery task per valid spec; an invalid one is reported and left out (the
    /// config module should have caught it with [`validate`]).
    pub fn start(
        specs: Vec<NotifySpec>,
        runner: Arc<dyn CommandRunner>,
        report: Report,
    ) -> Notifier {
        let host: Arc<str> = hostname().into();
        let mut routes = Vec::with_capacity(specs.len());
        let mut workers = Vec::with_capacity(specs.len());
        for spec in specs {
            let built = validate(&spec).and_then(|()| match spec.target {
                NotifyTarget::Webhook {
                    url,
                    format,
                    headers,
                    timeout,
                } => webhook::Webhook::new(&url, format, &headers, timeout, host.clone())
                    .map(Target::Webhook),
                NotifyTarget::Command { command, timeout } => Ok(Target::Command(
                    command::Command::new(command, timeout, runner.clone(), host.clone()),
                )),
            });
            let mut target = match built {
                Ok(target) => target,
                Err(why) => {
                    report(format!("notify: ignoring a target: {why}"));
                    continue;
                }
            };
            let label = match &target {
                Target::Webhook(hook) => hook.label().to_owned(),
                Target::Command(command) => command.label(),
            };
            let queue = Arc::new(queue::Queue::new());
            let worker_queue = queue.clone();
            let worker_report = report.clone();
            workers.push(tokio::spawn(async move {
                while let Some(notice) = worker_queue.next().await {
                    target.deliver(&notice, &*worker_report).await;
                }
            }));
            routes.push(Route {
                on: spec.on,
                services: spec.services,
                queue,
                label,
            });
        }
        let shared = Arc::new(Shared {
            classifier: Mutex::new(Classifier::new()),
            routes,
            report,
        });
        let ticker = (!shared.routes.is_empty()).then(|| {
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(TICK);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    let notices = shared.classifier().tick(SystemTime::now());
                    shared.dispatch(notices);
                }
            })
        });
        Notifier {
            shared,
            workers,
            ticker,
        }
    }

    /// Feed one engine event. Never blocks or awaits: classification is a map lookup, and a
    /// full queue loses its oldest notice rather than holding up the engine.
    pub fn observe(&self, event: &Event) {
        if self.shared.routes.is_empty() {
            return;
        }
        let notices = self.shared.classifier().observe(event);
        self.shared.dispatch(notices);
    }

    /// Notices lost to full queues since the start, over all targets.
    pub fn dropped(&self) -> u64 {
        self.shared.routes.iter().map(|r| r.queue.dropped()).sum()
    }

    /// Stop taking notices and deliver what is queued, for at most `timeout` (retries included);
    /// whatever is left then is abandoned and reported.
    pub async fn close(mut self, timeout: Duration) {
        self.shut();
        let mut workers = std::mem::take(&mut self.workers);
        let drained = tokio::time::timeout(timeout, async {
            for worker in workers.iter_mut() {
                let _ = worker.await;
            }
        })
        .await;
        if drained.is_err() {
            for worker in &workers {
                worker.abort();
            }
            let left: usize = self.shared.routes.iter().map(|r| r.queue.pending()).sum();
            if left > 0 {
                (self.shared.report)(format!(
                    "notify: {left} notice(s) not delivered before shutdown"
                ));
            }
        }
    }

    fn shut(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.abort();
        }
        for route in &self.shared.routes {
            route.queue.close();
        }
    }
}

impl Drop for Notifier {
    /// Without `close`, the workers still finish what is queued in the background, then end.
    fn drop(&mut self) {
        self.shut();
    }
}

impl Shared {
    fn classifier(&self) -> MutexGuard<'_, Classifier> {
        // A panic mid-classification leaves at worst one instance's memory stale; notices must
        // keep flowing.
        self.classifier
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn dispatch(&self, notices: Vec<Notice>) {
        for notice in notices {
            for route in &self.routes {
                if !route.on.is_empty() && !route.on.contains(&notice.kind) {
                    continue;
                }
                if !route.services.is_empty() && !route.services.contains(&notice.service) {
                    continue;
                }
                if route.queue.push(notice.clone()) {
                    (self.report)(format!(
                        "notify: {} is not keeping up; dropping the oldest queued notices \
                         (queue of {QUEUE_CAPACITY} full)",
                        route.label
                    ));
                }
            }
        }
    }
}

/// RFC 3339 in UTC with milliseconds (2026-11-23T14:15:39.123Z), as tend's logs write it.
pub(crate) fn rfc3339_millis(at: SystemTime) -> String {
    let mut text = Vec::with_capacity(24);
    crate::logs::line::rfc3339_millis(&mut text, at);
    String::from_utf8_lossy(&text).into_owned()
}

/// Short human durations for reasons: 45s, 4m10s, 2h5m.
fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 if secs.is_multiple_of(60) => format!("{}m", secs / 60),
        60..3600 => format!("{}m{}s", secs / 60, secs % 60),
        _ if secs % 3600 / 60 == 0 => format!("{}h", secs / 3600),
        _ => format!("{}h{}m", secs / 3600, secs % 3600 / 60),
    }
}

fn hostname() -> String {
    let mut raw = [0u8; 256];
    // SAFETY: the pointer and length describe `raw`, which outlives the call.
    let rc = unsafe { libc::gethostname(raw.as_mut_ptr().cast(), raw.len()) };
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    let name = if rc == 0 {
        String::from_utf8_lossy(&raw[..end]).into_owned()
    } else {
        String::new()
    };
    if name.is_empty() {
        "localhost".to_owned()
    } else {
        name
    }
}
