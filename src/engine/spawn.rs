//! Spawning and reaping: the only code that forks, execs or waits on processes.
//!
//! One thread forks every child: in the daemon, the main thread, which does nothing else. A
//! child's PR_SET_PDEATHSIG fires when the *thread* that forked it exits, and `execve` ends
//! every thread but the one that calls it; so the thread that forks is also the one that
//! re-executes tend in place (`tend upgrade`), and the children live through it. The fork
//! thread only forks, without copying tend and without waiting for the exec (see
//! `shared_memory`); whether the exec worked is read from a status pipe on the runtime.
//! One reaper task owns all waiting: it answers SIGCHLD with `waitpid(-1, WNOHANG)` until
//! nothing is left, hands each status to the instance that registered the pid, and reaps
//! adopted orphans (PID 1 / subreaper duty). A spawn holds the table's gate (shared) until
//! its pid is registered and the reaper holds it exclusively while it waits, so the reaper
//! never takes a status before its owner is known (nor the one std's own `spawn` waits for
//! when `exec` fails). Reaping pauses during an upgrade, so that a child that exits then
//! stays a zombie for the next image to reap.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc};

use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use tokio::sync::oneshot;

use crate::engine::lifecycle::ExitStatus;

/// A raw system call from a cloned child (see [`raw`]): the kernel's answer, −errno on
/// failure.
macro_rules! sys {
    ($number:expr $(, $arg:expr)* $(,)?) => {{
        let given: &[usize] = &[$($arg as usize),*];
        let mut args = [0usize; 6];
        let mut i = 0;
        while i < given.len() {
            args[i] = given[i];
            i += 1;
        }
        $crate::engine::spawn::raw::call($number, args)
    }};
}

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
    /// The instance's cgroup directory: the child starts inside it, so nothing it forks can
    /// start outside.
    pub cgroup: Option<PathBuf>,
    /// Variables whose value is the child's own pid (`WATCHDOG_PID`), known only after the
    /// fork: the child writes it into its environment itself.
    pub pid_env: Vec<String>,
    /// Give the child a pipe as stdin (an event listener reads its events there) instead of
    /// /dev/null.
    pub stdin_pipe: bool,
    /// Listening sockets the child gets as fds 3, 4, … (systemd's socket passing; the
    /// request's env says LISTEN_FDS and LISTEN_FDNAMES, and `pid_env` LISTEN_PID). Shared:
    /// tend keeps its own, and every instance gets the same sockets.
    pub listen_fds: Vec<Arc<OwnedFd>>,
}

/// A running child: its pid (also its process group id), its exit notification and the read
/// ends of its stdout and stderr pipes.
#[derive(Debug)]
pub struct SpawnedChild {
    pub pid: u32,
    pub exit: oneshot::Receiver<ExitStatus>,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// The write end of its stdin, with `stdin_pipe`.
    pub stdin: Option<OwnedFd>,
}

type ExitSenders = HashMap<u32, oneshot::Sender<ExitStatus>>;

/// Pids tend spawned and who wants their exit status.
#[derive(Clone, Default)]
pub struct ProcessTable {
    waiting: Arc<Mutex<ExitSenders>>,
    /// Shared by spawns in flight, exclusive for the reaper's waitpid loop.
    gate: Arc<RwLock<()>>,
    /// Reaping is held off (an upgrade is under way): exits wait as zombies.
    paused: Arc<AtomicBool>,
}

impl ProcessTable {
    /// Whether `pid` is a child tend spawned (and has not reaped yet).
    pub fn is_ours(&self, pid: u32) -> bool {
        self.lock().contains_key(&pid)
    }

    /// Deliver the exit of `pid`, a process tend did not spawn (a program's MAINPID), once
    /// tend reaps it: as subreaper it does, when the process's parent has gone. None when it
    /// is already gone or already watched.
    pub fn watch(&self, pid: u32) -> Option<oneshot::Receiver<ExitStatus>> {
        let mut waiting = self.lock();
        if waiting.contains_key(&pid) {
            return None;
        }
        // Under the lock the reaper cannot take it between the check and the insert.
        if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_err() {
            return None;
        }
        let (sender, receiver) = oneshot::channel();
        waiting.insert(pid, sender);
        Some(receiver)
    }

    /// Stop watching `pid` (the instance no longer follows it).
    pub fn forget(&self, pid: u32) {
        self.lock().remove(&pid);
    }

    /// Deliver the exit of `pid`, a child a previous image of tend spawned (an upgrade): it
    /// may already be a zombie, which the next sweep reaps. Registered before the reaper's
    /// first sweep, or that sweep would take it for an orphan.
    pub fn adopt(&self, pid: u32) -> oneshot::Receiver<ExitStatus> {
        let (sender, receiver) = oneshot::channel();
        self.lock().insert(pid, sender);
        receiver
    }

    /// Hold off reaping until [`ProcessTable::resume_reaping`]: a child that exits meanwhile
    /// stays a zombie. Returns once no sweep is running.
    pub fn pause_reaping(&self) {
        self.paused.store(true, Ordering::SeqCst);
        drop(self.gate.write().unwrap_or_else(|p| p.into_inner()));
    }

    /// Reap again, starting with what exited while reaping was held off (its SIGCHLD came
    /// and went).
    pub fn resume_reaping(&self) {
        self.paused.store(false, Ordering::SeqCst);
        self.reap();
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
        if self.paused.load(Ordering::SeqCst) {
            return 0;
        }
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

/// What the fork thread is asked to do.
enum Job {
    Spawn(SpawnRequest, oneshot::Sender<io::Result<Forked>>),
    /// Replace tend's image in place; answered only when `execve` fails.
    Exec(ExecImage, oneshot::Sender<io::Error>),
    /// The daemon is done: the fork thread returns to its caller.
    Finish,
}

/// Handle to the fork thread; cheap to clone.
#[derive(Clone)]
pub struct Spawner {
    jobs: mpsc::Sender<Job>,
    table: ProcessTable,
}

/// The loop that forks, run by exactly one thread for as long as tend runs: that thread is
/// the parent of every child (see the module docs).
pub struct Forker {
    inbox: mpsc::Receiver<Job>,
    table: ProcessTable,
}

/// A program to replace tend with, in place (same pid, same children).
pub struct ExecImage {
    pub program: ExecProgram,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    /// Blocked in the exec'ing thread just before `execve`: one that arrives in the gap
    /// stays pending for the new image instead of taking the default action (ending tend).
    pub hold_signals: Vec<i32>,
    /// The descriptors the new image gets: close-on-exec is cleared on exactly these, on the
    /// fork thread right before `execve`, so no child forked meanwhile can inherit them
    /// (and set again if `execve` fails).
    pub pass: Vec<RawFd>,
}

pub enum ExecProgram {
    Path(CString),
    /// An open executable (`execveat` with AT_EMPTY_PATH): the binary tend ran before, even
    /// when its file has since been replaced.
    Fd(RawFd),
}

impl Spawner {
    /// A fork thread of its own, which lives until every handle is dropped (tests, and
    /// engines run inside another program).
    pub fn start(table: ProcessTable) -> io::Result<Spawner> {
        let (spawner, forker) = Spawner::on_this_thread(table);
        std::thread::Builder::new()
            .name("tend-spawner".into())
            .stack_size(64 * 1024)
            .spawn(move || forker.run())?;
        Ok(spawner)
    }

    /// A spawner whose forks the caller carries out by running the [`Forker`] on its own
    /// thread: the daemon's main thread, which therefore never exits before tend does.
    pub fn on_this_thread(table: ProcessTable) -> (Spawner, Forker) {
        let (jobs, inbox) = mpsc::channel::<Job>();
        let forker = Forker {
            inbox,
            table: table.clone(),
        };
        (Spawner { jobs, table }, forker)
    }

    pub async fn spawn(&self, request: SpawnRequest) -> io::Result<SpawnedChild> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Spawn(request, reply))
            .map_err(|_| io::Error::other("spawner thread is gone"))?;
        let forked = answer
            .await
            .map_err(|_| io::Error::other("spawner thread dropped the request"))??;
        forked.confirmed().await
    }

    /// Replace tend with `image` on the fork thread. Returns only if that failed; then
    /// everything goes on as before.
    pub async fn exec(&self, image: ExecImage) -> io::Error {
        let (reply, answer) = oneshot::channel();
        if self.jobs.send(Job::Exec(image, reply)).is_err() {
            return io::Error::other("spawner thread is gone");
        }
        answer
            .await
            .unwrap_or_else(|_| io::Error::other("spawner thread dropped the request"))
    }

    /// Let the fork thread return (the daemon has ended).
    pub fn finish(&self) {
        let _ = self.jobs.send(Job::Finish);
    }

    pub fn table(&self) -> &ProcessTable {
        &self.table
    }
}

impl Forker {
    /// Fork (and exec) what is asked until [`Spawner::finish`] or until every handle is gone.
    pub fn run(self) {
        loop {
            let job = match self.inbox.try_recv() {
                Ok(job) => job,
                Err(mpsc::TryRecvError::Empty) => match self.wait_idle() {
                    Some(job) => job,
                    None => break,
                },
                Err(mpsc::TryRecvError::Disconnected) => break,
            };
            match job {
                Job::Spawn(request, reply) => {
                    let _ = reply.send(fork(&self.table, request));
                }
                Job::Exec(image, reply) => {
                    settle();
                    let _ = reply.send(exec_here(&image));
                }
                Job::Finish => break,
            }
        }
        settle();
    }

    /// Nothing is queued: let go of the pipes of the children just cloned, close the lanes
    /// left idle (again after a second of quiet), and wait for the next job; `None` once
    /// every handle is gone.
    fn wait_idle(&self) -> Option<Job> {
        settle();
        close_idle_lanes(std::time::Instant::now());
        match self.inbox.recv_timeout(LANE_IDLE) {
            Ok(job) => Some(job),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                close_idle_lanes(std::time::Instant::now());
                self.inbox.recv().ok()
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
        }
    }
}

