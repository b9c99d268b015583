//! `cron_restart` and `schedule`: one task per such setting, which sleeps until the
//! expression next fires and then sends the supervisor a [`SupervisorCommand::Trigger`],
//! as the API sends a restart. What to do at a fire (which instances restart, whether a run
//! is still going) is the supervisor's decision, taken against its current states.
//!
//! Fire times are computed from the wall clock in local time ([`Clock::now`],
//! [`Clock::zone`]); the waiting is `tokio::time`, at most [`MAX_SLEEP`] at a time, so a
//! clock that is set, or a machine that was suspended, is noticed within a minute. Both
//! come from a [`Clock`], which tests replace: a paused tokio clock and a wall clock made
//! from it, with no real waiting.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc::WeakUnboundedSender;

use crate::config::cron::{Cron, LocalZone, Zone};
use crate::engine::command::{SupervisorCommand, Trigger};

/// Look at the wall clock at least this often while waiting for a fire.
pub const MAX_SLEEP: Duration = Duration::from_secs(60);

/// A wall clock set back by more than this starts the schedule afresh from the new time.
/// Set back by less (an NTP step), nothing that already fired fires again; it waits.
pub const RESET_BACK: Duration = Duration::from_secs(3 * 3600);

/// Where a schedule reads the time and waits.
pub trait Clock: Send + Sync + 'static {
    /// Now, on the wall clock.
    fn now(&self) -> SystemTime;
    /// Wait this long (the scheduler looks at [`Clock::now`] again afterwards, so a wake
    /// that comes early or late is harmless).
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;
    /// The zone cron expressions are read in.
    fn zone(&self) -> &dyn Zone {
        &LocalZone
    }
}

/// The machine's clock, its local time zone and tokio's timers.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// Which key a schedule comes from: its name in messages and reasons.
fn key(action: Trigger) -> &'static str {
    match action {
        Trigger::RestartRunning => "cron_restart",
        Trigger::RestartUnlessStopped => "watch",
        Trigger::Run => "schedule",
    }
}

fn unix_secs(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_secs() as i64,
        Err(before) => -(before.duration().as_secs_f64().ceil() as i64),
    }
}

/// `1h56m`, `5m`: how late a fire is, to the minute.
fn minutes(late: Duration) -> String {
    let minutes = late.as_secs() / 60;
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m}m"),
        (h, 0) => format!("{h}h"),
        (h, m) => format!("{h}h{m}m"),
    }
}

