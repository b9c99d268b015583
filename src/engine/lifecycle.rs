//! The state machine of one instance, as a pure function: (state, input, now) → (state, effects).
//! It never reads a clock, spawns, signals or does I/O; the instance task carries out the
//! effects. Every timing decision (backoff, restart window, cooldown, stop timeout) lives here.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::model::{BackoffSpec, RestartLimit, RestartPolicy, ServiceSpec};
use crate::config::signal::Signal;
use crate::engine::backoff::Jitter;

/// How long to wait after SIGKILL before declaring the tree gone anyway (a process stuck in
/// uninterruptible sleep cannot be killed any faster, and a stop must end).
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    /// Killed by this signal number.
    Signal(i32),
}

impl ExitStatus {
    /// The status as a shell reports it: the exit code, or 128 + N for signal N.
    pub fn shell_code(self) -> i32 {
        match self {
            ExitStatus::Code(code) => code,
            ExitStatus::Signal(number) => 128 + number,
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Code(code) => write!(f, "exited with code {code}"),
            ExitStatus::Signal(number) => match crate::config::signal::signal_name(*number) {
                Some(name) => write!(f, "killed by {name}"),
                None => write!(f, "killed by signal {number}"),
            },
        }
    }
}

/// What happens once a stop has finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterStop {
    Rest,
    Restart,
    /// The stop was the supervisor's own (a failed liveness probe, a memory limit): the end
    /// counts as a failure, through the restart policy and backoff.
    Recover,
}

/// What a restart was for: the `reason` label of the restarts counter in the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartCause {
    /// The process ended when it should not have.
    Exited = 0,
    SpawnFailed = 1,
    /// tend stopped it: liveness, startup, watchdog or a resource limit.
    Unhealthy = 2,
    /// Someone asked (`tend restart`, the API).
    Requested = 3,
}

impl RestartCause {
    pub const ALL: [RestartCause; 4] = [
        RestartCause::Exited,
        RestartCause::SpawnFailed,
        RestartCause::Unhealthy,
        RestartCause::Requested,
    ];

    pub fn label(self) -> &'static str {
        match self {
            RestartCause::Exited => "exited",
            RestartCause::SpawnFailed => "spawn_failed",
            RestartCause::Unhealthy => "unhealthy",
            RestartCause::Requested => "requested",
        }
    }
}

/// The state of one instance; each state holds the data that only it has.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Stopped,
    /// Wants to run, held back until its dependencies are satisfied.
    Waiting,
    /// A spawn is in flight.
    Starting,
    Running {
        pid: u32,
        since: Instant,
        /// Up for at least `min_uptime`: counts as healthy and resets the backoff.
        settled: bool,
    },
    Backoff {
        until: Instant,
    },
    Stopping {
        /// The leader, until it has exited; afterwards the rest of the tree is awaited.
        pid: Option<u32>,
        deadline: Instant,
        killed: bool,
        then: AfterStop,
    },
    /// Ran to its end and will not be restarted by policy.
    Exited {
        status: ExitStatus,
        success: bool,
    },
    /// Too many restarts in the window; leaves by manual start or after `cooldown`.
    Fatal {
        retry_at: Option<Instant>,
    },
}

impl State {
    /// The state's name as the CLI and API show it.
    pub fn name(&self) -> &'static str {
        match self {
            State::Stopped => "stopped",
            State::Waiting => "waiting",
            State::Starting => "starting",
            State::Running { .. } => "running",
            State::Backoff { .. } => "backoff",
            State::Stopping { .. } => "stopping",
            State::Exited { .. } => "exited",
            State::Fatal { .. } => "fatal",
        }
    }

    pub fn pid(&self) -> Option<u32> {
        match self {
            State::Running { pid, .. } => Some(*pid),
            State::Stopping { pid, .. } => *pid,
            _ => None,
        }
    }
}

/// A reload in progress: a second process of the instance beside its current one. The
/// current process (the one in [`State::Running`]) serves until the replacement is ready;
/// then they swap places and the old one is stopped. The restart policy never sees the
/// second process: its exit is the end of a reload, never a crash of the instance.
#[derive(Debug, Clone, PartialEq)]
pub enum Reload {
    /// The replacement is being spawned.
    Spawning {
        deadline: Instant,
        timeout: Duration,
        by_uptime: bool,
    },
    /// The replacement runs beside the current process and is not ready yet.
    Overlap {
        pid: u32,
        since: Instant,
        /// Given up on at this time.
        deadline: Instant,
        timeout: Duration,
        /// No readiness check: ready once up for `min_uptime`.
        by_uptime: bool,
    },
    /// The second process is being stopped: the old one once the replacement took over
    /// (`outcome` is Ok), or a replacement that failed (`outcome` says why).
    Retiring {
        /// Its leader, until it has exited; afterwards the rest of its tree is awaited.
        pid: Option<u32>,
        deadline: Instant,
        killed: bool,
        outcome: Result<(), String>,
    },
}

/// Things that happen to an instance.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Run it. `manual` starts come from a user and also leave `fatal`.
    Start {
        manual: bool,
    },
    /// Wants to run but its dependencies are not satisfied yet.
    Wait,
    Stop,
    /// Stop if running, then start; bypasses backoff.
    Restart,
    /// Force: SIGKILL the whole tree now (a second Ctrl-C).
    Kill,
    Spawned {
        pid: u32,
    },
    SpawnFailed {
        reason: String,
    },
    /// The leader process exited.
    Exited(ExitStatus),
    /// After the leader exited during a stop, nothing of the tree is left.
    TreeEmpty,
    /// A deadline from [`Lifecycle::deadline`] has passed.
    Tick,
    /// The running instance is unhealthy (liveness, watchdog, memory): stop it and treat the
    /// end as a failure.
    Unhealthy {
        reason: String,
    },
    /// The program named another process of its tree its main one (sd_notify MAINPID) and
    /// the one tend started has exited: the run goes on with the new main process.
    MainPid {
        pid: u32,
    },
    /// Replace the running process without a gap: start a second one beside it, wait until
    /// that one is ready (within `timeout`; with `by_uptime`, ready means up for
    /// `min_uptime`), then stop the first gracefully.
    Reload {
        timeout: Duration,
        by_uptime: bool,
    },
    ReplacementSpawned {
        pid: u32,
    },
    ReplacementSpawnFailed {
        reason: String,
    },
    /// The replacement passed its readiness check (sd_notify READY=1 from its own tree, a
    /// probe, a log line).
    ReplacementReady,
    /// The replacement failed a check (startup, liveness, watchdog) before it took over.
    ReplacementUnhealthy {
        reason: String,
    },
    /// The second process's leader exited (a replacement, or the old process retiring).
    SecondExited(ExitStatus),
    /// After the second leader exited, nothing of its tree is left.
    SecondTreeEmpty,
}

/// Work for the instance task.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Spawn,
    /// Send this signal to the whole tree.
    SignalTree(Signal),
    /// SIGKILL the whole tree.
    KillTree,
    /// The leader is gone while stopping: report `TreeEmpty` once nothing of the tree is left.
    AwaitTreeEmpty,
    /// The leader exited on its own: stop whatever it left behind in its tree before anything
    /// is started again (no duplicates, no port held by an orphan).
    StopLeftovers,
    /// Spawn a replacement beside the current process, in a tree of its own.
    SpawnReplacement,
    /// The replacement is ready: it becomes the instance's process (its tree, probes and
    /// exit), and the current one becomes the second process, to be stopped.
    Promote,
    /// Send this signal to the whole tree of the second process.
    SignalSecond(Signal),
    /// SIGKILL the whole tree of the second process.
    KillSecond,
    /// The second leader is gone: report `SecondTreeEmpty` once nothing of its tree is left.
    AwaitSecondEmpty,
    /// Refuse a reload that cannot begin (not running, one already under way).
    ReloadRefused(String),
    /// The reload is over, its second process gone: Ok once the old process made way for
    /// the replacement, Err (why) when the replacement failed and the old one still runs.
    ReloadFinished(Result<(), String>),
}

/// The restart policy of one instance, copied from its service.
#[derive(Debug, Clone)]
pub struct Policy {
    pub restart: RestartPolicy,
    pub exit_codes: Vec<i32>,
    pub backoff: BackoffSpec,
    pub min_uptime: Duration,
    pub max_restarts: u32,
    pub restart_window: Duration,
    pub restart_limit: RestartLimit,
    pub cooldown: Option<Duration>,
    pub stop_signal: Signal,
    pub stop_timeout: Duration,
}

impl Policy {
    pub fn from_spec(spec: &ServiceSpec) -> Self {
        Policy {
            restart: spec.restart,
            exit_codes: spec.exit_codes.clone(),
            backoff: spec.backoff.clone(),
            min_uptime: spec.min_uptime,
            max_restarts: spec.max_restarts,
            restart_window: spec.restart_window,
            restart_limit: spec.restart_limit,
            cooldown: spec.cooldown,
            stop_signal: spec.stop_signal,
            stop_timeout: spec.stop_timeout,
        }
    }

    fn is_success(&self, status: ExitStatus) -> bool {
        matches!(status, ExitStatus::Code(code) if self.exit_codes.contains(&code))
    }
}

/// A lifecycle with every instant told as a distance from the moment it was taken: what an
/// upgrade hands to the next image of tend, whose clock is the same (CLOCK_MONOTONIC) but
/// whose `Instant`s are not.
#[derive(Debug, Clone, PartialEq)]
pub struct Frozen {
    pub state: FrozenState,
    pub attempt: u32,
    /// The ages of the automatic restarts inside the window, oldest first.
    pub recent_restarts: Vec<Duration>,
    pub restarts: u32,
    pub restart_causes: [u32; RestartCause::ALL.len()],
    pub last_exit: Option<ExitStatus>,
    pub probation: bool,
    pub reason: String,
}

