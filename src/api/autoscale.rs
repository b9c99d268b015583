//! `autoscale = { min, max, cpu, cooldown }`: a task that follows each autoscaled service's
//! CPU and changes its count through [`super::scale::scale_to`], as `tend scale` does.
//!
//! The rule (Kubernetes' HorizontalPodAutoscaler's, with its stabilisation made simple):
//!
//! - the measure is the **mean CPU per running instance** (each instance's whole process
//!   tree, in % of one core, as `tend status` shows it), averaged over the samples of the
//!   last [`WINDOW`] taken since the last change, and only once there are [`MIN_SAMPLES`]
//!   of them: one busy moment is not a trend;
//! - **up** when that mean is above the target: straight to the count that would bring it
//!   back to the target (`ceil(count × mean / target)`, at least one more), at most `max`;
//! - **down** when it is below [`DOWN_BELOW`] of the target: one instance at a time, at
//!   least `min`. Between half the target and the target nothing changes (the hysteresis
//!   that keeps a count that just went up from coming straight back down);
//! - at most one change per `cooldown`, counted from the last change of the count (by the
//!   autoscaler, an apply, or tend's start).
//!
//! [`decide`] is a pure function of the readings; [`Autoscaler`] keeps each service's
//! samples and last change; [`run`] drives them on tokio's clock through [`Scaling`], which
//! the daemon implements over the engine and the tests over injected readings.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

use crate::config::model::AutoscaleSpec;

/// Below this share of the target, a service scales down.
pub const DOWN_BELOW: f64 = 0.5;
/// The samples a decision reads: those of the last 30 s (or of the last [`MIN_SAMPLES`]
/// sampling intervals, if that is longer) taken since the count last changed.
pub const WINDOW: Duration = Duration::from_secs(30);
/// No decision on fewer samples than this.
pub const MIN_SAMPLES: usize = 3;

/// What to do with a service's count.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Hold,
    Scale { to: u32, reason: String },
}

/// The count `policy` wants for a service of `count` instances whose running instances use
/// `cpu` (mean % of one core; None: nothing measured yet), `since_change` after its count
/// last changed (None: never).
pub fn decide(
    policy: &AutoscaleSpec,
    count: u32,
    cpu: Option<f64>,
    since_change: Option<Duration>,
) -> Decision {
    // Outside the bounds (they changed under it): back inside at once, whatever the CPU.
    if count < policy.min || count > policy.max {
        let to = count.clamp(policy.min, policy.max);
        let (side, bound) = if count < policy.min {
            ("below min", policy.min)
        } else {
            ("above max", policy.max)
        };
        return Decision::Scale {
            to,
            reason: format!("{side} {bound}: {count} → {to}"),
        };
    }
    let Some(cpu) = cpu else {
        return Decision::Hold;
    };
    if since_change.is_some_and(|since| since < policy.cooldown) {
        return Decision::Hold;
    }
    let target = policy.cpu;
    if cpu > target && count < policy.max {
        let wanted = (f64::from(count) * cpu / target).ceil();
        // `as` saturates: a huge reading asks for `max`, no more.
        let to = (wanted as u32).clamp(count + 1, policy.max);
        return Decision::Scale {
            to,
            reason: format!(
                "cpu {} > {} target: {count} → {to}",
                percent(cpu),
                percent(target)
            ),
        };
    }
    let floor = target * DOWN_BELOW;
    if cpu < floor && count > policy.min {
        let to = count - 1;
        return Decision::Scale {
            to,
            reason: format!(
                "cpu {} < {} (half the {} target): {count} → {to}",
                percent(cpu),
                percent(floor),
                percent(target)
            ),
        };
    }
    Decision::Hold
}

/// `85%`, `12.5%`.
fn percent(value: f64) -> String {
    let rounded = (value * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.0}%")
    } else {
        format!("{rounded:.1}%")
    }
}

/// Each autoscaled service's recent samples and last change.
#[derive(Debug)]
pub struct Autoscaler {
    window: Duration,
    services: HashMap<String, Watch>,
}

#[derive(Debug)]
struct Watch {
    /// The count the samples were taken at.
    count: u32,
    last_change: Instant,
    samples: VecDeque<(Instant, f64)>,
}

impl Autoscaler {
    /// For samples taken every `every`.
    pub fn new(every: Duration) -> Autoscaler {
        Autoscaler {
            window: WINDOW.max(every * MIN_SAMPLES as u32),
            services: HashMap::new(),
        }
    }

