//! `tend upgrade` (and SIGUSR2), from both sides of the exec.
//!
//! The old image checks the candidate binary (`BINARY upgrade-check` must list this
//! [`handover::VERSION`]), checks that the manifest file says what runs (the new image reads
//! it), freezes the engine and log capture, writes the [`Handover`] and executes the binary
//! on the fork thread, which is the parent of every child. Anything that fails up to and
//! including the exec thaws everything and says why; the services never notice.
//!
//! The new image reads the handover and the manifest before anything else; when it cannot,
//! it executes the previous binary again (kept open across the exec) with the same handover,
//! and that one takes over, saying why. Past the point where the engine has taken the
//! instances over, a failure ends tend like a crash, and its children with it (their
//! PR_SET_PDEATHSIG): never an orphan.

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::signal::unix::Signal;
use tokio::sync::Notify;

use super::handover::{self, Handover};
use super::{DaemonOptions, say};
use crate::api::upgrade::{Refusal, UpgradeOutcome, UpgradeRecord};
use crate::api::{AppState, Caller};
use crate::engine::spawn::{ExecImage, ExecProgram, RunOnceError};
use crate::engine::tree::Containment;
use crate::import;
use crate::logs::ParkedPipes;

/// How long the candidate's `upgrade-check` may take: a busy machine starts a binary slowly.
const CHECK_TIMEOUT: Duration = Duration::from_secs(20);
/// How long an upgrade waits for the engine to be still (no start, stop or reload under
/// way) before it is refused, and how often it looks.
const QUIET_WITHIN: Duration = Duration::from_secs(10);
const QUIET_LOOK: Duration = Duration::from_millis(50);
/// How long the log readers may take to park.
const LOG_PAUSE: Duration = Duration::from_secs(5);
/// Blocked by the thread that executes the new image: a signal sent in the gap stays
/// pending, and the new image takes it once its handlers are in place, instead of the
/// default action ending tend.
pub const HELD_SIGNALS: [i32; 5] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGHUP,
    libc::SIGUSR2,
];

/// What the old image needs to hand everything over.
pub(super) struct Upgrader {
    pub state: AppState,
    /// Second descriptors of the listening sockets that serve on meanwhile.
    pub control: OwnedFd,
    pub control_path: PathBuf,
    pub remote: Option<OwnedFd>,
    pub containment: Arc<Containment>,
    pub session: handover::Session,
    /// The binary tend was started from: what `tend upgrade` executes by default.
    pub launched: PathBuf,
}

/// The signals (and `tend down`) that would end or change tend while an upgrade is under way.
pub(super) struct Signals<'a> {
    pub terminate: &'a mut Signal,
    pub interrupt: &'a mut Signal,
    pub quit: &'a mut Signal,
    pub hangup: &'a mut Signal,
    pub shutdown: &'a Notify,
}

/// A signal or a `tend down` that came during an upgrade, before the exec: the upgrade is
/// given up, and the daemon does what was asked.
pub(super) enum Interruption {
    Stop(&'static str),
    Apply,
}

/// How an upgrade that did not happen ended.
pub(super) struct NotUpgraded {
    pub refusal: Refusal,
    pub interrupted: Option<Interruption>,
}

impl From<Refusal> for NotUpgraded {
    fn from(refusal: Refusal) -> Self {
        NotUpgraded {
            refusal,
            interrupted: None,
        }
    }
}

impl Signals<'_> {
    /// A signal already received (not yet acted on), without waiting.
    async fn pending(&mut self) -> Option<Interruption> {
        let now = Duration::ZERO;
        if tokio::time::timeout(now, self.terminate.recv())
            .await
            .is_ok()
        {
            return Some(Interruption::Stop("received SIGTERM, stopping everything"));
        }
        if tokio::time::timeout(now, self.interrupt.recv())
            .await
            .is_ok()
        {
            return Some(Interruption::Stop(
                "received SIGINT, stopping everything (again to kill)",
            ));
        }
        if tokio::time::timeout(now, self.quit.recv()).await.is_ok() {
            return Some(Interruption::Stop("received SIGQUIT, stopping everything"));
        }
        if tokio::time::timeout(now, self.shutdown.notified())
            .await
            .is_ok()
        {
            return Some(Interruption::Stop(
                "shutdown requested, stopping everything",
            ));
        }
        if tokio::time::timeout(now, self.hangup.recv()).await.is_ok() {
            return Some(Interruption::Apply);
        }
        None
    }
}

