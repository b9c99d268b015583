//! Deciding what is worth a notice. Pure: every time comes from an event or the caller, so the
//! rules are tested as tables of events. Memory is a few fields per instance.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use super::{Notice, NoticeKind, human};
use crate::engine::event::{Event, EventKind};
use crate::engine::lifecycle::ExitStatus;

/// This many restarts of one instance within [`FLAP_WINDOW`] make it flapping.
pub const FLAP_RESTARTS: usize = 3;
/// See [`FLAP_RESTARTS`]. Also how long a flapping instance must stay running to count as
/// recovered: the window must pass without a restart.
pub const FLAP_WINDOW: Duration = Duration::from_secs(5 * 60);
/// How long a fatal or unhealthy instance must stay running to count as recovered. The engine
/// reports "running" as soon as the process is spawned, so reaching it proves nothing yet: a
/// restart after a fatal cooldown that dies in a second must not say "recovered" first.
pub const RECOVERY_UPTIME: Duration = Duration::from_secs(60);
/// Reasons come from programs' own words (probe output): bound what a notice carries and
/// what the classifier keeps.
const MAX_REASON: usize = 500;

/// Turns the event stream into notices; keeps a little memory per instance.
#[derive(Debug, Default)]
pub struct Classifier {
    instances: HashMap<String, Memory>,
}

#[derive(Debug)]
struct Memory {
    service: String,
    state: &'static str,
    /// Set while the state is "running".
    running_since: Option<SystemTime>,
    /// The reason that sent the instance into backoff: what its restart is about.
    failure: String,
    /// The exit of the current run's process; cleared on spawn so a spawn failure is not
    /// blamed on an older exit.
    last_exit: Option<ExitStatus>,
    /// Times of the most recent restarts, never more than FLAP_RESTARTS of them.
    restarts: VecDeque<SystemTime>,
    // A notice of each kind was sent and the instance has not recovered since.
    fatal: bool,
    unhealthy: bool,
    flapping: bool,
}

impl Memory {
    fn new(service: &str) -> Memory {
        Memory {
            service: service.to_owned(),
            state: "stopped",
            running_since: None,
            failure: String::new(),
            last_exit: None,
            restarts: VecDeque::with_capacity(FLAP_RESTARTS),
            fatal: false,
            unhealthy: false,
            flapping: false,
        }
    }

    fn troubled(&self) -> bool {
        self.fatal || self.unhealthy || self.flapping
    }

    fn exit(&self) -> Option<String> {
        self.last_exit.map(exit_text)
    }
}

impl Classifier {
    pub fn new() -> Classifier {
        Classifier::default()
    }

