//! What the engine hands to the next image of tend in an upgrade, and takes over from the
//! previous one: each instance's lifecycle and process, and what the supervisor remembers of
//! dependencies. Plain data with every instant told as a distance; the daemon owns the
//! versioned format it travels in.

use std::time::SystemTime;

use crate::engine::lifecycle;

/// One instance, frozen between two of its steps.
#[derive(Debug, Clone, PartialEq)]
pub struct FrozenInstance {
    /// `web` or `web:2`.
    pub name: String,
    pub service: String,
    pub index: u32,
    pub lifecycle: lifecycle::Frozen,
    /// The process tend spawned, which leads the process group; it differs from the
    /// running pid once the program named another one its main process (MAINPID).
    pub leader: Option<u32>,
    /// Which of the instance's two cgroup names its process is in (a reload alternates).
    pub alternate: bool,
    /// A MAINPID the program named while its leader still runs, followed when the leader
    /// exits.
    pub main_pid: Option<u32>,
    /// Ready by its readiness check (sd_notify READY=1, a probe, a log line).
    pub ready: bool,
    /// Its startup probe has passed (or it has none): liveness runs.
    pub startup_over: bool,
    /// The last sd_notify STATUS= line.
    pub notify_status: Option<String>,
    /// CPU seconds of every run so far: a counter that never goes down.
    pub cpu_seconds: f64,
    pub changed_at: SystemTime,
    pub last_start: Option<SystemTime>,
}

/// The engine as handed over: every instance, and the supervisor's memory of dependencies.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frozen {
    pub instances: Vec<FrozenInstance>,
    /// Dependents stopped because a dependency stopped being ready (`on_unready = "stop"`),
    /// as (instance, dependency).
    pub held: Vec<(String, String)>,
    /// Dependents to restart when their dependency is ready again (`on_unready =
    /// "restart"`), as (instance, dependency).
    pub restart_on_return: Vec<(String, String)>,
    /// Whether each depended-on service was ready when last looked at.
    pub dependency_ready: Vec<(String, bool)>,
}
