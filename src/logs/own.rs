//! tend's own log: state changes, restarts with their reasons, errors. `say` never blocks on
//! a disk: it queues the line for the log writer thread, which appends it, timestamped, to
//! `state_dir/tend.log` with the same rotation as a service's log. In the foreground the line
//! also goes to stderr at once.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use crate::logs::line::rfc3339_millis;

/// Lines waiting for the writer; past this they are counted and the count is logged instead.
const QUEUE_LINES: usize = 4096;

static OWN: OnceLock<OwnLog> = OnceLock::new();

pub(crate) struct OwnLog {
    queue: Mutex<Queue>,
    wake: Box<dyn Fn() + Send + Sync>,
    to_stderr: bool,
}

#[derive(Default)]
pub(crate) struct Queue {
    lines: VecDeque<(SystemTime, String)>,
    dropped: u64,
}

/// Report something in tend's own log (and on stderr in the foreground).
pub fn say(message: &str) {
    let Some(own) = OWN.get() else {
        // Before the log writer runs (or in a client): stderr is all there is.
        let _ = writeln!(std::io::stderr().lock(), "tend: {message}");
        return;
    };
    if own.to_stderr {
        let _ = writeln!(std::io::stderr().lock(), "tend: {message}");
    }
    let first = {
        let mut queue = own.queue.lock().unwrap_or_else(|p| p.into_inner());
        if queue.lines.len() >= QUEUE_LINES {
            queue.dropped += 1;
            return;
        }
        queue
            .lines
            .push_back((SystemTime::now(), message.to_string()));
        queue.lines.len() == 1
    };
    if first {
        (own.wake)();
    }
}

/// Route `say` through the log writer from now on (once per process).
pub(crate) fn install(wake: Box<dyn Fn() + Send + Sync>, to_stderr: bool) {
    let _ = OWN.set(OwnLog {
        queue: Mutex::default(),
        wake,
        to_stderr,
    });
}

/// Format what is queued as lines for tend.log into `out`.
pub(crate) fn drain(out: &mut Vec<u8>) {
    let Some(own) = OWN.get() else {
        return;
    };
    let (lines, dropped) = {
        let mut queue = own.queue.lock().unwrap_or_else(|p| p.into_inner());
        (
            std::mem::take(&mut queue.lines),
            std::mem::take(&mut queue.dropped),
        )
    };
    for (time, message) in lines {
        rfc3339_millis(out, time);
        out.push(b' ');
        out.extend_from_slice(message.as_bytes());
        out.push(b'\n');
    }
    if dropped > 0 {
        rfc3339_millis(out, SystemTime::now());
        out.extend_from_slice(
            format!(" {dropped} messages were not logged: the log writer was behind\n").as_bytes(),
        );
    }
}