/// Replace tend's image now, from this thread, with `hold_signals` blocked; the mask is put
/// back when it fails. Only the thread that forked every child may call this (the
/// [`Forker`]'s, or the main thread before there is any other): the children of any other
/// thread would get their PDEATHSIG.
pub fn exec_here(image: &ExecImage) -> io::Error {
    let argv: Vec<*const libc::c_char> = image
        .argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp: Vec<*const libc::c_char> = image
        .envp
        .iter()
        .map(|e| e.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    // SAFETY: sigset operations on local values; execve/execveat with NUL-terminated arrays
    // of pointers into CStrings that outlive the call.
    unsafe {
        let mut hold: libc::sigset_t = std::mem::zeroed();
        let mut before: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut hold);
        for &signal in &image.hold_signals {
            libc::sigaddset(&mut hold, signal);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &hold, &mut before);
        let cloexec = |fd: RawFd, on: bool| {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            flags >= 0
                && libc::fcntl(
                    fd,
                    libc::F_SETFD,
                    if on {
                        flags | libc::FD_CLOEXEC
                    } else {
                        flags & !libc::FD_CLOEXEC
                    },
                ) >= 0
        };
        let restore = |passed: &[RawFd], before: &libc::sigset_t| {
            for &fd in passed {
                cloexec(fd, true);
            }
            libc::pthread_sigmask(libc::SIG_SETMASK, before, std::ptr::null_mut());
        };
        for (n, &fd) in image.pass.iter().enumerate() {
            if !cloexec(fd, false) {
                let error = io::Error::last_os_error();
                restore(&image.pass[..n], &before);
                return io::Error::new(
                    error.kind(),
                    format!("passing descriptor {fd} on: {error}"),
                );
            }
        }
        match &image.program {
            ExecProgram::Path(path) => {
                libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            }
            ExecProgram::Fd(fd) => {
                libc::syscall(
                    libc::SYS_execveat,
                    *fd,
                    c"".as_ptr(),
                    argv.as_ptr(),
                    envp.as_ptr(),
                    libc::AT_EMPTY_PATH,
                );
            }
        }
        let error = io::Error::last_os_error();
        restore(&image.pass, &before);
        error
    }
}

/// `struct clone_args` of clone3(2), up to `cgroup` (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Everything the child touches between fork and exec, built beforehand: after the fork only
/// async-signal-safe system calls are allowed (no allocation, no locks).
struct Prepared {
    program: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
    cwd: CString,
    umask: Option<u32>,
    credentials: Option<Credentials>,
    groups: Vec<libc::gid_t>,
    parent: libc::pid_t,
    /// `NAME=` entries for `pid_env`, each with room for a pid: allocated here and reached
    /// only through these raw pointers, so the child may write into its copy of them.
    pid_slots: Vec<PidSlot>,
    /// The sockets to pass, in order, and room for the child to note where it moved each
    /// (as `pid_slots`: allocated here, written only by the child through the pointer).
    listen: Vec<RawFd>,
    moved: *mut RawFd,
}

struct PidSlot {
    /// The whole `NAME=0000000000\0` allocation.
    entry: *mut u8,
    len: usize,
    /// Where the value starts.
    value: usize,
}

/// Room for any pid (at most 4194304 on Linux) plus the terminating NUL.
const PID_WIDTH: usize = 10;

impl Drop for Prepared {
    fn drop(&mut self) {
        for slot in self.pid_slots.drain(..) {
            // SAFETY: made by Box::into_raw in `prepare` with this length, freed only here.
            drop(unsafe {
                Box::from_raw(std::ptr::slice_from_raw_parts_mut(slot.entry, slot.len))
            });
        }
        // SAFETY: made by Box::into_raw in `prepare` with `listen.len()` elements.
        drop(unsafe {
            Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                self.moved,
                self.listen.len(),
            ))
        });
    }
}

/// A child just forked, not yet known to have exec'd: its status pipe says (EOF at exec, an
/// errno when something between fork and exec failed).
struct Forked {
    child: SpawnedChild,
    status: OwnedFd,
}

