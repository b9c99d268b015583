//! One target's backlog. Not a channel: when it is full the oldest notice goes, since the
//! newest says most about how things stand now, and a channel can only refuse the newest.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

use super::Notice;

/// Notices waiting per target. A target down for its whole retry cycle (31 s) behind a
/// crash-looping service queues a few dozen at most; past that they are stale anyway.
pub const QUEUE_CAPACITY: usize = 64;

pub(super) struct Queue {
    state: Mutex<State>,
    wake: Notify,
}

#[derive(Default)]
struct State {
    items: VecDeque<Notice>,
    /// Within a drop episode: from the first drop until the queue next runs empty.
    dropping: bool,
    dropped: u64,
    /// The worker holds a notice it has not finished delivering.
    busy: bool,
    closed: bool,
}

impl Queue {
    pub(super) fn new() -> Queue {
        Queue {
            state: Mutex::new(State {
                items: VecDeque::with_capacity(QUEUE_CAPACITY),
                ..State::default()
            }),
            wake: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a notice, dropping the oldest when full. True when this began a drop episode, so
    /// the caller reports it once (outside the lock).
    pub(super) fn push(&self, notice: Notice) -> bool {
        let started = {
            let mut state = self.state();
            if state.closed {
                return false;
            }
            let mut started = false;
            if state.items.len() >= QUEUE_CAPACITY {
                state.items.pop_front();
                state.dropped += 1;
                started = !state.dropping;
                state.dropping = true;
            }
            state.items.push_back(notice);
            started
        };
        // Stores a permit when the worker is busy, so it cannot miss this one.
        self.wake.notify_one();
        started
    }

    /// The next notice to deliver; None once closed and drained. Calling it again means the
    /// previous one is done.
    pub(super) async fn next(&self) -> Option<Notice> {
        loop {
            {
                let mut state = self.state();
                state.busy = false;
                if let Some(notice) = state.items.pop_front() {
                    state.busy = true;
                    return Some(notice);
                }
                state.dropping = false;
                if state.closed {
                    return None;
                }
            }
            self.wake.notified().await;
        }
    }

    pub(super) fn close(&self) {
        self.state().closed = true;
        self.wake.notify_one();
    }

    pub(super) fn dropped(&self) -> u64 {
        self.state().dropped
    }

    /// Notices not yet delivered, the one in flight included.
    pub(super) fn pending(&self) -> usize {
        let state = self.state();
        state.items.len() + usize::from(state.busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notifications::NoticeKind;
    use std::time::SystemTime;

    fn notice(n: usize) -> Notice {
        Notice {
            kind: NoticeKind::Fatal,
            at: SystemTime::UNIX_EPOCH,
            service: "web".into(),
            instance: "web".into(),
            reason: n.to_string(),
            exit: None,
        }
    }

    #[tokio::test]
    async fn full_queue_drops_the_oldest_and_reports_once_per_episode() {
        let queue = Queue::new();
        let mut episodes = 0;
        for n in 0..QUEUE_CAPACITY + 3 {
            episodes += usize::from(queue.push(notice(n)));
        }
        assert_eq!(episodes, 1);
        assert_eq!(queue.dropped(), 3);
        let first = queue.next().await.unwrap();
        assert_eq!(first.reason, "3", "0, 1 and 2 were dropped");
        while queue.pending() > 1 {
            queue.next().await.unwrap();
        }
        // Drained: the episode is over once the worker finds it empty.
        queue.close();
        assert!(queue.next().await.is_none());
        assert_eq!(queue.pending(), 0);

        let queue = Queue::new();
        for n in 0..QUEUE_CAPACITY + 1 {
            queue.push(notice(n));
        }
        for _ in 0..QUEUE_CAPACITY {
            queue.next().await.unwrap();
        }
        let drained = tokio::time::timeout(std::time::Duration::from_millis(10), queue.next());
        assert!(drained.await.is_err(), "nothing left, waits");
        let mut episodes = 0;
        for n in 0..QUEUE_CAPACITY + 1 {
            episodes += usize::from(queue.push(notice(n)));
        }
        assert_eq!(episodes, 1, "a new episode is reported again");
    }

    #[tokio::test]
    async fn closed_queue_refuses_and_drains() {
        let queue = Queue::new();
        queue.push(notice(1));
        queue.close();
        queue.push(notice(2));
        assert_eq!(queue.next().await.unwrap().reason, "1");
        assert!(queue.next().await.is_none());
    }
}
