//! The idle timeout's clock: `Activity` is stamped whenever a byte of a run's
//! output is read, and `Idle::silent` resolves once no stamp came for the
//! limit. Both use tokio's clock, so a paused clock drives them in tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// When a run's output last produced a byte.
#[derive(Debug)]
pub(crate) struct Activity {
    base: Instant,
    /// Nanoseconds after `base` of the latest byte (or of the start).
    last: AtomicU64,
}

impl Activity {
    /// Activity as of now (a run counts as active when it starts).
    pub(crate) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            base: Instant::now(),
            last: AtomicU64::new(0),
        })
    }

    /// Records output now.
    pub(crate) fn stamp(&self) {
        let nanos = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last.fetch_max(nanos, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.base + Duration::from_nanos(self.last.load(Ordering::Relaxed))
    }
}

/// A run's idle timeout: its limit and the activity it watches.
#[derive(Debug)]
pub(crate) struct Idle {
    pub(crate) limit: Duration,
    pub(crate) activity: Arc<Activity>,
}

impl Idle {
    /// Resolves once no output came for `limit`.
    pub(crate) async fn silent(&self) {
        loop {
            let Some(due) = self.activity.last().checked_add(self.limit) else {
                return std::future::pending().await;
            };
            if Instant::now() >= due {
                return;
            }
            tokio::time::sleep_until(due).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn silence_is_measured_from_the_latest_byte() {
        let activity = Activity::new();
        let idle = Idle {
            limit: Duration::from_secs(10),
            activity: Arc::clone(&activity),
        };
        let start = Instant::now();
        let watcher = tokio::spawn(async move {
            idle.silent().await;
            Instant::now()
        });
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(6)).await;
            activity.stamp();
        }
        let fired = watcher.await.unwrap();
        // The last stamp came at 18 s: silent from 28 s, not from 10 s.
        assert_eq!(fired.duration_since(start), Duration::from_secs(28));
    }
}