impl Forked {
    /// The child once its exec worked, read without holding up the fork thread.
    async fn confirmed(self) -> io::Result<SpawnedChild> {
        let Forked { child, status } = self;
        let pipe = match tokio::net::unix::pipe::Receiver::from_owned_fd(status) {
            Ok(pipe) => pipe,
            // Only outside a runtime, which the engine never is.
            Err(e) => return Err(io::Error::other(format!("watching the spawn: {e}"))),
        };
        let mut report = [0u8; 4];
        let mut got = 0;
        while got < report.len() {
            if pipe.readable().await.is_err() {
                break;
            }
            match pipe.try_read(&mut report[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => break,
            }
        }
        match got {
            0 => Ok(child),
            // The child exits right away; the reaper collects it like any other exit.
            _ => Err(io::Error::from_raw_os_error(i32::from_be_bytes(report))),
        }
    }

    /// [`Forked::confirmed`], blocking the calling thread.
    #[cfg(test)]
    fn confirmed_blocking(self) -> io::Result<SpawnedChild> {
        let mut report = [0u8; 4];
        let mut status = std::fs::File::from(self.status);
        match read_full(&mut status, &mut report) {
            0 => Ok(self.child),
            _ => Err(io::Error::from_raw_os_error(i32::from_be_bytes(report))),
        }
    }
}

/// Fork and exec one child, waiting for its exec on this thread (tests).
#[cfg(test)]
fn spawn(table: &ProcessTable, request: SpawnRequest) -> io::Result<SpawnedChild> {
    let forked = fork(table, request);
    settle();
    forked?.confirmed_blocking()
}

/// Start one child. It is created with clone3 directly inside its cgroup (CLONE_INTO_CGROUP):
/// moving a running process into a cgroup instead waits for an RCU grace period, which made
/// every restart ~10 ms slower. Where clone3 or that flag is unavailable, the child joins
/// through `cgroup.procs` itself before exec.
fn fork(table: &ProcessTable, request: SpawnRequest) -> io::Result<Forked> {
    let prepared = prepare(&request)?;
    let cgroup_dir = match &request.cgroup {
        Some(dir) => std::fs::File::open(dir).ok().map(OwnedFd::from),
        None => None,
    };
    let cgroup_procs = match &request.cgroup {
        Some(dir) => Some(cstring(
            dir.join("cgroup.procs").as_os_str().as_encoded_bytes(),
        )?),
        None => None,
    };
    let (out_read, out_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (err_read, err_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // Reports a failure between fork and exec (errno, 4 bytes); closed by a successful exec.
    let (status_read, status_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (stdin_read, stdin_write) = if request.stdin_pipe {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        (read, Some(write))
    } else {
        (OwnedFd::from(std::fs::File::open("/dev/null")?), None)
    };

    let own = [
        stdin_read.as_raw_fd(),
        out_write.as_raw_fd(),
        err_write.as_raw_fd(),
        status_write.as_raw_fd(),
    ];
    let launch = Box::new(Launch {
        prepared,
        fds: ChildFds {
            stdin: own[0],
            stdout: own[1],
            stderr: own[2],
            status: own[3],
            own_table_below: None,
        },
        cgroup_procs,
        join_procs: false,
        announce: std::ptr::null(),
    });
    let (exit_tx, exit) = oneshot::channel();
    // Held from the fork until the pid is registered: see the module docs.
    let shared = table
        .gate
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let pid = clone_child(launch, cgroup_dir.as_ref().map(AsRawFd::as_raw_fd))? as u32;
    table.lock().insert(pid, exit_tx);
    drop(shared);

    drop((out_write, err_write, status_write, stdin_read));
    Ok(Forked {
        child: SpawnedChild {
            pid,
            exit,
            stdout: out_read,
            stderr: err_read,
            stdin: stdin_write,
        },
        status: status_read,
    })
}

/// What a child reads between its clone and its exec, and how it tells the fork thread that
/// it has a descriptor table of its own. Boxed: a child cloned without waiting for its exec
/// reads it after `fork` has returned (see `lanes`).
struct Launch {
    prepared: Prepared,
    fds: ChildFds,
    cgroup_procs: Option<CString>,
    /// The clone could not start the child in its cgroup: it writes itself into
    /// `cgroup_procs` before exec.
    join_procs: bool,
    /// Set to [`OWN_TABLE`] by the child once it stopped sharing tend's descriptor table,
    /// where the fork thread waits for that; null where it does not.
    announce: *const AtomicU32,
}

/// States of a lane's word (see `lanes`): the kernel writes `RELEASED` (0) when the child
/// lets go of tend's memory.
const RELEASED: u32 = 0;
const OWN_TABLE: u32 = 1;
const SHARED_TABLE: u32 = 2;

/// Clone the child of `launch` the cheapest way the kernel allows: sharing tend's memory
/// without waiting for its exec (x86-64), then sharing it and waiting (when every lane is
/// busy), then copying. A child cloned in a lane may still share tend's descriptor table
/// when this returns: [`settle`] waits for that.
fn clone_child(mut launch: Box<Launch>, cgroup: Option<RawFd>) -> io::Result<libc::pid_t> {
    #[cfg(target_arch = "x86_64")]
    let way = shared_memory::way();
    #[cfg(target_arch = "x86_64")]
    if way == shared_memory::Way::Lanes {
        match shared_memory::start_in_lane(launch, cgroup) {
            Ok(pid) => return Ok(pid),
            Err(back) => launch = back,
        }
    }
    let slotted = SLOTS_OF_THIS_THREAD
        .with(|slots| slots.as_ref().is_some_and(|s| s.hold_pipes_of(&mut launch)));
    let mut pid = -1;
    #[cfg(target_arch = "x86_64")]
    if way != shared_memory::Way::Copy {
        pid = shared_memory::start_and_wait(&mut launch, cgroup);
    }
    let pid = if pid >= 0 {
        Ok(pid)
    } else {
        copying(launch, cgroup)
    };
    if slotted {
        // The child has exec'd or exited (these ways wait for that), so it no longer shares
        // this table: the slots let go of its pipes.
        SLOTS_OF_THIS_THREAD.with(|slots| slots.as_ref().map(Slots::empty));
    }
    pid
}

/// Let go of the pipes of every child cloned on this thread, waiting for each to have a
/// descriptor table of its own (its first act): until then tend's copies of its pipes stay
/// open, so its output and its status pipe could not end. The fork thread calls this
/// whenever no spawn is waiting.
fn settle() {
    #[cfg(target_arch = "x86_64")]
    shared_memory::settle();
}

/// A lane no child has used for this long is closed (see [`close_idle_lanes`]).
const LANE_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// Close the lanes no child has used for [`LANE_IDLE`], keeping one: a start of 200
/// services opens all 16, and a daemon should not go on holding their 80 descriptors
/// (counted against the same open-files limit as the instances' pipes) and stacks while
/// it restarts one child at a time, or none. One stays, so that a restart after a quiet
/// spell opens none; a burst opens them again.
fn close_idle_lanes(now: std::time::Instant) {
    #[cfg(target_arch = "x86_64")]
    shared_memory::close_idle_lanes(now);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = now;
}

/// No shared-memory clone3 (another architecture, an old kernel, seccomp): a copying one,
/// then a classic fork.
fn copying(mut launch: Box<Launch>, cgroup: Option<RawFd>) -> io::Result<libc::pid_t> {
    let mut pid = -1;
    launch.join_procs = false;
    if let Some(fd) = cgroup {
        pid = clone3(CLONE_INTO_CGROUP | CLONE_CLEAR_SIGHAND, Some(fd));
    }
    if pid < 0 {
        launch.join_procs = true;
        pid = clone3(CLONE_CLEAR_SIGHAND, None);
    }
    if pid < 0 {
        pid = unsafe { libc::fork() };
    }
    if pid == 0 {
        // SAFETY: in the child of a fork, with a copy of `launch`; `child` only makes raw
        // system calls on data prepared before the fork, and never returns.
        unsafe { child(&launch) }
    }
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pid)
}

#[derive(Clone, Copy)]
struct ChildFds {
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    status: RawFd,
    /// The child's first act: a descriptor table of its own holding only the descriptors
    /// below this number (the table is tend's own until then: see [`Slots`]).
    own_table_below: Option<RawFd>,
}

thread_local! {
    static SLOTS_OF_THIS_THREAD: Option<Slots> = Slots::reserve();
}

/// Four descriptor numbers low in the table, kept by a forking thread for the pipes of the
/// child it is cloning (and holding /dev/null the rest of the time). A child inherits every
/// descriptor tend has, two pipes an instance, and its `execve` closes them one by one: at
/// 5 000 services most of each spawn, and a start quadratic in the services. So the child
/// is cloned sharing tend's table (`CLONE_FILES`, no copy) and at once takes a table of its
/// own with only the numbers below the highest slot (`close_range` with
/// `CLOSE_RANGE_UNSHARE`, which copies just those): its pipes are in the slots, and what
/// else it holds there, a few dozen of tend's close-on-exec descriptors, goes at the exec.
struct Slots {
    slots: [OwnedFd; 4],
    null: OwnedFd,
}

impl Slots {
    /// `None` where `close_range` is missing (before Linux 5.9): probed on an empty range,
    /// which closes nothing.
    fn reserve() -> Option<Slots> {
        // SAFETY: closes no descriptor (the range holds none).
        if unsafe { libc::syscall(libc::SYS_close_range, u32::MAX, u32::MAX, 0) } != 0 {
            return None;
        }
        let null = OwnedFd::from(std::fs::File::open("/dev/null").ok()?);
        let low = || {
            // SAFETY: a new descriptor, owned by the returned value.
            let fd = unsafe { libc::fcntl(null.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
            (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
        };
        Some(Slots {
            slots: [low()?, low()?, low()?, low()?],
            null,
        })
    }

    /// Put the child's stdin, stdout, stderr and status pipe in the slots, for one clone.
    fn fill(&self, pipes: ChildFds) -> io::Result<ChildFds> {
        let fds = [pipes.stdin, pipes.stdout, pipes.stderr, pipes.status];
        for (slot, fd) in self.slots.iter().zip(fds) {
            // SAFETY: `slot` is ours and stays open (dup3 replaces what it refers to).
            if unsafe { libc::dup3(fd, slot.as_raw_fd(), libc::O_CLOEXEC) } < 0 {
                let error = io::Error::last_os_error();
                self.empty();
                return Err(error);
            }
        }
        let [stdin, stdout, stderr, status] = self.slots.each_ref().map(AsRawFd::as_raw_fd);
        Ok(ChildFds {
            stdin,
            stdout,
            stderr,
            status,
            own_table_below: Some(stdin.max(stdout).max(stderr).max(status) + 1),
        })
    }

    /// Put `launch`'s pipes in the slots, so that its child can share tend's table until it
    /// takes its own; whether they are there. Not for a child passed sockets: those go on
    /// 3, 4, … from wherever tend holds them, so that child gets (or keeps) the whole table.
    fn hold_pipes_of(&self, launch: &mut Launch) -> bool {
        if !launch.prepared.listen.is_empty() {
            return false;
        }
        match self.fill(launch.fds) {
            Ok(fds) => {
                launch.fds = fds;
                true
            }
            Err(_) => false,
        }
    }

    /// Back to /dev/null: a pipe whose write end tend still held would never end.
    fn empty(&self) {
        for slot in &self.slots {
            // SAFETY: as in `fill`.
            unsafe { libc::dup3(self.null.as_raw_fd(), slot.as_raw_fd(), libc::O_CLOEXEC) };
        }
    }
}

fn clone3(flags: u64, cgroup: Option<RawFd>) -> libc::pid_t {
    let mut args = CloneArgs {
        flags,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(fd) = cgroup {
        args.cgroup = fd as u64;
    }
    // SAFETY: without CLONE_VM this is a fork; the child continues here with a copy of the
    // memory and only runs `child`.
    unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        ) as libc::pid_t
    }
}

/// Spawning without copying tend: clone3 with `CLONE_VM`, as posix_spawn does. A copying
/// fork costs page tables for all of tend's memory (0.24 ms of a 1.2 ms restart at 200
/// services), tears them down again at exec, and leaves every page of the daemon
/// copy-on-write until its next write. Here the child runs `child` on a stack of its own in
/// tend's memory, and writes only to that stack and to its own `Launch`. Unlike glibc's
/// `clone`, clone3 can start the child inside its cgroup; the child's start on the new stack
/// needs a few instructions of assembly, written here for x86-64 only.
///
/// posix_spawn's way, `CLONE_VFORK`, holds the fork thread until the child's exec is done:
/// at a start of 200 services that was 68 of the fork thread's 110 ms, with both CPUs idle
/// half the time. So a child is started in a *lane* instead (see [`start_in_lane`]) and the
/// fork thread goes on to the next. When every lane is busy it waits for the oldest to
/// exec, and after 10 ms clones with `CLONE_VFORK`.
#[cfg(target_arch = "x86_64")]
mod shared_memory {
    use std::cell::RefCell;
    use std::mem::ManuallyDrop;

    use super::*;

    /// Room for `child`, above one guard page.
    const STACK: usize = 128 * 1024;
    const PAGE: usize = 4096;
    /// Children in flight at once before the fork thread waits for an exec: enough to keep
    /// both CPUs of a small machine busy with execs while it clones.
    const LANES: usize = 16;

    /// A child's stack, mapped with a guard page below it.
    struct Stack {
        base: *mut libc::c_void,
    }

    impl Stack {
        fn map() -> Option<Stack> {
            // SAFETY: a fresh anonymous mapping, owned by the returned value.
            unsafe {
                let base = libc::mmap(
                    std::ptr::null_mut(),
                    STACK + PAGE,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                );
                if base == libc::MAP_FAILED {
                    return None;
                }
                // An overflow faults instead of writing over tend's memory.
                libc::mprotect(base, PAGE, libc::PROT_NONE);
                Some(Stack { base })
            }
        }

        /// Where the kernel starts the child's stack pointer: stack + stack_size, page-aligned
        /// and so 16-byte aligned, as the call in [`clone_into_child`] needs.
        fn args(&self, args: &mut CloneArgs) {
            args.stack = self.base as u64 + PAGE as u64;
            args.stack_size = STACK as u64;
        }
    }

    impl Drop for Stack {
        fn drop(&mut self) {
            // SAFETY: mapped by `map` with this length; its owner made sure no child runs
            // on it any more.
            unsafe { libc::munmap(self.base, STACK + PAGE) };
        }
    }

    /// How a spawn on this thread clones: tests force the slower ways, which otherwise run
    /// only when the kernel refuses (or every lane is busy).
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub(in crate::engine) enum Way {
        Lanes,
        #[cfg_attr(not(test), allow(dead_code))]
        Vfork,
        Copy,
    }

    #[cfg(test)]
    thread_local! {
        pub(in crate::engine) static WAY_FOR_TEST: std::cell::Cell<Way> =
            const { std::cell::Cell::new(Way::Lanes) };
    }

    pub(super) fn way() -> Way {
        #[cfg(test)]
        return WAY_FOR_TEST.with(|way| way.get());
        #[cfg(not(test))]
        Way::Lanes
    }

    /// The child's entry on its own stack.
    ///
    /// # Safety
    /// Only as the first call of a child made by [`clone_into_child`], with `launch`
    /// readable until the child execs or exits.
    unsafe extern "C" fn enter(launch: *const Launch) -> ! {
        // SAFETY: as above.
        unsafe { child(&*launch) }
    }

    /// clone3 with `args`, whose stack must be set: the child runs `child(launch)` there.
    /// The child's pid, or −1 when the kernel refused.
    ///
    /// # Safety
    /// `args.flags` holds `CLONE_VM`; `launch` and the stack stay valid, and nothing else
    /// runs on that stack, until the child lets go of tend's memory.
    unsafe fn clone_into_child(args: &mut CloneArgs, launch: *const Launch) -> libc::pid_t {
        let ret: i64;
        // SAFETY: the child returns from the system call on its own, empty stack, with the
        // registers of the parent but rax; it calls `enter` (which never returns) and
        // touches nothing of the parent's stack. syscall clobbers rcx and r11.
        unsafe {
            std::arch::asm!(
                "syscall",
                "test rax, rax",
                "jnz 2f",
                "xor ebp, ebp",
                "mov rdi, r12",
                "call r13",
                "ud2",
                "2:",
                inlateout("rax") libc::SYS_clone3 => ret,
                in("rdi") args as *mut CloneArgs,
                in("rsi") std::mem::size_of::<CloneArgs>(),
                in("r12") launch,
                in("r13") enter as unsafe extern "C" fn(*const Launch) -> !,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        if ret < 0 { -1 } else { ret as libc::pid_t }
    }

    fn flags(launch: &Launch) -> u64 {
        let mut flags = libc::CLONE_VM as u64 | CLONE_CLEAR_SIGHAND;
        if launch.fds.own_table_below.is_some() {
            flags |= libc::CLONE_FILES as u64;
        }
        flags
    }

    /// Clone with `args`, in the cgroup first (where there is one), then without, the child
    /// joining through `cgroup.procs` itself.
    ///
    /// # Safety
    /// As [`clone_into_child`]; `launch` is not otherwise borrowed.
    unsafe fn clone_in_cgroup(
        args: &mut CloneArgs,
        launch: *mut Launch,
        cgroup: Option<RawFd>,
    ) -> libc::pid_t {
        // SAFETY: no child reads `launch` while it is written: before each clone, and after
        // one the kernel refused.
        unsafe {
            (*launch).join_procs = false;
            if let Some(fd) = cgroup {
                args.flags |= CLONE_INTO_CGROUP;
                args.cgroup = fd as u64;
                let pid = clone_into_child(args, launch);
                if pid >= 0 {
                    return pid;
                }
                args.flags &= !CLONE_INTO_CGROUP;
                args.cgroup = 0;
            }
            (*launch).join_procs = true;
            clone_into_child(args, launch)
        }
    }

    thread_local! {
        /// The stack a child waited for with `CLONE_VFORK` runs on, mapped at the first.
        static STACK_OF_THIS_THREAD: Option<Stack> = Stack::map();
    }

    /// Clone and wait until the child has exec'd or exited (`CLONE_VFORK`, posix_spawn's
    /// way). −1 when the kernel refused.
    pub(super) fn start_and_wait(launch: &mut Launch, cgroup: Option<RawFd>) -> libc::pid_t {
        STACK_OF_THIS_THREAD.with(|stack| {
            let Some(stack) = stack else { return -1 };
            let mut args = CloneArgs {
                flags: flags(launch) | libc::CLONE_VFORK as u64,
                exit_signal: libc::SIGCHLD as u64,
                ..Default::default()
            };
            stack.args(&mut args);
            // SAFETY: this thread waits in the clone until the child no longer uses the
            // stack or `launch`, and it alone uses the stack.
            unsafe { clone_in_cgroup(&mut args, launch, cgroup) }
        })
    }

    /// One child cloned without waiting for its exec: its stack, what it reads, four
    /// descriptor slots for its pipes, and a word the kernel sets to [`RELEASED`] (and
    /// wakes) when the child lets go of tend's memory, at its exec or its exit
    /// (`CLONE_CHILD_CLEARTID`); the child itself sets [`OWN_TABLE`] there first, once it
    /// no longer shares tend's descriptor table. The lane is free again at release. A child
    /// that dumps core before its exec never releases its lane (the kernel leaves the word
    /// for debuggers): the fork thread then has one lane fewer, and with none left it goes
    /// back to waiting for each exec.
    struct Lane {
        stack: ManuallyDrop<Stack>,
        word: AtomicU32,
        launch: Option<Box<Launch>>,
        slots: Slots,
        /// The slots hold the pipes of the lane's child, which may share tend's table.
        holds_pipes: bool,
        /// When its child was cloned, in this thread's count of lane clones.
        cloned: u64,
        /// When its last child was cloned (when it was opened, before that).
        used: std::time::Instant,
    }

    impl Lane {
        fn open() -> Option<Lane> {
            let slots = Slots::reserve()?;
            Some(Lane {
                stack: ManuallyDrop::new(Stack::map()?),
                word: AtomicU32::new(RELEASED),
                launch: None,
                slots,
                holds_pipes: false,
                cloned: 0,
                used: std::time::Instant::now(),
            })
        }

        /// Let go of the child's pipes once it has a table of its own; with `wait`, wait
        /// for that.
        fn let_go_of_pipes(&mut self, wait: bool) {
            if !self.holds_pipes {
                return;
            }
            loop {
                let state = self.word.load(Ordering::Acquire);
                if state != SHARED_TABLE {
                    break;
                }
                if !wait {
                    return;
                }
                wait_while(&self.word, state, None);
            }
            self.slots.empty();
            self.holds_pipes = false;
        }

        /// Whether no child uses the lane; what the last one read is freed here.
        fn is_free(&mut self) -> bool {
            if self.launch.is_some() && self.word.load(Ordering::Acquire) == RELEASED {
                self.let_go_of_pipes(false);
                self.launch = None;
            }
            self.launch.is_none()
        }
    }

    impl Drop for Lane {
        /// Its thread ends (a test's, or an engine's inside another program): wait, up to
        /// 10 s, for the child to let go; one that still holds on keeps the stack for ever
        /// rather than run on unmapped memory.
        fn drop(&mut self) {
            for _ in 0..100 {
                if self.is_free() {
                    // SAFETY: no child runs on the stack, and it is dropped once.
                    unsafe { ManuallyDrop::drop(&mut self.stack) };
                    return;
                }
                wait_while(&self.word, self.word.load(Ordering::Acquire), Some(100));
            }
            std::mem::forget(self.launch.take());
        }
    }

    /// Block while `word` holds `value` (a futex wait, shared: the kernel's wake-up at
    /// release is), at most `timeout_ms` where given.
    fn wait_while(word: &AtomicU32, value: u32, timeout_ms: Option<i64>) {
        let timeout = timeout_ms.map(|ms| libc::timespec {
            tv_sec: ms / 1000,
            tv_nsec: (ms % 1000) * 1_000_000,
        });
        let timeout_ptr = timeout
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: a futex wait on a live word; it only reads it.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT,
                value,
                timeout_ptr,
            )
        };
    }

    thread_local! {
        /// Opened as needed: one for a thread whose children exec before its next spawn,
        /// up to [`LANES`] in a burst; closed again, but one, once no child has used them
        /// for a second ([`close_idle_lanes`]).
        ///
        /// Boxed: the kernel and the child write to a lane's word, which must not move
        /// when the vector grows.
        #[allow(clippy::vec_box)]
        static LANES_OF_THIS_THREAD: RefCell<Vec<Box<Lane>>> = const { RefCell::new(Vec::new()) };
        static CLONES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    /// Every lane busy: wait for the child cloned first to exec (children exec about in
    /// order), up to 10 ms; `None` after that (it may be one that never releases).
    fn wait_for_the_oldest(lanes: &mut [Box<Lane>]) -> Option<usize> {
        let (index, oldest) = lanes
            .iter_mut()
            .enumerate()
            .min_by_key(|(_, lane)| lane.cloned)?;
        for _ in 0..10 {
            let state = oldest.word.load(Ordering::Acquire);
            if state == RELEASED {
                break;
            }
            wait_while(&oldest.word, state, Some(1));
        }
        oldest.is_free().then_some(index)
    }

    /// Start the child in a free lane and return without waiting for it: `Err` gives
    /// `launch` back when every lane is busy or the kernel refused.
    pub(super) fn start_in_lane(
        mut launch: Box<Launch>,
        cgroup: Option<RawFd>,
    ) -> Result<libc::pid_t, Box<Launch>> {
        LANES_OF_THIS_THREAD.with(|lanes| {
            let Ok(mut lanes) = lanes.try_borrow_mut() else {
                return Err(launch);
            };
            for lane in lanes.iter_mut() {
                lane.let_go_of_pipes(false);
            }
            let index = match lanes.iter_mut().position(|lane| lane.is_free()) {
                Some(index) => index,
                None if lanes.len() < LANES => match Lane::open() {
                    Some(lane) => {
                        lanes.push(Box::new(lane));
                        lanes.len() - 1
                    }
                    None => return Err(launch),
                },
                None => match wait_for_the_oldest(&mut lanes) {
                    Some(index) => index,
                    None => return Err(launch),
                },
            };
            let lane = &mut lanes[index];
            let plain = launch.fds;
            let shares_table = lane.slots.hold_pipes_of(&mut launch);
            if launch.prepared.listen.is_empty() && !shares_table {
                return Err(launch);
            }
            let mut args = CloneArgs {
                flags: flags(&launch) | libc::CLONE_CHILD_CLEARTID as u64,
                child_tid: lane.word.as_ptr() as u64,
                exit_signal: libc::SIGCHLD as u64,
                ..Default::default()
            };
            lane.stack.args(&mut args);
            lane.word.store(
                if shares_table {
                    SHARED_TABLE
                } else {
                    OWN_TABLE
                },
                Ordering::Relaxed,
            );
            let launch = lane.launch.insert(launch);
            launch.announce = &lane.word;
            let reads: *mut Launch = &mut **launch;
            // SAFETY: the lane keeps `launch` and the stack, and lends them to no other
            // child, until the kernel has released the word.
            let pid = unsafe { clone_in_cgroup(&mut args, reads, cgroup) };
            if pid < 0 {
                lane.word.store(RELEASED, Ordering::Relaxed);
                let mut launch = lane.launch.take().expect("put in the lane above");
                if shares_table {
                    lane.slots.empty();
                }
                launch.fds = plain;
                launch.announce = std::ptr::null();
                return Err(launch);
            }
            lane.holds_pipes = shares_table;
            lane.cloned = CLONES.with(|clones| clones.replace(clones.get() + 1));
            lane.used = std::time::Instant::now();
            Ok(pid)
        })
    }

    /// See [`super::close_idle_lanes`].
    pub(super) fn close_idle_lanes(now: std::time::Instant) {
        LANES_OF_THIS_THREAD.with(|lanes| {
            let Ok(mut lanes) = lanes.try_borrow_mut() else {
                return;
            };
            let mut needed = |lane: &mut Box<Lane>| {
                !lane.is_free() || now.saturating_duration_since(lane.used) < LANE_IDLE
            };
            let mut keep_one = !lanes.iter_mut().any(&mut needed);
            lanes.retain_mut(|lane| needed(lane) || std::mem::replace(&mut keep_one, false));
        });
    }

    /// The lanes this thread has open.
    #[cfg(test)]
    pub(super) fn lanes_open() -> usize {
        LANES_OF_THIS_THREAD.with(|lanes| lanes.borrow().len())
    }

    /// Open lanes until this thread has them all, as a long enough burst does.
    #[cfg(test)]
    pub(super) fn open_every_lane() {
        LANES_OF_THIS_THREAD.with(|lanes| {
            let mut lanes = lanes.borrow_mut();
            while lanes.len() < LANES {
                lanes.push(Box::new(Lane::open().expect("a lane")));
            }
        });
    }

    /// See [`super::settle`].
    pub(super) fn settle() {
        LANES_OF_THIS_THREAD.with(|lanes| {
            if let Ok(mut lanes) = lanes.try_borrow_mut() {
                for lane in lanes.iter_mut() {
                    lane.let_go_of_pipes(true);
                }
            }
        });
    }
}

/// Bytes read until `buf` is full or EOF (retrying EINTR).
#[cfg(test)]
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> usize {
    use std::io::Read;
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    got
}

/// System calls for a child between its clone and its exec. Such a child may run on tend's
/// memory with the fork thread's thread pointer while that thread goes on (see
/// `shared_memory`), so it must not write glibc's thread-local `errno`, which is the fork
/// thread's: each call returns the kernel's answer as it is, −errno on failure.
mod raw {
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub(super) unsafe fn call(number: libc::c_long, args: [usize; 6]) -> isize {
        let ret: isize;
        // SAFETY: the caller vouches for the call; syscall clobbers rcx and r11 only.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") number as isize => ret,
                in("rdi") args[0],
                in("rsi") args[1],
                in("rdx") args[2],
                in("r10") args[3],
                in("r8") args[4],
                in("r9") args[5],
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret
    }

    /// Elsewhere only the copying fork is used, whose child has an `errno` of its own.
    #[cfg(not(target_arch = "x86_64"))]
    pub(super) unsafe fn call(number: libc::c_long, args: [usize; 6]) -> isize {
        // SAFETY: as above.
        unsafe {
            match libc::syscall(number, args[0], args[1], args[2], args[3], args[4], args[5]) {
                -1 => -(*libc::__errno_location() as isize),
                done => done as isize,
            }
        }
    }

    /// Put `signal` back to its default action.
    #[cfg(target_arch = "x86_64")]
    pub(super) unsafe fn default_action(signal: libc::c_int) {
        /// The kernel's `struct sigaction` on x86-64.
        #[repr(C)]
        struct Action {
            handler: usize,
            flags: u64,
            restorer: usize,
            mask: u64,
        }
        let default = Action {
            handler: libc::SIG_DFL,
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        // SAFETY: a valid action; the old one is not asked for.
        unsafe { sys!(libc::SYS_rt_sigaction, signal, &raw const default, 0, 8) };
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub(super) unsafe fn default_action(signal: libc::c_int) {
        // SAFETY: a copied child, whose errno is its own.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
    }
}

/// The child's side, between its clone and its exec.
///
/// # Safety
/// Must only be called in a freshly cloned child, with `launch` readable until its exec.
unsafe fn child(launch: &Launch) -> ! {
    unsafe {
        let p = &launch.prepared;
        let fds = &launch.fds;
        let fail = |status: RawFd, error: isize| -> ! {
            let bytes = (-error as i32).to_be_bytes();
            sys!(libc::SYS_write, status, bytes.as_ptr(), 4);
            loop {
                sys!(libc::SYS_exit_group, 127);
            }
        };
        if let Some(below) = fds.own_table_below {
            let done = sys!(
                libc::SYS_close_range,
                below,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_UNSHARE
            );
            if done != 0 {
                // Still tend's table: nothing else may be done with it.
                fail(fds.status, done);
            }
        }
        if let Some(word) = launch.announce.as_ref()
            && word.swap(OWN_TABLE, Ordering::Release) == SHARED_TABLE
        {
            sys!(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1);
        }
        // A clean signal state for the program: nothing blocked, and SIGPIPE (Rust ignores
        // it) and SIGXFSZ (the daemon ignores it) back to their defaults: an ignored signal
        // stays ignored across exec.
        let nothing: u64 = 0;
        sys!(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &raw const nothing,
            0,
            8
        );
        raw::default_action(libc::SIGPIPE);
        raw::default_action(libc::SIGXFSZ);
        if launch.join_procs
            && let Some(path) = &launch.cgroup_procs
        {
            // On failure the process group still contains it.
            let fd = sys!(
                libc::SYS_openat,
                libc::AT_FDCWD,
                path.as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC
            );
            if fd >= 0 {
                sys!(libc::SYS_write, fd, b"0".as_ptr(), 1);
                sys!(libc::SYS_close, fd);
            }
        }
        let done = sys!(libc::SYS_setpgid, 0, 0);
        if done != 0 {
            fail(fds.status, done);
        }
        let status = match p.listen.len() {
            0 => fds.status,
            n => pass_sockets_above(p, n as RawFd, fds.status),
        };
        for (from, to) in [(fds.stdin, 0), (fds.stdout, 1), (fds.stderr, 2)] {
            let done = onto(from, to);
            if done < 0 {
                fail(status, done);
            }
        }
        if !p.listen.is_empty() {
            let done = pass_sockets_down(p);
            if done < 0 {
                fail(status, done);
            }
        }
        let done = sys!(libc::SYS_chdir, p.cwd.as_ptr());
        if done != 0 {
            fail(status, done);
        }
        let done = sys!(libc::SYS_prctl, libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if done != 0 {
            fail(status, done);
        }
        // tend died between the clone and prctl: the signal will never come, so do not run.
        if sys!(libc::SYS_getppid) != p.parent as isize {
            fail(status, -(libc::ESRCH as isize));
        }
        if let Some(mask) = p.umask {
            sys!(libc::SYS_umask, mask);
        }
        // Raw system calls, not glibc's wrappers, here more than anywhere: those broadcast a
        // credential change to every thread glibc believes the process has, and after a raw
        // clone3 that list still names the parent's threads, so the wrapper can wait for
        // ever.
        if let Some(c) = &p.credentials {
            // One at a time, stopping at the first that fails.
            let mut done = sys!(libc::SYS_setgroups, p.groups.len(), p.groups.as_ptr());
            if done == 0 {
                done = sys!(libc::SYS_setgid, c.gid);
            }
            if done == 0 {
                done = sys!(libc::SYS_setuid, c.uid);
            }
            if done != 0 {
                fail(status, done);
            }
        }
        if !p.pid_slots.is_empty() {
            let pid = sys!(libc::SYS_getpid) as u64;
            for slot in &p.pid_slots {
                write_decimal(slot.entry.add(slot.value), pid);
            }
        }
        let argv_ptrs = p.argv_ptrs();
        let envp_ptrs = p.envp_ptrs();
        let done = sys!(
            libc::SYS_execve,
            p.program.as_ptr(),
            argv_ptrs.as_ptr(),
            envp_ptrs.as_ptr()
        );
        fail(status, done)
    }
}

/// `from` as descriptor `to`, inheritable: 0 or −errno. `dup2` onto itself would leave
/// close-on-exec set, so that case clears the flag instead.
///
/// # Safety
/// In the cloned child only.
unsafe fn onto(from: RawFd, to: RawFd) -> isize {
    unsafe {
        if from == to {
            sys!(libc::SYS_fcntl, to, libc::F_SETFD, 0)
        } else {
            sys!(libc::SYS_dup3, from, to, 0).min(0)
        }
    }
}

/// The first half of handing over the sockets: every source fd, and the status pipe that
/// `fail` writes to, is copied to a number at or above `3 + n`, close-on-exec. Then nothing
/// the second half writes onto 3 … 3+n−1 can be a source still to be read (a socket tend
/// happened to open at 3), nor the status pipe. Done before stdio is set up, so a source
/// that sits at 0, 1 or 2 is safe too. Returns the status pipe's new number (the old one
/// where the copy failed: `pass_sockets_down` then fails, reporting through it).
///
/// # Safety
/// In the cloned child only, with `p.moved` holding `n` slots.
unsafe fn pass_sockets_above(p: &Prepared, n: RawFd, status: RawFd) -> RawFd {
    unsafe {
        for (i, &source) in p.listen.iter().enumerate() {
            // A failed copy keeps its −errno for the second half to report.
            *p.moved.add(i) = sys!(libc::SYS_fcntl, source, libc::F_DUPFD_CLOEXEC, 3 + n) as RawFd;
        }
        match sys!(libc::SYS_fcntl, status, libc::F_DUPFD_CLOEXEC, 3 + n) {
            moved if moved < 0 => status,
            moved => moved as RawFd,
        }
    }
}

/// The second half: each copy onto 3, 4, … in order, inheritable. Every copy is at 3+n or
/// above, so none is already where it goes. 0 or −errno.
///
/// # Safety
/// In the cloned child only, after `pass_sockets_above`.
unsafe fn pass_sockets_down(p: &Prepared) -> isize {
    unsafe {
        for i in 0..p.listen.len() {
            let moved = *p.moved.add(i);
            if moved < 0 {
                return moved as isize;
            }
            let done = onto(moved, 3 + i as RawFd);
            if done < 0 {
                return done;
            }
        }
        0
    }
}

/// Write `n` in decimal at `at`, then a NUL (at most PID_WIDTH bytes in all): between fork
/// and exec, so no allocation and no formatting machinery.
unsafe fn write_decimal(at: *mut u8, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut count = 0;
    loop {
        digits[count] = b'0' + (n % 10) as u8;
        count += 1;
        n /= 10;
        if n == 0 || count == PID_WIDTH - 1 {
            break;
        }
    }
    for i in 0..count {
        // SAFETY: the slot has PID_WIDTH bytes after `at`, and count < PID_WIDTH.
        unsafe { *at.add(i) = digits[count - 1 - i] };
    }
    unsafe { *at.add(count) = 0 };
}

impl Prepared {
    fn argv_ptrs(&self) -> &[*const libc::c_char] {
        &self.argv_ptrs
    }
    fn envp_ptrs(&self) -> &[*const libc::c_char] {
        &self.envp_ptrs
    }
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "a NUL byte in a command, variable or path",
        )
    })
}

/// Resolve the program, and build argv, the environment and the working directory as C
/// strings: tend's own environment with the request's variables on top.
fn prepare(request: &SpawnRequest) -> io::Result<Prepared> {
    let (program, _) = request
        .argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    // What systemd gave tend itself is tend's, not its children's: a child that inherited
    // NOTIFY_SOCKET would speak for tend. The request sets them again where they apply.
    const TENDS_OWN: [&str; 6] = [
        "NOTIFY_SOCKET",
        "WATCHDOG_PID",
        "WATCHDOG_USEC",
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
    ];
    let mut env: Vec<(std::ffi::OsString, std::ffi::OsString)> = std::env::vars_os()
        .filter(|(k, _)| !TENDS_OWN.iter().any(|own| k == own))
        .filter(|(k, _)| !request.pid_env.iter().any(|name| k == name.as_str()))
        .collect();
    let mut set = |key: &str, value: &str| match env.iter_mut().find(|(k, _)| k == key) {
        Some(entry) => entry.1 = value.into(),
        None => env.push((key.into(), value.into())),
    };
    // A pid variable is the child's own, whatever a service's `env` says: a second entry
    // of the same name would be the one a program's getenv finds first.
    for (key, value) in request
        .env
        .iter()
        .filter(|(key, _)| !request.pid_env.contains(key))
    {
        set(key, value);
    }
    if let Some(c) = &request.credentials {
        set("USER", &c.user);
        set("LOGNAME", &c.user);
        set("HOME", &c.home);
    }
    let path_var = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone());
    let resolved = resolve_program(program, path_var.as_deref(), &request.cwd)?;
    let envp = env
        .iter()
        .map(|(k, v)| {
            let mut entry = k.as_encoded_bytes().to_vec();
            entry.push(b'=');
            entry.extend_from_slice(v.as_encoded_bytes());
            cstring(&entry)
        })
        .collect::<io::Result<Vec<_>>>()?;
    let argv = request
        .argv
        .iter()
        .map(|a| cstring(a.as_bytes()))
        .collect::<io::Result<Vec<_>>>()?;
    let credentials = request.credentials.clone();
    let groups = credentials
        .as_ref()
        .map(|c| c.groups.clone())
        .unwrap_or_default();
    let mut prepared = Prepared {
        program: cstring(resolved.as_os_str().as_encoded_bytes())?,
        argv,
        envp,
        cwd: cstring(request.cwd.as_os_str().as_encoded_bytes())?,
        umask: request.umask,
        credentials,
        groups,
        parent: std::process::id() as libc::pid_t,
        argv_ptrs: Vec::new(),
        envp_ptrs: Vec::new(),
        pid_slots: Vec::new(),
        listen: request.listen_fds.iter().map(|fd| fd.as_raw_fd()).collect(),
        moved: Box::into_raw(vec![-1; request.listen_fds.len()].into_boxed_slice()) as *mut RawFd,
    };
    for name in &request.pid_env {
        let mut entry = name.as_bytes().to_vec();
        entry.push(b'=');
        let value = entry.len();
        entry.extend_from_slice(&[b'0'; PID_WIDTH]);
        entry.push(0);
        let len = entry.len();
        let raw = Box::into_raw(entry.into_boxed_slice()) as *mut u8;
        prepared.pid_slots.push(PidSlot {
            entry: raw,
            len,
            value,
        });
    }
    prepared.argv_ptrs = prepared
        .argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    prepared.envp_ptrs = prepared
        .envp
        .iter()
        .map(|e| e.as_ptr())
        .chain(
            prepared
                .pid_slots
                .iter()
                .map(|slot| slot.entry as *const libc::c_char),
        )
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    Ok(prepared)
}

/// Find the program like a shell would: a name with a `/` is a path (relative to the child's
/// working directory); otherwise the first executable file of that name in PATH.
fn resolve_program(
    program: &str,
    path: Option<&std::ffi::OsStr>,
    cwd: &std::path::Path,
) -> io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if program.contains('/') {
        return Ok(cwd.join(program));
    }
    let path = path.unwrap_or(std::ffi::OsStr::new(
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ));
    for dir in std::env::split_paths(path) {
        let candidate = if dir.is_relative() {
            cwd.join(&dir).join(program)
        } else {
            dir.join(program)
        };
        if let Ok(meta) = std::fs::metadata(&candidate)
            && meta.is_file()
            && meta.permissions().mode() & 0o111 != 0
        {
            return Ok(candidate);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("`{program}` not found in PATH"),
    ))
}

/// Block SIGCHLD in the calling thread, and so in every thread it starts from now on: the
/// daemon's main thread calls this before it starts any other. A child's exit then wakes
/// the engine thread, which waits on a signalfd for it (see [`reap_forever`]), instead of
/// interrupting the thread that forked the child (the kernel's first choice for its
/// SIGCHLD) to run a handler that wakes the engine in turn: one wake-up less on every
/// restart.
pub fn route_child_exits_to_the_reaper() {
    child_exits_blocked(true);
}

/// Descriptors the daemon holds beside its instances': the lanes' slots, the runtime, the
/// listeners, the history, and the pipes of the spawns in flight.
const DESCRIPTORS_BESIDE_INSTANCES: usize = 256;
/// Descriptors one instance holds (its stdout and stderr pipes, a probe's socket, a log
/// file being reopened), counted generously: a slot costs the kernel 8 bytes.
const DESCRIPTORS_PER_INSTANCE: usize = 4;

/// Grow this process's descriptor table now to hold what `instances` instances need: the
/// daemon's main thread calls this before it starts any other. The kernel replaces a
/// table shared by several threads (or by children in lanes, see `shared_memory`) only
/// after an RCU grace period; a start of 200 services grew it three times, mid-burst, and
/// one such wait held the fork thread 24 ms with both CPUs idle. A lone thread's table
/// grows at once, and a table never shrinks. Returns the table's size, at most the
/// open-files limit; where that cannot be read, or the descriptor cannot be placed, the
/// table is left to grow as descriptors come.
pub fn reserve_descriptors(instances: usize) -> Option<usize> {
    let (soft, _) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).ok()?;
    let size = descriptor_table_size(instances, soft);
    let highest = libc::c_int::try_from(size.checked_sub(1)?).ok()?;
    let null = std::fs::File::open("/dev/null").ok()?;
    // SAFETY: duplicates a descriptor this function owns; the copy is closed right away.
    let placed = unsafe { libc::fcntl(null.as_raw_fd(), libc::F_DUPFD_CLOEXEC, highest) };
    if placed < 0 {
        return None;
    }
    // SAFETY: `placed` is the duplicate made above, owned here.
    drop(unsafe { OwnedFd::from_raw_fd(placed) });
    Some(size)
}

/// The table [`reserve_descriptors`] asks for: what `instances` need, within the soft
/// open-files `limit`.
fn descriptor_table_size(instances: usize, limit: u64) -> usize {
    let wanted = DESCRIPTORS_PER_INSTANCE
        .saturating_mul(instances)
        .saturating_add(DESCRIPTORS_BESIDE_INSTANCES);
    usize::try_from(limit).unwrap_or(usize::MAX).min(wanted)
}

/// The set holding SIGCHLD alone.
fn sigchld_only() -> libc::sigset_t {
    // SAFETY: sigset operations on a local value.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        set
    }
}

/// Block (or unblock) SIGCHLD in the calling thread.
fn child_exits_blocked(blocked: bool) {
    let how = if blocked {
        libc::SIG_BLOCK
    } else {
        libc::SIG_UNBLOCK
    };
    // SAFETY: pthread_sigmask on the calling thread, with a valid set.
    unsafe { libc::pthread_sigmask(how, &sigchld_only(), std::ptr::null_mut()) };
}

/// SIGCHLD as a descriptor: readable while one is pending and blocked in every thread.
struct ChildExitQueue(tokio::io::unix::AsyncFd<OwnedFd>);

impl ChildExitQueue {
    fn open() -> io::Result<ChildExitQueue> {
        // SAFETY: signalfd returns a new descriptor that is owned here from then on.
        let fd = unsafe {
            let fd = libc::signalfd(-1, &sigchld_only(), libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            OwnedFd::from_raw_fd(fd)
        };
        // SAFETY: the AsyncFd owns the descriptor, so it stays open, and the same, while
        // registered.
        let registered = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
        }?;
        Ok(ChildExitQueue(registered))
    }

    /// Until a SIGCHLD has been taken from the queue.
    async fn next(&self) -> io::Result<()> {
        loop {
            let mut ready = self.0.readable().await?;
            let mut info = std::mem::MaybeUninit::<libc::signalfd_siginfo>::uninit();
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: reads at most `size` bytes into a buffer of that size.
            let read = unsafe { libc::read(self.0.as_raw_fd(), info.as_mut_ptr().cast(), size) };
            if read > 0 {
                // Signals of one kind merge while pending: one taken is all there was.
                return Ok(());
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::WouldBlock {
                return Err(error);
            }
            ready.clear_ready();
        }
    }
}

/// Reap on every SIGCHLD, for the life of the runtime. The signal stream must exist before
/// the first spawn, so the caller creates it; a sweep at start collects anything earlier.
/// A SIGCHLD comes one of two ways: to the stream's handler, in whichever thread does not
/// block it (an engine run inside another program, or the tests), or, where every thread
/// blocks it ([`route_child_exits_to_the_reaper`]), through a signalfd, which wakes this
/// thread itself.
pub async fn reap_forever(table: ProcessTable, mut sigchld: tokio::signal::unix::Signal) {
    let mut queue = ChildExitQueue::open().ok();
    if queue.is_none() {
        // No signalfd (out of descriptors at start, say): the handler must be able to run
        // here, or a daemon that blocks SIGCHLD everywhere would never reap.
        child_exits_blocked(false);
    }
    loop {
        table.reap();
        let queued = async {
            match &queue {
                Some(queue) => queue.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            signal = sigchld.recv() => if signal.is_none() {
                return;
            },
            taken = queued => if taken.is_err() {
                // Back to the handler, which this thread now lets run.
                queue = None;
                child_exits_blocked(false);
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::write_decimal;

    /// Held by the tests that take many descriptors at once or need free low numbers: run
    /// together, one would fill the numbers the other expects free.
    static DESCRIPTORS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn descriptors() -> std::sync::MutexGuard<'static, ()> {
        DESCRIPTORS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The size of this process's descriptor table, as the kernel reports it.
    fn table_size() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("FDSize:")).unwrap();
        line["FDSize:".len()..].trim().parse().unwrap()
    }

    #[test]
    fn the_descriptor_table_is_grown_ahead_without_a_descriptor_left_open() {
        let _held = descriptors();
        let (soft, _) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        // Larger than any table the other tests grow, where the limit allows.
        let size = super::reserve_descriptors(2000).expect("the limit can be read");
        assert_eq!(size, super::descriptor_table_size(2000, soft));
        assert!(table_size() >= size, "{} < {size}", table_size());
        let highest = libc::c_int::try_from(size - 1).unwrap();
        // SAFETY: only asks whether the descriptor exists.
        assert_eq!(unsafe { libc::fcntl(highest, libc::F_GETFD) }, -1);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EBADF)
        );
    }

    #[test]
    fn the_reserved_table_grows_with_the_instances_and_stops_at_the_limit() {
        use super::descriptor_table_size as size;
        assert_eq!(size(0, 1 << 20), 256);
        assert_eq!(size(200, 1 << 20), 256 + 4 * 200);
        assert_eq!(size(10_000, 20_000), 20_000);
        assert_eq!(size(usize::MAX, u64::MAX), usize::MAX);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn lanes_left_idle_close_but_one_and_open_again() {
        let _descriptors = descriptors();
        let table = super::ProcessTable::default();
        let burst = |n: usize| {
            let forked: Vec<_> = (0..n)
                .map(|_| super::fork(&table, request(&[], "/")).expect("fork"))
                .collect();
            super::settle();
            for forked in forked {
                let pid = forked.child.pid as i32;
                forked.confirmed_blocking().expect("spawn");
                nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
            }
        };
        let open = super::shared_memory::lanes_open;
        for _ in 0..2 {
            burst(40);
            super::shared_memory::open_every_lane();
            assert_eq!(open(), 16);
            super::close_idle_lanes(std::time::Instant::now());
            assert_eq!(open(), 16, "lanes used within a second stay");
            super::close_idle_lanes(std::time::Instant::now() + super::LANE_IDLE);
            assert_eq!(
                open(),
                1,
                "lanes left a second once their children are gone"
            );
        }
    }

    #[test]
    fn pids_fill_their_slot_with_a_terminating_nul() {
        for (pid, text) in [
            (1u64, "1"),
            (4_194_304, "4194304"),
            (123_456_789, "123456789"),
        ] {
            let mut slot = [b'x'; super::PID_WIDTH];
            unsafe { write_decimal(slot.as_mut_ptr(), pid) };
            assert_eq!(&slot[..text.len()], text.as_bytes());
            assert_eq!(slot[text.len()], 0);
        }
    }

    use std::os::fd::{AsRawFd, OwnedFd};
    use std::sync::Arc;

    /// Many sockets, so that their fd numbers (the lowest free ones of this process) fall
    /// inside 3 … 3+n−1, in an order that a plain dup2 loop would clobber.
    fn sockets(n: usize) -> Vec<Arc<OwnedFd>> {
        let mut fds: Vec<Arc<OwnedFd>> = (0..n)
            .map(|_| {
                let socket = std::os::unix::net::UnixDatagram::unbound().unwrap();
                Arc::new(OwnedFd::from(socket))
            })
            .collect();
        fds.reverse();
        fds
    }

    fn inode(fd: &OwnedFd) -> u64 {
        nix::sys::stat::fstat(fd).unwrap().st_ino
    }

    fn request(fds: &[Arc<OwnedFd>], cwd: &str) -> super::SpawnRequest {
        // readlink, not the shell's own view: what the exec'd process holds at 3, 4, ….
        let script = format!(
            "echo \"$LISTEN_PID $$ $LISTEN_FDS\"; for fd in $(seq 3 {}); do readlink /proc/$$/fd/$fd; done",
            2 + fds.len()
        );
        super::SpawnRequest {
            argv: vec!["/bin/sh".into(), "-c".into(), script],
            env: vec![("LISTEN_FDS".into(), fds.len().to_string())],
            cwd: cwd.into(),
            credentials: None,
            umask: None,
            cgroup: None,
            pid_env: vec!["LISTEN_PID".into()],
            stdin_pipe: false,
            listen_fds: fds.to_vec(),
        }
    }

    #[test]
    fn sockets_land_on_3_and_up_in_order_even_when_sources_sit_there() {
        sockets_land_in_order();
    }

    #[test]
    fn a_failure_after_the_sockets_moved_is_still_reported() {
        failure_after_the_move_is_reported();
    }

    /// The copying `clone3` (and `fork`) behind the shared-memory spawn: only taken where
    /// the kernel refuses that, so forced here.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_copying_fallback_moves_sockets_and_reports_failures_alike() {
        use super::shared_memory::{WAY_FOR_TEST, Way};
        WAY_FOR_TEST.with(|way| way.set(Way::Copy));
        sockets_land_in_order();
        failure_after_the_move_is_reported();
        a_burst_of_spawns_each_gets_its_own_pipes_and_pid();
    }

    /// The clone that waits for the exec (`CLONE_VFORK`): taken when every lane is busy,
    /// which a burst reaches only some of the time, so forced here.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_waiting_clone_moves_sockets_and_reports_failures_alike() {
        use super::shared_memory::{WAY_FOR_TEST, Way};
        WAY_FOR_TEST.with(|way| way.set(Way::Vfork));
        sockets_land_in_order();
        failure_after_the_move_is_reported();
        a_burst_of_spawns_each_gets_its_own_pipes_and_pid();
    }

    /// Children cloned back to back, none waited for: more than there are lanes, so some
    /// run while the fork thread clones the next, lanes are reused, and the waiting clone
    /// takes over when all are busy. Each child still gets its own pipes and environment,
    /// a failure before exec is reported by the one child that failed, and this thread's
    /// own `errno` use (every `io::Error` below) is not disturbed.
    #[test]
    fn a_burst_of_spawns_each_gets_its_own_pipes_and_pid() {
        let _descriptors = descriptors();
        let table = super::ProcessTable::default();
        let mut forked = Vec::new();
        for n in 0..60 {
            let mut request = request(&[], if n % 7 == 3 { "/nonexistent/tend" } else { "/" });
            request.argv[2] = format!("echo {n} $$ $WATCHDOG_PID; echo {n} >&2");
            request.pid_env = vec!["WATCHDOG_PID".into()];
            forked.push((n, super::fork(&table, request).expect("fork")));
        }
        super::settle();
        for (n, forked) in forked {
            let pid = forked.child.pid;
            let confirmed = forked.confirmed_blocking();
            if n % 7 == 3 {
                let error = confirmed.expect_err("a missing directory fails the spawn");
                assert_eq!(error.kind(), std::io::ErrorKind::NotFound, "{error}");
            } else {
                let child = confirmed.expect("spawn");
                let (mut out, mut err) = (String::new(), String::new());
                std::io::Read::read_to_string(&mut std::fs::File::from(child.stdout), &mut out)
                    .unwrap();
                std::io::Read::read_to_string(&mut std::fs::File::from(child.stderr), &mut err)
                    .unwrap();
                assert_eq!(out, format!("{n} {pid} {pid}\n"));
                assert_eq!(err, format!("{n}\n"));
            }
            let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid as i32), None);
            let expected = if n % 7 == 3 { 127 } else { 0 };
            assert_eq!(
                status,
                Ok(nix::sys::wait::WaitStatus::Exited(
                    nix::unistd::Pid::from_raw(pid as i32),
                    expected
                ))
            );
        }
    }

