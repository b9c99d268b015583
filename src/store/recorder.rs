//! Feeds the history from the engine: every event off the broadcast, and one resource
//! sample per sampled instance every [`SAMPLE_EVERY`] (or as far apart as the engine's
//! samples are). It only ever calls [`History::record`], which never blocks, so the engine
//! never waits for the disk.

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use crate::engine::EngineHandle;
use crate::engine::event::{Event, EventKind, InstanceStatus};
use crate::engine::lifecycle::ExitStatus;
use crate::store::{EventRow, History, Record, SampleRow};

/// One point per instance this often: the raw resolution of the charts. Where the engine
/// samples less often (many instances stretch its interval), a point per engine sample:
/// more would repeat the same figures, and at 10 000 instances cost more than the rest of
/// an idle daemon together.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// How often to keep a sample of every instance, given how often the engine samples them;
/// `None` when it does not sample, and there are no figures to keep.
pub fn recording_every(engine_every: Option<Duration>) -> Option<Duration> {
    engine_every.map(|every| every.max(SAMPLE_EVERY))
}

/// Whether a status carries figures worth a row: a running process that has been sampled
/// (one just started has none yet).
pub fn has_figures(status: &InstanceStatus) -> bool {
    status.pid.is_some() && (status.cpu_percent.is_some() || status.rss_bytes.is_some())
}

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
    let sampled = history
        .clone()
        .filter(|_| recording_every(engine.sampling_every()).is_some());
    let record = move |event: &Event| {
        if let Some(history) = &history {
            history.record(Record::Event(event_row(event)));
        }
        also(event);
    };
    let task = tokio::spawn(async move {
        let next = || {
            let every = recording_every(engine.sampling_every()).unwrap_or(SAMPLE_EVERY);
            tokio::time::Instant::now() + every
        };
        let mut next_sample = next();
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
                _ = tokio::time::sleep_until(next_sample), if sampled.is_some() => {
                    next_sample = next();
                    let Ok(Ok(statuses)) = engine.status(Vec::new()).await else {
                        continue;
                    };
                    let Some(history) = &sampled else { continue };
                    let at_ms = crate::store::unix_ms(std::time::SystemTime::now());
                    for status in statuses.iter().filter(|s| has_figures(s)) {
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

#[cfg(test)]
mod tests {
    use super::{SAMPLE_EVERY, recording_every};
    use std::time::Duration;

    #[test]
    fn samples_are_kept_no_more_often_than_the_engine_takes_them() {
        assert_eq!(recording_every(None), None, "no sampling, nothing to keep");
        assert_eq!(
            recording_every(Some(Duration::from_secs(2))),
            Some(SAMPLE_EVERY)
        );
        assert_eq!(
            recording_every(Some(Duration::from_secs(25))),
            Some(Duration::from_secs(25)),
            "many instances stretch the engine's interval; a row every 10 s would repeat them"
        );
    }
}
