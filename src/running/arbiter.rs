//! The deadline arbiter: one watchdog task per run that kills the run's tree
//! when its timeout expires (or its token is cancelled), and records which
//! happened. Cancellation wins when both land together.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::sys::Slot;

const RUNNING: u8 = 0;
const TIMED_OUT: u8 = 1;
const CANCELLED: u8 = 2;

/// How a run ended, as far as the arbiter knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not ended by the arbiter.
    Running,
    /// The timeout expired and the tree was killed.
    TimedOut,
    /// The token was cancelled and the tree was killed.
    Cancelled,
}

/// Shared between a run and its watchdog.
#[derive(Debug, Default)]
pub(crate) struct Arbiter {
    verdict: AtomicU8,
}

impl Arbiter {
    pub(crate) fn verdict(&self) -> Verdict {
        match self.verdict.load(Ordering::Acquire) {
            TIMED_OUT => Verdict::TimedOut,
            CANCELLED => Verdict::Cancelled,
            _ => Verdict::Running,
        }
    }

    /// Records a cancellation; it overrides an earlier timeout.
    pub(crate) fn mark_cancelled(&self) {
        self.verdict.store(CANCELLED, Ordering::Release);
    }

    pub(crate) fn mark_timed_out(&self) {
        let _ =
            self.verdict
                .compare_exchange(RUNNING, TIMED_OUT, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// What the watchdog enforces.
pub(crate) struct Watch {
    pub(crate) deadline: Option<Instant>,
    pub(crate) grace: Option<Duration>,
    #[cfg(feature = "cancellation")]
    pub(crate) cancel: Option<tokio_util::sync::CancellationToken>,
}

impl Watch {
    fn is_empty(&self) -> bool {
        #[cfg(feature = "cancellation")]
        if self.cancel.is_some() {
            return false;
        }
        self.deadline.is_none()
    }
}

/// Starts the watchdog; dropping the returned sender (the run ended) stops it.
pub(crate) fn start(
    watch: Watch,
    slot: Arc<Slot>,
    arbiter: Arc<Arbiter>,
) -> Option<oneshot::Sender<()>> {
    if watch.is_empty() {
        return None;
    }
    let (done_tx, done_rx) = oneshot::channel::<()>();
    tokio::spawn(watchdog(watch, slot, arbiter, done_rx));
    Some(done_tx)
}

async fn watchdog(
    watch: Watch,
    slot: Arc<Slot>,
    arbiter: Arc<Arbiter>,
    done: oneshot::Receiver<()>,
) {
    let deadline = async {
        match watch.deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    #[cfg(feature = "cancellation")]
    let cancelled = async {
        match &watch.cancel {
            Some(token) => token.cancelled().await,
            None => std::future::pending().await,
        }
    };
    #[cfg(not(feature = "cancellation"))]
    let cancelled = std::future::pending::<()>();
    tokio::select! {
        biased;
        _ = done => return,
        () = cancelled => {
            arbiter.mark_cancelled();
            let _ = slot.kill();
            return;
        }
        () = deadline => arbiter.mark_timed_out(),
    }
    match watch.grace {
        Some(grace) => {
            let _ = slot.terminate_gracefully();
            tokio::time::sleep(grace).await;
            let _ = slot.kill();
        }
        None => {
            let _ = slot.kill();
        }
    }
}