    /// The notices one event gives, in the order they happened (a restart before the
    /// flapping it completes).
    pub fn observe(&mut self, event: &Event) -> Vec<Notice> {
        let mut out = Vec::new();
        let notice = |kind, reason: &str, exit| Notice {
            kind,
            at: event.at,
            service: event.service.clone(),
            instance: event.instance.clone(),
            reason: clip(reason),
            exit,
        };
        if let EventKind::StateChanged { to: "stopped", .. } = event.kind {
            // Only a stop by request (or the instance being removed) ends in "stopped": the
            // operator has taken over, and a removed instance must not be remembered forever.
            self.instances.remove(&event.instance);
            return out;
        }
        if matches!(event.kind, EventKind::Warning { .. }) {
            return out;
        }
        if !self.instances.contains_key(&event.instance) {
            self.instances
                .insert(event.instance.clone(), Memory::new(&event.service));
        }
        let Some(memory) = self.instances.get_mut(&event.instance) else {
            return out;
        };
        match &event.kind {
            EventKind::Spawned { .. } => memory.last_exit = None,
            EventKind::Exited { status, .. } => memory.last_exit = Some(*status),
            EventKind::StateChanged { from, to, reason } => {
                memory.state = to;
                memory.running_since = (*to == "running").then_some(event.at);
                match (*from, *to) {
                    (_, "fatal") => {
                        memory.fatal = true;
                        out.push(notice(NoticeKind::Fatal, reason, memory.exit()));
                    }
                    (_, "backoff" | "exited") => memory.failure = clip(reason),
                    // A crash restart: through backoff, or straight on when the backoff delay is
                    // zero. Starting from anything else (stopped, waiting, fatal, stopping) is a
                    // start or restart someone asked for, or a fatal cooldown's retry.
                    ("backoff" | "running" | "starting", "starting") => {
                        let why = if *from == "backoff" {
                            memory.failure.clone()
                        } else {
                            clip(reason)
                        };
                        let why = without_restart_note(&why);
                        out.push(notice(NoticeKind::Restarted, why, memory.exit()));
                        if let Some(span) = memory.count_restart(event.at) {
                            let reason = format!(
                                "{} restarts in {}; last: {why}",
                                memory.restarts.len(),
                                human(span)
                            );
                            out.push(notice(NoticeKind::Flapping, &reason, memory.exit()));
                        }
                    }
                    _ => {}
                }
            }
            EventKind::ProbeChanged {
                role: "liveness",
                passing,
                detail,
            } => {
                if !passing {
                    memory.unhealthy = true;
                    out.push(notice(NoticeKind::Unhealthy, detail, None));
                } else if memory.unhealthy && memory.state == "running" {
                    // The probe itself says it is fine again: no need to wait for uptime.
                    memory.unhealthy = false;
                    if !memory.troubled() {
                        out.push(notice(
                            NoticeKind::Recovered,
                            "liveness probe passing again",
                            None,
                        ));
                    }
                }
            }
            EventKind::ProbeChanged { .. }
            | EventKind::Warning { .. }
            | EventKind::Settled
            | EventKind::Reload { .. } => {}
        }
        out
    }

    /// Recoveries that only the passing of time reveals: a troubled instance that has stayed
    /// running long enough. Call every few seconds.
    pub fn tick(&mut self, now: SystemTime) -> Vec<Notice> {
        let mut out = Vec::new();
        for (instance, memory) in &mut self.instances {
            let Some(since) = memory.running_since else {
                continue;
            };
            if !memory.troubled() {
                continue;
            }
            let up = now.duration_since(since).unwrap_or_default();
            if up >= RECOVERY_UPTIME {
                memory.fatal = false;
                memory.unhealthy = false;
            }
            if up >= FLAP_WINDOW {
                memory.flapping = false;
            }
            if !memory.troubled() {
                out.push(Notice {
                    kind: NoticeKind::Recovered,
                    at: now,
                    service: memory.service.clone(),
                    instance: instance.clone(),
                    reason: format!("running for {}", human(up)),
                    exit: None,
                });
            }
        }
        out
    }
}

impl Memory {
    /// Records a restart; returns the span of the restarts when this one makes the instance
    /// flapping (once until it recovers).
    fn count_restart(&mut self, at: SystemTime) -> Option<Duration> {
        let window_start = at.checked_sub(FLAP_WINDOW);
        // A clock stepped backwards leaves later-stamped entries: they stay, as if just now.
        self.restarts
            .retain(|&t| window_start.is_none_or(|start| t >= start));
        if self.restarts.len() >= FLAP_RESTARTS {
            self.restarts.pop_front();
        }
        self.restarts.push_back(at);
        if self.restarts.len() < FLAP_RESTARTS || self.flapping {
            return None;
        }
        self.flapping = true;
        Some(at.duration_since(self.restarts[0]).unwrap_or_default())
    }
}

/// "exit code 3", or the signal's name ("SIGKILL").
pub(super) fn exit_text(status: ExitStatus) -> String {
    match status {
        ExitStatus::Code(code) => format!("exit code {code}"),
        ExitStatus::Signal(number) => match crate::config::signal::signal_name(number) {
            Some(name) => name.to_owned(),
            None => format!("signal {number}"),
        },
    }
}

/// The engine's backoff reason ends in "; restarting in 2s": true when it was written, but
/// noise in a notice that is itself about the restart.
fn without_restart_note(reason: &str) -> &str {
    match reason.rfind("; restarting") {
        Some(at) => &reason[..at],
        None => reason,
    }
}

