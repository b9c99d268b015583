//! Threads that work behind the engine: the log writer, the history and log compression.
//! They run as SCHED_BATCH, which gives them the same share of the CPU but never lets one
//! preempt the thread that woke it: when the engine hands a stream's end to the log writer
//! while a child restarts, the engine goes on to the restart first.

use std::io;
use std::thread::JoinHandle;

/// Start `work` on a thread of its own, named `name`, scheduled as background work.
pub fn spawn<T, F>(name: &str, work: F) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: pid 0 is the calling thread; the parameter is a valid value. Failing
            // (a seccomp filter, say) leaves the thread an ordinary one.
            unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
            work()
        })
}
