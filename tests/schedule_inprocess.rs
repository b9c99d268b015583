//! `cron_restart` and `schedule` end to end: a real engine with real children and the real
//! history, driven by a wall clock the test moves, so that "03:00" comes when the test says
//! and no test waits for a minute to pass. A test binary of its own, because the engine's
//! reaper waits for any child (`waitpid(-1)`) and would take another test's children.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tend::config::cron::{Utc, Zone, days_from_civil};
use tend::config::model::CgroupMode;
use tend::engine::event::{Event, EventKind};
use tend::engine::schedule::Clock;
use tend::engine::tree::Containment;
use tend::engine::{EngineHandle, EngineOptions};
use tend::logs::LogSink;
use tend::store::{EventFilter, History, HistoryOptions};
use tokio::sync::broadcast;

/// A wall clock that moves only when the test moves it; a schedule's sleep ends at each
/// move, and the schedule then looks at the time again.
struct TestClock {
    now: Mutex<SystemTime>,
    moved: tokio::sync::watch::Sender<()>,
}

impl TestClock {
    fn set(&self, unix: i64) {
        *self.now.lock().unwrap() = UNIX_EPOCH + Duration::from_secs(unix as u64);
        self.moved.send_replace(());
    }
}

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap()
    }

    fn sleep(&self, _: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let mut moved = self.moved.subscribe();
        // A move made between the schedule's reading of the time and this sleep would be
        // missed by `changed` alone: look again every few milliseconds too.
        Box::pin(async move {
            tokio::select! {
                _ = moved.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        })
    }

    fn zone(&self) -> &dyn Zone {
        &Utc
    }
}

fn at(hour: i64, minute: i64) -> i64 {
    days_from_civil(2026, 5, 4) * 86_400 + hour * 3600 + minute * 60
}

/// Events as they come, kept: fires of different schedules reach the supervisor in any
/// order, so a wait for one must not throw away another.
struct Seen {
    events: broadcast::Receiver<Event>,
    seen: Vec<Event>,
}

impl Seen {
    fn new(engine: &EngineHandle) -> Seen {
        Seen {
            events: engine.subscribe(),
            seen: Vec::new(),
        }
    }

    /// The first event (seen already or still to come) matching `want`, within a bounded
    /// (real) time.
    async fn find(&mut self, what: &str, want: impl Fn(&Event) -> bool) -> Event {
        if let Some(event) = self.seen.iter().find(|e| want(e)) {
            return event.clone();
        }
        let events = &mut self.events;
        let seen = &mut self.seen;
        let found = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match events.recv().await {
                    Ok(event) => {
                        seen.push(event.clone());
                        if want(&event) {
                            return event;
                        }
                    }
                    Err(e) => panic!("events: {e}"),
                }
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
    }
}

fn state_change(event: &Event, instance: &str, from: &str, to: &str) -> Option<String> {
    match &event.kind {
        EventKind::StateChanged {
            from: f,
            to: t,
            reason,
        } if event.instance == instance && *f == from && *t == to => Some(reason.clone()),
        _ => None,
    }
}

async fn state(engine: &EngineHandle, instance: &str) -> (String, Option<u32>) {
    let status = engine
        .status(vec![instance.to_string()])
        .await
        .unwrap()
        .unwrap();
    (status[0].state.to_string(), status[0].pid)
}

