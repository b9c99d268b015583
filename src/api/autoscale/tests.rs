use std::sync::{Arc, Mutex};

use super::*;

fn policy(min: u32, max: u32, cpu: f64, cooldown_s: u64) -> AutoscaleSpec {
    AutoscaleSpec {
        min,
        max,
        cpu,
        cooldown: Duration::from_secs(cooldown_s),
    }
}

fn to(decision: Decision) -> Option<(u32, String)> {
    match decision {
        Decision::Hold => None,
        Decision::Scale { to, reason } => Some((to, reason)),
    }
}

const LONG_AGO: Option<Duration> = Some(Duration::from_secs(3600));

#[test]
fn above_the_target_scales_up_to_the_count_that_meets_it() {
    let p = policy(2, 8, 70.0, 60);
    assert_eq!(
        to(decide(&p, 2, Some(85.0), LONG_AGO)),
        Some((3, "cpu 85% > 70% target: 2 → 3".into()))
    );
    // 4 × 140% is 8 instances' worth at 70%.
    assert_eq!(to(decide(&p, 4, Some(140.0), LONG_AGO)).unwrap().0, 8);
    // Never past max, however busy.
    assert_eq!(to(decide(&p, 4, Some(1e9), LONG_AGO)).unwrap().0, 8);
    assert_eq!(to(decide(&p, 8, Some(300.0), LONG_AGO)), None);
    // Just above the target: one more.
    assert_eq!(to(decide(&p, 5, Some(70.5), LONG_AGO)).unwrap().0, 6);
}

#[test]
fn well_below_the_target_scales_down_one_at_a_time() {
    let p = policy(2, 8, 70.0, 60);
    assert_eq!(
        to(decide(&p, 6, Some(10.0), LONG_AGO)),
        Some((5, "cpu 10% < 35% (half the 70% target): 6 → 5".into()))
    );
    assert_eq!(to(decide(&p, 2, Some(0.0), LONG_AGO)), None, "at min");
}

#[test]
fn between_half_the_target_and_the_target_nothing_changes() {
    let p = policy(1, 8, 70.0, 60);
    for cpu in [35.0, 50.0, 70.0] {
        assert_eq!(to(decide(&p, 4, Some(cpu), LONG_AGO)), None, "{cpu}");
    }
}

#[test]
fn the_cooldown_holds_any_change_but_a_move_back_into_the_bounds() {
    let p = policy(2, 8, 70.0, 60);
    let recent = Some(Duration::from_secs(59));
    assert_eq!(to(decide(&p, 3, Some(300.0), recent)), None);
    assert_eq!(to(decide(&p, 3, Some(1.0), recent)), None);
    assert!(to(decide(&p, 3, Some(300.0), Some(Duration::from_secs(60)))).is_some());
    assert_eq!(
        to(decide(&p, 1, None, recent)),
        Some((2, "below min 2: 1 → 2".into()))
    );
    assert_eq!(
        to(decide(&p, 9, Some(300.0), recent)),
        Some((8, "above max 8: 9 → 8".into()))
    );
}

#[test]
fn nothing_measured_holds() {
    assert_eq!(to(decide(&policy(1, 4, 50.0, 0), 2, None, None)), None);
}

#[test]
fn fractional_targets_read_well() {
    assert_eq!(
        to(decide(&policy(1, 4, 12.5, 0), 1, Some(30.04), None))
            .unwrap()
            .1,
        "cpu 30% > 12.5% target: 1 → 3"
    );
}

