//! The composition root: turns a manifest into a running daemon (state dir, leftovers of a
//! crashed run, containment, logs, engine, control socket, signals) and shuts it down in order.
//! Only `main`/`cli` call into it.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;

mod manager;
mod sockets;

use crate::api::{self, AppState};
use crate::config::model::Manifest;
use crate::engine::event::EventKind;
use crate::engine::tree::{self, Containment};
use crate::engine::{self, EngineOptions};
use crate::import::{self, SupervisorNames};
use crate::listeners;
pub use crate::logs::own::say;
use crate::logs::{Console, LogSink, OwnLogTarget};
use crate::notifications::{CommandRunner, Notifier};
use crate::store::{History, HistoryOptions, recorder};

/// How the daemon was asked to run.
pub struct DaemonOptions {
    pub manifest: Manifest,
    /// supervisord's names for the processes, when the manifest was a supervisord.conf.
    pub supervisor: Option<SupervisorNames>,
    /// How the manifest was read (`reloadConfig` reads it again the same way).
    pub reading: import::Reading,
    /// Services to start instead of the autostart set (with their dependencies).
    pub services: Vec<String>,
    /// Echo every instance's output to stdout with a prefix (foreground `tend up`).
    pub console: bool,
    pub colour: bool,
    /// `up --exit-with NAME`: end when this service ends, with its exit code.
    pub exit_with: Option<String>,
}

/// `min_fds` / `min_procs`: raise the soft limit (and the hard one, where tend may) so the
/// children inherit at least that much; refuse to start otherwise, as supervisord does.
fn raise_limits(settings: &crate::config::model::DaemonSettings) -> anyhow::Result<()> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let wanted = [
        (
            Resource::RLIMIT_NOFILE,
            settings.min_fds,
            "min_fds",
            "open files",
        ),
        (
            Resource::RLIMIT_NPROC,
            settings.min_procs,
            "min_procs",
            "processes",
        ),
    ];
    for (resource, minimum, key, what) in wanted {
        let Some(minimum) = minimum else { continue };
        let (soft, hard) = getrlimit(resource).context("reading resource limits")?;
        if soft >= minimum {
            continue;
        }
        // Within the hard limit anyone may raise the soft one; past it only root may.
        if setrlimit(resource, minimum, hard.max(minimum)).is_err() {
            bail!(
                "[tend] {key} = {minimum}: this environment allows only {soft} {what} and tend \
                 cannot raise it; raise the limit (ulimit) or lower {key}"
            );
        }
    }
    Ok(())
}

/// supervisord's names for the instances: those of the supervisord.conf tend runs, or a
/// group per service. `reloadConfig` reads the same file again the same way.
fn supervisor_rpc(
    manifest: &Manifest,
    names: Option<SupervisorNames>,
    reading: import::Reading,
) -> api::xmlrpc::Rpc {
    let names = names.unwrap_or_default();
    let active = api::xmlrpc::Config {
        manifest: manifest.clone(),
        names: given_names(&names),
        overrides: Default::default(),
    };
    let path = manifest.path.clone();
    let reread: api::xmlrpc::Reread = Box::new(move || {
        let loaded = import::load(&path, &reading)?;
        Ok(api::xmlrpc::Config {
            names: given_names(&loaded.supervisor.unwrap_or_default()),
            manifest: loaded.manifest,
            overrides: Default::default(),
        })
    });
    api::xmlrpc::Rpc::new(active, names.identifier, Some(reread))
}

fn given_names(names: &SupervisorNames) -> Vec<api::xmlrpc::GivenName> {
    names
        .processes
        .iter()
        .map(|p| api::xmlrpc::GivenName {
            group: p.group.clone(),
            name: p.name.clone(),
            instance: p.tend_name(),
        })
        .collect()
}

/// What a daemon records about itself so the next one can clean up after a crash.
#[derive(Debug, Serialize, Deserialize)]
struct RunRecord {
    pid: u32,
    run_id: String,
    cgroup: Option<PathBuf>,
    /// The control socket, for clients that cannot work it out from the manifest (a
    /// supervisord.conf edited into an invalid state while tend runs).
    #[serde(default)]
    socket: Option<PathBuf>,
}

/// The control socket the daemon of `state_dir` recorded, if one runs or ran there.
pub fn recorded_socket(state_dir: &Path) -> Option<PathBuf> {
    let text = fs::read(state_dir.join("run.json")).ok()?;
    serde_json::from_slice::<RunRecord>(&text).ok()?.socket
}