    fn sockets_land_in_order() {
        let _descriptors = descriptors();
        // Other tests of this process hold low descriptors meanwhile: make the range reach
        // past the lowest free one, so that some socket lands inside it.
        let lowest = nix::fcntl::fcntl(std::io::stdin(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))
            .map(|fd| {
                nix::unistd::close(fd).unwrap();
                fd as usize
            })
            .unwrap();
        let fds = sockets(100.max(lowest - 3 + 50));
        let n = fds.len() as i32;
        assert!(
            fds.iter().any(|fd| (3..3 + n).contains(&fd.as_raw_fd())),
            "no source inside the target range: the test would not test the overlap"
        );
        let table = super::ProcessTable::default();
        let child = super::spawn(&table, request(&fds, "/")).expect("spawn");
        let mut out = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(child.stdout), &mut out).unwrap();
        let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child.pid as i32), None);
        assert_eq!(
            status,
            Ok(nix::sys::wait::WaitStatus::Exited(
                nix::unistd::Pid::from_raw(child.pid as i32),
                0
            )),
            "{out}"
        );
        let mut lines = out.lines();
        let pid = child.pid.to_string();
        assert_eq!(
            lines.next(),
            Some(format!("{pid} {pid} {n}").as_str()),
            "LISTEN_PID is the child's own pid"
        );
        let held: Vec<&str> = lines.collect();
        let wanted: Vec<String> = fds
            .iter()
            .map(|fd| format!("socket:[{}]", inode(fd)))
            .collect();
        assert_eq!(held, wanted);
    }

    #[test]
    fn a_pid_variable_set_in_env_is_the_child_s_pid_all_the_same() {
        let mut request = request(&[], "/");
        // Shells take the last of two entries, glibc's getenv the first: count them.
        request.argv[2] =
            "echo \"$LISTEN_PID $$ $(tr '\\0' '\\n' < /proc/$$/environ | grep -c ^LISTEN_PID=)\""
                .into();
        request.env.push(("LISTEN_PID".into(), "1".into()));
        let table = super::ProcessTable::default();
        let child = super::spawn(&table, request).expect("spawn");
        let mut out = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(child.stdout), &mut out).unwrap();
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child.pid as i32), None);
        assert_eq!(out, format!("{0} {0} 1\n", child.pid));
    }

    /// A child gets none of the descriptors above this thread's slots, not even one tend
    /// left inheritable by mistake, however many tend holds; its output ends when it exits
    /// (the slots let go of its pipes), spawn after spawn.
    #[test]
    fn a_child_holds_none_of_tend_s_higher_descriptors_and_its_pipes_end() {
        let _descriptors = descriptors();
        let table = super::ProcessTable::default();
        let mut request = request(&[], "/");
        request.argv[2] = "echo out; echo err >&2; ls /proc/$$/fd".into();
        // The first spawn on a thread reserves its slots, at the lowest free numbers.
        let first = super::spawn(&table, request_clone(&request)).expect("spawn");
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(first.pid as i32), None);
        let null = std::fs::File::open("/dev/null").unwrap();
        let many: Vec<std::fs::File> = (0..1000).map(|_| null.try_clone().unwrap()).collect();
        // SAFETY: a new descriptor, closed below; without close-on-exec, as a careless
        // library might leave one.
        let leaked = unsafe { libc::fcntl(null.as_raw_fd(), libc::F_DUPFD, 1500) };
        assert!(leaked >= 1500, "{}", std::io::Error::last_os_error());
        for _ in 0..3 {
            let child = super::spawn(&table, request_clone(&request)).expect("spawn");
            let (mut out, mut err) = (String::new(), String::new());
            std::io::Read::read_to_string(&mut std::fs::File::from(child.stdout), &mut out)
                .unwrap();
            std::io::Read::read_to_string(&mut std::fs::File::from(child.stderr), &mut err)
                .unwrap();
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child.pid as i32), None);
            let fds: Vec<&str> = out.lines().skip(1).collect();
            assert_eq!(out.lines().next(), Some("out"), "{out}");
            assert_eq!(err, "err\n");
            // Parallel tests may leave low descriptors inheritable; nothing at 1 000 or
            // above is this test's but `many` and `leaked`.
            assert!(
                fds.iter()
                    .all(|fd| fd.parse::<i32>().is_ok_and(|fd| fd < 1000)),
                "the child holds {fds:?}"
            );
        }
        // SAFETY: opened above, closed once.
        unsafe { libc::close(leaked) };
        drop(many);
    }

    fn request_clone(request: &super::SpawnRequest) -> super::SpawnRequest {
        super::SpawnRequest {
            argv: request.argv.clone(),
            env: request.env.clone(),
            cwd: request.cwd.clone(),
            credentials: None,
            umask: None,
            cgroup: None,
            pid_env: request.pid_env.clone(),
            stdin_pipe: false,
            listen_fds: Vec::new(),
        }
    }

    fn failure_after_the_move_is_reported() {
        let _descriptors = descriptors();
        // Sockets made and then closed leave low numbers free for the pipes the spawn opens,
        // the status pipe among them: inside the range the sockets are moved onto. Had a
        // dup2 overwritten it, the chdir failure would go unheard and the spawn succeed.
        let mut fds = sockets(100);
        fds.truncate(60);
        let lowest_free = std::fs::File::open("/dev/null").unwrap();
        assert!(
            lowest_free.as_raw_fd() < 3 + fds.len() as i32,
            "no free number inside the target range: the test would not test the status pipe"
        );
        drop(lowest_free);
        let table = super::ProcessTable::default();
        let error = super::spawn(&table, request(&fds, "/nonexistent/tend-test")).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::NotFound, "{error}");
        let pid = table
            .lock()
            .keys()
            .copied()
            .next()
            .expect("the child was forked");
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid as i32), None);
    }
}

