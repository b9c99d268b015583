//! Feeds the history from the engine: every event off the broadcast, and one resource
//! sample per running instance every [`SAMPLE_EVERY`]. It only ever calls
//! [`History::record`], which never blocks, so the engine never waits for the disk.

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use crate::engine::EngineHandle;
use crate::engine::event::{Event, EventKind};
use crate::engine::lifecycle::ExitStatus;
use crate::store::{EventRow, History, Record, SampleRow};

/// One point per instance this often: the raw resolution of the charts.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);

pub fn event_row(event: &Event) -> EventRow {
    let mut row = EventRow {
        id: None,
        at_ms: crate::store::unix_ms(event.at),
        service: event.service.clone(),
        instance: event.instance.clone(),
        kind: String::new(),
        from_state: None,
        to_state: None,
        reason: None,
        pid: None,
        exit_code: None,
        signal: None,
        probe: None,
        passing: None,
    };
    match &event.kind {
        EventKind::StateChanged { from, to, reason } => {
            row.kind = "state".into();
            row.from_state = Some(from.to_string());
            row.to_state = Some(to.to_string());
            row.reason = Some(reason.clone());
        }
        EventKind::Spawned { pid } => {
            row.kind = "spawn".into();
            row.pid = Some(*pid);
        }
        EventKind::Exited { pid, status } => {
            row.kind = "exit".into();
            row.pid = Some(*pid);
            match status {
                ExitStatus::Code(code) => row.exit_code = Some(*code),
                ExitStatus::Signal(number) => {
                    row.signal = Some(
                        crate::config::signal::signal_name(*number)
                            .map(str::to_string)
                            .unwrap_or_else(|| format!("SIG{number}")),
                    )
                }
            }
        }
        EventKind::Settled => row.kind = "ready".into(),
        EventKind::Warning { message } => {
            row.kind = "warning".into();
            row.reason = Some(message.clone());
        }
        EventKind::ProbeChanged {
            role,
            passing,
            detail,
        } => {
            row.kind = "probe".into();
            row.probe = Some(role.to_string());
            row.passing = Some(*passing);
            row.reason = Some(detail.clone());
        }
        EventKind::Reload { step, pid, detail } => {
            row.kind = "reload".into();
            row.pid = *pid;
            row.to_state = Some(step.to_string());
            row.reason = Some(detail.clone());
        }
    }
    row
}

/// The running recorder: [`Recorder::finish`] ends it after the events already sent.
pub struct Recorder {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    /// Record (and hand to `also`) every event already on the channel, then stop; bounded.
    /// The engine's handle keeps the channel open, so the end has to be asked for.
    pub async fn finish(self, timeout: Duration) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(timeout, self.task).await;
    }
}

/// Record events and samples until [`Recorder::finish`]. `also` sees every event too (the
/// notifications), on the same task, so there is one subscriber for both.
pub fn spawn(
    engine: EngineHandle,
    history: Option<History>,
    also: impl Fn(&Event) + Send + 'static,
) -> Recorder {
    let mut events = engine.subscribe();
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let sampled = history.clone();
    let record = move |event: &Event| {
        if let Some(history) = &history {
            history.record(Record::Event(event_row(event)));
        }
        also(event);
    };
    let task = tokio::spawn(async move {
        let mut sampling = tokio::time::interval(SAMPLE_EVERY);
        sampling.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                received = events.recv() => match received {
                    Ok(event) => record(&event),
                    Err(RecvError::Lagged(n)) => crate::logs::own::say(&format!(
                        "history: {n} events were missed (the recorder fell behind a burst)"
                    )),
                    Err(RecvError::Closed) => break,
                },
                _ = stopped.changed() => {
                    while let Ok(event) = events.try_recv() {
                        record(&event);
                    }
                    break;
                }
                _ = sampling.tick(), if sampled.is_some() => {
                    let Ok(Ok(statuses)) = engine.status(Vec::new()).await else {
                        continue;
                    };
                    let Some(history) = &sampled else { continue };
                    let at_ms = crate::store::unix_ms(std::time::SystemTime::now());
                    for status in statuses.iter().filter(|s| s.pid.is_some()) {
                        history.record(Record::Sample(SampleRow {
                            at_ms,
                            service: status.service.clone(),
                            instance: status.name.clone(),
                            cpu_percent: status.cpu_percent,
                            rss_bytes: status.rss_bytes,
                        }));
                    }
                }
            }
        }
    });
    Recorder { stop, task }
}