/// Run the daemon until it is told to stop; returns the process exit code.
pub fn run(options: DaemonOptions) -> anyhow::Result<i32> {
    // `process_start_time_seconds`: the process's start, not the end of its preparations.
    let started_at = SystemTime::now();
    // One malloc arena: a supervisor allocates little, and per-thread arenas would each keep
    // their own high-water mark resident.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    // One thread runs the whole engine: its work is tiny reactions to exits, commands and
    // deadlines, so a single thread keeps memory small and latency low (no hand-offs between
    // workers). Anything slow (fork, disk) runs on dedicated threads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(serve(options, started_at))
}

async fn serve(options: DaemonOptions, started_at: SystemTime) -> anyhow::Result<i32> {
    // SIGHUP is `tend apply`: the manifest read again and its changes carried out. Taken
    // from the start, so that one sent while tend starts is applied once it runs instead of
    // ending it (its default action).
    let mut hangup = signal(SignalKind::hangup())?;
    let manifest = options.manifest;
    let manager = manager::Manager::from_env().map(Arc::new);
    let state_dir = manifest.daemon.state_dir.clone();
    fs::create_dir_all(&state_dir)
        .with_context(|| format!("creating state dir {}", state_dir.display()))?;
    raise_limits(&manifest.daemon)?;
    let socket = manifest.daemon.socket.clone();
    if let Some(dir) = socket.parent() {
        fs::create_dir_all(dir)
            .with_context(|| format!("creating the socket's directory {}", dir.display()))?;
    }
    if tokio::net::UnixStream::connect(&socket).await.is_ok() {
        let pid = fs::read_to_string(state_dir.join("tend.pid")).unwrap_or_default();
        bail!(
            "tend is already running for this manifest (pid {}); use `tend start` or `tend down`",
            pid.trim()
        );
    }
    clean_up_after_crash(&state_dir);
    // Bound once a crashed run's children are stopped (they may still hold them), and before
    // any service starts or the control socket answers: a socket tend cannot have is a
    // refusal to start, naming it.
    let sockets = Arc::new(sockets::bind_all(&manifest.sockets)?);
    let _socket_files = sockets::Cleanup(sockets.clone());

    if std::process::id() != 1 {
        // Orphans of our children are re-parented to us, so escaped descendants stay findable
        // and get reaped.
        let _ = nix::sys::prctl::set_child_subreaper(true);
    }
    let run_id = new_run_id();
    let containment = Arc::new(Containment::detect(manifest.daemon.cgroups, run_id.clone()));
    let record = RunRecord {
        pid: std::process::id(),
        run_id,
        cgroup: containment.cgroup_root().map(Path::to_path_buf),
        socket: Some(socket.clone()),
    };
    fs::write(state_dir.join("run.json"), serde_json::to_vec(&record)?)?;
    fs::write(
        state_dir.join("tend.pid"),
        format!("{}\n", std::process::id()),
    )?;

    let log_dir = state_dir.join("logs");
    let console = options.console.then(|| Console {
        colour: options.colour,
        names: manifest
            .services
            .iter()
            .flat_map(|s| (0..s.instances).map(|i| s.instance_name(i)))
            .collect(),
    });
    let own = OwnLogTarget {
        path: state_dir.join("tend.log"),
        rotation: manifest.daemon.log.clone(),
        to_stderr: options.console,
        redirect_std: !options.console,
    };
    let logs = LogSink::start(log_dir, console, own).context("starting the log writer")?;
    for socket in &sockets.sockets {
        say(&format!(
            "socket {} listening on {}",
            socket.spec.name, socket.address
        ));
    }
    let manifest_path = manifest.path.clone();
    let services_meta = Arc::new(api::ServiceList::new(&manifest));
    // The pools of supervisord event listeners: always there, since a listener may be added
    // while tend runs; without listeners their task only follows engine events.
    let (listener_io, listener_pipes) = tokio::sync::mpsc::unbounded_channel();
    let (remote_events, remote_feed) = tokio::sync::mpsc::unbounded_channel();
    let (announce_stopping, stopping_feed) = tokio::sync::oneshot::channel();
    let rpc = Arc::new(
        supervisor_rpc(&manifest, options.supervisor, options.reading)
            .with_remote_events(remote_events),
    );
    let settings = manifest.daemon.clone();
    // Everything that can refuse to start is done before any service starts: a bad tokens
    // file, a listener or a socket that cannot be set up leave nothing running behind.
    let prepared = prepare_listeners(&settings, &socket).await;
    let (remote, (listener, staging)) = match prepared {
        Ok(ready) => ready,
        Err(e) => {
            let _ = fs::remove_file(state_dir.join("tend.pid"));
            let _ = fs::remove_file(state_dir.join("run.json"));
            containment.remove();
            return Err(e);
        }
    };
    // Opening checks the whole file (quick_check): off the runtime thread.
    let history = match settings.history.enabled {
        true => {
            let options = HistoryOptions {
                retention: settings.history.retention,
                ..HistoryOptions::new(state_dir.join("tend.db"))
            };
            let open = tokio::task::spawn_blocking(move || {
                History::open(options, |problem: String| {
                    say(&format!("history: {problem}"))
                })
            });
            Some(open.await.context("opening the history")?)
        }
        false => None,
    };
    let listener_manifest = manifest.clone();
    let autostart: Vec<String> = manifest
        .services
        .iter()
        .filter(|s| s.autostart)
        .map(|s| s.name.clone())
        .collect();
    let engine = engine::start(
        manifest,
        EngineOptions {
            containment: containment.clone(),
            logs: logs.clone(),
            notify_socket: state_dir.join("notify.sock"),
            listener_io: Some(listener_io),
            sockets,
            clock: None,
        },
    )?;
    {
        let table = rpc.clone();
        let names: listeners::Names = Arc::new(move |instance: &str| {
            let table = table.table();
            let process = table.by_instance(instance)?;
            Some((process.group.clone(), process.name.clone()))
        });
        let identifier = rpc.identifier.clone();
        let feeds = listeners::Feeds {
            events: engine.subscribe(),
            io: listener_pipes,
            remote: remote_feed,
            stopping: stopping_feed,
        };
        let logs = logs.clone();
        tokio::spawn(async move {
            listeners::run(&listener_manifest, names, identifier, logs, feeds).await
        });
    }
    let notifier = Arc::new(Notifier::start(
        settings.notify.clone(),
        Arc::new(EngineCommands(engine.clone())),
        Arc::new(|problem: String| say(&problem)),
    ));
    let recorder = {
        let notifier = notifier.clone();
        recorder::spawn(engine.clone(), history.clone(), move |event| {
            notifier.observe(event)
        })
    };
    let shutdown = Arc::new(Notify::new());
    let exit_code = Arc::new(std::sync::atomic::AtomicI32::new(0));
    report_events(
        engine.subscribe(),
        Ending {
            services: services_meta.clone(),
            exit_with: options.exit_with.clone(),
            shutdown: shutdown.clone(),
            code: exit_code.clone(),
        },
    );

    // Queue the initial starts before the socket answers: a client that connects at once
    // (`up -d` waiting) must never see the autostart services as merely stopped.
    let initial: Vec<String> = if options.services.is_empty() {
        autostart
    } else {
        options.services.clone()
    };
    engine.start_initial(options.services).await?;
    if let Some(manager) = &manager {
        tell_manager_when_settled(manager.clone(), engine.clone(), initial);
    }

    fs::rename(&staging, &socket)
        .with_context(|| format!("moving the socket into place at {}", socket.display()))?;
    let state = AppState {
        engine: engine.clone(),
        manifest: manifest_path,
        state_dir: state_dir.clone(),
        logs: logs.clone(),
        started: tokio::time::Instant::now(),
        started_at,
        shutdown: shutdown.clone(),
        services: services_meta,
        history: history.clone(),
        http_listen: remote.as_ref().map(|l| l.local_addr()),
        rpc: rpc.clone(),
    };
    // Autoscale follows the CPU samples, so it looks as often as they are taken; without
    // sampling (validation refuses `autoscale` then) it has nothing to read.
    if let Some(every) = settings.sample_every {
        let live = api::autoscale::Live {
            state: state.clone(),
            changes: state.services.changes(),
        };
        tokio::spawn(api::autoscale::run(live, every));
    }
    let rpc_state = rpc;
    let reload_state = state.clone();
    // Both servers end on this: a watch, so neither can miss the moment.
    let (closing, closed) = tokio::sync::watch::channel(false);
    let until_closed = move || {
        let mut closed = closed.clone();
        async move {
            let _ = closed.wait_for(|c| *c).await;
        }
    };
    let remote = remote.map(|listener| {
        let app = api::router(state.clone());
        let closed = until_closed();
        tokio::spawn(async move { listener.serve(app, closed).await })
    });
    let server = {
        let closed = until_closed();
        let app = api::router(state).layer(axum::middleware::from_fn(api::remote::unix_caller));
        tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<api::remote::UnixPeer>(),
            )
            .with_graceful_shutdown(closed)
            .await;
        })
    };

    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    loop {
        tokio::select! {
            _ = terminate.recv() => break say("received SIGTERM, stopping everything"),
            _ = interrupt.recv() => break say("received SIGINT, stopping everything (again to kill)"),
            _ = quit.recv() => break say("received SIGQUIT, stopping everything"),
            _ = shutdown.notified() => break say("shutdown requested, stopping everything"),
            _ = hangup.recv() => {
                // On its own task: the stops and starts take a while, and a signal to end
                // tend must be heard meanwhile. Applies queue behind one another.
                let state = reload_state.clone();
                tokio::spawn(async move { api::apply::on_hangup(&state).await });
            }
        }
    }
    // supervisorctl's calls now get SHUTDOWN_STATE, as supervisord's do while it stops, and
    // event listeners hear SUPERVISOR_STATE_CHANGE_STOPPING.
    rpc_state
        .shutting_down
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = announce_stopping.send(());
    if let Some(manager) = &manager {
        manager.stopping();
    }
    let stopping = engine.shutdown();
    tokio::pin!(stopping);
    loop {
        tokio::select! {
            _ = &mut stopping => break,
            _ = interrupt.recv() => {
                say("second interrupt: killing everything now");
                engine.kill();
            }
            _ = terminate.recv() => {
                say("second SIGTERM: killing everything now");
                engine.kill();
            }
        }
    }
    // The last events (the stops just made) reach the history and the notifier, and queued
    // notices get their chance, before anything else ends: a notification command is a child
    // of tend, and the orphan sweep below would take it for one.
    recorder.finish(std::time::Duration::from_secs(1)).await;
    match Arc::try_unwrap(notifier) {
        Ok(notifier) => notifier.close(std::time::Duration::from_secs(3)).await,
        Err(_) => say("notify: could not wait for queued notices"),
    }
    let adopted = tree::stop_adopted_orphans();
    if adopted > 0 {
        say(&format!(
            "stopped {adopted} orphaned process(es) that no service claimed"
        ));
    }
    let _ = fs::remove_file(&socket);
    let _ = fs::remove_file(state_dir.join("tend.pid"));
    let _ = fs::remove_file(state_dir.join("run.json"));
    containment.remove();
    say("stopped");
    // Let answers in flight (an `up -d` waiting for its services, a `down`) reach their
    // clients; a `logs -f` stream would never end, so the wait is bounded.
    let _ = closing.send(true);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), server).await;
    if let Some(remote) = remote {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), remote).await;
    }
    if let Some(history) = history {
        let _ =
            tokio::task::spawn_blocking(move || history.close(std::time::Duration::from_secs(2)))
                .await;
    }
    logs.close(std::time::Duration::from_secs(2)).await;
    Ok(exit_code.load(std::sync::atomic::Ordering::SeqCst))
}