/// What was frozen, to thaw when the upgrade does not happen.
struct Frozen<'a> {
    state: &'a AppState,
    pipes: Vec<ParkedPipes>,
}

impl Frozen<'_> {
    fn thaw(self) {
        self.state.logs.resume(self.pipes);
        self.state.engine.thaw();
    }
}

impl Upgrader {
    /// Execute `binary` (by default the one tend was started from) in place of this image,
    /// handing everything over. Returns only when that did not happen; everything then runs
    /// on as before.
    pub async fn attempt(
        &self,
        binary: Option<PathBuf>,
        caller: &Caller,
        signals: &mut Signals<'_>,
    ) -> NotUpgraded {
        let binary = binary.unwrap_or_else(|| self.launched.clone());
        say(&format!("upgrade: checking {}", binary.display()));
        if let Err(why) = check(&self.state, &binary, &self.session).await {
            return Refusal::Binary(why).into();
        }
        // Held until the exec: no apply, scale or supervisorctl change comes in between.
        let configs = self.state.rpc.configs().await;
        if let Err(why) = crate::api::apply::matches_file(&self.state, &configs.active) {
            return Refusal::Busy(why).into();
        }
        let engine = match freeze_when_quiet(&self.state).await {
            Ok(frozen) => frozen,
            Err(why) => return Refusal::Busy(why).into(),
        };
        let paused = match self.state.logs.pause(LOG_PAUSE).await {
            Ok(paused) => paused,
            Err(why) => {
                self.state.engine.thaw();
                return Refusal::Failed(why).into();
            }
        };
        let logs: Vec<handover::Log> = paused.logs.iter().map(handover::Log::of).collect();
        let frozen = Frozen {
            state: &self.state,
            pipes: paused.pipes,
        };
        let previous_exe = match open_own_binary() {
            Ok(fd) => fd,
            Err(e) => {
                frozen.thaw();
                return Refusal::Failed(format!("opening tend's own binary: {e}")).into();
            }
        };
        let record = self.state.upgrades.record();
        let number = record.last.as_ref().map_or(1, |last| last.number + 1);
        let handover = Handover {
            version: handover::VERSION,
            from_version: env!("CARGO_PKG_VERSION").into(),
            binary: binary.clone(),
            launched: self.launched.clone(),
            previous_exe: previous_exe.as_raw_fd(),
            argv: std::env::args_os()
                .map(|a| handover::Text::of(a.as_bytes()))
                .collect(),
            env: std::env::vars_os()
                .map(|(k, v)| {
                    let mut entry = k.into_vec();
                    entry.push(b'=');
                    entry.extend_from_slice(v.as_bytes());
                    handover::Text::of(&entry)
                })
                .collect(),
            started_at_ms: handover_ms(self.state.started_at),
            upgrades: record.upgrades,
            attempt: number,
            session: self.session.clone(),
            scaled: scaled_counts(&configs.active),
            run_id: self.containment.run_id().to_string(),
            cgroup_root: self.containment.cgroup_root().map(Path::to_path_buf),
            control_socket: handover::Endpoint {
                fd: self.control.as_raw_fd(),
                path: self.control_path.clone(),
            },
            remote_listener: self.remote.as_ref().map(AsRawFd::as_raw_fd),
            notify_socket: handover::Endpoint {
                fd: self.state.engine.notify_socket().raw_fd(),
                path: self.state.engine.notify_socket().path().to_path_buf(),
            },
            sockets: self
                .state
                .engine
                .sockets()
                .sockets
                .iter()
                .map(|s| handover::Socket {
                    name: s.spec.name.clone(),
                    fd: s.fd.as_raw_fd(),
                    address: s.address.clone(),
                    file: s.file,
                })
                .collect(),
            instances: engine
                .instances
                .iter()
                .map(handover::Instance::of)
                .collect(),
            dependencies: handover::Dependencies {
                held: engine.held,
                restart_on_return: engine.restart_on_return,
                ready: engine.dependency_ready,
            },
            logs,
            pipes: frozen
                .pipes
                .iter()
                .map(|parked| handover::Pipes {
                    instance: parked.log.name.to_string(),
                    service: parked.log.service.clone(),
                    index: parked.log.index,
                    stdout: parked.stdout.as_ref().map(AsRawFd::as_raw_fd),
                    stderr: parked.stderr.as_ref().map(AsRawFd::as_raw_fd),
                })
                .collect(),
        };
        let memfd = match handover.write() {
            Ok(fd) => fd,
            Err(e) => {
                frozen.thaw();
                return Refusal::Failed(format!("writing the handover: {e}")).into();
            }
        };
        let mut image = match image_of(
            ExecProgram::Path(c_path(&binary)),
            &[(
                handover::ENV,
                format!("{},{}", memfd.as_raw_fd(), previous_exe.as_raw_fd()),
            )],
        ) {
            Ok(image) => image,
            Err(e) => {
                frozen.thaw();
                return Refusal::Failed(e).into();
            }
        };
        image.pass = handover.descriptors();
        image.pass.push(memfd.as_raw_fd());
        let instances = handover.instances.len();
        say(&format!(
            "upgrade: executing {} in place (pid {} stays; {instances} instance(s) handed over)",
            binary.display(),
            std::process::id()
        ));
        crate::api::upgrade::audit(
            &self.state,
            caller.clone(),
            true,
            format!(
                "executing {} (the new image takes over from here)",
                binary.display()
            ),
        );
        if let Some(history) = self.state.history.clone() {
            let _ =
                tokio::task::spawn_blocking(move || history.flush(Duration::from_secs(2))).await;
        }
        // The last moment to hear a signal the old image took: after the exec it is gone.
        if let Some(interruption) = signals.pending().await {
            frozen.thaw();
            let why = match &interruption {
                Interruption::Stop(_) => "tend was asked to stop",
                Interruption::Apply => "SIGHUP asked for an apply",
            };
            return NotUpgraded {
                refusal: Refusal::Busy(format!("{why} during the upgrade")),
                interrupted: Some(interruption),
            };
        }
        self.state.logs.flush_own().await;
        let error = self.state.engine.exec(image).await;
        // Still this image: the exec failed, and nothing was lost.
        drop((memfd, previous_exe, configs));
        frozen.thaw();
        let why = format!("executing {}: {error}", binary.display());
        self.state.upgrades.failed(UpgradeOutcome {
            number,
            at: SystemTime::now(),
            binary,
            from_version: env!("CARGO_PKG_VERSION").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            ok: false,
            error: Some(why.clone()),
        });
        Refusal::Failed(why).into()
    }
}

