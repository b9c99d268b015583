//! An upgrade that does not happen changes nothing: the engine frozen and the capture
//! paused as for an exec, a child killed meanwhile, then both thawed (what an upgrade does
//! when the exec fails, or a signal cancels it). A test binary of its own, because the
//! engine's reaper waits for any child (`waitpid(-1)`).

use std::sync::Arc;
use std::time::Duration;

use tend::config::model::CgroupMode;
use tend::engine::EngineOptions;
use tend::engine::lifecycle::FrozenState;
use tend::engine::tree::Containment;
use tend::logs::LogSink;

/// Poll (bounded) until `check` holds.
async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..3000 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn state_of(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

#[tokio::test]
async fn a_thawed_engine_acts_on_what_happened_while_it_was_frozen() {
    let dir = tempfile::tempdir().unwrap();
    let manifest_path = dir.path().join("tend.toml");
    std::fs::write(
        &manifest_path,
        r#"
[tend]
cgroups = "off"

[services.ticker]
args = ["sh", "-c", "while :; do echo tick; sleep 0.02; done"]
min_uptime = "100ms"
backoff = { initial = "0s", max = "0s" }
"#,
    )
    .unwrap();
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
    let engine = tend::engine::start(
        manifest,
        EngineOptions {
            containment: Arc::new(Containment::detect(CgroupMode::Off, "thaw-test".into())),
            logs: logs.clone(),
            notify_socket: dir.path().join("notify.sock"),
            listener_io: None,
            sockets: Default::default(),
            clock: None,
            spawner: None,
            notify: None,
            adoption: None,
        },
    )
    .unwrap();
    let outcomes = engine.start(vec!["ticker".into()]).await.unwrap().unwrap();
    assert!(outcomes.iter().all(|(_, o)| o.is_ok()), "{outcomes:?}");
    let status = || async { engine.status(Vec::new()).await.unwrap().unwrap()[0].clone() };
    let pid = status().await.pid.expect("running");
    let log = dir.path().join("logs/ticker.out.log");
    let ticks = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count()
    };
    until("ticks in the log", async || ticks() > 3).await;

    let frozen = engine.freeze().await.unwrap().expect("nothing under way");
    assert_eq!(frozen.instances.len(), 1);
    assert!(
        matches!(frozen.instances[0].lifecycle.state, FrozenState::Running { pid: p, .. } if p == pid),
        "{frozen:?}"
    );
    let paused = logs.pause(Duration::from_secs(5)).await.expect("paused");
    assert_eq!(paused.pipes.len(), 1);

    // Frozen: the exit is not reaped (a zombie stays for whoever takes over), and nothing
    // acts on it.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    until("the child to be a zombie", async || {
        state_of(pid) == Some('Z')
    })
    .await;
    let during = status().await;
    assert_eq!((during.state, during.pid), ("running", Some(pid)));
    let ticks_frozen = ticks();

    logs.resume(paused.pipes);
    engine.thaw();
    until("the killed child to be restarted", async || {
        let now = status().await;
        now.state == "running" && now.pid.is_some_and(|p| p != pid)
    })
    .await;
    assert_eq!(status().await.restarts, 1);
    assert_eq!(state_of(pid), None, "reaped");
    until("ticks from the new process", async || {
        ticks() > ticks_frozen + 3
    })
    .await;
    engine.shutdown().await.unwrap();
    logs.close(Duration::from_secs(2)).await;
}
