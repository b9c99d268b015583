//! What the engine tells the outside world: the events on its one broadcast channel and the
//! status snapshot each instance publishes.

use std::time::SystemTime;

use tokio::time::Instant;

use crate::engine::lifecycle::ExitStatus;

/// Something observable that happened to an instance.
#[derive(Debug, Clone)]
pub struct Event {
    pub at: SystemTime,
    pub instance: String,
    pub service: String,
    pub kind: EventKind,
}

#[derive(Debug, Clone)]
pub enum EventKind {
    StateChanged {
        from: &'static str,
        to: &'static str,
        reason: String,
    },
    Spawned {
        pid: u32,
    },
    Exited {
        pid: u32,
        status: ExitStatus,
    },
    /// Something worth a look that changes nothing (a resource warning): recorded, once per
    /// crossing.
    Warning {
        message: String,
    },
    /// A running service has been up for its `min_uptime`: its start worked (supervisord's
    /// STARTING → RUNNING).
    Settled,
    /// A probe's verdict flipped (its thresholds decided), not every attempt.
    ProbeChanged {
        role: &'static str,
        passing: bool,
        detail: String,
    },
    /// A step of a reload (`tend reload`, `tend apply`): `started` (a replacement runs beside
    /// the current process; `pid` is the replacement's), `replaced` (it took over; its pid),
    /// `done` (the old process is gone) or `failed` (the old process still serves).
    /// `signalled`: `reload_signal` was sent instead. `detail` says it in words.
    Reload {
        step: &'static str,
        pid: Option<u32>,
        detail: String,
    },
}

/// Where an instance publishes its status and the supervisor reads it: a shared cell holding
/// an immutable snapshot. Readers take the snapshot (an `Arc` clone, no copy), so listing
/// hundreds of instances costs no deep copies; a publish swaps in a new snapshot. (A
/// `watch` channel would add wake-up machinery per instance that nothing here uses: the
/// supervisor learns of changes through its own channel.)
#[derive(Debug, Clone)]
pub struct StatusCell(std::sync::Arc<std::sync::Mutex<std::sync::Arc<InstanceStatus>>>);

impl StatusCell {
    pub fn new(status: InstanceStatus) -> StatusCell {
        StatusCell(std::sync::Arc::new(std::sync::Mutex::new(
            std::sync::Arc::new(status),
        )))
    }

    /// The current status, locked. Holding the guard blocks the instance's next publish, so
    /// keep it short (no await).
    pub fn borrow(&self) -> std::sync::MutexGuard<'_, std::sync::Arc<InstanceStatus>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The current snapshot, to keep.
    pub fn snapshot(&self) -> std::sync::Arc<InstanceStatus> {
        self.borrow().clone()
    }

    pub fn replace(&self, status: InstanceStatus) {
        *self.borrow() = std::sync::Arc::new(status);
    }

    /// Change some fields in place (a new snapshot only if a reader still holds the old).
    pub fn update(&self, change: impl FnOnce(&mut InstanceStatus)) {
        change(std::sync::Arc::make_mut(&mut self.borrow()));
    }
}

/// One instance as it is now.
#[derive(Debug, Clone)]
pub struct InstanceStatus {
    pub name: String,
    pub service: String,
    pub index: u32,
    pub state: &'static str,
    pub pid: Option<u32>,
    /// During a reload, the replacement running beside `pid` until it is ready (sd_notify
    /// messages from its tree are routed by it).
    pub replacement_pid: Option<u32>,
    /// When the current process started, while there is one.
    pub started: Option<Instant>,
    /// Ready: by its readiness probe, or else up past `min_uptime`.
    pub ready: bool,
    pub restarts: u32,
    /// `restarts` by cause, in [`crate::engine::lifecycle::RestartCause::ALL`] order.
    pub restart_causes: [u32; 4],
    pub last_exit: Option<ExitStatus>,
    /// Why the instance is in its state, in words.
    pub reason: String,
    pub is_task: bool,
    /// Exited successfully (what a `completed` dependency waits for).
    pub completed: bool,
    /// Increases with every published change.
    pub generation: u64,
    /// `healthy`, `unhealthy`, `starting` or `none` (no liveness probe, or not running).
    pub health: &'static str,
    /// The last STATUS= sent over sd_notify.
    pub notify_status: Option<String>,
    /// `reloading` or `stopping`, as the program announced over sd_notify.
    pub notify_phase: Option<&'static str>,
    /// Each probe's last result.
    pub probes: Vec<crate::engine::health::ProbeReport>,
    /// The whole tree's CPU use over the last sampling interval, in percent of one core.
    pub cpu_percent: Option<f64>,
    /// The whole tree's resident memory at the last sample.
    pub rss_bytes: Option<u64>,
    /// CPU time used by every run of the instance so far (a counter), in seconds.
    pub cpu_seconds: f64,
    /// GPU memory held by the tree's processes (NVIDIA, where NVML is available).
    pub gpu_memory_bytes: Option<u64>,
    /// The highest SM utilisation among the tree's processes over the last interval.
    pub gpu_percent: Option<u32>,
    /// Something to know while it runs, filled in by the supervisor ("db not ready").
    pub warning: Option<String>,
    /// When the instance entered its current state, on the wall clock.
    pub changed_at: SystemTime,
    /// When its last process started, on the wall clock; kept after it ends.
    pub last_start: Option<SystemTime>,
}

impl InstanceStatus {
    pub fn is_live(&self) -> bool {
        matches!(self.state, "starting" | "running" | "stopping")
    }
}