/// Freeze the engine, waiting (bounded) for what is under way to end.
async fn freeze_when_quiet(state: &AppState) -> Result<crate::engine::handover::Frozen, String> {
    let deadline = tokio::time::Instant::now() + QUIET_WITHIN;
    loop {
        match state.engine.freeze().await {
            Ok(Ok(frozen)) => return Ok(frozen),
            Ok(Err(busy)) if tokio::time::Instant::now() >= deadline => {
                return Err(format!(
                    "{busy} (still, after {} s); try again once it is done",
                    QUIET_WITHIN.as_secs()
                ));
            }
            Ok(Err(_)) => tokio::time::sleep(QUIET_LOOK).await,
            Err(gone) => return Err(gone.to_string()),
        }
    }
}

/// Ask the candidate which handover versions it reads, and whether it reads the manifest:
/// `BINARY -c MANIFEST --from FORMAT upgrade-check` must exit 0 and print `tend-handover`
/// with this version among the ones listed.
async fn check(state: &AppState, binary: &Path, session: &handover::Session) -> Result<(), String> {
    let shown = binary.display();
    let meta = std::fs::metadata(binary).map_err(|e| format!("{shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a file"));
    }
    let mut argv = vec![
        binary.display().to_string(),
        "-c".into(),
        session.manifest.display().to_string(),
        "--from".into(),
        session.source.clone(),
    ];
    if let Some(environment) = &session.environment {
        argv.extend(["--env".into(), environment.clone()]);
    }
    argv.push("upgrade-check".into());
    let printed = state
        .engine
        .run_printing(argv, CHECK_TIMEOUT)
        .await
        .map_err(|e| match e {
            RunOnceError::Spawn(e) => format!("cannot run {shown}: {e}"),
            RunOnceError::TimedOut => format!(
                "{shown} upgrade-check did not answer within {} s",
                CHECK_TIMEOUT.as_secs()
            ),
            RunOnceError::Lost => format!("lost track of {shown} upgrade-check"),
        })?;
    let said = String::from_utf8_lossy(&printed.stdout);
    if printed.code != 0 {
        let complaint = String::from_utf8_lossy(&printed.stderr);
        let complaint = complaint.trim();
        return Err(format!(
            "{shown} upgrade-check failed (exit status {}){}",
            printed.code,
            if complaint.is_empty() {
                String::new()
            } else {
                format!(
                    ": {}",
                    complaint.lines().take(5).collect::<Vec<_>>().join(" / ")
                )
            }
        ));
    }
    let first = said.lines().next().unwrap_or_default().trim();
    let mut words = first.split_whitespace();
    let versions: Option<Vec<u32>> = match words.next() {
        Some(handover::CHECK_WORD) => words.map(|w| w.parse().ok()).collect(),
        _ => None,
    };
    match versions {
        Some(versions) if versions.contains(&handover::VERSION) => Ok(()),
        Some(versions) => Err(format!(
            "{shown} reads handover version(s) {versions:?}, and this tend writes version {}",
            handover::VERSION
        )),
        None => Err(format!(
            "{shown} upgrade-check printed `{}`, not the handover versions it reads",
            first.chars().take(80).collect::<String>()
        )),
    }
}