/// Fire `action` for `service` whenever `cron` says, until the engine is gone (or the task
/// is aborted: the supervisor does that when the service is removed or tend stops).
pub async fn run(
    service: String,
    cron: Cron,
    action: Trigger,
    clock: Arc<dyn Clock>,
    commands: WeakUnboundedSender<SupervisorCommand>,
) {
    let what = key(action);
    // Fires strictly after this: the start, then the last fire.
    let mut from = unix_secs(clock.now());
    loop {
        let Some(next) = cron.next_after(from, clock.zone()) else {
            crate::logs::own::say(&format!(
                "{service}: {what} \"{cron}\" does not fire again; no more {what}s"
            ));
            return;
        };
        let now = clock.now();
        let now_secs = unix_secs(now);
        if now_secs + (RESET_BACK.as_secs() as i64) < from {
            // The clock was set back by hours: waiting for the old time to come round
            // again would silence the schedule for as long.
            from = now_secs;
            continue;
        }
        let due = UNIX_EPOCH + Duration::from_secs(next.max(0) as u64);
        if now < due {
            let wait = due.duration_since(now).unwrap_or_default();
            clock.sleep(wait.min(MAX_SLEEP)).await;
            continue;
        }
        // Due (or overdue: a suspend, the clock set forward). One fire, however many were
        // missed, then on from now.
        let late = now.duration_since(due).unwrap_or_default();
        let mut reason = format!("{what} \"{cron}\"");
        if late >= MAX_SLEEP {
            reason.push_str(&format!(", {} late", minutes(late)));
        }
        let Some(commands) = commands.upgrade() else {
            return;
        };
        let sent = commands.send(SupervisorCommand::Trigger {
            service: service.clone(),
            action,
            reason,
            reply: None,
        });
        if sent.is_err() {
            return;
        }
        from = now_secs.max(next);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use tokio::sync::mpsc;
    use tokio::time::Instant;

    use super::*;
    use crate::config::cron::{Utc, days_from_civil};

    /// Wall time from the paused tokio clock, plus a jump the test can make.
    struct TestClock {
        base: SystemTime,
        start: Instant,
        jumped: AtomicI64,
    }

    impl TestClock {
        fn at(unix: i64) -> Arc<TestClock> {
            Arc::new(TestClock {
                base: UNIX_EPOCH + Duration::from_secs(unix as u64),
                start: Instant::now(),
                jumped: AtomicI64::new(0),
            })
        }

        fn jump(&self, seconds: i64) {
            self.jumped.fetch_add(seconds, Ordering::SeqCst);
        }
    }

    impl Clock for TestClock {
        fn now(&self) -> SystemTime {
            let jumped = self.jumped.load(Ordering::SeqCst);
            let t = self.base + self.start.elapsed();
            if jumped >= 0 {
                t + Duration::from_secs(jumped as u64)
            } else {
                t - Duration::from_secs(jumped.unsigned_abs())
            }
        }

        fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
            Box::pin(tokio::time::sleep(duration))
        }

        fn zone(&self) -> &dyn Zone {
            &Utc
        }
    }

    fn utc(year: i64, month: u32, day: u32, hour: i64, minute: i64, second: i64) -> i64 {
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
    }

    /// A schedule feeding a channel the test reads as the supervisor would.
    fn start(
        expr: &str,
        action: Trigger,
        clock: Arc<TestClock>,
    ) -> (
        mpsc::UnboundedReceiver<SupervisorCommand>,
        mpsc::UnboundedSender<SupervisorCommand>,
        tokio::task::JoinHandle<()>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(
            "job".into(),
            Cron::parse(expr).unwrap(),
            action,
            clock,
            tx.downgrade(),
        ));
        (rx, tx, task)
    }

    /// The next fire: when (on the wall clock) and why.
    async fn fired(
        rx: &mut mpsc::UnboundedReceiver<SupervisorCommand>,
        clock: &TestClock,
    ) -> (i64, Trigger, String) {
        match rx.recv().await {
            Some(SupervisorCommand::Trigger {
                service,
                action,
                reason,
                ..
            }) => {
                assert_eq!(service, "job");
                (unix_secs(clock.now()), action, reason)
            }
            other => panic!("expected a trigger, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn fires_at_each_due_minute_and_no_other() {
        let clock = TestClock::at(utc(2026, 5, 4, 10, 7, 30));
        let (mut rx, _tx, task) = start("*/5 * * * *", Trigger::Run, clock.clone());
        for minute in [10, 15, 20] {
            let (at, action, reason) = fired(&mut rx, &clock).await;
            assert_eq!(at, utc(2026, 5, 4, 10, minute, 0));
            assert_eq!(action, Trigger::Run);
            assert_eq!(reason, "schedule \"*/5 * * * *\"");
        }
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_daily_restart_waits_a_day_in_minute_steps() {
        let clock = TestClock::at(utc(2026, 5, 4, 3, 0, 0));
        let started = Instant::now();
        let (mut rx, _tx, task) = start("0 3 * * *", Trigger::RestartRunning, clock.clone());
        let (at, action, reason) = fired(&mut rx, &clock).await;
        assert_eq!(at, utc(2026, 5, 5, 3, 0, 0), "not at the very start");
        assert_eq!(action, Trigger::RestartRunning);
        assert_eq!(reason, "cron_restart \"0 3 * * *\"");
        assert_eq!(started.elapsed(), Duration::from_secs(86_400));
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_jump_forward_fires_once_late_and_a_step_back_fires_nothing_twice() {
        let clock = TestClock::at(utc(2026, 5, 4, 10, 0, 30));
        let (mut rx, _tx, task) = start("*/5 * * * *", Trigger::Run, clock.clone());
        let (at, _, _) = fired(&mut rx, &clock).await;
        assert_eq!(at, utc(2026, 5, 4, 10, 5, 0));
        // Suspended for two hours (the scheduler was in a one-minute sleep): 24 fires were
        // missed; one comes when that sleep ends, late.
        clock.jump(2 * 3600);
        let (at, _, reason) = fired(&mut rx, &clock).await;
        assert_eq!(at, utc(2026, 5, 4, 12, 6, 0));
        assert_eq!(reason, "schedule \"*/5 * * * *\", 1h56m late");
        let (at, _, reason) = fired(&mut rx, &clock).await;
        assert_eq!(at, utc(2026, 5, 4, 12, 10, 0));
        assert_eq!(reason, "schedule \"*/5 * * * *\"");
        // An NTP step back of four minutes right after a fire: 12:10 does not fire again.
        clock.jump(-240);
        let before = Instant::now();
        let (at, _, _) = fired(&mut rx, &clock).await;
        assert_eq!(at, utc(2026, 5, 4, 12, 15, 0));
        assert_eq!(before.elapsed(), Duration::from_secs(540));
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_clock_set_back_by_hours_starts_afresh() {
        let clock = TestClock::at(utc(2026, 5, 4, 10, 0, 30));
        let (mut rx, _tx, task) = start("0 * * * *", Trigger::Run, clock.clone());
        let (at, _, _) = fired(&mut rx, &clock).await;
        assert_eq!(at, utc(2026, 5, 4, 11, 0, 0));
        // The clock was a day ahead: once it is corrected, the hours fire again.
        clock.jump(-86_400);
        let (at, _, _) = fired(&mut rx, &clock).await;
        assert_eq!(at, utc(2026, 5, 3, 12, 0, 0));
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn the_task_ends_with_the_engine() {
        let clock = TestClock::at(utc(2026, 5, 4, 10, 0, 30));
        let (rx, tx, task) = start("* * * * *", Trigger::Run, clock);
        drop(rx);
        drop(tx);
        tokio::time::timeout(Duration::from_secs(120), task)
            .await
            .expect("ended at the first fire")
            .unwrap();
    }
}
