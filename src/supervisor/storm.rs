//! The failure-storm guard: a decaying failure score that tells "fails now
//! and then" from "crash-looping". Each failure adds 1; the score halves
//! every `half_life`; past the threshold the supervisor takes one long pause.

use std::time::Duration;

use tokio::time::Instant;

/// Settings and state of the guard.
#[derive(Debug, Clone)]
pub(crate) struct StormGuard {
    pub(crate) threshold: f64,
    pub(crate) half_life: Duration,
    pub(crate) pause: Duration,
    score: f64,
    last: Option<Instant>,
}

impl StormGuard {
    pub(crate) fn new() -> StormGuard {
        StormGuard {
            threshold: 5.0,
            half_life: Duration::from_secs(60),
            pause: Duration::from_secs(30),
            score: 0.0,
            last: None,
        }
    }

    /// Records a failure at `now`; `true` when the storm threshold is reached,
    /// in which case the score starts over (the pause absorbs the storm).
    pub(crate) fn record_failure(&mut self, now: Instant) -> bool {
        self.score = self.score_at(now) + 1.0;
        self.last = Some(now);
        if self.score >= self.threshold {
            self.score = 0.0;
            self.last = None;
            return true;
        }
        false
    }

    /// The score decayed to `now`.
    pub(crate) fn score_at(&self, now: Instant) -> f64 {
        let Some(last) = self.last else {
            return self.score;
        };
        let half_life = self.half_life.as_secs_f64();
        if half_life <= 0.0 {
            return 0.0;
        }
        let halvings = now.saturating_duration_since(last).as_secs_f64() / half_life;
        self.score * 0.5f64.powf(halvings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(threshold: f64) -> StormGuard {
        StormGuard {
            threshold,
            half_life: Duration::from_secs(10),
            ..StormGuard::new()
        }
    }

    #[test]
    fn score_halves_every_half_life() {
        let t0 = Instant::now();
        let mut g = guard(100.0);
        g.record_failure(t0);
        g.record_failure(t0);
        assert!((g.score_at(t0) - 2.0).abs() < 1e-9);
        assert!((g.score_at(t0 + Duration::from_secs(10)) - 1.0).abs() < 1e-9);
        assert!((g.score_at(t0 + Duration::from_secs(20)) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn a_burst_trips_the_guard_and_resets_it() {
        let t0 = Instant::now();
        let mut g = guard(3.0);
        assert!(!g.record_failure(t0));
        assert!(!g.record_failure(t0));
        assert!(g.record_failure(t0));
        assert_eq!(g.score_at(t0), 0.0);
        assert!(!g.record_failure(t0));
    }

    #[test]
    fn spaced_failures_never_trip_it() {
        let mut now = Instant::now();
        let mut g = guard(2.0);
        for _ in 0..50 {
            assert!(!g.record_failure(now));
            now += Duration::from_secs(30);
        }
    }
}