/// The states a lifecycle can be handed over in: at rest, running, or waiting out a timer.
/// The others (waiting, starting, stopping, a reload) are moments an upgrade waits out.
#[derive(Debug, Clone, PartialEq)]
pub enum FrozenState {
    Stopped,
    Running {
        pid: u32,
        up_for: Duration,
        settled: bool,
    },
    Backoff {
        left: Duration,
    },
    Exited {
        status: ExitStatus,
        success: bool,
    },
    Fatal {
        retry_in: Option<Duration>,
    },
}

/// One instance's state plus the history its decisions need.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    pub policy: Policy,
    state: State,
    /// Consecutive failed starts since the last settled run; indexes the backoff curve.
    attempt: u32,
    /// Times of automatic restarts inside the current window.
    recent_restarts: VecDeque<Instant>,
    /// Restarts so far, automatic and manual.
    restarts: u32,
    /// `restarts` split by what caused them, indexed by [`RestartCause`].
    restart_causes: [u32; RestartCause::ALL.len()],
    last_exit: Option<ExitStatus>,
    /// Just left `fatal` by cooldown: one failed start sends it straight back (half-open).
    probation: bool,
    /// Why the last transition happened, in words.
    reason: String,
    /// Why a `Recover` stop began, and whether the run had settled.
    recovering: Option<(String, bool)>,
    jitter: Jitter,
    /// A reload under way, with its second process.
    reload: Option<Reload>,
    /// While stopping: the current tree is gone, but the second process of a reload is
    /// still stopping; the instance is stopped once both are.
    primary_gone: bool,
}