async fn wait_state(engine: &EngineHandle, instance: &str, wanted: &str) -> Option<u32> {
    for _ in 0..2000 {
        let (state, pid) = state(engine, instance).await;
        if state == wanted {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{instance} never became {wanted}");
}

const MANIFEST: &str = r#"
[tend]
cgroups = "off"
sample_every = "0s"

[services.web]
command = "sleep 60"
cron_restart = "0 3 * * *"
stop_timeout = "2s"

[services.job]
kind = "task"
schedule = "*/5 * * * *"
shell = true
command = "echo run; exit 3"

[services.slow]
kind = "task"
schedule = "* * * * *"
command = "sleep 60"
stop_timeout = "2s"
"#;

#[tokio::test]
async fn schedules_restart_and_run_on_the_clock_they_are_given() {
    let dir = tempfile::tempdir().unwrap();
    let manifest_path = dir.path().join("tend.toml");
    std::fs::write(&manifest_path, MANIFEST).unwrap();
    let manifest = tend::config::load(&manifest_path).unwrap();
    let logs = LogSink::start(
        dir.path().join("logs"),
        None,
        tend::logs::OwnLogTarget {
            path: dir.path().join("tend.log"),
            rotation: tend::config::model::LogSpec::default(),
            to_stderr: false,
            redirect_std: false,
        },
    )
    .unwrap();
    let clock = Arc::new(TestClock {
        now: Mutex::new(UNIX_EPOCH),
        moved: tokio::sync::watch::channel(()).0,
    });
    clock.set(at(2, 58) + 30);
    let engine = tend::engine::start(
        manifest.clone(),
        EngineOptions {
            containment: Arc::new(Containment::detect(CgroupMode::Off, "schedule-test".into())),
            logs: logs.clone(),
            notify_socket: dir.path().join("notify.sock"),
            listener_io: None,
            sockets: Default::default(),
            clock: Some(clock.clone()),
            spawner: None,
            notify: None,
            adoption: None,
        },
    )
    .unwrap();
    let history = History::open(HistoryOptions::new(dir.path().join("tend.db")), |_| {});
    let recorder = tend::store::recorder::spawn(engine.clone(), Some(history.clone()), |_| {});
    let mut events = Seen::new(&engine);
    engine.start_initial(Vec::new()).await.unwrap();
    let web_pid = wait_state(&engine, "web", "running").await.unwrap();
    assert_eq!(
        state(&engine, "job").await.0,
        "stopped",
        "a scheduled task waits"
    );
    assert_eq!(state(&engine, "slow").await.0, "stopped");

    // 02:59: `slow` runs (every minute); nothing else is due.
    clock.set(at(2, 59));
    let reason = events
        .find("slow to start", |e| {
            state_change(e, "slow", "stopped", "starting").is_some()
        })
        .await;
    assert_eq!(
        state_change(&reason, "slow", "stopped", "starting").unwrap(),
        "schedule \"* * * * *\""
    );
    wait_state(&engine, "slow", "running").await;

    // 03:00: web restarts, job runs (and fails with 3), slow is still going: skipped.
    clock.set(at(3, 0));
    let restart = events
        .find("web's restart", |e| {
            state_change(e, "web", "running", "stopping").is_some()
        })
        .await;
    assert_eq!(
        state_change(&restart, "web", "running", "stopping").unwrap(),
        "cron_restart \"0 3 * * *\""
    );
    let skipped = events
        .find("slow's skip", |e| {
            e.instance == "slow" && matches!(e.kind, EventKind::Warning { .. })
        })
        .await;
    let EventKind::Warning { message } = &skipped.kind else {
        unreachable!()
    };
    assert_eq!(
        message,
        "schedule \"* * * * *\": skipped, the previous run is still running"
    );
    let exit = events
        .find("job's exit", |e| {
            e.instance == "job" && matches!(e.kind, EventKind::Exited { .. })
        })
        .await;
    assert!(matches!(
        exit.kind,
        EventKind::Exited {
            status: tend::engine::lifecycle::ExitStatus::Code(3),
            ..
        }
    ));
    let new_pid = wait_state(&engine, "web", "running").await.unwrap();
    assert_ne!(new_pid, web_pid, "web runs a new process");
    wait_state(&engine, "job", "exited").await;

    // 03:05: job runs again; slow still runs (one process, not two).
    let slow_pid = state(&engine, "slow").await.1;
    let mut events = Seen::new(&engine);
    clock.set(at(3, 5));
    events
        .find("job's second run", |e| {
            state_change(e, "job", "exited", "starting").is_some()
        })
        .await;
    events
        .find("job's second exit", |e| {
            e.instance == "job" && matches!(e.kind, EventKind::Exited { .. })
        })
        .await;
    assert_eq!(state(&engine, "slow").await.1, slow_pid);

    // The next day's 03:00: the stopped web is not restarted; job, which missed its runs
    // since 03:05 (a suspend, say), runs once, late; slow is still running.
    engine.stop(vec!["web".into()]).await.unwrap().unwrap();
    let mut events = Seen::new(&engine);
    clock.set(at(3, 0) + 86_400);
    let late = events
        .find("job's late run", |e| {
            state_change(e, "job", "exited", "starting").is_some()
        })
        .await;
    assert_eq!(
        state_change(&late, "job", "exited", "starting").unwrap(),
        "schedule \"*/5 * * * *\", 23h50m late"
    );
    events
        .find("slow's skip", |e| {
            e.instance == "slow" && matches!(e.kind, EventKind::Warning { .. })
        })
        .await;
    let said = "web: cron_restart \"0 3 * * *\": not running; nothing to restart";
    let mut told = false;
    for _ in 0..1000 {
        told = std::fs::read_to_string(dir.path().join("tend.log"))
            .unwrap_or_default()
            .contains(said);
        if told {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(told, "tend.log never said: {said}");
    assert_eq!(state(&engine, "web").await.0, "stopped");
    wait_state(&engine, "job", "exited").await;

    // A scheduled service added while tend runs gets its schedule; a removed one loses it.
    engine.stop(vec!["job".into()]).await.unwrap().unwrap();
    let mut next = manifest.clone();
    next.services.retain(|s| s.name != "job");
    let mut added = manifest.service("job").unwrap().clone();
    added.name = "nightly".into();
    next.services.push(added);
    engine
        .reconfigure(next.clone(), Vec::new())
        .await
        .unwrap()
        .unwrap();
    let mut events = Seen::new(&engine);
    clock.set(at(3, 10) + 86_400);
    events
        .find("nightly's first run", |e| {
            state_change(e, "nightly", "stopped", "starting").is_some()
        })
        .await;
    wait_state(&engine, "nightly", "exited").await;

    // A changed schedule takes effect at once: 03:13 is not a multiple of five minutes, so
    // only the new expression fires there.
    let mut changed = next.clone();
    changed
        .services
        .iter_mut()
        .find(|s| s.name == "nightly")
        .unwrap()
        .schedule = Some("13 * * * *".parse().unwrap());
    engine
        .reconfigure(changed, Vec::new())
        .await
        .unwrap()
        .unwrap();
    let mut events = Seen::new(&engine);
    clock.set(at(3, 13) + 86_400);
    events
        .find("nightly's run on its new schedule", |e| {
            state_change(e, "nightly", "exited", "starting").is_some()
        })
        .await;
    wait_state(&engine, "nightly", "exited").await;

    engine.shutdown().await.unwrap();
    recorder.finish(Duration::from_secs(5)).await;
    assert!(history.flush(Duration::from_secs(5)));

    // The history has the runs with their exit codes and reasons, as `tend events` shows.
    let rows = history
        .events(&EventFilter {
            service: Some("job".into()),
            ..Default::default()
        })
        .unwrap();
    let exits: Vec<Option<i32>> = rows
        .iter()
        .filter(|r| r.kind == "exit")
        .map(|r| r.exit_code)
        .collect();
    assert_eq!(exits, [Some(3), Some(3), Some(3)], "{rows:?}");
    let table = tend::cli::render_events(&rows);
    assert!(
        table
            .lines()
            .any(|line| line.contains("stopped -> starting")
                && line.ends_with("schedule \"*/5 * * * *\"")),
        "{table}"
    );
    assert!(table.contains("exited with code 3"), "{table}");
    let rows = history
        .events(&EventFilter {
            service: Some("slow".into()),
            kinds: vec!["warning".into()],
            ..Default::default()
        })
        .unwrap();
    assert!(rows.len() >= 3, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r.reason.as_deref().unwrap().contains("skipped")),
        "{rows:?}"
    );
    let rows = history
        .events(&EventFilter {
            service: Some("web".into()),
            ..Default::default()
        })
        .unwrap();
    assert!(
        rows.iter()
            .any(|r| r.reason.as_deref() == Some("cron_restart \"0 3 * * *\"")),
        "{rows:?}"
    );
    history.close(Duration::from_secs(5));
}