/// The counts set while tend runs, with what the file said then.
fn scaled_counts(active: &crate::api::xmlrpc::Config) -> Vec<handover::ScaledCount> {
    active
        .overrides
        .iter()
        .filter_map(|(name, set)| {
            let spec = active.manifest.service(name)?;
            Some(handover::ScaledCount {
                service: name.clone(),
                instances: spec.instances,
                numbered: spec.numbered,
                manifest: set.manifest,
                by: set.by.to_string(),
                reason: set.reason.clone(),
                at_ms: set.at_ms,
            })
        })
        .collect()
}

/// The binary this image runs, open: `/proc/self/exe` is that file even when its path now
/// names another (the usual way of installing a new version).
fn open_own_binary() -> std::io::Result<OwnedFd> {
    Ok(std::fs::File::open("/proc/self/exe")?.into())
}

fn handover_ms(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn c_path(path: &Path) -> CString {
    // A path from the OS has no NUL byte.
    CString::new(path.as_os_str().as_bytes()).unwrap_or_default()
}

/// This process's arguments, and its environment with `set` on top (each replacing its
/// variable): what the next image starts with.
fn image_of(program: ExecProgram, set: &[(&str, String)]) -> Result<ExecImage, String> {
    let argv = std::env::args_os()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("an argument of tend: {e}"))?;
    let mut envp = Vec::new();
    for (key, value) in std::env::vars_os() {
        if set.iter().any(|(name, _)| key == *name) {
            continue;
        }
        envp.push(env_entry(&key, &value)?);
    }
    for (key, value) in set {
        envp.push(env_entry(&OsString::from(key), &OsString::from(value))?);
    }
    Ok(ExecImage {
        program,
        argv,
        envp,
        hold_signals: HELD_SIGNALS.to_vec(),
        pass: Vec::new(),
    })
}

fn env_entry(key: &OsString, value: &OsString) -> Result<CString, String> {
    let mut entry = key.as_bytes().to_vec();
    entry.push(b'=');
    entry.extend_from_slice(value.as_bytes());
    CString::new(entry).map_err(|e| format!("a variable of tend's environment: {e}"))
}

/// Unblock what the previous image held across the exec (see [`HELD_SIGNALS`]), in this
/// thread, once its handlers are in place: what came in the gap is taken now. Nothing to do
/// after a plain start.
pub(super) fn take_held_signals() {
    // SAFETY: sigset operations on a local value; pthread_sigmask on the calling thread.
    unsafe {
        let mut held: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut held);
        for signal in HELD_SIGNALS {
            libc::sigaddset(&mut held, signal);
        }
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &held, std::ptr::null_mut());
    }
}