impl Lifecycle {
    pub fn new(policy: Policy, jitter_seed: u64) -> Self {
        Lifecycle {
            policy,
            state: State::Stopped,
            attempt: 0,
            recent_restarts: VecDeque::new(),
            restarts: 0,
            restart_causes: [0; RestartCause::ALL.len()],
            last_exit: None,
            probation: false,
            reason: String::new(),
            recovering: None,
            jitter: Jitter::new(jitter_seed),
            reload: None,
            primary_gone: false,
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// The lifecycle as of `now`, to be handed over; Err (its state, in words) while it is
    /// between two states or reloading.
    pub fn freeze(&self, now: Instant) -> Result<Frozen, String> {
        if self.reload.is_some() {
            return Err("reloading".into());
        }
        let state = match &self.state {
            State::Stopped => FrozenState::Stopped,
            State::Running {
                pid,
                since,
                settled,
            } => FrozenState::Running {
                pid: *pid,
                up_for: now.saturating_duration_since(*since),
                settled: *settled,
            },
            State::Backoff { until } => FrozenState::Backoff {
                left: until.saturating_duration_since(now),
            },
            State::Exited { status, success } => FrozenState::Exited {
                status: *status,
                success: *success,
            },
            State::Fatal { retry_at } => FrozenState::Fatal {
                retry_in: retry_at.map(|at| at.saturating_duration_since(now)),
            },
            other @ (State::Waiting | State::Starting | State::Stopping { .. }) => {
                return Err(other.name().into());
            }
        };
        Ok(Frozen {
            state,
            attempt: self.attempt,
            recent_restarts: self
                .recent_restarts
                .iter()
                .map(|at| now.saturating_duration_since(*at))
                .collect(),
            restarts: self.restarts,
            restart_causes: self.restart_causes,
            last_exit: self.last_exit,
            probation: self.probation,
            reason: self.reason.clone(),
        })
    }

    /// A lifecycle handed over by [`Lifecycle::freeze`], as of `now`.
    pub fn thaw(policy: Policy, jitter_seed: u64, frozen: Frozen, now: Instant) -> Lifecycle {
        let ago = |age: Duration| now.checked_sub(age).unwrap_or(now);
        let state = match frozen.state {
            FrozenState::Stopped => State::Stopped,
            FrozenState::Running {
                pid,
                up_for,
                settled,
            } => State::Running {
                pid,
                since: ago(up_for),
                settled,
            },
            FrozenState::Backoff { left } => State::Backoff { until: now + left },
            FrozenState::Exited { status, success } => State::Exited { status, success },
            FrozenState::Fatal { retry_in } => State::Fatal {
                retry_at: retry_in.map(|left| now + left),
            },
        };
        let mut lifecycle = Lifecycle::new(policy, jitter_seed);
        lifecycle.state = state;
        lifecycle.attempt = frozen.attempt;
        lifecycle.recent_restarts = frozen.recent_restarts.into_iter().map(ago).collect();
        lifecycle.restarts = frozen.restarts;
        lifecycle.restart_causes = frozen.restart_causes;
        lifecycle.last_exit = frozen.last_exit;
        lifecycle.probation = frozen.probation;
        lifecycle.reason = frozen.reason;
        lifecycle
    }

    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// Restarts so far by cause, in [`RestartCause::ALL`] order.
    pub fn restart_causes(&self) -> [u32; RestartCause::ALL.len()] {
        self.restart_causes
    }

    /// The backoff's next delay, and at least [`SPAWN_RETRY_FLOOR`] after a failed spawn.
    fn retry_delay(&mut self, cause: RestartCause) -> Duration {
        let backoff = self
            .policy
            .backoff
            .delay(self.attempt, self.jitter.next_unit());
        match cause {
            RestartCause::SpawnFailed => backoff.max(SPAWN_RETRY_FLOOR),
            _ => backoff,
        }
    }

    fn count_restart(&mut self, cause: RestartCause) {
        self.restarts += 1;
        self.restart_causes[cause as usize] += 1;
    }

    pub fn last_exit(&self) -> Option<ExitStatus> {
        self.last_exit
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The reload under way, if any.
    pub fn reload(&self) -> Option<&Reload> {
        self.reload.as_ref()
    }

    /// The replacement of a reload, while it runs beside the current process (not yet ready).
    pub fn replacement_pid(&self) -> Option<u32> {
        match self.reload {
            Some(Reload::Overlap { pid, .. }) => Some(pid),
            _ => None,
        }
    }

    /// Say why the last transition happened in other words: the instance task does this
    /// when a schedule or a file watch asked for it, which `step` cannot tell from a user.
    pub fn set_reason(&mut self, reason: String) {
        self.reason = reason;
    }

    /// When the next `Tick` is due, if any.
    pub fn deadline(&self) -> Option<Instant> {
        let reload = match &self.reload {
            Some(Reload::Overlap {
                since,
                deadline,
                by_uptime,
                ..
            }) => Some(if *by_uptime {
                (*since + self.policy.min_uptime).min(*deadline)
            } else {
                *deadline
            }),
            Some(Reload::Retiring { deadline, .. }) => Some(*deadline),
            Some(Reload::Spawning { .. }) | None => None,
        };
        let state = self.state_deadline();
        match (state, reload) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn state_deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Running {
                since,
                settled: false,
                ..
            } => Some(*since + self.policy.min_uptime),
            State::Backoff { until } => Some(*until),
            State::Stopping { deadline, .. } => Some(*deadline),
            State::Fatal { retry_at } => *retry_at,
            _ => None,
        }
    }

    /// Apply one input at time `now`; returns the effects to carry out, in order.
    pub fn step(&mut self, input: Input, now: Instant) -> Vec<Effect> {
        if let Some(effects) = self.step_reload(&input, now) {
            return effects;
        }
        let tick = input == Input::Tick;
        let kill = input == Input::Kill;
        let mut effects = self.step_state(input, now);
        if tick {
            effects.extend(self.reload_tick(now));
        }
        let running = matches!(self.state, State::Running { .. });
        if kill || (!running && self.replacement_pending()) {
            // The instance is being stopped (or its process ended): a replacement that has
            // not taken over is abandoned, and a kill reaches the second process too.
            let why = format!("reload abandoned: {}", self.reason);
            effects.extend(self.abandon(now, why, kill));
        }
        if !matches!(self.state, State::Stopping { .. }) {
            self.primary_gone = false;
        }
        effects
    }

    fn replacement_pending(&self) -> bool {
        matches!(
            self.reload,
            Some(Reload::Spawning { .. } | Reload::Overlap { .. })
        )
    }

    /// The inputs that only concern a reload; None for the others.
    fn step_reload(&mut self, input: &Input, now: Instant) -> Option<Vec<Effect>> {
        let effects = match input {
            Input::Reload { timeout, by_uptime } => {
                if self.reload.is_some() {
                    return Some(vec![Effect::ReloadRefused(
                        "a reload of this instance is already under way".into(),
                    )]);
                }
                if !matches!(self.state, State::Running { .. }) {
                    return Some(vec![Effect::ReloadRefused(format!(
                        "not running ({})",
                        self.state.name()
                    ))]);
                }
                self.reload = Some(Reload::Spawning {
                    deadline: now + *timeout,
                    timeout: *timeout,
                    by_uptime: *by_uptime,
                });
                self.reason = "reloading: starting a replacement".into();
                vec![Effect::SpawnReplacement]
            }
            Input::ReplacementSpawned { pid } => match self.reload.take() {
                Some(Reload::Spawning {
                    deadline,
                    timeout,
                    by_uptime,
                }) => {
                    self.reason =
                        format!("reloading: waiting until replacement pid {pid} is ready");
                    self.reload = Some(Reload::Overlap {
                        pid: *pid,
                        since: now,
                        deadline,
                        timeout,
                        by_uptime,
                    });
                    vec![]
                }
                other => {
                    // Nothing asked for it (cannot happen: the spawn answers at once); a
                    // process must never run unsupervised, so it is stopped.
                    self.reload = other;
                    vec![Effect::SignalSecond(self.policy.stop_signal)]
                }
            },
            Input::ReplacementSpawnFailed { reason } => {
                if !matches!(self.reload, Some(Reload::Spawning { .. })) {
                    return Some(vec![]);
                }
                self.reload = None;
                self.reason = format!("reload failed: the replacement did not start: {reason}");
                vec![Effect::ReloadFinished(Err(format!(
                    "the replacement did not start: {reason}"
                )))]
            }
            Input::ReplacementReady => self.promote(now),
            Input::ReplacementUnhealthy { reason } => match self.reload {
                Some(Reload::Overlap { pid, .. }) => {
                    let why = format!("the replacement (pid {pid}) failed: {reason}");
                    self.abandon(now, why, false)
                }
                _ => vec![],
            },
            Input::SecondExited(status) => match self.reload.take() {
                Some(Reload::Overlap { pid, .. }) => {
                    let why = format!("the replacement (pid {pid}) {status} before it was ready");
                    self.reason = format!("reload failed: {why}");
                    self.reload = Some(Reload::Retiring {
                        pid: None,
                        deadline: now + self.policy.stop_timeout,
                        killed: false,
                        outcome: Err(why),
                    });
                    // What it left in its group gets the stop signal, as after any exit.
                    vec![
                        Effect::SignalSecond(self.policy.stop_signal),
                        Effect::AwaitSecondEmpty,
                    ]
                }
                Some(Reload::Retiring {
                    pid: Some(_),
                    deadline,
                    killed,
                    outcome,
                }) => {
                    self.reload = Some(Reload::Retiring {
                        pid: None,
                        deadline,
                        killed,
                        outcome,
                    });
                    vec![Effect::AwaitSecondEmpty]
                }
                other => {
                    self.reload = other;
                    vec![]
                }
            },
            Input::SecondTreeEmpty => match self.reload.take() {
                Some(Reload::Retiring {
                    pid: None, outcome, ..
                }) => self.finish_reload(outcome, now),
                other => {
                    self.reload = other;
                    vec![]
                }
            },
            _ => return None,
        };
        Some(effects)
    }

    /// The replacement is ready: it becomes the instance's process; the old one retires.
    fn promote(&mut self, now: Instant) -> Vec<Effect> {
        let (State::Running { pid: old, .. }, Some(Reload::Overlap { pid, since, .. })) =
            (&self.state, &self.reload)
        else {
            return vec![];
        };
        let (old, new, since) = (*old, *pid, *since);
        self.reason = format!("reloaded: pid {new} took over from pid {old}");
        self.state = State::Running {
            pid: new,
            since,
            settled: now >= since + self.policy.min_uptime,
        };
        // The old process is stopped with the signal and timeout it was started with: the
        // policy changes (to the replacement's) only after this.
        self.reload = Some(Reload::Retiring {
            pid: Some(old),
            deadline: now + self.policy.stop_timeout,
            killed: false,
            outcome: Ok(()),
        });
        vec![
            Effect::Promote,
            Effect::SignalSecond(self.policy.stop_signal),
        ]
    }

    /// Give up on a replacement that has not taken over: stop it (kill it with `kill`), and
    /// end the reload with `why` once it is gone. A retiring process is only escalated by a
    /// kill.
    fn abandon(&mut self, now: Instant, why: String, kill: bool) -> Vec<Effect> {
        match self.reload.take() {
            Some(Reload::Spawning { .. }) => vec![Effect::ReloadFinished(Err(why))],
            Some(Reload::Overlap { pid, .. }) => {
                if matches!(self.state, State::Running { .. }) {
                    self.reason = format!("reload failed: {why}");
                }
                let (deadline, effect) = if kill {
                    (now + KILL_GRACE, Effect::KillSecond)
                } else {
                    (
                        now + self.policy.stop_timeout,
                        Effect::SignalSecond(self.policy.stop_signal),
                    )
                };
                self.reload = Some(Reload::Retiring {
                    pid: Some(pid),
                    deadline,
                    killed: kill,
                    outcome: Err(why),
                });
                vec![effect]
            }
            Some(Reload::Retiring {
                pid,
                killed: false,
                outcome,
                ..
            }) if kill => {
                self.reload = Some(Reload::Retiring {
                    pid,
                    deadline: now + KILL_GRACE,
                    killed: true,
                    outcome,
                });
                vec![Effect::KillSecond]
            }
            other => {
                self.reload = other;
                vec![]
            }
        }
    }

    /// The reload's deadlines: a replacement not ready in time, a retiring process that
    /// outlives its stop timeout (SIGKILL), or even SIGKILL's grace.
    fn reload_tick(&mut self, now: Instant) -> Vec<Effect> {
        match self.reload.clone() {
            Some(Reload::Overlap {
                since, by_uptime, ..
            }) if by_uptime && now >= since + self.policy.min_uptime => self.promote(now),
            Some(Reload::Overlap {
                pid,
                deadline,
                timeout,
                ..
            }) if now >= deadline => {
                let why = format!(
                    "the replacement (pid {pid}) was not ready within {} (reload_timeout)",
                    human(timeout)
                );
                self.abandon(now, why, false)
            }
            Some(Reload::Retiring {
                pid,
                deadline,
                killed: false,
                outcome,
            }) if now >= deadline => {
                self.reload = Some(Reload::Retiring {
                    pid,
                    deadline: now + KILL_GRACE,
                    killed: true,
                    outcome,
                });
                vec![Effect::KillSecond]
            }
            Some(Reload::Retiring {
                killed: true,
                deadline,
                outcome,
                ..
            }) if now >= deadline => {
                // Something survived SIGKILL (uninterruptible sleep): the reload must still end.
                self.reload = None;
                self.finish_reload(outcome, now)
            }
            _ => vec![],
        }
    }

    /// The second process is gone: the reload ends, and a stop that waited for it finishes.
    fn finish_reload(&mut self, outcome: Result<(), String>, now: Instant) -> Vec<Effect> {
        self.reload = None;
        let mut effects = vec![Effect::ReloadFinished(outcome)];
        if std::mem::take(&mut self.primary_gone)
            && let State::Stopping {
                pid: None, then, ..
            } = self.state
        {
            let (state, more) = self.stopped(then, now);
            self.state = state;
            effects.extend(more);
        }
        effects
    }

    fn step_state(&mut self, input: Input, now: Instant) -> Vec<Effect> {
        use State::*;
        let state = std::mem::replace(&mut self.state, Stopped);
        let (next, effects) = match (state, input) {
            // Starting from rest.
            (Stopped | Exited { .. } | Waiting, Input::Start { .. } | Input::Restart) => {
                self.attempt = 0;
                self.probation = false;
                self.recent_restarts.clear();
                self.reason = "started".into();
                (Starting, vec![Effect::Spawn])
            }
            (Fatal { .. }, Input::Start { manual: true } | Input::Restart) => {
                self.attempt = 0;
                self.probation = false;
                self.recent_restarts.clear();
                self.reason = "started by request after fatal".into();
                (Starting, vec![Effect::Spawn])
            }
            (Stopped | Exited { .. } | Fatal { .. }, Input::Wait) => {
                self.reason = "waiting for dependencies".into();
                (Waiting, vec![])
            }
            (Backoff { .. }, Input::Start { .. } | Input::Restart) => {
                self.reason = "started by request, backoff skipped".into();
                (Starting, vec![Effect::Spawn])
            }

            // Spawning.
            (Starting, Input::Spawned { pid }) => {
                self.reason = format!("spawned pid {pid}");
                (
                    Running {
                        pid,
                        since: now,
                        settled: false,
                    },
                    vec![],
                )
            }
            (Starting, Input::SpawnFailed { reason }) => {
                self.last_exit = None;
                self.after_failure(
                    now,
                    false,
                    format!("spawn failed: {reason}"),
                    RestartCause::SpawnFailed,
                )
            }

            // Running.
            (
                Running {
                    pid,
                    since,
                    settled: false,
                },
                Input::Tick,
            ) if now >= since + self.policy.min_uptime => {
                // Up long enough: the run counts as healthy, so the next crash starts the
                // backoff curve from the beginning.
                self.attempt = 0;
                self.probation = false;
                self.reason = format!("up for {}", human(self.policy.min_uptime));
                (
                    Running {
                        pid,
                        since,
                        settled: true,
                    },
                    vec![],
                )
            }
            (Running { pid, .. }, Input::Stop) => {
                self.reason = "stopped by request".into();
                (
                    self.stopping(pid, now, AfterStop::Rest),
                    vec![Effect::SignalTree(self.policy.stop_signal)],
                )
            }
            (Running { pid, .. }, Input::Restart) => {
                self.count_restart(RestartCause::Requested);
                self.reason = "restarted by request".into();
                (
                    self.stopping(pid, now, AfterStop::Restart),
                    vec![Effect::SignalTree(self.policy.stop_signal)],
                )
            }
            (
                Running {
                    pid,
                    settled,
                    since,
                    ..
                },
                Input::Unhealthy { reason },
            ) => {
                let settled = settled || now >= since + self.policy.min_uptime;
                self.reason = reason.clone();
                self.recovering = Some((reason, settled));
                (
                    self.stopping(pid, now, AfterStop::Recover),
                    vec![Effect::SignalTree(self.policy.stop_signal)],
                )
            }
            (Running { since, settled, .. }, Input::MainPid { pid }) => {
                self.reason = format!("main process is now {pid} (MAINPID)");
                (
                    Running {
                        pid,
                        since,
                        settled,
                    },
                    vec![],
                )
            }
            (Running { pid, .. }, Input::Kill) => {
                self.reason = "killed by request".into();
                killing(Some(pid), AfterStop::Rest, now)
            }
            (Running { since, settled, .. }, Input::Exited(status)) => {
                self.last_exit = Some(status);
                let settled = settled || now >= since + self.policy.min_uptime;
                let success = self.policy.is_success(status);
                // Counting unstable runs, a run that ended before min_uptime failed to
                // start, whatever its exit code (supervisord's STARTING → BACKOFF).
                let failed_start = self.policy.restart_limit == RestartLimit::Unstable && !settled;
                let wanted = failed_start
                    || match self.policy.restart {
                        RestartPolicy::Always => true,
                        RestartPolicy::OnFailure => !success,
                        RestartPolicy::Never => false,
                    };
                if wanted {
                    let (state, mut effects) =
                        self.after_failure(now, settled, status.to_string(), RestartCause::Exited);
                    effects.insert(0, Effect::StopLeftovers);
                    (state, effects)
                } else {
                    self.reason = status.to_string();
                    (Exited { status, success }, vec![Effect::StopLeftovers])
                }
            }

            // Backoff and fatal timers.
            (Backoff { until }, Input::Tick) if now >= until => {
                self.reason = "restarting after backoff".into();
                (Starting, vec![Effect::Spawn])
            }
            (Fatal { retry_at: Some(at) }, Input::Tick) if now >= at => {
                // Half-open: one more try; a failed start sends it straight back to fatal.
                self.probation = true;
                self.recent_restarts.clear();
                self.reason = "cooldown over, trying again".into();
                (Starting, vec![Effect::Spawn])
            }
            (Backoff { .. } | Waiting | Fatal { .. } | Exited { .. }, Input::Stop) => {
                self.reason = "stopped by request".into();
                (Stopped, vec![])
            }

            // Stopping.
            (
                Stopping {
                    pid: Some(_),
                    deadline,
                    killed,
                    then,
                },
                Input::Exited(status),
            ) => {
                self.last_exit = Some(status);
                (
                    Stopping {
                        pid: None,
                        deadline,
                        killed,
                        then,
                    },
                    vec![Effect::AwaitTreeEmpty],
                )
            }
            (
                Stopping {
                    pid: None,
                    then,
                    deadline,
                    killed,
                },
                Input::TreeEmpty,
            ) => {
                if self.reload.is_some() {
                    // The second process of a reload is still stopping: the instance is
                    // stopped (or restarted) once it is gone too.
                    self.primary_gone = true;
                    (
                        Stopping {
                            pid: None,
                            deadline,
                            killed,
                            then,
                        },
                        vec![],
                    )
                } else {
                    self.stopped(then, now)
                }
            }
            (
                Stopping {
                    pid,
                    killed: false,
                    then,
                    deadline,
                },
                Input::Tick,
            ) if now >= deadline => {
                self.reason = format!(
                    "did not stop within {}, sent SIGKILL",
                    human(self.policy.stop_timeout)
                );
                killing(pid, then, now)
            }
            (
                Stopping {
                    pid,
                    killed: false,
                    then,
                    ..
                },
                Input::Kill,
            ) => {
                self.reason = "killed by request".into();
                killing(pid, then, now)
            }
            (
                Stopping {
                    pid: _,
                    killed: true,
                    deadline,
                    then,
                },
                Input::Tick,
            ) if now >= deadline => {
                // Something in the tree survived SIGKILL (uninterruptible sleep); the stop must
                // still end, and the leftovers are reported.
                let (state, effects) = self.stopped(then, now);
                self.reason = "processes survived SIGKILL; giving up waiting".into();
                (state, effects)
            }
            (
                Stopping {
                    pid,
                    deadline,
                    killed,
                    ..
                },
                Input::Stop,
            ) => (
                Stopping {
                    pid,
                    deadline,
                    killed,
                    then: AfterStop::Rest,
                },
                vec![],
            ),
            (
                Stopping {
                    pid,
                    deadline,
                    killed,
                    ..
                },
                Input::Start { .. } | Input::Restart,
            ) => (
                Stopping {
                    pid,
                    deadline,
                    killed,
                    then: AfterStop::Restart,
                },
                vec![],
            ),

            // Everything else leaves the state as it is: a start of a running instance, a
            // stale tick, a stop of a stopped one.
            (state, _) => (state, vec![]),
        };
        self.state = next;
        effects
    }

    fn stopping(&self, pid: u32, now: Instant, then: AfterStop) -> State {
        State::Stopping {
            pid: Some(pid),
            deadline: now + self.policy.stop_timeout,
            killed: false,
            then,
        }
    }

    fn stopped(&mut self, then: AfterStop, now: Instant) -> (State, Vec<Effect>) {
        match then {
            AfterStop::Rest => (State::Stopped, vec![]),
            AfterStop::Recover => {
                let (why, settled) = self.recovering.take().unwrap_or_default();
                if self.policy.restart == RestartPolicy::Never {
                    self.reason = why;
                    let status = self.last_exit.unwrap_or(ExitStatus::Signal(9));
                    return (
                        State::Exited {
                            status,
                            success: false,
                        },
                        vec![],
                    );
                }
                self.after_failure(now, settled, why, RestartCause::Unhealthy)
            }
            AfterStop::Restart => {
                self.attempt = 0;
                (State::Starting, vec![Effect::Spawn])
            }
        }
    }

    /// An unwanted end of a run (or a failed spawn): back off and restart, or give up.
    fn after_failure(
        &mut self,
        now: Instant,
        settled: bool,
        what: String,
        cause: RestartCause,
    ) -> (State, Vec<Effect>) {
        if self.probation && !settled {
            self.reason = format!("{what}; failed again after cooldown");
            return (self.fatal(now), vec![]);
        }
        if self.policy.restart_limit == RestartLimit::Unstable {
            return self.after_unstable_failure(now, settled, what, cause);
        }
        if self.policy.restart == RestartPolicy::Never && self.last_exit.is_none() {
            self.reason = what;
            return (State::Fatal { retry_at: None }, vec![]);
        }
        let window_start = now.checked_sub(self.policy.restart_window);
        while let Some(first) = self.recent_restarts.front() {
            if window_start.is_some_and(|start| *first < start) {
                self.recent_restarts.pop_front();
            } else {
                break;
            }
        }
        if self.recent_restarts.len() as u32 >= self.policy.max_restarts {
            self.reason = format!(
                "{what}; {} restarts within {}, giving up",
                self.recent_restarts.len(),
                human(self.policy.restart_window)
            );
            return (self.fatal(now), vec![]);
        }
        if settled {
            self.attempt = 0;
        }
        let delay = self.retry_delay(cause);
        self.attempt = self.attempt.saturating_add(1);
        self.recent_restarts.push_back(now);
        self.count_restart(cause);
        if delay.is_zero() {
            self.reason = format!("{what}; restarting");
            (State::Starting, vec![Effect::Spawn])
        } else {
            self.reason = format!("{what}; restarting in {}", human(delay));
            (State::Backoff { until: now + delay }, vec![])
        }
    }

    /// [`RestartLimit::Unstable`]: only failed starts count and are delayed. A stable run
    /// ending is restarted at once, as supervisord restarts a process that left RUNNING.
    fn after_unstable_failure(
        &mut self,
        now: Instant,
        settled: bool,
        what: String,
        cause: RestartCause,
    ) -> (State, Vec<Effect>) {
        if settled {
            self.attempt = 0;
            self.count_restart(cause);
            self.reason = format!("{what}; restarting");
            return (State::Starting, vec![Effect::Spawn]);
        }
        if self.attempt >= self.policy.max_restarts {
            self.reason = format!(
                "{what}; {} failed starts in a row, giving up",
                self.attempt + 1
            );
            self.attempt = 0;
            return (self.fatal(now), vec![]);
        }
        let delay = self.retry_delay(cause);
        self.attempt = self.attempt.saturating_add(1);
        self.count_restart(cause);
        if delay.is_zero() {
            self.reason = format!("{what}; restarting");
            (State::Starting, vec![Effect::Spawn])
        } else {
            self.reason = format!("{what}; restarting in {}", human(delay));
            (State::Backoff { until: now + delay }, vec![])
        }
    }

    fn fatal(&self, now: Instant) -> State {
        State::Fatal {
            retry_at: self.policy.cooldown.map(|c| now + c),
        }
    }
}

/// The shortest wait before trying again after tend itself could not start a process.
/// A zero backoff asks to restart a *crashed* program at once; a spawn that failed (no
/// descriptors left, no memory, a missing program) fails again just as fast, and retrying it
/// without a pause spins the fork thread and hides the instance in `starting`.
pub const SPAWN_RETRY_FLOOR: Duration = Duration::from_secs(1);

/// SIGKILL sent to the whole tree: wait `KILL_GRACE` for it to be gone.
fn killing(pid: Option<u32>, then: AfterStop, now: Instant) -> (State, Vec<Effect>) {
    let state = State::Stopping {
        pid,
        deadline: now + KILL_GRACE,
        killed: true,
        then,
    };
    (state, vec![Effect::KillTree])
}

/// A duration as people write it: `250ms`, `1.5s`, `2m30s`.
pub fn human(duration: Duration) -> String {
    let ms = duration.as_millis();
    match ms {
        0..1000 => format!("{ms}ms"),
        1000..60_000 => {
            let text = format!("{:.1}", duration.as_secs_f64());
            format!("{}s", text.trim_end_matches(".0"))
        }
        _ => {
            let secs = duration.as_secs();
            if secs.is_multiple_of(60) {
                format!("{}m", secs / 60)
            } else {
                format!("{}m{}s", secs / 60, secs % 60)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::Growth;

    fn policy() -> Policy {
        Policy {
            restart: RestartPolicy::Always,
            exit_codes: vec![0],
            backoff: BackoffSpec {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(8),
                factor: 2.0,
                jitter: 0.0,
                growth: Growth::Exponential,
            },
            min_uptime: Duration::from_secs(1),
            max_restarts: 3,
            restart_window: Duration::from_secs(60),
            restart_limit: RestartLimit::Window,
            cooldown: None,
            stop_signal: Signal::Term,
            stop_timeout: Duration::from_secs(10),
        }
    }

    /// Drives a lifecycle through a script of (seconds since t0, input) and checks what follows.
    struct Script {
        lc: Lifecycle,
        t0: Instant,
    }

    impl Script {
        fn new(policy: Policy) -> Self {
            Script {
                lc: Lifecycle::new(policy, 1),
                t0: Instant::now(),
            }
        }
        fn at(&self, secs: f64) -> Instant {
            self.t0 + Duration::from_secs_f64(secs)
        }
        fn step(&mut self, secs: f64, input: Input) -> Vec<Effect> {
            self.lc.step(input, self.at(secs))
        }
        fn state(&self) -> &'static str {
            self.lc.state().name()
        }
        /// Start, spawn, and crash after `uptime` seconds, starting at `secs`.
        fn crash(&mut self, secs: f64, uptime: f64) -> Vec<Effect> {
            if self.state() != "starting" {
                self.step(secs, Input::Start { manual: false });
            }
            self.step(secs, Input::Spawned { pid: 100 });
            self.step(secs + uptime, Input::Exited(ExitStatus::Code(1)))
        }
    }

    #[test]
    fn a_frozen_lifecycle_thaws_to_the_same_decisions() {
        // Two crashes in the window, then running for 0.5 s: handed over, the next crash
        // must count the same restarts and wait the same backoff as without the upgrade.
        let mut s = Script::new(policy());
        s.crash(0.0, 0.2);
        s.step(1.2, Input::Tick);
        s.step(1.2, Input::Spawned { pid: 7 });
        s.step(1.4, Input::Exited(ExitStatus::Code(1)));
        s.step(3.4, Input::Tick);
        s.step(3.4, Input::Spawned { pid: 8 });
        let frozen = s.lc.freeze(s.at(3.9)).expect("running can be handed over");
        assert_eq!(
            frozen.state,
            FrozenState::Running {
                pid: 8,
                up_for: Duration::from_millis(500),
                settled: false
            }
        );
        let later = s.at(3.9) + Duration::from_secs(100);
        let mut thawed = Lifecycle::thaw(policy(), 1, frozen.clone(), later);
        assert_eq!(thawed.freeze(later), Ok(frozen));
        assert_eq!(thawed.deadline(), Some(later + Duration::from_millis(500)));
        let mut original = s.lc.clone();
        let crash = |lc: &mut Lifecycle, at: Instant| {
            let effects = lc.step(Input::Exited(ExitStatus::Code(1)), at);
            (
                effects,
                lc.state().clone(),
                lc.restarts(),
                lc.reason().to_string(),
            )
        };
        let (effects, state, restarts, reason) =
            crash(&mut original, s.at(3.9) + Duration::from_millis(100));
        let (effects_2, state_2, restarts_2, reason_2) =
            crash(&mut thawed, later + Duration::from_millis(100));
        assert_eq!(
            (effects, restarts, reason),
            (effects_2, restarts_2, reason_2)
        );
        let (State::Backoff { until }, State::Backoff { until: until_2 }) = (state, state_2) else {
            panic!("both back off")
        };
        assert_eq!(
            until - (s.at(3.9) + Duration::from_millis(100)),
            until_2 - (later + Duration::from_millis(100))
        );
    }

    #[test]
    fn moments_between_states_are_not_handed_over() {
        let mut s = Script::new(policy());
        s.step(0.0, Input::Start { manual: true });
        assert_eq!(s.lc.freeze(s.at(0.0)), Err("starting".into()));
        s.step(0.0, Input::Spawned { pid: 9 });
        s.step(0.5, Input::Stop);
        assert_eq!(s.lc.freeze(s.at(0.5)), Err("stopping".into()));
        let mut r = Script::new(policy());
        r.step(0.0, Input::Start { manual: true });
        r.step(0.0, Input::Spawned { pid: 9 });
        r.step(
            1.0,
            Input::Reload {
                timeout: Duration::from_secs(5),
                by_uptime: true,
            },
        );
        assert_eq!(r.lc.freeze(r.at(1.0)), Err("reloading".into()));
        // Timers are handed over as what is left of them.
        let mut b = Script::new(policy());
        b.crash(0.0, 0.2);
        let frozen = b.lc.freeze(b.at(0.7)).unwrap();
        assert_eq!(
            frozen.state,
            FrozenState::Backoff {
                left: Duration::from_millis(500)
            }
        );
    }

    #[test]
    fn start_spawns_and_settles_after_min_uptime() {
        let mut s = Script::new(policy());
        assert_eq!(
            s.step(0.0, Input::Start { manual: true }),
            vec![Effect::Spawn]
        );
        assert_eq!(s.state(), "starting");
        s.step(0.0, Input::Spawned { pid: 42 });
        assert_eq!(s.lc.deadline(), Some(s.at(1.0)));
        s.step(0.5, Input::Tick);
        assert!(matches!(
            s.lc.state(),
            State::Running { settled: false, .. }
        ));
        s.step(1.0, Input::Tick);
        assert!(matches!(
            s.lc.state(),
            State::Running {
                pid: 42,
                settled: true,
                ..
            }
        ));
        assert_eq!(s.lc.deadline(), None, "a settled instance needs no timer");
    }

    /// supervisord's rules: startretries = 3 gives four spawns with waits of 1, 2 and 3 s,
    /// then FATAL; a process that ran past startsecs is restarted at once, for ever.
    fn supervisord_policy() -> Policy {
        Policy {
            restart: RestartPolicy::OnFailure,
            backoff: BackoffSpec {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(3),
                factor: 1.0,
                jitter: 0.0,
                growth: Growth::Linear,
            },
            restart_limit: RestartLimit::Unstable,
            ..policy()
        }
    }

    #[test]
    fn unstable_limit_counts_failed_starts_with_linear_waits() {
        let mut s = Script::new(supervisord_policy());
        let mut t = 0.0;
        let mut delays = vec![];
        for _ in 0..3 {
            s.crash(t, 0.5);
            let State::Backoff { until } = *s.lc.state() else {
                panic!("{:?}", s.lc.state())
            };
            delays.push((until - s.at(t + 0.5)).as_secs_f64());
            t = (until - s.t0).as_secs_f64();
            assert_eq!(s.step(t, Input::Tick), vec![Effect::Spawn]);
        }
        assert_eq!(delays, [1.0, 2.0, 3.0]);
        s.crash(t, 0.5);
        assert_eq!(s.state(), "fatal");
        assert!(
            s.lc.reason().contains("4 failed starts"),
            "{}",
            s.lc.reason()
        );
        assert_eq!(s.lc.restarts(), 3);
    }

    #[test]
    fn unstable_limit_restarts_stable_runs_at_once_and_for_ever() {
        let mut s = Script::new(supervisord_policy());
        let mut t = 0.0;
        for _ in 0..50 {
            if s.state() != "starting" {
                s.step(t, Input::Start { manual: false });
            }
            s.step(t, Input::Spawned { pid: 7 });
            s.step(t + 1.0, Input::Tick);
            let effects = s.step(t + 2.0, Input::Exited(ExitStatus::Code(1)));
            assert_eq!(effects, vec![Effect::StopLeftovers, Effect::Spawn]);
            assert_eq!(s.state(), "starting");
            t += 2.0;
        }
        assert_eq!(s.lc.restarts(), 50);
        // A stable run resets the streak: three failed starts after it are still retried.
        for _ in 0..3 {
            s.crash(t, 0.1);
            assert_eq!(s.state(), "backoff");
            let State::Backoff { until } = *s.lc.state() else {
                unreachable!()
            };
            t = (until - s.t0).as_secs_f64();
            s.step(t, Input::Tick);
        }
    }

    #[test]
    fn unstable_limit_treats_a_quick_clean_exit_as_a_failed_start() {
        let mut s = Script::new(supervisord_policy());
        s.step(0.0, Input::Start { manual: true });
        s.step(0.0, Input::Spawned { pid: 9 });
        s.step(0.2, Input::Exited(ExitStatus::Code(0)));
        assert_eq!(s.state(), "backoff", "exit 0 within startsecs is BACKOFF");
        // Even with restart = "never" (autorestart=false) a failed start is retried.
        let mut s = Script::new(Policy {
            restart: RestartPolicy::Never,
            ..supervisord_policy()
        });
        s.step(0.0, Input::Start { manual: true });
        s.step(
            0.0,
            Input::SpawnFailed {
                reason: "no such file".into(),
            },
        );
        assert_eq!(s.state(), "backoff", "a spawn error is BACKOFF");
        s.step(1.0, Input::Tick);
        s.step(1.0, Input::Spawned { pid: 9 });
        s.step(3.0, Input::Exited(ExitStatus::Code(1)));
        assert_eq!(s.state(), "exited", "a run past startsecs is not restarted");
        // After a stable run, an expected exit is final (EXITED, autorestart=unexpected).
        let mut s = Script::new(supervisord_policy());
        s.step(0.0, Input::Start { manual: true });
        s.step(0.0, Input::Spawned { pid: 9 });
        s.step(1.0, Input::Tick);
        s.step(5.0, Input::Exited(ExitStatus::Code(0)));
        assert_eq!(s.state(), "exited");
    }

    #[test]
    fn crashes_back_off_exponentially_then_go_fatal() {
        let mut s = Script::new(policy());
        // Each run dies after 0.1 s: failed starts. Delays 1, 2, 4 s; the fourth crash is
        // past max_restarts = 3.
        let mut t = 0.0;
        let mut delays = vec![];
        for _ in 0..3 {
            let effects = s.crash(t, 0.1);
            assert_eq!(effects, vec![Effect::StopLeftovers]);
            let State::Backoff { until } = *s.lc.state() else {
                panic!("{:?}", s.lc.state())
            };
            let delay = until - s.at(t + 0.1);
            delays.push(delay.as_secs_f64());
            t = (until - s.t0).as_secs_f64();
            assert_eq!(s.step(t, Input::Tick), vec![Effect::Spawn]);
        }
        assert_eq!(delays, [1.0, 2.0, 4.0]);
        s.crash(t, 0.1);
        assert_eq!(s.state(), "fatal");
        assert_eq!(
            s.lc.deadline(),
            None,
            "no cooldown: fatal until a manual start"
        );
        assert!(s.lc.reason().contains("giving up"), "{}", s.lc.reason());
        assert_eq!(s.lc.restarts(), 3);
        // An automatic start does not leave fatal; a manual one does.
        assert_eq!(s.step(t + 1.0, Input::Start { manual: false }), vec![]);
        assert_eq!(s.state(), "fatal");
        assert_eq!(
            s.step(t + 1.0, Input::Start { manual: true }),
            vec![Effect::Spawn]
        );
    }

    #[test]
    fn backoff_resets_after_a_settled_run() {
        let mut s = Script::new(policy());
        s.crash(0.0, 0.1); // delay 1
        s.step(1.1, Input::Tick);
        s.crash(1.1, 0.1); // delay 2
        let State::Backoff { until } = *s.lc.state() else {
            panic!()
        };
        assert_eq!(until, s.at(3.2));
        s.step(3.2, Input::Tick);
        s.step(3.2, Input::Spawned { pid: 7 });
        s.step(4.2, Input::Tick); // settled
        s.step(10.0, Input::Exited(ExitStatus::Signal(libc::SIGSEGV)));
        let State::Backoff { until } = *s.lc.state() else {
            panic!()
        };
        assert_eq!(until, s.at(11.0), "back to the initial delay");
    }

    #[test]
    fn settled_without_tick_still_resets() {
        // The exit may be handled before the min_uptime tick was processed.
        let mut s = Script::new(policy());
        s.crash(0.0, 0.1);
        s.step(1.1, Input::Tick);
        s.crash(1.1, 5.0);
        let State::Backoff { until } = *s.lc.state() else {
            panic!()
        };
        assert_eq!(until, s.at(7.1));
    }

    #[test]
    fn restart_window_forgets_old_restarts() {
        let mut s = Script::new(Policy {
            max_restarts: 2,
            ..policy()
        });
        s.crash(0.0, 0.1);
        s.step(1.1, Input::Tick);
        s.crash(1.1, 0.1);
        let State::Backoff { until } = *s.lc.state() else {
            panic!()
        };
        // Long after the window, the two earlier restarts no longer count.
        s.step((until - s.t0).as_secs_f64(), Input::Tick);
        s.crash(100.0, 0.1);
        assert_eq!(s.state(), "backoff");
    }

    #[test]
    fn cooldown_retries_half_open() {
        let mut s = Script::new(Policy {
            max_restarts: 0,
            cooldown: Some(Duration::from_secs(300)),
            ..policy()
        });
        s.crash(0.0, 0.1);
        assert_eq!(s.state(), "fatal");
        assert_eq!(s.lc.deadline(), Some(s.at(300.1)));
        assert_eq!(s.step(200.0, Input::Tick), vec![]);
        assert_eq!(s.step(300.1, Input::Tick), vec![Effect::Spawn]);
        // Fails again at once: straight back to fatal, with a fresh cooldown.
        s.step(300.1, Input::Spawned { pid: 9 });
        s.step(300.2, Input::Exited(ExitStatus::Code(3)));
        assert_eq!(s.state(), "fatal");
        assert_eq!(s.lc.deadline(), Some(s.at(600.2)));
        // This time it survives min_uptime: probation ends.
        s.step(600.2, Input::Tick);
        s.step(600.2, Input::Spawned { pid: 10 });
        s.step(601.2, Input::Tick);
        assert!(matches!(s.lc.state(), State::Running { settled: true, .. }));
    }

    #[test]
    fn restart_policies_decide_on_exit_codes() {
        let cases = [
            (RestartPolicy::Always, 0, "backoff"),
            (RestartPolicy::Always, 1, "backoff"),
            (RestartPolicy::OnFailure, 0, "exited"),
            (RestartPolicy::OnFailure, 3, "exited"), // 3 is in exit_codes below
            (RestartPolicy::OnFailure, 1, "backoff"),
            (RestartPolicy::Never, 1, "exited"),
            (RestartPolicy::Never, 0, "exited"),
        ];
        for (restart, code, expected) in cases {
            let mut s = Script::new(Policy {
                restart,
                exit_codes: vec![0, 3],
                ..policy()
            });
            s.step(0.0, Input::Start { manual: true });
            s.step(0.0, Input::Spawned { pid: 1 });
            s.step(5.0, Input::Exited(ExitStatus::Code(code)));
            assert_eq!(s.state(), expected, "{restart:?} with code {code}");
            if let State::Exited { success, .. } = s.lc.state() {
                assert_eq!(*success, code == 0 || code == 3);
            }
        }
    }

    #[test]
    fn zero_backoff_respawns_immediately() {
        let zero = BackoffSpec {
            initial: Duration::ZERO,
            max: Duration::ZERO,
            factor: 2.0,
            jitter: 0.1,
            growth: Growth::Exponential,
        };
        let mut s = Script::new(Policy {
            backoff: zero,
            max_restarts: 100,
            ..policy()
        });
        s.step(0.0, Input::Start { manual: true });
        for i in 0..50 {
            s.step(i as f64, Input::Spawned { pid: 5 });
            let effects = s.step(i as f64 + 0.01, Input::Exited(ExitStatus::Signal(9)));
            assert_eq!(effects, vec![Effect::StopLeftovers, Effect::Spawn]);
            assert_eq!(s.state(), "starting");
        }
        assert_eq!(s.lc.restarts(), 50);
    }

    #[test]
    fn spawn_failure_counts_as_a_failed_start() {
        let mut s = Script::new(policy());
        s.step(0.0, Input::Start { manual: true });
        s.step(
            0.0,
            Input::SpawnFailed {
                reason: "No such file".into(),
            },
        );
        assert_eq!(s.state(), "backoff");
        assert!(s.lc.reason().contains("spawn failed: No such file"));
        assert_eq!(s.lc.last_exit(), None);
        // restart = never: a spawn failure is fatal, there is nothing to wait for.
        let mut s = Script::new(Policy {
            restart: RestartPolicy::Never,
            ..policy()
        });
        s.step(0.0, Input::Start { manual: true });
        s.step(
            0.0,
            Input::SpawnFailed {
                reason: "denied".into(),
            },
        );
        assert_eq!(s.state(), "fatal");
    }

    #[test]
    fn a_zero_backoff_still_waits_after_a_spawn_failure() {
        let zero = BackoffSpec {
            initial: Duration::ZERO,
            max: Duration::ZERO,
            ..policy().backoff
        };
        for limit in [RestartLimit::Window, RestartLimit::Unstable] {
            let mut s = Script::new(Policy {
                backoff: zero.clone(),
                max_restarts: 100_000,
                restart_limit: limit,
                ..policy()
            });
            s.step(0.0, Input::Start { manual: true });
            // A crash restarts at once, as asked.
            s.step(0.0, Input::Spawned { pid: 5 });
            let effects = s.step(0.1, Input::Exited(ExitStatus::Signal(9)));
            assert!(effects.contains(&Effect::Spawn), "{limit:?}: {effects:?}");
            assert_eq!(s.state(), "starting");
            // Running out of descriptors does not: it would fail again at once, forever.
            let effects = s.step(
                0.1,
                Input::SpawnFailed {
                    reason: "Too many open files (os error 24)".into(),
                },
            );
            assert_eq!(effects, vec![], "{limit:?}");
            assert_eq!(s.state(), "backoff", "{limit:?}");
            assert_eq!(
                *s.lc.state(),
                State::Backoff {
                    until: s.at(0.1) + SPAWN_RETRY_FLOOR
                },
                "{limit:?}"
            );
            assert!(s.lc.reason().contains("Too many open files"), "{limit:?}");
        }
    }

    #[test]
    fn stop_signals_then_kills_after_the_timeout() {
        let mut s = Script::new(policy());
        s.step(0.0, Input::Start { manual: true });
        s.step(0.0, Input::Spawned { pid: 11 });
        assert_eq!(
            s.step(2.0, Input::Stop),
            vec![Effect::SignalTree(Signal::Term)]
        );
        assert_eq!(s.lc.deadline(), Some(s.at(12.0)));
        assert_eq!(s.step(12.0, Input::Tick), vec![Effect::KillTree]);
        assert_eq!(
            s.step(12.1, Input::Exited(ExitStatus::Signal(9))),
            vec![Effect::AwaitTreeEmpty]
        );
        assert_eq!(s.state(), "stopping");
        assert_eq!(s.step(12.2, Input::TreeEmpty), vec![]);
        assert_eq!(s.state(), "stopped");
        assert_eq!(s.lc.last_exit(), Some(ExitStatus::Signal(9)));
    }

    #[test]
    fn unhealthy_stops_the_tree_and_restarts_through_backoff() {
        let mut s = Script::new(policy());
        s.step(0.0, Input::Start { manual: true });
        s.step(0.0, Input::Spawned { pid: 11 });
        assert_eq!(
            s.step(
                5.0,
                Input::Unhealthy {
                    reason: "liveness: http 503 three times".into()
                }
            ),
            vec![Effect::SignalTree(Signal::Term)]
        );
        assert_eq!(s.state(), "stopping");
        s.step(5.1, Input::Exited(ExitStatus::Signal(15)));
        s.step(5.2, Input::TreeEmpty);
        assert_eq!(s.state(), "backoff", "a failure, not a plain restart");
        assert!(
            s.lc.reason()
                .starts_with("liveness: http 503 three times; restarting in"),
            "{}",
            s.lc.reason()
        );
        assert_eq!(s.lc.restarts(), 1);

        // With restart = "never" the instance ends as a failed exit, with the reason.
        let mut never = Script::new(Policy {
            restart: RestartPolicy::Never,
            ..policy()
        });
        never.step(0.0, Input::Start { manual: true });
        never.step(0.0, Input::Spawned { pid: 12 });
        never.step(
            1.0,
            Input::Unhealthy {
                reason: "watchdog: no WATCHDOG=1 for 30s".into(),
            },
        );
        never.step(1.1, Input::Exited(ExitStatus::Signal(15)));
        never.step(1.2, Input::TreeEmpty);
        assert_eq!(never.state(), "exited");
        assert_eq!(never.lc.reason(), "watchdog: no WATCHDOG=1 for 30s");
    }

    #[test]
    fn restarts_are_counted_by_cause() {
        let count = |s: &Script, cause: RestartCause| s.lc.restart_causes()[cause as usize];
        let mut s = Script::new(Policy {
            max_restarts: 10,
            ..policy()
        });
        s.crash(0.0, 0.1);
        s.step(1.1, Input::Tick);
        s.step(
            1.1,
            Input::SpawnFailed {
                reason: "no such file".into(),
            },
        );
        s.step(3.1, Input::Tick);
        s.step(3.1, Input::Spawned { pid: 7 });
        s.step(
            5.0,
            Input::Unhealthy {
                reason: "liveness: http 503".into(),
            },
        );
        s.step(5.1, Input::Exited(ExitStatus::Signal(15)));
        s.step(5.2, Input::TreeEmpty);
        s.step(10.0, Input::Tick);
        s.step(10.0, Input::Spawned { pid: 8 });
        s.step(12.0, Input::Restart);
        assert_eq!(count(&s, RestartCause::Exited), 1);
        assert_eq!(count(&s, RestartCause::SpawnFailed), 1);
        assert_eq!(count(&s, RestartCause::Unhealthy), 1);
        assert_eq!(count(&s, RestartCause::Requested), 1);
        assert_eq!(s.lc.restarts(), 4, "the total is the sum of the causes");
        // Stopping is not a restart, nor is a start from rest.
        s.step(12.1, Input::Exited(ExitStatus::Signal(15)));
        s.step(12.2, Input::TreeEmpty);
        s.step(12.2, Input::Spawned { pid: 9 });
        s.step(13.0, Input::Stop);
        s.step(13.1, Input::Exited(ExitStatus::Signal(15)));
        s.step(13.2, Input::TreeEmpty);
        s.step(14.0, Input::Start { manual: true });
        assert_eq!(s.lc.restarts(), 4);
    }

    #[test]
    fn mainpid_keeps_the_run_and_its_settling() {
        let mut s = Script::new(policy());
        s.step(0.0, Input::Start { manual: true });
        s.step(0.0, Input::Spawned { pid: 11 });
        assert_eq!(s.step(0.5, Input::MainPid { pid: 42 }), vec![]);
        assert_eq!(s.lc.state().pid(), Some(42));
        assert_eq!(s.state(), "running");
        s.step(1.0, Input::Tick);
        assert!(matches!(s.lc.state(), State::Running { settled: true, .. }));
        // Outside a run it means nothing.
        let mut stopped = Script::new(policy());
        assert_eq!(stopped.step(0.0, Input::MainPid { pid: 7 }), vec![]);
        assert_eq!(stopped.state(), "stopped");
    }

    #[test]
    fn stop_gives_up_on_unkillable_leftovers() {
        let mut s = Script::new(policy());
        s.step(0.0, Input::Start { manual: true });
        s.step(0.0, Input::Spawned { pid: 11 });
        s.step(1.0, Input::Stop);
        s.step(1.5, Input::Exited(ExitStatus::Code(0)));
        s.step(11.0, Input::Tick);
        assert_eq!(s.lc.deadline(), Some(s.at(11.0) + KILL_GRACE));
        s.step(16.0, Input::Tick);
        assert_eq!(s.state(), "stopped");
        assert!(s.lc.reason().contains("survived"));
    }

    #[test]
    fn restart_stops_then_spawns_without_backoff() {
        let mut s = Script::new(policy());
        s.step(0.0, Input::Start { manual: true });
        s.step(0.0, Input::Spawned { pid: 11 });
        s.step(5.0, Input::Restart);
        s.step(5.1, Input::Exited(ExitStatus::Signal(15)));
        assert_eq!(s.step(5.1, Input::TreeEmpty), vec![Effect::Spawn]);
        assert_eq!(s.lc.restarts(), 1);
        // Restart during backoff skips the wait.
        s.step(5.1, Input::Spawned { pid: 12 });
        s.step(5.2, Input::Exited(ExitStatus::Code(1)));
        assert_eq!(s.state(), "backoff");
        assert_eq!(s.step(5.3, Input::Restart), vec![Effect::Spawn]);
    }

    #[test]
    fn stop_leaves_backoff_waiting_and_fatal() {
        for setup in [Input::Wait, Input::Start { manual: true }] {
            let mut s = Script::new(Policy {
                max_restarts: 0,
                ..policy()
            });
            s.step(0.0, setup.clone());
            if s.state() == "starting" {
                s.step(0.0, Input::Spawned { pid: 1 });
                s.step(0.1, Input::Exited(ExitStatus::Code(1)));
                assert_eq!(s.state(), "fatal");
            } else {
                assert_eq!(s.state(), "waiting");
            }
            s.step(1.0, Input::Stop);
            assert_eq!(s.state(), "stopped");
        }
    }

    /// Running pid 11 and settled at t = 1, then a reload asked for at t = 10.
    fn reloading(timeout: f64, by_uptime: bool) -> Script {
        let mut s = Script::new(policy());
        s.step(0.0, Input::Start { manual: true });
        s.step(0.0, Input::Spawned { pid: 11 });
        s.step(1.0, Input::Tick);
        assert_eq!(
            s.step(
                10.0,
                Input::Reload {
                    timeout: Duration::from_secs_f64(timeout),
                    by_uptime
                }
            ),
            vec![Effect::SpawnReplacement]
        );
        assert_eq!(s.step(10.0, Input::ReplacementSpawned { pid: 12 }), vec![]);
        s
    }

    fn finished(effects: &[Effect]) -> Option<&Result<(), String>> {
        effects.iter().find_map(|e| match e {
            Effect::ReloadFinished(outcome) => Some(outcome),
            _ => None,
        })
    }

    #[test]
    fn a_reload_overlaps_then_retires_the_old_process() {
        let mut s = reloading(60.0, false);
        // Both run; the instance is still the old process until the new one is ready.
        assert_eq!(s.lc.state().pid(), Some(11));
        assert_eq!(s.lc.replacement_pid(), Some(12));
        assert_eq!(s.lc.deadline(), Some(s.at(70.0)), "the reload's timeout");
        assert_eq!(
            s.step(11.0, Input::ReplacementReady),
            vec![Effect::Promote, Effect::SignalSecond(Signal::Term)]
        );
        assert_eq!(s.lc.state().pid(), Some(12));
        assert!(
            matches!(s.lc.state(), State::Running { settled: true, .. }),
            "up for min_uptime already: {:?}",
            s.lc.state()
        );
        assert_eq!(s.lc.replacement_pid(), None);
        assert_eq!(
            s.lc.deadline(),
            Some(s.at(21.0)),
            "the old one's stop_timeout"
        );
        // The old process's exit is the end of the reload, not a crash.
        assert_eq!(
            s.step(11.5, Input::SecondExited(ExitStatus::Signal(15))),
            vec![Effect::AwaitSecondEmpty]
        );
        assert_eq!(
            s.step(11.6, Input::SecondTreeEmpty),
            vec![Effect::ReloadFinished(Ok(()))]
        );
        assert_eq!(s.state(), "running");
        assert_eq!(s.lc.state().pid(), Some(12));
        assert_eq!(s.lc.restarts(), 0, "a reload is not a restart");
        assert_eq!(s.lc.last_exit(), None);
        assert_eq!(s.lc.reload(), None);
        assert_eq!(s.lc.deadline(), None);
        assert_eq!(s.lc.reason(), "reloaded: pid 12 took over from pid 11");
        // The new process crashing later is an ordinary crash of the instance.
        s.step(30.0, Input::Exited(ExitStatus::Code(1)));
        assert_eq!(s.state(), "backoff");
    }

    #[test]
    fn a_retiring_process_that_ignores_its_signal_is_killed() {
        let mut s = reloading(60.0, false);
        s.step(11.0, Input::ReplacementReady);
        assert_eq!(s.step(20.9, Input::Tick), vec![]);
        assert_eq!(s.step(21.0, Input::Tick), vec![Effect::KillSecond]);
        assert_eq!(s.lc.deadline(), Some(s.at(21.0) + KILL_GRACE));
        // Even SIGKILL's grace ends the reload.
        let effects = s.step(26.0, Input::Tick);
        assert_eq!(finished(&effects), Some(&Ok(())));
        assert_eq!(s.state(), "running");
    }

    #[test]
    fn a_replacement_never_ready_is_stopped_and_the_old_process_kept() {
        let mut s = reloading(5.0, false);
        assert_eq!(s.step(14.9, Input::Tick), vec![]);
        assert_eq!(
            s.step(15.0, Input::Tick),
            vec![Effect::SignalSecond(Signal::Term)]
        );
        assert_eq!(s.lc.state().pid(), Some(11), "the old process stays");
        assert_eq!(s.lc.replacement_pid(), None);
        s.step(15.1, Input::SecondExited(ExitStatus::Signal(15)));
        let effects = s.step(15.2, Input::SecondTreeEmpty);
        let Some(Err(why)) = finished(&effects) else {
            panic!("{effects:?}")
        };
        assert_eq!(
            why,
            "the replacement (pid 12) was not ready within 5s (reload_timeout)"
        );
        assert!(
            s.lc.reason().starts_with("reload failed: "),
            "{}",
            s.lc.reason()
        );
        assert_eq!(s.state(), "running");
        assert_eq!(s.lc.state().pid(), Some(11));
        assert_eq!(s.lc.restarts(), 0);
        assert_eq!(s.lc.reload(), None);
        // A later reload may try again.
        assert_eq!(
            s.step(
                20.0,
                Input::Reload {
                    timeout: Duration::from_secs(5),
                    by_uptime: false
                }
            ),
            vec![Effect::SpawnReplacement]
        );
    }

    #[test]
    fn a_replacement_that_exits_or_fails_a_check_ends_the_reload() {
        let mut s = reloading(60.0, false);
        assert_eq!(
            s.step(10.5, Input::SecondExited(ExitStatus::Code(3))),
            vec![Effect::SignalSecond(Signal::Term), Effect::AwaitSecondEmpty],
            "what it left in its group is stopped"
        );
        let effects = s.step(10.6, Input::SecondTreeEmpty);
        assert_eq!(
            finished(&effects),
            Some(&Err(
                "the replacement (pid 12) exited with code 3 before it was ready".into()
            ))
        );
        assert_eq!(s.state(), "running");
        assert_eq!(s.lc.restarts(), 0, "the restart policy never saw it");

        let mut s = reloading(60.0, false);
        assert_eq!(
            s.step(
                10.5,
                Input::ReplacementUnhealthy {
                    reason: "startup: http 503".into()
                }
            ),
            vec![Effect::SignalSecond(Signal::Term)]
        );
        s.step(10.6, Input::SecondExited(ExitStatus::Signal(15)));
        let effects = s.step(10.7, Input::SecondTreeEmpty);
        assert_eq!(
            finished(&effects),
            Some(&Err(
                "the replacement (pid 12) failed: startup: http 503".into()
            ))
        );

        let mut s = reloading(60.0, false);
        s.step(
            10.0,
            Input::Reload {
                timeout: Duration::from_secs(1),
                by_uptime: false,
            },
        );
        let mut s2 = Script::new(policy());
        s2.step(0.0, Input::Start { manual: true });
        s2.step(0.0, Input::Spawned { pid: 11 });
        s2.step(
            1.0,
            Input::Reload {
                timeout: Duration::from_secs(60),
                by_uptime: false,
            },
        );
        assert_eq!(
            s2.step(
                1.0,
                Input::ReplacementSpawnFailed {
                    reason: "No such file".into()
                }
            ),
            vec![Effect::ReloadFinished(Err(
                "the replacement did not start: No such file".into()
            ))]
        );
        assert_eq!(s2.state(), "running");
        assert_eq!(
            s.lc.replacement_pid(),
            Some(12),
            "the second reload changed nothing"
        );
    }

    #[test]
    fn a_reload_is_refused_when_it_cannot_begin() {
        let mut s = Script::new(policy());
        let reload = Input::Reload {
            timeout: Duration::from_secs(60),
            by_uptime: false,
        };
        assert_eq!(
            s.step(0.0, reload.clone()),
            vec![Effect::ReloadRefused("not running (stopped)".into())]
        );
        let mut s = reloading(60.0, false);
        assert_eq!(
            s.step(10.5, reload),
            vec![Effect::ReloadRefused(
                "a reload of this instance is already under way".into()
            )]
        );
        assert_eq!(s.lc.replacement_pid(), Some(12));
    }

    #[test]
    fn without_readiness_a_replacement_is_ready_after_min_uptime() {
        let mut s = reloading(60.0, true);
        assert_eq!(s.lc.deadline(), Some(s.at(11.0)));
        assert_eq!(s.step(10.9, Input::Tick), vec![]);
        assert_eq!(
            s.step(11.0, Input::Tick),
            vec![Effect::Promote, Effect::SignalSecond(Signal::Term)]
        );
        assert!(matches!(
            s.lc.state(),
            State::Running {
                pid: 12,
                settled: true,
                ..
            }
        ));
    }

    #[test]
    fn a_stop_during_a_reload_ends_when_both_processes_are_gone() {
        let mut s = reloading(60.0, false);
        assert_eq!(
            s.step(10.5, Input::Stop),
            vec![
                Effect::SignalTree(Signal::Term),
                Effect::SignalSecond(Signal::Term)
            ]
        );
        s.step(10.6, Input::Exited(ExitStatus::Signal(15)));
        assert_eq!(s.step(10.7, Input::TreeEmpty), vec![]);
        assert_eq!(s.state(), "stopping", "the replacement is still there");
        s.step(10.8, Input::SecondExited(ExitStatus::Signal(15)));
        let effects = s.step(10.9, Input::SecondTreeEmpty);
        assert_eq!(
            finished(&effects),
            Some(&Err("reload abandoned: stopped by request".into()))
        );
        assert_eq!(s.state(), "stopped");
        assert_eq!(s.lc.reload(), None);

        // The second process gone first: the stop ends with the current one, as always.
        let mut s = reloading(60.0, false);
        s.step(10.5, Input::Restart);
        s.step(10.6, Input::SecondExited(ExitStatus::Signal(15)));
        s.step(10.6, Input::SecondTreeEmpty);
        s.step(10.7, Input::Exited(ExitStatus::Signal(15)));
        assert_eq!(s.step(10.8, Input::TreeEmpty), vec![Effect::Spawn]);

        // After the swap, stopping the new process leaves the old one to its own stop.
        let mut s = reloading(60.0, false);
        s.step(11.0, Input::ReplacementReady);
        assert_eq!(
            s.step(11.1, Input::Stop),
            vec![Effect::SignalTree(Signal::Term)]
        );
        assert_eq!(s.lc.state().pid(), Some(12));
        // A kill reaches both.
        assert_eq!(
            s.step(11.2, Input::Kill),
            vec![Effect::KillTree, Effect::KillSecond]
        );
    }

    #[test]
    fn the_old_process_ending_during_a_reload_is_a_crash() {
        let mut s = reloading(60.0, false);
        let effects = s.step(10.5, Input::Exited(ExitStatus::Code(1)));
        assert_eq!(
            effects,
            vec![Effect::StopLeftovers, Effect::SignalSecond(Signal::Term)]
        );
        assert_eq!(s.state(), "backoff", "its restart policy applies");
        assert_eq!(s.lc.restarts(), 1);
        s.step(10.6, Input::SecondExited(ExitStatus::Signal(15)));
        let effects = s.step(10.7, Input::SecondTreeEmpty);
        let Some(Err(why)) = finished(&effects) else {
            panic!("{effects:?}")
        };
        assert!(
            why.starts_with("reload abandoned: exited with code 1"),
            "{why}"
        );
        assert_eq!(s.state(), "backoff");
    }

    #[test]
    fn stale_inputs_change_nothing() {
        let mut s = Script::new(policy());
        assert_eq!(s.step(0.0, Input::Tick), vec![]);
        assert_eq!(s.step(0.0, Input::Stop), vec![]);
        assert_eq!(s.step(0.0, Input::Exited(ExitStatus::Code(0))), vec![]);
        assert_eq!(s.state(), "stopped");
        s.step(0.0, Input::Start { manual: true });
        s.step(0.0, Input::Spawned { pid: 3 });
        assert_eq!(s.step(0.1, Input::Start { manual: true }), vec![]);
        // An early tick (timer raced with a restart) does nothing.
        assert_eq!(s.step(0.2, Input::Tick), vec![]);
        assert!(matches!(
            s.lc.state(),
            State::Running { settled: false, .. }
        ));
    }
}