    /// One sample of `service`: `count` instances whose running ones use `cpu` on average
    /// (None: none runs, or none has been sampled yet). Says what to do now.
    pub fn observe(
        &mut self,
        now: Instant,
        service: &str,
        policy: &AutoscaleSpec,
        count: u32,
        cpu: Option<f64>,
    ) -> Decision {
        let watch = self
            .services
            .entry(service.to_string())
            .or_insert_with(|| Watch {
                count,
                // First seen (tend's start, or autoscale just applied): the cooldown runs
                // from here, so a service warming up is not scaled at once.
                last_change: now,
                samples: VecDeque::new(),
            });
        if watch.count != count {
            // Changed by someone else (an apply): what was measured was another count.
            watch.count = count;
            watch.last_change = now;
            watch.samples.clear();
        }
        if let Some(cpu) = cpu.filter(|c| c.is_finite()) {
            watch.samples.push_back((now, cpu));
        }
        while watch
            .samples
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > self.window)
        {
            watch.samples.pop_front();
        }
        let mean = (watch.samples.len() >= MIN_SAMPLES).then(|| {
            watch.samples.iter().map(|(_, c)| c).sum::<f64>() / watch.samples.len() as f64
        });
        decide(
            policy,
            count,
            mean,
            Some(now.saturating_duration_since(watch.last_change)),
        )
    }

    /// The count of `service` is now `count`: the cooldown starts again, and the samples of
    /// the old count are dropped.
    pub fn changed(&mut self, service: &str, now: Instant, count: u32) {
        if let Some(watch) = self.services.get_mut(service) {
            watch.count = count;
            watch.last_change = now;
            watch.samples.clear();
        }
    }

    /// Forget the services no longer autoscaled.
    pub fn retain(&mut self, autoscaled: &[Observed]) {
        self.services
            .retain(|name, _| autoscaled.iter().any(|o| &o.service == name));
    }
}

/// One autoscaled service as it is now.
#[derive(Debug, Clone)]
pub struct Observed {
    pub service: String,
    pub policy: AutoscaleSpec,
    pub count: u32,
    /// The mean CPU of its running instances that have been sampled; None if there are none.
    pub cpu: Option<f64>,
}

/// What the loop reads and acts on.
pub trait Scaling {
    /// Every autoscaled service now (empty: none).
    fn observe(&mut self) -> impl Future<Output = Vec<Observed>> + Send;
    /// Take `service` from `from` to `to` instances; the count it has after.
    fn scale(
        &mut self,
        service: &str,
        from: u32,
        to: u32,
        reason: String,
    ) -> impl Future<Output = Result<u32, String>> + Send;
    /// Resolves once the set of services may have changed: while none is autoscaled the
    /// loop waits here instead of ticking.
    fn services_changed(&mut self) -> impl Future<Output = ()> + Send;
}

/// Follow the autoscaled services for ever, one look every `every` (the sampling interval:
/// the readings change no faster).
pub async fn run(mut target: impl Scaling, every: Duration) {
    let mut scaler = Autoscaler::new(every);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let observed = target.observe().await;
        scaler.retain(&observed);
        if observed.is_empty() {
            // Nothing polls while idle: wait until an apply may have brought autoscale.
            target.services_changed().await;
            ticks.reset();
            continue;
        }
        for service in observed {
            let decision = scaler.observe(
                Instant::now(),
                &service.service,
                &service.policy,
                service.count,
                service.cpu,
            );
            let Decision::Scale { to, reason } = decision else {
                continue;
            };
            // One service at a time, and the cooldown counts from the end of the change
            // (new instances up) whether or not it worked: a failing scale is not retried
            // faster than that.
            let after = match target
                .scale(&service.service, service.count, to, reason)
                .await
            {
                Ok(count) => count,
                Err(why) => {
                    crate::logs::own::say(&format!(
                        "autoscale {}: could not scale to {to}: {why}",
                        service.service
                    ));
                    service.count
                }
            };
            scaler.changed(&service.service, Instant::now(), after);
        }
    }
}

/// [`Scaling`] over the running daemon: the engine's samples, [`super::scale::scale_to`].
pub struct Live {
    pub state: super::AppState,
    pub changes: tokio::sync::watch::Receiver<()>,
}

impl Scaling for Live {
    async fn observe(&mut self) -> Vec<Observed> {
        // While tend stops its services, their CPU falls: not a reason to scale anything.
        if self
            .state
            .rpc
            .shutting_down
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Vec::new();
        }
        let metas = self.state.services.current();
        let mut out = Vec::new();
        for meta in metas.iter() {
            let Some(policy) = &meta.autoscale else {
                continue;
            };
            let Ok(Ok(statuses)) = self.state.engine.status(vec![meta.name.clone()]).await else {
                continue;
            };
            let samples: Vec<f64> = statuses
                .iter()
                .filter(|s| s.service == meta.name && s.state == "running")
                .filter_map(|s| s.cpu_percent)
                .collect();
            out.push(Observed {
                service: meta.name.clone(),
                policy: policy.clone(),
                count: meta.instances,
                cpu: (!samples.is_empty())
                    .then(|| samples.iter().sum::<f64>() / samples.len() as f64),
            });
        }
        out
    }

    async fn scale(
        &mut self,
        service: &str,
        from: u32,
        to: u32,
        reason: String,
    ) -> Result<u32, String> {
        let request = super::scale::Request::Autoscale {
            from,
            reason: reason.clone(),
        };
        let done = super::scale::scale_to(&self.state, service, to, request)
            .await
            .map_err(|e| e.message)?;
        if done.to != done.from {
            crate::logs::own::say(&format!(
                "autoscale {service}: {reason}{}",
                super::scale::instances_moved(&done)
            ));
        }
        Ok(done.to)
    }

    async fn services_changed(&mut self) {
        let _ = self.changes.changed().await;
    }
}

#[cfg(test)]
mod tests;
