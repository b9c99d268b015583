//! Fixed services and instances for the TUI's tests: every state, probes, a scaled service,
//! dependencies. No clock: uptimes and probe times are constants.

use std::time::Duration;

use crate::protocol::{InstanceInfo, ProbeInfo, Scaled, ServiceInfo};

use super::app::{App, Input, LogLine, Request};

/// The time of the fixed snapshot, unix ms.
pub const NOW_MS: u64 = 1_800_000_000_000;

pub fn instance(name: &str, state: &str) -> InstanceInfo {
    let (service, index) = match name.split_once(':') {
        Some((s, i)) => (s.to_string(), i.parse().unwrap()),
        None => (name.to_string(), 0),
    };
    let running = state == "running";
    InstanceInfo {
        name: name.into(),
        service,
        instance: index,
        state: state.into(),
        pid: running.then_some(4100 + index),
        replacement_pid: None,
        uptime_ms: running.then_some(125_000),
        restarts: 0,
        exit_code: None,
        exit_signal: None,
        ready: running,
        health: if running { "healthy" } else { "none" }.into(),
        reason: String::new(),
        status_text: None,
        notify_phase: None,
        probes: Vec::new(),
        cpu_percent: running.then_some(2.0),
        rss_bytes: running.then_some(12 << 20),
        cpu_seconds: 1.5,
        gpu_memory_bytes: None,
        gpu_percent: None,
        warning: None,
    }
}

pub fn service(name: &str, instances: Vec<InstanceInfo>) -> ServiceInfo {
    let state = instances
        .first()
        .map_or("stopped".to_string(), |i| i.state.clone());
    ServiceInfo {
        name: name.into(),
        kind: "service".into(),
        ready: instances.iter().all(|i| i.ready),
        state,
        autostart: true,
        depends_on: Vec::new(),
        count: instances.len() as u32,
        scaled: None,
        autoscale: None,
        instances,
    }
}

/// A small project with one instance in each state.
pub fn services() -> Vec<ServiceInfo> {
    let mut db = instance("db", "running");
    db.pid = Some(812);
    db.uptime_ms = Some(3 * 3_600_000 + 4 * 60_000);
    db.cpu_percent = Some(3.4);
    db.rss_bytes = Some(52 << 20);
    db.probes = vec![ProbeInfo {
        role: "readiness".into(),
        kind: "exec".into(),
        passing: Some(true),
        last_ok: Some(true),
        detail: "exec exit 0".into(),
        fallback: false,
        took_ms: Some(4.2),
        at_ms: Some(NOW_MS - 2_000),
    }];
    let web0 = instance("web:0", "running");
    let mut web1 = instance("web:1", "running");
    web1.ready = false;
    web1.health = "unhealthy".into();
    web1.restarts = 3;
    web1.probes = vec![
        ProbeInfo {
            role: "readiness".into(),
            kind: "http".into(),
            passing: Some(false),
            last_ok: Some(false),
            detail: "http 503".into(),
            fallback: false,
            took_ms: Some(1.3),
            at_ms: Some(NOW_MS - 1_000),
        },
        ProbeInfo {
            role: "liveness".into(),
            kind: "tcp".into(),
            passing: None,
            last_ok: None,
            detail: String::new(),
            fallback: false,
            took_ms: None,
            at_ms: None,
        },
    ];
    web1.warning = Some("memory 90% of max_memory".into());
    let mut web2 = instance("web:2", "backoff");
    web2.restarts = 7;
    web2.exit_code = Some(1);
    web2.reason = "exited with code 1; restarting in 4s".into();
    let mut worker = instance("worker", "fatal");
    worker.restarts = 5;
    worker.exit_signal = Some("SIGSEGV".into());
    worker.reason = "killed by SIGSEGV; 5 restarts within 1m, giving up".into();
    let mut queue = instance("queue", "waiting");
    queue.reason = "waiting for db (healthy)".into();
    let mut migrate = instance("migrate", "exited");
    migrate.exit_code = Some(0);
    migrate.reason = "completed".into();
    let cron = instance("cron", "stopped");

    let mut web = service("web", vec![web0, web1, web2]);
    web.depends_on = vec!["db".into(), "queue".into()];
    web.count = 3;
    web.scaled = Some(Scaled {
        manifest: 2,
        by: "tend scale".into(),
        reason: "tend scale by uid 1000: 2 → 3".into(),
        at_ms: (NOW_MS - 60_000) as i64,
    });
    let mut migrate = service("migrate", vec![migrate]);
    migrate.kind = "task".into();
    vec![
        service("db", vec![db]),
        web,
        service("worker", vec![worker]),
        service("queue", vec![queue]),
        migrate,
        service("cron", vec![cron]),
    ]
}

/// `n` instances of one service, `many:0` to `many:{n-1}`, alternating states.
pub fn many(n: u32) -> Vec<ServiceInfo> {
    let states = ["running", "running", "running", "backoff", "stopped"];
    let instances = (0..n)
        .map(|i| {
            let mut info = instance(&format!("many:{i}"), states[i as usize % states.len()]);
            info.pid = info.pid.map(|_| 10_000 + i);
            info
        })
        .collect();
    vec![service("many", instances)]
}

/// An app of this size that has seen one snapshot of `services` (and carried out the log
/// stream it asked for).
pub fn app_with(services: Vec<ServiceInfo>, width: u16, height: u16) -> App {
    let mut app = App::new("/srv/shop/tend.toml", width, height);
    let requests = app.update(Input::Snapshot {
        services,
        at_ms: NOW_MS,
    });
    for request in requests {
        if let Request::FollowLogs { generation, .. } = request {
            app.update(Input::LogsStarted { generation });
        }
    }
    app
}

pub fn app(width: u16, height: u16) -> App {
    app_with(services(), width, height)
}

/// Log lines of the stream the app follows now.
pub fn feed_logs(app: &mut App, lines: &[(&str, &str)]) {
    let generation = app.logs.generation;
    app.update(Input::Logs {
        generation,
        lines: lines
            .iter()
            .map(|(instance, text)| LogLine::new(instance, false, text))
            .collect(),
    });
}

pub fn disconnect(app: &mut App) {
    app.update(Input::Disconnected {
        error: "tend is not running (no daemon answers on /srv/shop/.tend/tend.sock)".into(),
        attempt: 3,
        retry_in: Duration::from_secs(1),
    });
}
