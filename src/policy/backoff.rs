//! Exponential backoff with optional jitter, shared by retries and the
//! supervisor. The pause itself is `Cancel::sleep`, so a token cuts it short.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::{Error, Result};

/// The delay before the n-th repeat: `base * multiplier^(n-1)`, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Backoff {
    pub(crate) base: Duration,
    pub(crate) multiplier: f64,
    pub(crate) max: Duration,
    pub(crate) jitter: bool,
}

impl Backoff {
    /// Why these settings cannot be used, if they cannot.
    pub(crate) fn check(&self, program: &str) -> Result<()> {
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return Err(Error::InvalidCommand {
                program: program.to_owned(),
                reason: format!(
                    "the backoff multiplier must be a finite number >= 1 (got {})",
                    self.multiplier
                ),
            });
        }
        Ok(())
    }

    /// The un-jittered delay before repeat `n` (1-based). A zero base stays
    /// zero; growth saturates at `max`. A multiplier that `check` rejects
    /// counts as 1 here (no growth), so the answer is never a NaN's accident.
    pub(crate) fn delay(&self, n: u32) -> Duration {
        // 0 × multiplier^n would turn NaN (0 × ∞) once the power overflows.
        if self.base.is_zero() || self.max.is_zero() {
            return Duration::ZERO;
        }
        let multiplier = if self.multiplier.is_finite() && self.multiplier >= 1.0 {
            self.multiplier
        } else {
            1.0
        };
        let exponent = i32::try_from(n.saturating_sub(1)).unwrap_or(i32::MAX);
        // base > 0 and multiplier >= 1: a number in [base, +inf], never NaN.
        let secs = self.base.as_secs_f64() * multiplier.powi(exponent);
        match Duration::try_from_secs_f64(secs) {
            Ok(d) => d.min(self.max),
            Err(_) => self.max,
        }
    }

    /// The delay before repeat `n`, jittered into `[delay/2, delay]` when
    /// jitter is on, so many callers restarting together spread out.
    pub(crate) fn next_delay(&self, n: u32) -> Duration {
        let delay = self.delay(n);
        if !self.jitter {
            return delay;
        }
        // Not `mul_f64`: it panics when the product rounds past Duration::MAX.
        let factor = 0.5 + 0.5 * random_unit();
        Duration::try_from_secs_f64(delay.as_secs_f64() * factor).map_or(delay, |d| d.min(delay))
    }
}

/// A uniformly distributed number in `[0, 1)`. Jitter only needs spread, not
/// unpredictability, so std's randomly keyed hasher is enough.
fn random_unit() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff(jitter: bool) -> Backoff {
        Backoff {
            base: Duration::from_millis(100),
            multiplier: 2.0,
            max: Duration::from_secs(1),
            jitter,
        }
    }

    #[test]
    fn grows_exponentially_up_to_the_cap() {
        let b = backoff(false);
        let delays: Vec<u64> = (1..=6).map(|n| b.delay(n).as_millis() as u64).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_within_half_to_full_delay_and_varies() {
        let b = backoff(true);
        let samples: Vec<Duration> = (0..200).map(|_| b.next_delay(3)).collect();
        for d in &samples {
            assert!(*d >= Duration::from_millis(200) && *d <= Duration::from_millis(400));
        }
        let first = samples[0];
        assert!(samples.iter().any(|d| *d != first), "jitter never varied");
    }

    #[test]
    fn rejects_multipliers_below_one_or_not_finite() {
        for m in [0.5, -1.0, f64::NAN, f64::INFINITY] {
            let b = Backoff {
                multiplier: m,
                ..backoff(false)
            };
            assert!(matches!(b.check("x"), Err(Error::InvalidCommand { .. })));
        }
        assert!(backoff(false).check("x").is_ok());
    }

    #[test]
    fn a_zero_base_stays_zero_at_every_attempt() {
        let b = Backoff {
            base: Duration::ZERO,
            max: Duration::from_secs(30),
            ..backoff(false)
        };
        for n in [0, 1, 2, 1024, 1025, 1100, 5000, u32::MAX] {
            assert_eq!(b.delay(n), Duration::ZERO, "attempt {n}");
            assert_eq!(b.next_delay(n), Duration::ZERO, "attempt {n}");
        }
    }

    #[test]
    fn growth_saturates_at_the_cap_without_nan() {
        for multiplier in [1.0, 1.5, 2.0, 1e300] {
            let b = Backoff {
                base: Duration::from_nanos(1),
                multiplier,
                ..backoff(false)
            };
            let mut last = Duration::ZERO;
            for n in [1, 2, 100, 1024, 1025, 100_000, u32::MAX] {
                let d = b.delay(n);
                assert!(d >= last && d <= b.max, "m {multiplier} n {n}: {d:?}");
                last = d;
            }
        }
    }

    #[test]
    fn extreme_durations_never_panic() {
        let b = Backoff {
            base: Duration::MAX,
            multiplier: 2.0,
            max: Duration::MAX,
            jitter: true,
        };
        for n in [1, 2, u32::MAX] {
            assert_eq!(b.delay(n), Duration::MAX);
            for _ in 0..200 {
                let d = b.next_delay(n);
                assert!(d >= Duration::MAX / 2 - Duration::from_secs(1));
            }
        }
    }

    #[test]
    fn a_multiplier_check_rejects_counts_as_no_growth() {
        for multiplier in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -2.0, 0.0, 0.5] {
            let b = Backoff {
                multiplier,
                ..backoff(false)
            };
            for n in [1, 2, 3, 1025, u32::MAX] {
                assert_eq!(b.delay(n), b.base, "m {multiplier} n {n}");
            }
        }
    }
}