/// The new image's side: what it was handed, read.
pub(super) struct Resumed {
    pub handover: Handover,
    pub overrides: crate::api::scale::Overrides,
    /// The binary that handed over, to execute again when this image cannot take over.
    pub fallback: Fallback,
    /// Why the binary this upgrade executed could not take over, when this image is the
    /// previous one taking over again.
    pub failed: Option<String>,
    /// Set by [`Resumed::commit`]: past it, there is no falling back.
    pub committed: Arc<std::sync::atomic::AtomicBool>,
}

/// How to give the handover back to the binary that wrote it.
#[derive(Clone)]
pub(super) struct Fallback {
    exe: RawFd,
    memfd: RawFd,
    /// The previous image's arguments and environment, as the handover recorded them (as
    /// this process got them when it cannot be read): a wrapper that changed them for the
    /// new binary must not change them for the old one.
    argv: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
}

impl Fallback {
    /// Execute the previous binary with the same handover, telling it why; returns only if
    /// that failed. Not when this image is that fallback already: then there is no one left
    /// to hand over to.
    pub fn run(&self, why: &str, failed_before: bool) -> String {
        if failed_before {
            return format!("{why}; and this was the previous binary taking over again");
        }
        let set: Vec<(&str, String)> = vec![
            (handover::FAILED_ENV, why.to_string()),
            (handover::ENV, format!("{},{}", self.memfd, self.exe)),
        ];
        let argv = match self
            .argv
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(argv) => argv,
            Err(e) => return format!("{why}; and the fallback could not be prepared: {e}"),
        };
        let mut envp = Vec::new();
        for (key, value) in &self.env {
            if set.iter().any(|(name, _)| key == *name) {
                continue;
            }
            match env_entry(key, value) {
                Ok(entry) => envp.push(entry),
                Err(e) => return format!("{why}; and the fallback could not be prepared: {e}"),
            }
        }
        for (key, value) in &set {
            if let Ok(entry) = env_entry(&OsString::from(key), &OsString::from(value)) {
                envp.push(entry);
            }
        }
        // Everything the handover names is still inheritable: this image only used copies.
        let image = ExecImage {
            program: ExecProgram::Fd(self.exe),
            argv,
            envp,
            hold_signals: HELD_SIGNALS.to_vec(),
            pass: Vec::new(),
        };
        eprintln!("tend: upgrade: {why}; executing the previous binary again");
        let error = crate::engine::spawn::exec_here(&image);
        format!("{why}; and executing the previous binary again failed: {error}")
    }
}

/// The new image, before anything else: None when tend was not started by an upgrade.
/// Otherwise the daemon's exit code; when this image cannot take over, the previous binary
/// is executed again instead (and this returns only when that fails too).
pub fn take_over() -> Option<i32> {
    let value = std::env::var(handover::ENV).ok()?;
    let failed = std::env::var(handover::FAILED_ENV).ok();
    let env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let argv: Vec<OsString> = std::env::args_os().collect();
    // SAFETY: the first thing the new image does, while it has one thread.
    unsafe {
        std::env::remove_var(handover::ENV);
        std::env::remove_var(handover::FAILED_ENV);
    }
    let (memfd, exe) = match value.split_once(',').and_then(|(memfd, exe)| {
        Some((
            memfd.trim().parse::<RawFd>().ok()?,
            exe.trim().parse::<RawFd>().ok()?,
        ))
    }) {
        Some(fds) => fds,
        None => {
            eprintln!(
                "tend: {}={value} names no handover; not taking over",
                handover::ENV
            );
            return Some(1);
        }
    };
    let mut fallback = Fallback {
        exe,
        memfd,
        argv,
        env,
    };
    let (options, resumed) = match read(memfd, &mut fallback) {
        Ok((handover, options, overrides)) => (
            options,
            Resumed {
                handover,
                overrides,
                fallback,
                failed,
                committed: Arc::default(),
            },
        ),
        Err(why) => {
            let why = fallback.run(&format!("cannot take over: {why}"), failed.is_some());
            eprintln!("tend: upgrade: {why}; stopping");
            return Some(1);
        }
    };
    Some(match super::resume(options, resumed) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tend: {e:#}");
            1
        }
    })
}