fn clip(text: &str) -> String {
    if text.len() <= MAX_REASON {
        return text.to_owned();
    }
    let mut end = MAX_REASON;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + secs)
    }

    fn event(secs: u64, kind: EventKind) -> Event {
        Event {
            at: at(secs),
            instance: "web:2".into(),
            service: "web".into(),
            kind,
        }
    }

    fn state(secs: u64, from: &'static str, to: &'static str, reason: &str) -> Event {
        event(
            secs,
            EventKind::StateChanged {
                from,
                to,
                reason: reason.into(),
            },
        )
    }

    fn exited(secs: u64, status: ExitStatus) -> Event {
        event(secs, EventKind::Exited { pid: 42, status })
    }

    fn spawned(secs: u64) -> Event {
        event(secs, EventKind::Spawned { pid: 42 })
    }

    fn liveness(secs: u64, passing: bool, detail: &str) -> Event {
        event(
            secs,
            EventKind::ProbeChanged {
                role: "liveness",
                passing,
                detail: detail.into(),
            },
        )
    }

    /// A crash and the restart after backoff, as the engine reports them.
    fn crash(secs: u64, code: i32) -> Vec<Event> {
        let why = format!("exited with code {code}");
        vec![
            exited(secs, ExitStatus::Code(code)),
            state(
                secs,
                "running",
                "backoff",
                &format!("{why}; restarting in 1s"),
            ),
            state(secs + 1, "backoff", "starting", "restarting after backoff"),
            spawned(secs + 1),
            state(secs + 1, "starting", "running", "spawned pid 42"),
        ]
    }

    fn feed(classifier: &mut Classifier, events: &[Event]) -> Vec<(NoticeKind, String)> {
        events
            .iter()
            .flat_map(|e| classifier.observe(e))
            .map(|n| (n.kind, n.reason))
            .collect()
    }

    fn kinds(notices: &[(NoticeKind, String)]) -> Vec<NoticeKind> {
        notices.iter().map(|(kind, _)| *kind).collect()
    }

    fn started(secs: u64) -> Vec<Event> {
        vec![
            state(secs, "stopped", "starting", "started"),
            spawned(secs),
            state(secs, "starting", "running", "spawned pid 42"),
        ]
    }

    #[test]
    fn each_kind_fires_on_its_events_and_nothing_else_does() {
        use NoticeKind::*;
        let cases: Vec<(&str, Vec<Event>, Vec<NoticeKind>)> = vec![
            ("a plain start", started(0), vec![]),
            (
                "operator stop",
                [
                    started(0),
                    vec![
                        state(5, "running", "stopping", "stopped by request"),
                        state(6, "stopping", "stopped", "stopped by request"),
                    ],
                ]
                .concat(),
                vec![],
            ),
            (
                "operator restart",
                [
                    started(0),
                    vec![
                        state(5, "running", "stopping", "restarted by request"),
                        state(6, "stopping", "starting", "restarted by request"),
                    ],
                ]
                .concat(),
                vec![],
            ),
            (
                "a task that finished",
                [
                    started(0),
                    vec![
                        exited(5, ExitStatus::Code(0)),
                        state(5, "running", "exited", "exited with code 0"),
                    ],
                ]
                .concat(),
                vec![],
            ),
            (
                "one crash",
                [started(0), crash(10, 1)].concat(),
                vec![Restarted],
            ),
            (
                "crash with zero backoff",
                [
                    started(0),
                    vec![
                        exited(10, ExitStatus::Code(1)),
                        state(10, "running", "starting", "exited with code 1; restarting"),
                    ],
                ]
                .concat(),
                vec![Restarted],
            ),
            (
                "give up",
                [
                    started(0),
                    vec![
                        exited(10, ExitStatus::Code(3)),
                        state(10, "running", "fatal", "exited with code 3; giving up"),
                    ],
                ]
                .concat(),
                vec![Fatal],
            ),
            (
                "liveness fails",
                [started(0), vec![liveness(10, false, "http 503")]].concat(),
                vec![Unhealthy],
            ),
            (
                "readiness and startup flips are not news",
                [
                    started(0),
                    vec![
                        event(
                            10,
                            EventKind::ProbeChanged {
                                role: "readiness",
                                passing: false,
                                detail: "x".into(),
                            },
                        ),
                        event(
                            10,
                            EventKind::ProbeChanged {
                                role: "startup",
                                passing: false,
                                detail: "x".into(),
                            },
                        ),
                    ],
                ]
                .concat(),
                vec![],
            ),
            (
                "fatal cooldown retry is not a crash restart",
                vec![
                    state(0, "fatal", "starting", "cooldown over, trying again"),
                    spawned(0),
                    state(0, "starting", "running", "spawned pid 42"),
                ],
                vec![],
            ),
            (
                "warnings are not notices",
                vec![event(
                    0,
                    EventKind::Warning {
                        message: "rss over 90%".into(),
                    },
                )],
                vec![],
            ),
        ];
        for (name, events, expected) in cases {
            let mut classifier = Classifier::new();
            assert_eq!(kinds(&feed(&mut classifier, &events)), expected, "{name}");
        }
    }

    #[test]
    fn fatal_carries_the_engine_reason_and_the_last_exit() {
        let mut classifier = Classifier::new();
        let events = [
            started(0),
            vec![
                exited(10, ExitStatus::Signal(libc::SIGKILL)),
                state(
                    10,
                    "running",
                    "fatal",
                    "killed by SIGKILL; 5 restarts in 1m",
                ),
            ],
        ]
        .concat();
        let notices: Vec<Notice> = events.iter().flat_map(|e| classifier.observe(e)).collect();
        assert_eq!(notices.len(), 1);
        assert_eq!(notices[0].kind, NoticeKind::Fatal);
        assert_eq!(notices[0].reason, "killed by SIGKILL; 5 restarts in 1m");
        assert_eq!(notices[0].exit.as_deref(), Some("SIGKILL"));
        assert_eq!(notices[0].instance, "web:2");
        assert_eq!(notices[0].service, "web");
        assert_eq!(notices[0].at, at(10));
    }

    #[test]
    fn a_spawn_failure_is_not_blamed_on_an_older_exit() {
        let mut classifier = Classifier::new();
        let mut events = [started(0), crash(10, 1)].concat();
        events.push(state(20, "starting", "fatal", "spawn failed: No such file"));
        // The crash's restart respawned (clearing the exit); make the next start fail.
        let notices: Vec<Notice> = events.iter().flat_map(|e| classifier.observe(e)).collect();
        let fatal = notices.last().unwrap();
        assert_eq!(fatal.kind, NoticeKind::Fatal);
        assert_eq!(fatal.exit, None);
    }

    #[test]
    fn restarted_names_the_failure_that_caused_it() {
        let mut classifier = Classifier::new();
        let events = [started(0), crash(10, 3)].concat();
        let notices: Vec<Notice> = events.iter().flat_map(|e| classifier.observe(e)).collect();
        assert_eq!(notices.len(), 1);
        assert_eq!(notices[0].reason, "exited with code 3");
        assert_eq!(notices[0].exit.as_deref(), Some("exit code 3"));
        assert_eq!(notices[0].at, at(11), "the restart, not the crash");
    }

    #[test]
    fn unhealthy_restart_names_the_probe() {
        let mut classifier = Classifier::new();
        let events = [
            started(0),
            vec![
                liveness(10, false, "http 503 three times"),
                state(10, "running", "stopping", "liveness: http 503 three times"),
                exited(11, ExitStatus::Signal(libc::SIGTERM)),
                state(
                    11,
                    "stopping",
                    "backoff",
                    "liveness: http 503 three times; restarting in 1s",
                ),
                state(12, "backoff", "starting", "restarting after backoff"),
            ],
        ]
        .concat();
        let notices: Vec<Notice> = events.iter().flat_map(|e| classifier.observe(e)).collect();
        let got: Vec<_> = notices
            .iter()
            .map(|n| (n.kind, n.reason.as_str(), n.exit.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                (NoticeKind::Unhealthy, "http 503 three times", None),
                (
                    NoticeKind::Restarted,
                    "liveness: http 503 three times",
                    Some("SIGTERM")
                ),
            ]
        );
    }

    #[test]
    fn flapping_is_the_third_restart_within_the_window_once() {
        let mut classifier = Classifier::new();
        let mut got = feed(&mut classifier, &started(0));
        for i in 0..5 {
            got.extend(feed(&mut classifier, &crash(10 + i * 30, 1)));
        }
        use NoticeKind::*;
        assert_eq!(
            kinds(&got),
            vec![
                Restarted, Restarted, Restarted, Flapping, Restarted, Restarted
            ]
        );
        let flapping = &got[3].1;
        assert_eq!(flapping, "3 restarts in 1m; last: exited with code 1");
    }

    #[test]
    fn restarts_spread_wider_than_the_window_are_not_flapping() {
        let mut classifier = Classifier::new();
        let mut got = feed(&mut classifier, &started(0));
        let spacing = FLAP_WINDOW.as_secs() / 2 + 1;
        for i in 0..6 {
            got.extend(feed(&mut classifier, &crash(10 + i * spacing, 1)));
        }
        assert!(got.iter().all(|(kind, _)| *kind == NoticeKind::Restarted));
        assert_eq!(got.len(), 6);
    }

    #[test]
    fn restart_memory_stays_bounded() {
        let mut classifier = Classifier::new();
        feed(&mut classifier, &started(0));
        for i in 0..1000 {
            feed(&mut classifier, &crash(10 + i * 2, 1));
        }
        let memory = &classifier.instances["web:2"];
        assert!(memory.restarts.len() <= FLAP_RESTARTS);
        assert!(memory.restarts.capacity() < 16);
        assert_eq!(classifier.instances.len(), 1);
    }

    #[test]
    fn a_stopped_instance_is_forgotten() {
        let mut classifier = Classifier::new();
        feed(&mut classifier, &started(0));
        feed(&mut classifier, &crash(10, 1));
        feed(
            &mut classifier,
            &[
                state(20, "running", "stopping", "stopped by request"),
                state(21, "stopping", "stopped", "stopped by request"),
            ],
        );
        assert!(classifier.instances.is_empty());
    }

    #[test]
    fn fatal_recovers_once_after_staying_up() {
        let mut classifier = Classifier::new();
        let events = [
            started(0),
            vec![
                exited(10, ExitStatus::Code(3)),
                state(10, "running", "fatal", "giving up"),
                state(100, "fatal", "starting", "started by request after fatal"),
                spawned(100),
                state(100, "starting", "running", "spawned pid 42"),
            ],
        ]
        .concat();
        assert_eq!(
            kinds(&feed(&mut classifier, &events)),
            vec![NoticeKind::Fatal]
        );
        let up = RECOVERY_UPTIME.as_secs();
        assert!(classifier.tick(at(100 + up - 1)).is_empty(), "too soon");
        let recovered = classifier.tick(at(100 + up));
        assert_eq!(recovered.len(), 1);
        assert_eq!(recovered[0].kind, NoticeKind::Recovered);
        assert_eq!(recovered[0].instance, "web:2");
        assert_eq!(recovered[0].service, "web");
        assert_eq!(recovered[0].reason, "running for 1m");
        assert!(classifier.tick(at(100 + up * 5)).is_empty(), "only once");
    }

    #[test]
    fn a_quick_death_after_fatal_is_not_a_recovery() {
        let mut classifier = Classifier::new();
        let events = [
            started(0),
            vec![
                state(10, "running", "fatal", "giving up"),
                state(100, "fatal", "starting", "cooldown over, trying again"),
                spawned(100),
                state(100, "starting", "running", "spawned pid 42"),
                exited(101, ExitStatus::Code(1)),
                state(101, "running", "fatal", "failed again after cooldown"),
            ],
        ]
        .concat();
        use NoticeKind::*;
        assert_eq!(kinds(&feed(&mut classifier, &events)), vec![Fatal, Fatal]);
        assert!(classifier.tick(at(1000)).is_empty());
    }

    #[test]
    fn liveness_passing_again_recovers_at_once_and_once() {
        let mut classifier = Classifier::new();
        let events = [
            started(0),
            vec![
                liveness(10, false, "timeout"),
                liveness(20, true, "ok"),
                liveness(30, true, "ok"),
            ],
        ]
        .concat();
        use NoticeKind::*;
        assert_eq!(
            kinds(&feed(&mut classifier, &events)),
            vec![Unhealthy, Recovered]
        );
        assert!(classifier.tick(at(1000)).is_empty());
    }

    #[test]
    fn unhealthy_recovers_by_uptime_after_its_restart() {
        let mut classifier = Classifier::new();
        let events = [
            started(0),
            vec![liveness(10, false, "timeout")],
            crash(11, 137),
        ]
        .concat();
        feed(&mut classifier, &events);
        let up = RECOVERY_UPTIME.as_secs();
        assert!(classifier.tick(at(12 + up - 1)).is_empty());
        assert_eq!(classifier.tick(at(12 + up)).len(), 1);
    }

    #[test]
    fn flapping_recovers_only_after_a_quiet_window() {
        let mut classifier = Classifier::new();
        feed(&mut classifier, &started(0));
        for i in 0..3 {
            feed(&mut classifier, &crash(10 + i * 10, 1));
        }
        // Running since the last crash's restart at 31.
        let up = RECOVERY_UPTIME.as_secs();
        assert!(
            classifier.tick(at(31 + up)).is_empty(),
            "a minute is not enough"
        );
        let window = FLAP_WINDOW.as_secs();
        assert!(classifier.tick(at(31 + window - 1)).is_empty());
        let recovered = classifier.tick(at(31 + window));
        assert_eq!(recovered.len(), 1);
        assert_eq!(recovered[0].reason, "running for 5m");
        // Recovered: the next crash is a plain restart, and flapping needs three fresh ones.
        let mut got = Vec::new();
        for i in 0..3 {
            got.extend(feed(&mut classifier, &crash(1000 + i * 10, 1)));
        }
        use NoticeKind::*;
        assert_eq!(kinds(&got), vec![Restarted, Restarted, Restarted, Flapping]);
    }

    #[test]
    fn liveness_passing_does_not_end_flapping() {
        let mut classifier = Classifier::new();
        feed(&mut classifier, &started(0));
        feed(&mut classifier, &[liveness(5, false, "timeout")]);
        for i in 0..3 {
            feed(&mut classifier, &crash(10 + i * 10, 1));
        }
        assert!(feed(&mut classifier, &[liveness(40, true, "ok")]).is_empty());
    }

    #[test]
    fn instances_are_kept_apart() {
        let mut classifier = Classifier::new();
        let mut other = crash(10, 1);
        for e in &mut other {
            e.instance = "web:1".into();
        }
        let mut events = Vec::new();
        for i in 0..2 {
            events.extend(crash(10 + i * 10, 1));
        }
        events.extend(other);
        let got = feed(&mut classifier, &events);
        assert!(got.iter().all(|(kind, _)| *kind == NoticeKind::Restarted));
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn exit_texts() {
        assert_eq!(exit_text(ExitStatus::Code(3)), "exit code 3");
        assert_eq!(exit_text(ExitStatus::Signal(libc::SIGKILL)), "SIGKILL");
        assert_eq!(exit_text(ExitStatus::Signal(libc::SIGSEGV)), "SIGSEGV");
        assert_eq!(exit_text(ExitStatus::Signal(77)), "signal 77");
    }

    #[test]
    fn long_reasons_are_clipped_on_a_char_boundary() {
        let long = "é".repeat(MAX_REASON);
        let clipped = clip(&long);
        assert!(clipped.len() <= MAX_REASON + '…'.len_utf8());
        assert!(clipped.ends_with('…'));
        assert_eq!(clip("short"), "short");
    }
}
