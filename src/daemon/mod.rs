//! The composition root: turns a manifest into a running daemon (state dir, leftovers of a
//! crashed run, containment, logs, engine, control socket, signals) and shuts it down in order.
//! Only `main`/`cli` call into it.

use std::fs;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;

mod handover;
mod manager;
mod sockets;
mod upgrade;

pub use upgrade::take_over as take_over_from_handover;

/// What `tend upgrade-check` prints: the handover versions this binary reads.
pub fn upgrade_check_line() -> String {
    format!("{} {}", handover::CHECK_WORD, handover::VERSION)
}

use crate::api::{self, AppState};
use crate::config::model::Manifest;
use crate::engine::event::EventKind;
use crate::engine::spawn::{ProcessTable, Spawner};
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
    overrides: api::scale::Overrides,
) -> api::xmlrpc::Rpc {
    let names = names.unwrap_or_default();
    let active = api::xmlrpc::Config {
        manifest: manifest.clone(),
        names: given_names(&names),
        overrides,
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
    launch(
        Start::Fresh {
            options: Box::new(options),
            launched: launch_path(),
        },
        SystemTime::now(),
    )
}

/// The new image of an upgrade, once it has read the handover and the manifest. Until the
/// engine has taken the instances over, a failure executes the previous binary again.
fn resume(options: DaemonOptions, resumed: upgrade::Resumed) -> anyhow::Result<i32> {
    let started_at =
        SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(resumed.handover.started_at_ms);
    let fallback = resumed.fallback.clone();
    let failed_before = resumed.failed.is_some();
    let committed = resumed.committed.clone();
    let result = launch(
        Start::Resumed {
            options: Box::new(options),
            resumed: Box::new(resumed),
        },
        started_at,
    );
    match result {
        Err(e) if !committed.load(std::sync::atomic::Ordering::SeqCst) => {
            // Every thread that used the handover is gone; what it named is still open here
            // (this image used copies), for the previous binary to take.
            Err(anyhow::anyhow!(
                "upgrade: {}",
                fallback.run(&format!("{e:#}"), failed_before)
            ))
        }
        other => other,
    }
}

/// How this image of the daemon came to be.
enum Start {
    Fresh {
        options: Box<DaemonOptions>,
        launched: PathBuf,
    },
    /// An upgrade: everything is taken over from the previous image.
    Resumed {
        options: Box<DaemonOptions>,
        resumed: Box<upgrade::Resumed>,
    },
}

/// The binary tend was started from, as the path to execute for `tend upgrade`: argv[0]
/// found the way the shell found it (so `/usr/local/bin/tend`, a link, goes on naming
/// whatever it points to after a new version is installed), else the running file.
pub fn launch_path() -> PathBuf {
    let running = || fs::read_link("/proc/self/exe").unwrap_or_else(|_| PathBuf::from("tend"));
    let Some(arg0) = std::env::args_os().next().map(PathBuf::from) else {
        return running();
    };
    if arg0.as_os_str().as_encoded_bytes().contains(&b'/') {
        return std::path::absolute(&arg0).unwrap_or(arg0);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(&arg0))
        .find(|candidate| {
            fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .and_then(|found| std::path::absolute(found).ok())
        .unwrap_or_else(running)
}

/// The main thread forks every child and is the one that executes a new image in an
/// upgrade (see `engine::spawn`): it serves the spawner for as long as tend runs, while the
/// engine runs on a thread of its own.
fn launch(start: Start, started_at: SystemTime) -> anyhow::Result<i32> {
    // One malloc arena: a supervisor allocates little, and per-thread arenas would each keep
    // their own high-water mark resident.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    // A log file at the file-size limit (RLIMIT_FSIZE, set by a container or a shell) must be
    // a write that fails with EFBIG, counted as lost like a full disk, not a SIGXFSZ that ends
    // tend and, through PDEATHSIG, every child. Children get the default back before exec.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    // Before any other thread exists, so that every one inherits it.
    engine::spawn::route_child_exits_to_the_reaper();
    let manifest = match &start {
        Start::Fresh { options, .. } | Start::Resumed { options, .. } => &options.manifest,
    };
    // The limits first: `min_fds` may raise the bound of the table reserved next.
    raise_limits(&manifest.daemon)?;
    // Before any other thread exists: then the table grows without waiting (see there).
    let instances = manifest
        .services
        .iter()
        .map(|s| s.instances.max(s.autoscale.as_ref().map_or(0, |a| a.max)) as usize)
        .sum();
    engine::spawn::reserve_descriptors(instances);
    // One thread runs the whole engine: its work is tiny reactions to exits, commands and
    // deadlines, so a single thread keeps memory small and latency low (no hand-offs between
    // workers). Anything slow (fork, disk) runs on dedicated threads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let (spawner, forker) = Spawner::on_this_thread(ProcessTable::default());
    let engine = std::thread::Builder::new()
        .name("tend-engine".into())
        // As much as the main thread had when the engine ran there (virtual: only what is
        // touched is resident).
        .stack_size(8 << 20)
        .spawn(move || {
            let done = spawner.clone();
            let result = runtime.block_on(serve(start, started_at, spawner));
            done.finish();
            result
        })
        .context("starting the engine thread")?;
    forker.run();
    engine
        .join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the engine thread panicked")))
}

/// What the previous image handed over, taken: copies of its descriptors (the originals
/// stay open for a fallback until [`upgrade::Resumed::commit`]).
struct TakenOver {
    resumed: Box<upgrade::Resumed>,
    sockets: Option<engine::sockets::SocketSet>,
    control: Option<UnixListener>,
    remote: Option<OwnedFd>,
    notify: Option<engine::notify::NotifySocket>,
    /// Each capture's pipes: (service, index, stdout, stderr), read only after the commit.
    pipes: Vec<(String, u32, Option<OwnedFd>, Option<OwnedFd>)>,
}

/// Take the previous image's sockets: `[sockets]`, the control socket, the remote API's and
/// the sd_notify socket.
fn take_over(resumed: Box<upgrade::Resumed>, manifest: &Manifest) -> anyhow::Result<TakenOver> {
    let handover = &resumed.handover;
    let mut set = engine::sockets::SocketSet::default();
    for given in &handover.sockets {
        let spec = manifest
            .sockets
            .iter()
            .find(|s| s.name == given.name)
            .with_context(|| format!("socket `{}` is not in the manifest", given.name))?;
        set.sockets.push(engine::sockets::BoundSocket {
            spec: spec.clone(),
            fd: Arc::new(
                resumed
                    .descriptor(given.fd)
                    .with_context(|| format!("taking socket `{}`", given.name))?,
            ),
            address: given.address.clone(),
            file: given.file,
        });
    }
    let control = resumed
        .descriptor(handover.control_socket.fd)
        .context("taking the control socket")?;
    let control = std::os::unix::net::UnixListener::from(control);
    control.set_nonblocking(true)?;
    let control = UnixListener::from_std(control)?;
    let remote = match handover.remote_listener {
        Some(fd) => Some(
            resumed
                .descriptor(fd)
                .context("taking the remote API's socket")?,
        ),
        None => None,
    };
    let notify = engine::notify::NotifySocket::adopt(
        resumed
            .descriptor(handover.notify_socket.fd)
            .context("taking the sd_notify socket")?,
        &handover.notify_socket.path,
    )?;
    let mut pipes = Vec::new();
    for capture in &handover.pipes {
        let take = |fd: Option<RawFd>| -> anyhow::Result<Option<OwnedFd>> {
            fd.map(|fd| resumed.descriptor(fd))
                .transpose()
                .with_context(|| format!("taking {}'s output pipes", capture.instance))
        };
        pipes.push((
            capture.service.clone(),
            capture.index,
            take(capture.stdout)?,
            take(capture.stderr)?,
        ));
    }
    Ok(TakenOver {
        resumed,
        sockets: Some(set),
        control: Some(control),
        remote,
        notify: Some(notify),
        pipes,
    })
}

/// Each instance's log as the previous image left it: tail, counters, unfinished lines.
/// After the point of no return, like the pipes: an unfinished line this image's writer
/// flushed would be written twice if the previous binary took over again.
fn take_over_logs(manifest: &Manifest, logs: &LogSink, resumed: &upgrade::Resumed) {
    for log in &resumed.handover.logs {
        if let Some(spec) = manifest.service(&log.service) {
            logs.seed(spec, log.state());
        }
    }
}

/// Read the pipes the previous image was reading, from where it stopped: only once the
/// upgrade cannot fall back any more, since a byte read here is this image's to write.
fn take_over_pipes(manifest: &Manifest, logs: &LogSink, taken: &mut TakenOver) {
    for (service, index, stdout, stderr) in taken.pipes.drain(..) {
        match manifest.service(&service) {
            Some(spec) => logs.recapture(spec, index, stdout, stderr),
            // Not supervised any more: closing the pipe is all there is to do.
            None => drop((stdout, stderr)),
        }
    }
}

/// The remote API's listener, from the previous image's socket (tokens and TLS read again).
async fn take_over_listeners(
    settings: &crate::config::model::DaemonSettings,
    taken: &mut TakenOver,
) -> anyhow::Result<(
    Option<api::remote::RemoteListener>,
    UnixListener,
    Option<PathBuf>,
)> {
    let control = taken
        .control
        .take()
        .context("the control socket was taken already")?;
    let remote = match (taken.remote.take(), remote_settings(settings)?) {
        (Some(fd), Some(remote)) => Some(
            api::remote::adopt(remote, fd)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        ),
        _ => None,
    };
    Ok((remote, control, None))
}

async fn serve(start: Start, started_at: SystemTime, spawner: Spawner) -> anyhow::Result<i32> {
    // Every signal tend acts on is taken from the start: SIGHUP (`tend apply`) and SIGUSR2
    // (`tend upgrade`) sent while tend starts are acted on once it runs instead of ending
    // it (their default action). After an upgrade, the signals that came during the exec
    // were held for this image: they are taken now that their handlers are in place.
    let mut hangup = signal(SignalKind::hangup())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    upgrade::take_held_signals();
    let (options, launched, mut taken) = match start {
        Start::Fresh { options, launched } => (*options, launched, None),
        Start::Resumed { options, resumed } => {
            let launched = resumed.handover.launched.clone();
            let taken = take_over(resumed, &options.manifest)?;
            (*options, launched, Some(taken))
        }
    };
    let manifest = options.manifest;
    let manager = manager::Manager::from_env().map(Arc::new);
    let state_dir = manifest.daemon.state_dir.clone();
    fs::create_dir_all(&state_dir)
        .with_context(|| format!("creating state dir {}", state_dir.display()))?;
    let socket = manifest.daemon.socket.clone();
    if let Some(dir) = socket.parent() {
        fs::create_dir_all(dir)
            .with_context(|| format!("creating the socket's directory {}", dir.display()))?;
    }
    if taken.is_none() {
        if tokio::net::UnixStream::connect(&socket).await.is_ok() {
            let pid = fs::read_to_string(state_dir.join("tend.pid")).unwrap_or_default();
            bail!(
                "tend is already running for this manifest (pid {}); use `tend start` or `tend down`",
                pid.trim()
            );
        }
        clean_up_after_crash(&state_dir);
    }
    // Bound once a crashed run's children are stopped (they may still hold them), and before
    // any service starts or the control socket answers: a socket tend cannot have is a
    // refusal to start, naming it. After an upgrade, the very sockets of the previous image.
    let sockets = Arc::new(match taken.as_mut().and_then(|t| t.sockets.take()) {
        Some(taken) => taken,
        None => sockets::bind_all(&manifest.sockets)?,
    });
    // Taken-over socket files are this image's to remove only once the upgrade is done: a
    // fallback to the previous binary still needs them.
    let mut _socket_files = taken.is_none().then(|| sockets::Cleanup(sockets.clone()));

    if std::process::id() != 1 {
        // Orphans of our children are re-parented to us, so escaped descendants stay findable
        // and get reaped.
        let _ = nix::sys::prctl::set_child_subreaper(true);
    }
    let containment = Arc::new(match &taken {
        Some(taken) => Containment::resume(
            taken.resumed.handover.cgroup_root.clone(),
            taken.resumed.handover.run_id.clone(),
        ),
        None => Containment::detect(manifest.daemon.cgroups, new_run_id()),
    });
    let record = RunRecord {
        pid: std::process::id(),
        run_id: containment.run_id().to_string(),
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
    if taken.is_none() {
        for socket in &sockets.sockets {
            say(&format!(
                "socket {} listening on {}",
                socket.spec.name, socket.address
            ));
        }
    }
    let manifest_path = manifest.path.clone();
    let services_meta = Arc::new(api::ServiceList::new(&manifest));
    // The pools of supervisord event listeners: always there, since a listener may be added
    // while tend runs; without listeners their task only follows engine events.
    let (listener_io, listener_pipes) = tokio::sync::mpsc::unbounded_channel();
    let (remote_events, remote_feed) = tokio::sync::mpsc::unbounded_channel();
    let (announce_stopping, stopping_feed) = tokio::sync::oneshot::channel();
    let overrides = taken
        .as_ref()
        .map(|taken| taken.resumed.overrides.clone())
        .unwrap_or_default();
    services_meta.replace(&manifest, &overrides);
    let rpc = Arc::new(
        supervisor_rpc(
            &manifest,
            options.supervisor,
            options.reading.clone(),
            overrides,
        )
        .with_remote_events(remote_events),
    );
    let settings = manifest.daemon.clone();
    // Everything that can refuse to start is done before any service starts: a bad tokens
    // file, a listener or a socket that cannot be set up leave nothing running behind.
    let prepared = match taken.as_mut() {
        Some(taken) => take_over_listeners(&settings, taken).await,
        None => prepare_listeners(&settings, &socket)
            .await
            .map(|(remote, (listener, staging))| (remote, listener, Some(staging))),
    };
    let (remote, listener, staging) = match prepared {
        Ok(ready) => ready,
        Err(e) => {
            if taken.is_none() {
                let _ = fs::remove_file(state_dir.join("tend.pid"));
                let _ = fs::remove_file(state_dir.join("run.json"));
                containment.remove();
            }
            return Err(e);
        }
    };
    // Second descriptors of the listening sockets, for an upgrade to hand over while these
    // serve on.
    let control_fd = listener
        .as_fd()
        .try_clone_to_owned()
        .context("duplicating the control socket")?;
    let remote_fd = match &remote {
        Some(remote) => Some(
            remote
                .listening_fd()
                .context("duplicating the remote API's socket")?,
        ),
        None => None,
    };
    // Returns at once: the history's own thread opens and checks the file while the
    // services start, and queues what happens meanwhile.
    let history = settings.history.enabled.then(|| {
        let options = HistoryOptions {
            retention: settings.history.retention,
            ..HistoryOptions::new(state_dir.join("tend.db"))
        };
        History::open(options, |problem: String| {
            say(&format!("history: {problem}"))
        })
    });
    let listener_manifest = manifest.clone();
    let autostart: Vec<String> = manifest
        .services
        .iter()
        .filter(|s| s.autostart)
        .map(|s| s.name.clone())
        .collect();
    let session = upgrade_session(
        &manifest,
        &options.reading,
        options.console,
        options.colour,
        &options.exit_with,
    );
    let engine = engine::start(
        manifest,
        EngineOptions {
            containment: containment.clone(),
            logs: logs.clone(),
            notify_socket: state_dir.join("notify.sock"),
            listener_io: Some(listener_io),
            sockets: sockets.clone(),
            clock: None,
            spawner: Some(spawner),
            notify: taken.as_mut().and_then(|taken| taken.notify.take()),
            adoption: taken.as_ref().map(|taken| taken.resumed.handover.frozen()),
        },
    )?;
    // The point of no return of an upgrade: the engine follows the handed-over processes.
    let upgrade_record = match taken.as_mut() {
        Some(taken) => {
            taken.resumed.commit();
            take_over_logs(&listener_manifest, &logs, &taken.resumed);
            take_over_pipes(&listener_manifest, &logs, taken);
            _socket_files = Some(sockets::Cleanup(sockets.clone()));
            engine.notify_socket().own_file();
            say_taken_over(&taken.resumed);
            taken.resumed.record()
        }
        None => Default::default(),
    };
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

    if taken.is_none() {
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
    } else if let Some(manager) = &manager {
        // The pid the manager knows is the same; its watchdog pings go on from this image.
        ping_watchdog(manager.clone());
        manager.ready("upgraded in place");
    }

    if let Some(staging) = staging {
        fs::rename(&staging, &socket)
            .with_context(|| format!("moving the socket into place at {}", socket.display()))?;
    }
    let (upgrade_requests, mut upgrade_inbox) = tokio::sync::mpsc::unbounded_channel();
    let state = AppState {
        engine: engine.clone(),
        manifest: manifest_path,
        state_dir: state_dir.clone(),
        logs: logs.clone(),
        started: started_instant(started_at),
        started_at,
        shutdown: shutdown.clone(),
        services: services_meta,
        history: history.clone(),
        http_listen: remote.as_ref().map(|l| l.local_addr()),
        rpc: rpc.clone(),
        upgrades: Arc::new(api::upgrade::Upgrades::new(
            upgrade_requests,
            upgrade_record,
        )),
    };
    if let Some(taken) = &taken {
        let (ok, text) = match &taken.resumed.failed {
            None => (
                true,
                format!("taken over by tend {}", env!("CARGO_PKG_VERSION")),
            ),
            Some(why) => (false, format!("the new binary did not take over: {why}")),
        };
        api::upgrade::audit(&state, upgrade_caller(), ok, text);
    }
    let upgrader = upgrade::Upgrader {
        state: state.clone(),
        control: control_fd,
        control_path: socket.clone(),
        remote: remote_fd,
        containment: containment.clone(),
        session,
        launched,
    };
    drop(taken);
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

    loop {
        let upgrade = tokio::select! {
            _ = terminate.recv() => break say("received SIGTERM, stopping everything"),
            _ = interrupt.recv() => break say("received SIGINT, stopping everything (again to kill)"),
            _ = quit.recv() => break say("received SIGQUIT, stopping everything"),
            _ = shutdown.notified() => break say("shutdown requested, stopping everything"),
            _ = hangup.recv() => {
                // On its own task: the stops and starts take a while, and a signal to end
                // tend must be heard meanwhile. Applies queue behind one another.
                let state = reload_state.clone();
                tokio::spawn(async move { api::apply::on_hangup(&state).await });
                continue;
            }
            _ = usr2.recv() => {
                say("SIGUSR2: upgrading tend in place");
                (None, upgrade_caller(), None)
            }
            Some(request) = upgrade_inbox.recv() => (request.binary, request.caller, Some(request.refused)),
        };
        // Here, not on a task of its own: the signals are looked at before the exec, and
        // whatever else the loop would do waits for the upgrade's outcome.
        let (binary, caller, refused) = upgrade;
        let mut signals = upgrade::Signals {
            terminate: &mut terminate,
            interrupt: &mut interrupt,
            quit: &mut quit,
            hangup: &mut hangup,
            shutdown: &shutdown,
        };
        let ended = upgrader.attempt(binary, &caller, &mut signals).await;
        let message = ended.refusal.message().to_string();
        say(&format!("upgrade: not upgraded: {message}"));
        api::upgrade::audit(&reload_state, caller, false, message);
        if let Some(refused) = refused {
            let _ = refused.send(ended.refusal);
        }
        match ended.interrupted {
            Some(upgrade::Interruption::Stop(why)) => break say(why),
            Some(upgrade::Interruption::Apply) => {
                let state = reload_state.clone();
                tokio::spawn(async move { api::apply::on_hangup(&state).await });
            }
            None => {}
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
    ping_watchdog(manager.clone());
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

/// Watchdog pings from the runtime thread for as long as it turns, when the manager asked
/// for them.
fn ping_watchdog(manager: Arc<manager::Manager>) {
    if let Some(every) = manager.watchdog_every() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                manager.ping();
            }
        });
    }
}

/// The remote listener (tokens read, TLS loaded, port bound) and the control socket, bound
/// under its staging name with its final mode and group.
async fn prepare_listeners(
    settings: &crate::config::model::DaemonSettings,
    socket: &Path,
) -> anyhow::Result<(Option<api::remote::RemoteListener>, (UnixListener, PathBuf))> {
    let remote = match remote_settings(settings)? {
        Some(remote) => {
            let tls = remote.tls.is_some();
            let listener = api::remote::bind(remote)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            say(&format!(
                "remote API listening on {}{}",
                listener.local_addr(),
                if tls { " (TLS)" } else { "" }
            ));
            Some(listener)
        }
        None => None,
    };
    let staged = stage_socket(socket, settings.socket_group.as_deref())?;
    Ok((remote, staged))
}

/// The remote API's settings, tokens read: a bad tokens file is a refusal to start, not a
/// listener that turns everyone away.
fn remote_settings(
    settings: &crate::config::model::DaemonSettings,
) -> anyhow::Result<Option<api::remote::RemoteSettings>> {
    let Some(http) = &settings.http else {
        return Ok(None);
    };
    let mut tokens = match &http.tokens_file {
        Some(file) => api::tokens::Tokens::load(file).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => api::tokens::Tokens::none(),
    };
    if let Some((user, password)) = &http.basic_auth {
        tokens = tokens.with_basic(user, password);
    }
    Ok(Some(api::remote::RemoteSettings {
        tls: http.tls.as_ref().map(|(cert, key)| api::remote::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        metrics_public: http.metrics_public,
        max_connections: http.max_connections,
        ..api::remote::RemoteSettings::new(http.listen, Arc::new(tokens))
    }))
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

/// How the daemon was started, as an upgrade hands it on.
fn upgrade_session(
    manifest: &Manifest,
    reading: &import::Reading,
    console: bool,
    colour: bool,
    exit_with: &Option<String>,
) -> handover::Session {
    handover::Session {
        manifest: manifest.path.clone(),
        source: reading
            .source
            .unwrap_or_else(|| import::Source::detect(&manifest.path))
            .to_string(),
        environment: reading.environment.clone(),
        console,
        colour,
        exit_with: exit_with.clone(),
        socket: reading.socket.clone(),
    }
}

/// Who asks for an upgrade by signal, in the audit.
fn upgrade_caller() -> api::Caller {
    api::Caller {
        origin: "signal".into(),
        who: "SIGUSR2".into(),
        role: api::Role::Operate,
    }
}

/// The instant tend started, on tokio's clock: its uptime goes on across upgrades.
fn started_instant(started_at: SystemTime) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    let up = SystemTime::now()
        .duration_since(started_at)
        .unwrap_or_default();
    now.checked_sub(up).unwrap_or(now)
}

/// tend's own log on taking over: from what, and what.
fn say_taken_over(resumed: &upgrade::Resumed) {
    let handover = &resumed.handover;
    let running = handover
        .instances
        .iter()
        .filter(|i| matches!(i.state, handover::State::Running { .. }))
        .count();
    let what = format!(
        "{} instance(s), {running} running, and {} socket(s)",
        handover.instances.len(),
        handover.sockets.len()
    );
    match &resumed.failed {
        None => say(&format!(
            "upgraded in place from tend {} to {} (pid {} kept): took over {what}",
            handover.from_version,
            env!("CARGO_PKG_VERSION"),
            std::process::id()
        )),
        Some(why) => say(&format!(
            "upgrade: {} could not take over ({why}); tend {} took over again: {what}",
            handover.binary.display(),
            env!("CARGO_PKG_VERSION")
        )),
    }
}