/// The handover and the manifest as it reads now, with the counts set while tend ran.
fn read(
    memfd: RawFd,
    fallback: &mut Fallback,
) -> Result<(Handover, DaemonOptions, crate::api::scale::Overrides), String> {
    let handover = Handover::read(memfd).map_err(|e| e.to_string())?;
    fallback.argv = handover
        .argv
        .iter()
        .map(|a| OsString::from_vec(a.bytes()))
        .collect();
    fallback.env = handover
        .env
        .iter()
        .filter_map(|entry| {
            let entry = entry.bytes();
            let equals = entry.iter().position(|b| *b == b'=')?;
            Some((
                OsString::from_vec(entry[..equals].to_vec()),
                OsString::from_vec(entry[equals + 1..].to_vec()),
            ))
        })
        .collect();
    let session = &handover.session;
    let source = import::Source::from_name(&session.source)
        .ok_or_else(|| format!("unknown manifest format `{}`", session.source))?;
    let reading = import::Reading {
        source: Some(source),
        environment: session.environment.clone(),
    };
    let loaded = import::load(&session.manifest, &reading).map_err(|errors| {
        format!(
            "the manifest {} does not read: {errors}",
            session.manifest.display()
        )
    })?;
    let mut manifest = loaded.manifest;
    let mut overrides = crate::api::scale::Overrides::new();
    for scaled in &handover.scaled {
        let Some(spec) = manifest
            .services
            .iter_mut()
            .find(|s| s.name == scaled.service)
        else {
            continue;
        };
        spec.instances = scaled.instances;
        spec.numbered = spec.numbered || scaled.numbered;
        overrides.insert(
            scaled.service.clone(),
            crate::api::scale::Override {
                manifest: scaled.manifest,
                by: if scaled.by == crate::api::scale::Scaler::Autoscale.to_string() {
                    crate::api::scale::Scaler::Autoscale
                } else {
                    crate::api::scale::Scaler::Manual
                },
                reason: scaled.reason.clone(),
                at_ms: scaled.at_ms,
            },
        );
    }
    let wanted: Vec<&str> = manifest.sockets.iter().map(|s| s.name.as_str()).collect();
    let given: Vec<&str> = handover.sockets.iter().map(|s| s.name.as_str()).collect();
    if wanted != given {
        return Err(format!(
            "the manifest's [sockets] ({}) are not the ones handed over ({})",
            wanted.join(", "),
            given.join(", ")
        ));
    }
    let options = DaemonOptions {
        manifest,
        supervisor: loaded.supervisor,
        reading,
        services: Vec::new(),
        console: session.console,
        colour: session.colour,
        exit_with: session.exit_with.clone(),
    };
    Ok((handover, options, overrides))
}

impl Resumed {
    /// What `info` says of upgrades, now that this image has taken over.
    pub fn record(&self) -> UpgradeRecord {
        let handover = &self.handover;
        let ok = self.failed.is_none();
        UpgradeRecord {
            upgrades: handover.upgrades + u32::from(ok),
            last: Some(UpgradeOutcome {
                number: handover.attempt,
                at: SystemTime::now(),
                binary: handover.binary.clone(),
                from_version: handover.from_version.clone(),
                version: env!("CARGO_PKG_VERSION").into(),
                ok,
                error: self.failed.clone(),
            }),
        }
    }

    /// A copy (close-on-exec) of a descriptor the handover names: the original stays open
    /// and inheritable until [`Resumed::commit`], so that a fallback can still hand it on
    /// whatever this image did with its copy.
    pub fn descriptor(&self, fd: RawFd) -> std::io::Result<OwnedFd> {
        // SAFETY: F_DUPFD_CLOEXEC on a number; the copy is owned from here.
        let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        if copy < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(unsafe { OwnedFd::from_raw_fd(copy) })
    }

    /// Everything is taken over: the originals of the descriptors (this image works on
    /// copies), the handover and the previous binary are let go.
    pub fn commit(&self) {
        self.committed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let mut originals = self.handover.descriptors();
        originals.push(self.fallback.memfd);
        originals.sort_unstable();
        originals.dedup();
        for fd in originals {
            // SAFETY: named by the handover for this image, never owned by anything here
            // (only copies are), closed once.
            unsafe { libc::close(fd) };
        }
    }
}
