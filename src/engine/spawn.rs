//! Spawning and reaping: the only code that forks, execs or waits on processes.
//!
//! A few dedicated threads fork every child, so PR_SET_PDEATHSIG (which fires when the
//! *thread* that forked exits) lasts exactly as long as tend; there are several so that a
//! burst of starts does not queue behind one fork-and-exec at a time. One reaper task owns all
//! waiting: it answers SIGCHLD with `waitpid(-1, WNOHANG)` until nothing is left, hands each
//! status to the instance that registered the pid, and reaps adopted orphans (PID 1 /
//! subreaper duty). A spawn holds the table's gate (shared) until its pid is registered and
//! the reaper holds it exclusively while it waits, so the reaper never takes a status before
//! its owner is known (nor the one std's own `spawn` waits for when `exec` fails).

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, RwLock, mpsc};

use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use tokio::sync::oneshot;

use crate::engine::lifecycle::ExitStatus;

/// Who the child runs as, resolved before the fork (name lookups are not async-signal-safe).
#[derive(Debug, Clone)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub user: String,
    pub home: String,
}

/// Everything needed to start one process.
#[derive(Debug)]
pub struct SpawnRequest {
    /// argv[0] is the program, looked up in PATH like a shell would.
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub credentials: Option<Credentials>,
    pub umask: Option<u32>,
    /// `cgroup.procs` of the instance's cgroup; the child moves itself there before exec so
    /// nothing it forks can start outside.
    pub cgroup_procs: Option<PathBuf>,
}

