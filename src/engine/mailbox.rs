//! A tiny unbounded queue for an instance's commands. tokio's mpsc preallocates a block of 32
//! slots per channel; with hundreds of instances that alone outweighs everything else an idle
//! instance holds, while an instance receives a handful of commands in its life.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

struct Shared<T> {
    queue: Mutex<VecDeque<T>>,
    notify: Notify,
    closed: AtomicBool,
}

/// The sending side; dropping it closes the mailbox.
impl<T> Shared<T> {
    fn take(&self, mut take: impl FnMut(&T) -> bool) -> Vec<T> {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let (taken, kept): (VecDeque<T>, VecDeque<T>) =
            queue.drain(..).partition(|item| take(item));
        *queue = kept;
        taken.into()
    }
}

pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

pub fn mailbox<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(VecDeque::new()),
        notify: Notify::new(),
        closed: AtomicBool::new(false),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

impl<T> Sender<T> {
    pub fn send(&self, item: T) {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(item);
        // A stored permit if nobody waits yet: no wake-up is ever lost.
        self.shared.notify.notify_one();
    }
}

impl<T> Sender<T> {
    /// Take queued items out (those `remove` says to), oldest first, before the task sees them.
    pub fn withdraw(&self, remove: impl FnMut(&T) -> bool) -> Vec<T> {
        self.shared.take(remove)
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.notify.notify_one();
    }
}

impl<T> Receiver<T> {
    /// Take the queued items `take` selects, leaving the others in order.
    pub fn take(&mut self, take: impl FnMut(&T) -> bool) -> Vec<T> {
        self.shared.take(take)
    }

    /// The next item, or None once the sender is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<T> {
        loop {
            if let Some(item) = self
                .shared
                .queue
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front()
            {
                return Some(item);
            }
            if self.shared.closed.load(Ordering::Acquire) {
                return None;
            }
            self.shared.notify.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delivers_in_order_then_closes() {
        let (tx, mut rx) = mailbox();
        tx.send(1);
        tx.send(2);
        assert_eq!(rx.recv().await, Some(1));
        let waiter = tokio::spawn(async move {
            let mut got = vec![];
            while let Some(x) = rx.recv().await {
                got.push(x);
            }
            got
        });
        tokio::task::yield_now().await;
        tx.send(3);
        drop(tx);
        assert_eq!(waiter.await.unwrap(), vec![2, 3]);
    }
}