/// Why a one-shot command gave no exit code.
#[derive(Debug)]
pub enum RunOnceError {
    Spawn(String),
    /// Its exit was never reported (the reaper went away).
    Lost,
    /// It outlived its timeout; its whole process group was killed.
    TimedOut,
}

/// Run a one-shot command (an exec check, a notification) to its end: its output drained
/// and discarded so a chatty command never blocks on a full pipe, and its whole process
/// group killed once it outlives `timeout`. The exit is reported as a shell would.
pub async fn run_once(
    spawner: &Spawner,
    request: SpawnRequest,
    timeout: std::time::Duration,
) -> Result<i32, RunOnceError> {
    let child = spawner
        .spawn(request)
        .await
        .map_err(|e| RunOnceError::Spawn(e.to_string()))?;
    drain(child.stdout, 0);
    drain(child.stderr, 0);
    wait_bounded(child.pid, child.exit, timeout).await
}

/// What a one-shot command printed: the first [`KEPT_OUTPUT`] bytes of each stream.
#[derive(Debug)]
pub struct Printed {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Output kept of each stream by [`run_printing`]; the rest is read and dropped.
pub const KEPT_OUTPUT: usize = 64 * 1024;

/// [`run_once`], keeping what the command printed.
pub async fn run_printing(
    spawner: &Spawner,
    request: SpawnRequest,
    timeout: std::time::Duration,
) -> Result<Printed, RunOnceError> {
    let child = spawner
        .spawn(request)
        .await
        .map_err(|e| RunOnceError::Spawn(e.to_string()))?;
    let stdout = drain(child.stdout, KEPT_OUTPUT);
    let stderr = drain(child.stderr, KEPT_OUTPUT);
    let code = wait_bounded(child.pid, child.exit, timeout).await?;
    // A descendant may hold the pipes open after the command ended: keep what came so far.
    let collect = |task: Option<tokio::task::JoinHandle<Vec<u8>>>| async move {
        match task {
            Some(task) => tokio::time::timeout(std::time::Duration::from_secs(1), task)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default(),
            None => Vec::new(),
        }
    };
    Ok(Printed {
        code,
        stdout: collect(stdout).await,
        stderr: collect(stderr).await,
    })
}

/// Read a pipe to its end on a task of its own, so a chatty command never blocks on it;
/// the first `keep` bytes are returned.
fn drain(fd: OwnedFd, keep: usize) -> Option<tokio::task::JoinHandle<Vec<u8>>> {
    let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(fd).ok()?;
    Some(tokio::spawn(async move {
        let mut kept = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if pipe.readable().await.is_err() {
                break;
            }
            match pipe.try_read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let room = keep.saturating_sub(kept.len()).min(n);
                    kept.extend_from_slice(&buf[..room]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
        kept
    }))
}

/// The exit of a one-shot command as a shell reports it; its whole process group is killed
/// once it outlives `timeout`.
async fn wait_bounded(
    pid: u32,
    exit: oneshot::Receiver<ExitStatus>,
    timeout: std::time::Duration,
) -> Result<i32, RunOnceError> {
    let mut exit = exit;
    match tokio::time::timeout(timeout, &mut exit).await {
        Ok(Ok(status)) => Ok(status.shell_code()),
        Ok(Err(_)) => Err(RunOnceError::Lost),
        Err(_) => {
            // The command leads its own process group: take all of it.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = exit.await;
            Err(RunOnceError::TimedOut)
        }
    }
}