/// A running child: its pid (also its process group id), its exit notification and the read
/// ends of its stdout and stderr pipes.
#[derive(Debug)]
pub struct SpawnedChild {
    pub pid: u32,
    pub exit: oneshot::Receiver<ExitStatus>,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

type ExitSenders = HashMap<u32, oneshot::Sender<ExitStatus>>;

/// Pids tend spawned and who wants their exit status.
#[derive(Clone, Default)]
pub struct ProcessTable {
    waiting: Arc<Mutex<ExitSenders>>,
    /// Shared by spawns in flight, exclusive for the reaper's waitpid loop.
    gate: Arc<RwLock<()>>,
}

impl ProcessTable {
    /// Whether `pid` is a child tend spawned (and has not reaped yet).
    pub fn is_ours(&self, pid: u32) -> bool {
        self.lock().contains_key(&pid)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ExitSenders> {
        // A poisoned lock only means a panic elsewhere while holding it; the map itself is
        // still consistent (inserts and removes are single operations).
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reap every exited child; returns how many were adopted orphans nobody waited for.
    pub fn reap(&self) -> usize {
        let _exclusive = self
            .gate
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut waiting = self.lock();
        let mut orphans = 0;
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => {
                    orphans += deliver(&mut waiting, pid.as_raw() as u32, ExitStatus::Code(code));
                }
                Ok(WaitStatus::Signaled(pid, signal, _)) => {
                    orphans += deliver(
                        &mut waiting,
                        pid.as_raw() as u32,
                        ExitStatus::Signal(signal as i32),
                    );
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
        orphans
    }
}

fn deliver(waiting: &mut ExitSenders, pid: u32, status: ExitStatus) -> usize {
    match waiting.remove(&pid) {
        Some(sender) => {
            // The instance may have gone away (engine shutting down); nothing to tell then.
            let _ = sender.send(status);
            0
        }
        None => 1,
    }
}

type Job = (SpawnRequest, oneshot::Sender<io::Result<SpawnedChild>>);

/// Forks in flight at once: enough to keep both cores of a small machine busy with
/// fork-and-exec during a mass start.
const SPAWNER_THREADS: usize = 3;

/// Handle to the spawner thread.
#[derive(Clone)]
pub struct Spawner {
    jobs: mpsc::Sender<Job>,
    table: ProcessTable,
}

impl Spawner {
    /// Start the spawner thread. It lives until every handle is dropped; the daemon keeps one
    /// for its whole life, which is what keeps PDEATHSIG from firing early.
    pub fn start(table: ProcessTable) -> io::Result<Spawner> {
        let (jobs, inbox) = mpsc::channel::<Job>();
        let inbox = Arc::new(Mutex::new(inbox));
        for n in 0..SPAWNER_THREADS {
            let thread_table = table.clone();
            let inbox = inbox.clone();
            std::thread::Builder::new()
                .name(format!("tend-spawner-{n}"))
                .stack_size(64 * 1024)
                .spawn(move || {
                    loop {
                        let job = inbox.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        let Ok((request, reply)) = job else { return };
                        let _ = reply.send(spawn(&thread_table, request));
                    }
                })?;
        }
        Ok(Spawner { jobs, table })
    }

    pub async fn spawn(&self, request: SpawnRequest) -> io::Result<SpawnedChild> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send((request, reply))
            .map_err(|_| io::Error::other("spawner thread is gone"))?;
        answer
            .await
            .map_err(|_| io::Error::other("spawner thread dropped the request"))?
    }

    pub fn table(&self) -> &ProcessTable {
        &self.table
    }
}

fn spawn(table: &ProcessTable, request: SpawnRequest) -> io::Result<SpawnedChild> {
    let (program, args) = request
        .argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(request.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&request.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(credentials) = &request.credentials {
        command
            .env("USER", &credentials.user)
            .env("LOGNAME", &credentials.user)
            .env("HOME", &credentials.home);
    }

    // Everything the child needs after fork is prepared here: between fork and exec only
    // async-signal-safe calls are allowed (no allocation, no locks).
    let cgroup_procs = match &request.cgroup_procs {
        Some(path) => {
            Some(CString::new(path.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?)
        }
        None => None,
    };
    let credentials = request.credentials.clone();
    let groups: Vec<libc::gid_t> = credentials
        .as_ref()
        .map(|c| c.groups.clone())
        .unwrap_or_default();
    let umask = request.umask;
    let parent = std::process::id() as libc::pid_t;
    unsafe {
        command.pre_exec(move || {
            if let Some(path) = &cgroup_procs {
                // Join the instance's cgroup; on failure the process group still contains it.
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd >= 0 {
                    libc::write(fd, b"0".as_ptr().cast(), 1);
                    libc::close(fd);
                }
            }
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // tend died between fork and prctl: the signal will never come, so do not run.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            if let Some(mask) = umask {
                libc::umask(mask as libc::mode_t);
            }
            if let Some(c) = &credentials
                && (libc::setgroups(groups.len(), groups.as_ptr()) != 0
                    || libc::setgid(c.gid) != 0
                    || libc::setuid(c.uid) != 0)
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }

    let (exit_tx, exit) = oneshot::channel();
    // Held across spawn and insert: see the module docs.
    let shared = table
        .gate
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut child = command.spawn()?;
    let pid = child.id();
    table.lock().insert(pid, exit_tx);
    drop(shared);

    let stdout = child.stdout.take().map(OwnedFd::from);
    let stderr = child.stderr.take().map(OwnedFd::from);
    // Dropping `child` neither waits nor kills: the reaper owns its exit status.
    drop(child);
    match (stdout, stderr) {
        (Some(stdout), Some(stderr)) => Ok(SpawnedChild {
            pid,
            exit,
            stdout,
            stderr,
        }),
        _ => Err(io::Error::other("child has no output pipes")),
    }
}

/// Reap on every SIGCHLD, for the life of the runtime. The signal stream must exist before
/// the first spawn, so the caller creates it; a sweep at start collects anything earlier.
pub async fn reap_forever(table: ProcessTable, mut sigchld: tokio::signal::unix::Signal) {
    loop {
        table.reap();
        if sigchld.recv().await.is_none() {
            return;
        }
    }
}