/// READY=1 to the service manager once the initial services have settled (each ready, or
/// failed: tend itself is up either way, and STATUS= says which); watchdog pings from the
/// runtime thread for as long as it turns, when the manager asked for them.
fn tell_manager_when_settled(
    manager: Arc<manager::Manager>,
    engine: engine::EngineHandle,
    initial: Vec<String>,
) {
    if let Some(every) = manager.watchdog_every() {
        let manager = manager.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                manager.ping();
            }
        });
    }
    tokio::spawn(async move {
        let status = if initial.is_empty() {
            "running, nothing to autostart".to_string()
        } else {
            match engine.wait_settled(initial, true).await {
                Ok(Ok(outcomes)) => {
                    let failed = outcomes.iter().filter(|(_, o)| o.is_err()).count();
                    let up = outcomes.len() - failed;
                    match failed {
                        0 => format!("{up} instance(s) ready"),
                        _ => format!("{up} instance(s) ready, {failed} failed"),
                    }
                }
                Ok(Err(unknown)) => format!("running ({unknown})"),
                Err(_) => return,
            }
        };
        manager.ready(&status);
    });
}

/// The remote listener (tokens read, TLS loaded, port bound) and the control socket, bound
/// under its staging name with its final mode and group.
async fn prepare_listeners(
    settings: &crate::config::model::DaemonSettings,
    socket: &Path,
) -> anyhow::Result<(Option<api::remote::RemoteListener>, (UnixListener, PathBuf))> {
    // A bad tokens file is a refusal to start, not a listener that turns everyone away.
    let tokens = match &settings.http {
        Some(http) => {
            let mut tokens = match &http.tokens_file {
                Some(file) => {
                    api::tokens::Tokens::load(file).map_err(|e| anyhow::anyhow!("{e}"))?
                }
                None => api::tokens::Tokens::none(),
            };
            if let Some((user, password)) = &http.basic_auth {
                tokens = tokens.with_basic(user, password);
            }
            Some(Arc::new(tokens))
        }
        None => None,
    };
    let remote = match (&settings.http, tokens) {
        (Some(http), Some(tokens)) => {
            let listener = api::remote::bind(api::remote::RemoteSettings {
                tls: http.tls.as_ref().map(|(cert, key)| api::remote::TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                metrics_public: http.metrics_public,
                max_connections: http.max_connections,
                ..api::remote::RemoteSettings::new(http.listen, tokens)
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            say(&format!(
                "remote API listening on {}{}",
                listener.local_addr(),
                if http.tls.is_some() { " (TLS)" } else { "" }
            ));
            Some(listener)
        }
        _ => None,
    };
    let staged = stage_socket(socket, settings.socket_group.as_deref())?;
    Ok((remote, staged))
}

/// Bind the control socket with mode 0600 from the start (no window where it is wider).
/// The socket is bound under a neighbouring name and renamed into place once it listens:
/// the path then exists only while connections are accepted, so a client that sees the
/// file is never refused.
fn stage_socket(socket: &Path, group: Option<&str>) -> anyhow::Result<(UnixListener, PathBuf)> {
    // One character longer at most: socket paths are limited to 107 bytes.
    let mut staging = socket.as_os_str().to_owned();
    staging.push("~");
    let staging = PathBuf::from(staging);
    // Both names are replaced when moving into place: never a file that is not a socket
    // (a mistyped `socket =` must not destroy someone's data).
    for path in [socket, staging.as_path()] {
        if let Ok(meta) = fs::symlink_metadata(path)
            && !meta.file_type().is_socket()
        {
            bail!(
                "refusing to use {} as the control socket: it exists and is not a socket",
                path.display()
            );
        }
    }
    let _ = fs::remove_file(&staging);
    let previous = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let listener = UnixListener::bind(&staging);
    nix::sys::stat::umask(previous);
    let listener = listener.with_context(|| format!("binding {}", staging.display()))?;
    let widened = fs::set_permissions(&staging, fs::Permissions::from_mode(0o600))
        .map_err(anyhow::Error::from)
        .and_then(|()| give_to_group(&staging, group));
    if let Err(e) = widened {
        let _ = fs::remove_file(&staging);
        return Err(e);
    }
    Ok((listener, staging))
}

/// With `socket_group`: the group owns the socket and may connect (0660).
fn give_to_group(staging: &Path, group: Option<&str>) -> anyhow::Result<()> {
    if let Some(group) = group {
        // Widened only after the group owns it: never a moment where another group can connect.
        let gid = match group.parse::<u32>() {
            Ok(id) => nix::unistd::Gid::from_raw(id),
            Err(_) => {
                nix::unistd::Group::from_name(group)
                    .ok()
                    .flatten()
                    .with_context(|| format!("socket_group: no group named `{group}`"))?
                    .gid
            }
        };
        nix::unistd::chown(staging, None, Some(gid)).with_context(|| {
            format!(
                "socket_group: giving {} to group {group} (tend must be root or a member)",
                staging.display()
            )
        })?;
        fs::set_permissions(staging, fs::Permissions::from_mode(0o660))?;
    }
    Ok(())
}

/// A previous daemon for this state dir died without stopping its children (SIGKILL, OOM,
/// power): stop whatever it left so nothing runs twice.
fn clean_up_after_crash(state_dir: &Path) {
    let Ok(bytes) = fs::read(state_dir.join("run.json")) else {
        return;
    };
    let Ok(record) = serde_json::from_slice::<RunRecord>(&bytes) else {
        return;
    };
    let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(record.pid as i32), None).is_ok()
        && fs::read_to_string(format!("/proc/{}/environ", record.pid)).is_ok()
        && record.pid != std::process::id();
    if alive && is_tend(record.pid) {
        // A live daemon that does not answer on its socket: leave it alone, it is not ours
        // to kill; the socket check above already refused to start twice.
        return;
    }
    let found = tree::stop_survivors(&record.run_id, record.cgroup.as_deref());
    if found > 0 {
        say(&format!(
            "stopped {found} process(es) left running by a previous tend (pid {})",
            record.pid
        ));
    }
    let _ = fs::remove_file(state_dir.join("run.json"));
}

fn is_tend(pid: u32) -> bool {
    let own = fs::read_link("/proc/self/exe").ok();
    let theirs = fs::read_link(format!("/proc/{pid}/exe")).ok();
    own.is_some() && own == theirs
}

fn new_run_id() -> String {
    let mut bytes = [0u8; 8];
    if fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_err()
    {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes = ((nanos as u64) ^ ((std::process::id() as u64) << 32)).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What ends the daemon besides a signal or `tend down`.
struct Ending {
    /// The supervised services as they are now (`critical` among them: `tend apply` may
    /// change it).
    services: Arc<api::ServiceList>,
    exit_with: Option<String>,
    shutdown: Arc<Notify>,
    code: Arc<std::sync::atomic::AtomicI32>,
}

impl Ending {
    fn is_critical(&self, service: &str) -> bool {
        self.services
            .current()
            .iter()
            .any(|s| s.name == service && s.critical)
    }

    fn end(&self, code: i32, why: String) {
        say(&why);
        self.code.store(code, std::sync::atomic::Ordering::SeqCst);
        self.shutdown.notify_one();
    }
}

/// tend's own log: state changes with reasons, to stderr (a file when detached); and the
/// ends that events decide (a critical service gone fatal, the `--exit-with` service done).
fn report_events(
    mut events: tokio::sync::broadcast::Receiver<crate::engine::event::Event>,
    ending: Ending,
) {
    tokio::spawn(async move {
        let mut last_exit: Option<crate::engine::lifecycle::ExitStatus> = None;
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let EventKind::Exited { status, .. } = &event.kind
                        && ending.exit_with.as_deref() == Some(event.service.as_str())
                    {
                        last_exit = Some(*status);
                    }
                    if let EventKind::ProbeChanged {
                        role,
                        passing,
                        detail,
                    } = &event.kind
                    {
                        let verdict = if *passing { "passing" } else { "failing" };
                        say(&format!("{}: {role} {verdict} ({detail})", event.instance));
                    }
                    if let EventKind::StateChanged { from, to, reason } = &event.kind {
                        if reason.is_empty() {
                            say(&format!("{}: {from} -> {to}", event.instance));
                        } else {
                            say(&format!("{}: {from} -> {to} ({reason})", event.instance));
                        }
                        if *to == "fatal" && ending.is_critical(&event.service) {
                            ending.end(
                                1,
                                format!(
                                    "{}: critical service failed for good; stopping everything",
                                    event.instance
                                ),
                            );
                        }
                        if matches!(*to, "exited" | "fatal")
                            && ending.exit_with.as_deref() == Some(event.service.as_str())
                        {
                            let code = last_exit.map_or(1, |status| status.shell_code());
                            ending.end(
                                code,
                                format!(
                                    "{}: ended ({to}); stopping everything and exiting with {code}",
                                    event.instance
                                ),
                            );
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    say(&format!("({n} events not shown)"))
                }
                Err(_) => return,
            }
        }
    });
}

/// Notification commands run through the engine's spawner, like every other child.
struct EngineCommands(engine::EngineHandle);

impl CommandRunner for EngineCommands {
    fn run(
        &self,
        command: &str,
        env: Vec<(String, String)>,
        timeout: std::time::Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<i32, String>> + Send>> {
        let engine = self.0.clone();
        let command = command.to_string();
        Box::pin(async move {
            use crate::engine::spawn::RunOnceError;
            engine
                .run_command(&command, env, timeout)
                .await
                .map_err(|e| match e {
                    RunOnceError::Spawn(e) => e,
                    RunOnceError::Lost => "lost track of the command".into(),
                    RunOnceError::TimedOut => format!(
                        "timed out after {}",
                        crate::engine::lifecycle::human(timeout)
                    ),
                })
        })
    }
}
