//! Restart-delay jitter, and the tests of the delay policy (`BackoffSpec::delay`, in the
//! model, since exporters compare it with other supervisors' delays). Pure: the random part
//! comes in as a value so every delay is reproducible in tests.

/// A small deterministic generator (xorshift64*) for jitter; seeded per instance so two
/// instances of one service do not restart in lockstep.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Self {
        Jitter(seed | 1)
    }

    /// The next number in [-1, 1].
    pub fn next_unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let value = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (value >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::model::{BackoffSpec, Growth};

    fn spec(initial_ms: u64, max_ms: u64, factor: f64, jitter: f64) -> BackoffSpec {
        BackoffSpec {
            initial: Duration::from_millis(initial_ms),
            max: Duration::from_millis(max_ms),
            factor,
            jitter,
            growth: Growth::Exponential,
        }
    }

    #[test]
    fn linear_growth_adds_initial_each_time() {
        let s = BackoffSpec {
            growth: Growth::Linear,
            ..spec(1000, 5000, 2.0, 0.0)
        };
        let delays: Vec<u64> = (0..7).map(|a| s.delay(a, 0.0).as_millis() as u64).collect();
        assert_eq!(delays, [1000, 2000, 3000, 4000, 5000, 5000, 5000]);
        assert_eq!(s.delay(u32::MAX, 0.0), Duration::from_secs(5));
    }

    #[test]
    fn grows_exponentially_up_to_the_cap() {
        let s = spec(1000, 30_000, 2.0, 0.0);
        let delays: Vec<u64> = (0..8).map(|a| s.delay(a, 0.0).as_millis() as u64).collect();
        assert_eq!(delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    }

    #[test]
    fn zero_initial_means_immediate_restart() {
        let s = spec(0, 0, 2.0, 0.1);
        for attempt in 0..50 {
            assert_eq!(s.delay(attempt, 1.0), Duration::ZERO);
        }
    }

    #[test]
    fn jitter_stays_within_its_band() {
        let s = spec(1000, 30_000, 2.0, 0.1);
        assert_eq!(s.delay(0, -1.0), Duration::from_millis(900));
        assert_eq!(s.delay(0, 1.0), Duration::from_millis(1100));
        let mut jitter = Jitter::new(42);
        for _ in 0..1000 {
            let d = s.delay(2, jitter.next_unit()).as_millis();
            assert!((3600..=4400).contains(&d), "{d}");
        }
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let s = spec(1000, 5000, 10.0, 0.0);
        assert_eq!(s.delay(u32::MAX, 0.0), Duration::from_secs(5));
    }

    #[test]
    fn jitter_sequence_is_reproducible_and_spread() {
        let a: Vec<f64> = {
            let mut j = Jitter::new(7);
            (0..100).map(|_| j.next_unit()).collect()
        };
        let b: Vec<f64> = {
            let mut j = Jitter::new(7);
            (0..100).map(|_| j.next_unit()).collect()
        };
        assert_eq!(a, b);
        assert!(a.iter().all(|u| (-1.0..=1.0).contains(u)));
        assert!(a.iter().any(|u| *u < -0.5) && a.iter().any(|u| *u > 0.5));
    }
}
