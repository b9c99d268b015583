//! Spawning and reaping: the only code that forks, execs or waits on processes.
//!
//! One thread forks every child: in the daemon, the main thread, which does nothing else. A
//! child's PR_SET_PDEATHSIG fires when the *thread* that forked it exits, and `execve` ends
//! every thread but the one that calls it; so the thread that forks is also the one that
//! re-executes tend in place (`tend upgrade`), and the children live through it. The fork
//! thread only forks, without copying tend (see `vfork`): it waits for each child to
//! reach its exec, and whether the exec worked is read from a status pipe on the runtime.
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
use std::sync::atomic::{AtomicBool, Ordering};
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
        for job in self.inbox {
            match job {
                Job::Spawn(request, reply) => {
                    let _ = reply.send(fork(&self.table, request));
                }
                Job::Exec(image, reply) => {
                    let _ = reply.send(exec_here(&image));
                }
                Job::Finish => return,
            }
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
    fork(table, request)?.confirmed_blocking()
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
    // Sockets are passed on 3, 4, … from wherever tend holds them: that child keeps the
    // whole table until its exec.
    let slots = if prepared.listen.is_empty() {
        SLOTS_OF_THIS_THREAD.with(|slots| slots.as_ref().and_then(|s| s.fill(own).ok()))
    } else {
        None
    };
    let fds = slots.unwrap_or(ChildFds {
        stdin: own[0],
        stdout: own[1],
        stderr: own[2],
        status: own[3],
        own_table_below: None,
    });
    let (exit_tx, exit) = oneshot::channel();
    // Held from the fork until the pid is registered: see the module docs.
    let shared = table
        .gate
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut pid = -1;
    #[cfg(target_arch = "x86_64")]
    if !vfork::refused_for_test() {
        if let Some(fd) = &cgroup_dir {
            pid = vfork::spawn(&prepared, &fds, None, Some(fd.as_raw_fd()));
        }
        if pid < 0 {
            pid = vfork::spawn(&prepared, &fds, cgroup_procs.as_ref(), None);
        }
    }
    if pid < 0 {
        // No shared-memory clone3 (another architecture, an old kernel, seccomp): a copying
        // one, then a classic fork.
        let mut joined_by_clone = false;
        if let Some(fd) = &cgroup_dir {
            pid = clone3(
                CLONE_INTO_CGROUP | CLONE_CLEAR_SIGHAND,
                Some(fd.as_raw_fd()),
            );
            joined_by_clone = pid >= 0;
        }
        if pid < 0 {
            pid = clone3(CLONE_CLEAR_SIGHAND, None);
        }
        if pid < 0 {
            pid = unsafe { libc::fork() };
        }
        if pid == 0 {
            let join = if joined_by_clone {
                None
            } else {
                cgroup_procs.as_ref()
            };
            // SAFETY: in the child of a fork; `child` only makes async-signal-safe calls on
            // data prepared before the fork, and never returns.
            unsafe { child(&prepared, &fds, join) }
        }
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    if fds.own_table_below.is_some() {
        // The child has exec'd or exited (the clone waited for it), so it no longer shares
        // this table: the slots let go of its pipes.
        SLOTS_OF_THIS_THREAD.with(|slots| slots.as_ref().map(Slots::empty));
    }
    let pid = pid as u32;
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
    fn fill(&self, fds: [RawFd; 4]) -> io::Result<ChildFds> {
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

/// Spawning without copying tend: clone3 with `CLONE_VM | CLONE_VFORK`, as posix_spawn does.
/// A copying fork costs page tables for all of tend's memory (0.24 ms of a 1.2 ms restart
/// at 200 services), tears them down again at exec, and leaves every page of the daemon
/// copy-on-write until its next write. Here the child runs `child` on a stack of its own in
/// tend's memory while the fork thread waits (the kernel releases it when the exec has
/// replaced the child's memory, or when the child exits), so the child writes only to that
/// stack and to the spawn's own `Prepared`. Unlike glibc's `clone`, clone3 can start the
/// child inside its cgroup; the child's start on the new stack needs a few instructions of
/// assembly, written here for x86-64 only.
#[cfg(target_arch = "x86_64")]
mod vfork {
    use super::*;

    /// Room for `child` and the libc wrappers it calls, above one guard page.
    const STACK: usize = 128 * 1024;
    const PAGE: usize = 4096;

    /// The child's stack, one per forking thread, mapped at its first spawn.
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
    }

    impl Drop for Stack {
        fn drop(&mut self) {
            // SAFETY: mapped by `map` with this length; no child runs on it any more (the
            // thread that owns it waits for each one to exec or exit).
            unsafe { libc::munmap(self.base, STACK + PAGE) };
        }
    }

    thread_local! {
        static STACK_OF_THIS_THREAD: Option<Stack> = Stack::map();
    }

    #[cfg(test)]
    thread_local! {
        /// Set by a test to take the fallback path on its own thread, as a kernel that
        /// refuses `CLONE_VM` here would.
        pub(super) static REFUSED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    pub(super) fn refused_for_test() -> bool {
        #[cfg(test)]
        return REFUSED.with(|refused| refused.get());
        #[cfg(not(test))]
        false
    }

    /// What the child needs, on the parent's stack (readable: the parent waits).
    struct Start<'a> {
        prepared: &'a Prepared,
        fds: &'a ChildFds,
        join: Option<&'a CString>,
    }

    /// The child's entry on its own stack.
    ///
    /// # Safety
    /// Only as the first call of a child made by [`spawn`], with `start` pointing at its
    /// [`Start`].
    unsafe extern "C" fn enter(start: *const Start<'_>) -> ! {
        // SAFETY: the parent waits until this child execs or exits, so `start` stays valid.
        unsafe {
            let start = &*start;
            child(start.prepared, start.fds, start.join)
        }
    }

    /// The child's pid, or −1 when the kernel refused (the caller falls back to a copy).
    pub(super) fn spawn(
        prepared: &Prepared,
        fds: &ChildFds,
        join: Option<&CString>,
        cgroup: Option<RawFd>,
    ) -> libc::pid_t {
        STACK_OF_THIS_THREAD.with(|stack| {
            let Some(stack) = stack else { return -1 };
            let start = Start {
                prepared,
                fds,
                join,
            };
            let mut args = CloneArgs {
                flags: libc::CLONE_VM as u64 | libc::CLONE_VFORK as u64 | CLONE_CLEAR_SIGHAND,
                exit_signal: libc::SIGCHLD as u64,
                // The kernel starts the child's stack pointer at stack + stack_size, which
                // is page-aligned and so 16-byte aligned, as the call below needs.
                stack: stack.base as u64 + PAGE as u64,
                stack_size: STACK as u64,
                ..Default::default()
            };
            if let Some(fd) = cgroup {
                args.flags |= CLONE_INTO_CGROUP;
                args.cgroup = fd as u64;
            }
            if fds.own_table_below.is_some() {
                args.flags |= libc::CLONE_FILES as u64;
            }
            let ret: i64;
            // SAFETY: the child returns from the system call on its own, empty stack, with
            // the registers of the parent but rax; it calls `enter` (which never returns)
            // and touches nothing of the parent's stack. The parent goes on past the label
            // once the child has exec'd or exited. syscall clobbers rcx and r11.
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
                    in("rdi") &mut args as *mut CloneArgs,
                    in("rsi") std::mem::size_of::<CloneArgs>(),
                    in("r12") &start as *const Start<'_>,
                    in("r13") enter as unsafe extern "C" fn(*const Start<'_>) -> !,
                    lateout("rcx") _,
                    lateout("r11") _,
                    options(nostack),
                );
            }
            if ret < 0 { -1 } else { ret as libc::pid_t }
        })
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

/// The child's side, between fork and exec.
///
/// # Safety
/// Must only be called in a freshly forked child.
unsafe fn child(p: &Prepared, fds: &ChildFds, join_cgroup: Option<&CString>) -> ! {
    unsafe {
        let fail = |status: RawFd| -> ! {
            let errno = *libc::__errno_location();
            let bytes = errno.to_be_bytes();
            libc::write(status, bytes.as_ptr().cast(), 4);
            libc::_exit(127)
        };
        if let Some(below) = fds.own_table_below
            && libc::syscall(
                libc::SYS_close_range,
                below as libc::c_uint,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_UNSHARE,
            ) != 0
        {
            // Still tend's table: nothing else may be done with it.
            fail(fds.status);
        }
        // A clean signal state for the program: nothing blocked, and SIGPIPE (Rust ignores
        // it) and SIGXFSZ (the daemon ignores it) back to their defaults: an ignored signal
        // stays ignored across exec.
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::signal(libc::SIGXFSZ, libc::SIG_DFL);
        if let Some(path) = join_cgroup {
            // On failure the process group still contains it.
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd >= 0 {
                libc::write(fd, b"0".as_ptr().cast(), 1);
                libc::close(fd);
            }
        }
        if libc::setpgid(0, 0) != 0 {
            fail(fds.status);
        }
        let status = match p.listen.len() {
            0 => fds.status,
            n => pass_sockets_above(p, n as RawFd, fds.status),
        };
        if libc::dup2(fds.stdin, 0) < 0
            || libc::dup2(fds.stdout, 1) < 0
            || libc::dup2(fds.stderr, 2) < 0
        {
            fail(status);
        }
        if !p.listen.is_empty() && !pass_sockets_down(p) {
            fail(status);
        }
        if libc::chdir(p.cwd.as_ptr()) != 0 {
            fail(status);
        }
        if libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ) != 0
        {
            fail(status);
        }
        // tend died between fork and prctl: the signal will never come, so do not run.
        if libc::getppid() != p.parent {
            *libc::__errno_location() = libc::ESRCH;
            fail(status);
        }
        if let Some(mask) = p.umask {
            libc::umask(mask as libc::mode_t);
        }
        // Raw system calls, not glibc's wrappers: those broadcast the change to every thread
        // glibc believes the process has, and after a raw clone3 that list still names the
        // parent's threads, so the wrapper can wait forever.
        if let Some(c) = &p.credentials
            && (libc::syscall(libc::SYS_setgroups, p.groups.len(), p.groups.as_ptr()) != 0
                || libc::syscall(libc::SYS_setgid, c.gid) != 0
                || libc::syscall(libc::SYS_setuid, c.uid) != 0)
        {
            fail(status);
        }
        if !p.pid_slots.is_empty() {
            let pid = libc::syscall(libc::SYS_getpid) as u64;
            for slot in &p.pid_slots {
                write_decimal(slot.entry.add(slot.value), pid);
            }
        }
        let argv_ptrs = p.argv_ptrs();
        let envp_ptrs = p.envp_ptrs();
        libc::execve(p.program.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr());
        fail(status)
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
/// In the forked child only, with `p.moved` holding `n` slots.
unsafe fn pass_sockets_above(p: &Prepared, n: RawFd, status: RawFd) -> RawFd {
    unsafe {
        for (i, &source) in p.listen.iter().enumerate() {
            *p.moved.add(i) = libc::fcntl(source, libc::F_DUPFD_CLOEXEC, 3 + n);
        }
        match libc::fcntl(status, libc::F_DUPFD_CLOEXEC, 3 + n) {
            -1 => status,
            moved => moved,
        }
    }
}

/// The second half: each copy onto 3, 4, … in order, without close-on-exec. Every copy is
/// at 3+n or above, so `dup2` never has old == new (which would leave the flag set); it is
/// cleared explicitly all the same, as the one thing that must hold at exec.
///
/// # Safety
/// In the forked child only, after `pass_sockets_above`.
unsafe fn pass_sockets_down(p: &Prepared) -> bool {
    unsafe {
        for i in 0..p.listen.len() {
            let moved = *p.moved.add(i);
            let target = 3 + i as RawFd;
            if moved < 0
                || libc::dup2(moved, target) < 0
                || libc::fcntl(target, libc::F_SETFD, 0) < 0
            {
                return false;
            }
        }
        true
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
        super::vfork::REFUSED.with(|refused| refused.set(true));
        sockets_land_in_order();
        failure_after_the_move_is_reported();
    }

    fn sockets_land_in_order() {
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