#[tokio::test(start_paused = true)]
async fn a_decision_waits_for_enough_samples_and_forgets_those_of_the_old_count() {
    let p = policy(1, 8, 50.0, 0);
    let mut scaler = Autoscaler::new(Duration::from_secs(2));
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    assert_eq!(
        scaler.observe(at(0), "web", &p, 1, Some(100.0)),
        Decision::Hold
    );
    assert_eq!(
        scaler.observe(at(2), "web", &p, 1, Some(100.0)),
        Decision::Hold
    );
    // A service with no running instance adds no sample.
    assert_eq!(scaler.observe(at(3), "web", &p, 1, None), Decision::Hold);
    assert!(matches!(
        scaler.observe(at(4), "web", &p, 1, Some(100.0)),
        Decision::Scale { to: 2, .. }
    ));
    scaler.changed("web", at(5), 2);
    // Samples start again after the change.
    assert_eq!(
        scaler.observe(at(6), "web", &p, 2, Some(10.0)),
        Decision::Hold
    );
    assert_eq!(
        scaler.observe(at(8), "web", &p, 2, Some(10.0)),
        Decision::Hold
    );
    // An apply set another count: the samples start again too.
    assert_eq!(
        scaler.observe(at(9), "web", &p, 3, Some(10.0)),
        Decision::Hold
    );
    assert_eq!(
        scaler.observe(at(10), "web", &p, 3, Some(10.0)),
        Decision::Hold
    );
    assert!(matches!(
        scaler.observe(at(11), "web", &p, 3, Some(10.0)),
        Decision::Scale { to: 2, .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn samples_older_than_the_window_do_not_count() {
    let p = policy(1, 8, 50.0, 0);
    let mut scaler = Autoscaler::new(Duration::from_secs(2));
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    // A burst long ago, then quiet: the mean of the window is the quiet.
    for s in 0..3 {
        scaler.observe(at(s), "web", &p, 4, Some(400.0));
    }
    for s in 40..42 {
        assert_eq!(
            scaler.observe(at(s), "web", &p, 4, Some(30.0)),
            Decision::Hold
        );
    }
    assert_eq!(
        scaler.observe(at(42), "web", &p, 4, Some(30.0)),
        Decision::Hold
    );
}

/// A service whose CPU the test sets, and every scale the loop asked for, with when.
#[derive(Clone)]
struct Fake(Arc<Mutex<FakeState>>);

struct FakeState {
    policy: Option<AutoscaleSpec>,
    count: u32,
    cpu: Option<f64>,
    scales: Vec<(Duration, u32, u32, String)>,
    start: Instant,
}

impl Fake {
    fn new(policy: AutoscaleSpec, count: u32) -> Fake {
        Fake(Arc::new(Mutex::new(FakeState {
            policy: Some(policy),
            count,
            cpu: None,
            scales: Vec::new(),
            start: Instant::now(),
        })))
    }

    fn set_cpu(&self, cpu: f64) {
        self.0.lock().unwrap().cpu = Some(cpu);
    }

    fn scales(&self) -> Vec<(u64, u32, u32)> {
        self.0
            .lock()
            .unwrap()
            .scales
            .iter()
            .map(|(at, from, to, _)| (at.as_secs(), *from, *to))
            .collect()
    }
}

impl Scaling for Fake {
    async fn observe(&mut self) -> Vec<Observed> {
        let state = self.0.lock().unwrap();
        state
            .policy
            .iter()
            .map(|policy| Observed {
                service: "web".into(),
                policy: policy.clone(),
                count: state.count,
                cpu: state.cpu,
            })
            .collect()
    }

    async fn scale(
        &mut self,
        _service: &str,
        from: u32,
        to: u32,
        reason: String,
    ) -> Result<u32, String> {
        let mut state = self.0.lock().unwrap();
        let at = state.start.elapsed();
        state.scales.push((at, from, to, reason));
        state.count = to;
        Ok(to)
    }

    async fn services_changed(&mut self) {
        std::future::pending::<()>().await
    }
}

#[tokio::test(start_paused = true)]
async fn the_loop_scales_up_and_down_no_faster_than_the_cooldown() {
    let fake = Fake::new(policy(1, 4, 70.0, 60), 1);
    fake.set_cpu(150.0);
    let task = tokio::spawn(run(fake.clone(), Duration::from_secs(2)));
    // Busy from the start: the first change waits for the cooldown from tend's start,
    // then goes straight to the count that meets the target (ceil(150 / 70) = 3).
    tokio::time::sleep(Duration::from_secs(59)).await;
    assert_eq!(fake.scales(), []);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fake.scales(), [(60, 1, 3)]);
    // Still busy: one more step, a cooldown later, up to max.
    tokio::time::sleep(Duration::from_secs(58)).await;
    assert_eq!(fake.scales().len(), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fake.scales(), [(60, 1, 3), (120, 3, 4)]);
    // Quiet: down one at a time, a cooldown apart, down to min and no further.
    fake.set_cpu(5.0);
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(
        fake.scales(),
        [
            (60, 1, 3),
            (120, 3, 4),
            (180, 4, 3),
            (240, 3, 2),
            (300, 2, 1)
        ]
    );
    let reasons: Vec<String> = fake
        .0
        .lock()
        .unwrap()
        .scales
        .iter()
        .map(|s| s.3.clone())
        .collect();
    assert_eq!(reasons[0], "cpu 150% > 70% target: 1 → 3");
    assert_eq!(reasons[4], "cpu 5% < 35% (half the 70% target): 2 → 1");
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn the_loop_does_not_change_a_count_between_half_the_target_and_the_target() {
    let fake = Fake::new(policy(1, 4, 70.0, 10), 2);
    fake.set_cpu(50.0);
    let task = tokio::spawn(run(fake.clone(), Duration::from_secs(2)));
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(fake.scales(), []);
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn without_autoscaled_services_the_loop_waits_for_a_change() {
    let fake = Fake::new(policy(1, 4, 70.0, 10), 2);
    fake.0.lock().unwrap().policy = None;
    let (tell, changes) = tokio::sync::watch::channel(());
    struct Waiting(Fake, tokio::sync::watch::Receiver<()>, Arc<Mutex<u32>>);
    impl Scaling for Waiting {
        async fn observe(&mut self) -> Vec<Observed> {
            *self.2.lock().unwrap() += 1;
            self.0.observe().await
        }
        async fn scale(&mut self, s: &str, f: u32, t: u32, r: String) -> Result<u32, String> {
            self.0.scale(s, f, t, r).await
        }
        async fn services_changed(&mut self) {
            let _ = self.1.changed().await;
        }
    }
    let looks = Arc::new(Mutex::new(0));
    let task = tokio::spawn(run(
        Waiting(fake.clone(), changes, looks.clone()),
        Duration::from_secs(2),
    ));
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(*looks.lock().unwrap(), 1, "one look, then waiting");
    // autoscale applied: the loop looks again, and follows the CPU.
    {
        let mut state = fake.0.lock().unwrap();
        state.policy = Some(policy(1, 4, 70.0, 10));
        state.cpu = Some(200.0);
    }
    tell.send_replace(());
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(*looks.lock().unwrap() > 2);
    assert_eq!(fake.scales().last().map(|s| s.2), Some(4));
    task.abort();
}
