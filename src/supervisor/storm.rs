//! The failure-storm guard: a decaying failure score that tells "fails now
//! and then" from "crash-looping". Each failure adds 1; the score halves
//! every `half_life`; past the threshold the supervisor takes one long pause.

use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Result};

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

    /// Why these settings cannot be used, if they cannot: a threshold that is
    /// not a finite number >= 1 (one failure scores 1, so a lower one would
    /// make every failure a storm, and NaN would never trip), or a zero
    /// half-life (a score that forgets at once).
    pub(crate) fn check(&self, program: &str) -> Result<()> {
        let reason = if !self.threshold.is_finite() || self.threshold < 1.0 {
            format!(
                "the storm guard's failure threshold must be a finite number >= 1 (got {})",
                self.threshold
            )
        } else if self.half_life.is_zero() {
            "the storm guard's failure decay half-life must be longer than zero".to_owned()
        } else {
            return Ok(());
        };
        Err(Error::InvalidCommand {
            program: program.to_owned(),
            reason,
        })
    }

    /// Records a failure at `now`; `true` when the storm threshold is reached,
    /// in which case the score starts over (the pause absorbs the storm).
    pub(crate) fn record_failure(&mut self, now: Instant) -> bool {
        self.score = self.score_at(now) + 1.0;
        self.last = Some(now);
        if self.score >= self.threshold {
            self.reset();
            return true;
        }
        false
    }

    /// Forgets every failure: the score starts over from zero.
    pub(crate) fn reset(&mut self) {
        self.score = 0.0;
        self.last = None;
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
    fn check_rejects_thresholds_that_disable_or_always_trip() {
        for t in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -1.0, 0.5] {
            assert!(
                matches!(guard(t).check("x"), Err(Error::InvalidCommand { .. })),
                "threshold {t}"
            );
        }
        for t in [1.0, 5.0, 1e9] {
            assert!(guard(t).check("x").is_ok(), "threshold {t}");
        }
        let instant = StormGuard {
            half_life: Duration::ZERO,
            ..guard(3.0)
        };
        assert!(matches!(
            instant.check("x"),
            Err(Error::InvalidCommand { .. })
        ));
    }

    #[test]
    fn a_reset_forgets_the_score() {
        let t0 = Instant::now();
        let mut g = guard(3.0);
        assert!(!g.record_failure(t0));
        assert!(!g.record_failure(t0));
        g.reset();
        assert_eq!(g.score_at(t0), 0.0);
        assert!(!g.record_failure(t0));
        assert!(!g.record_failure(t0));
        assert!(g.record_failure(t0));
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
