//! The deadline arbiter: one watchdog task per run that kills the run's tree
//! when its timeout expires (or its token is cancelled), and records which
//! happened. Cancellation wins when both land together, even during the grace.
//! It also tells background helpers (the stdin feeder) when the run has ended.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use crate::sys::Slot;
use crate::trace::trace_event;

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
#[derive(Debug)]
pub(crate) struct Arbiter {
    verdict: AtomicU8,
    /// Becomes `true` when the run's handle is finished or dropped.
    ended: watch::Sender<bool>,
}

impl Default for Arbiter {
    fn default() -> Arbiter {
        Arbiter {
            verdict: AtomicU8::new(RUNNING),
            ended: watch::Sender::new(false),
        }
    }
}

impl Arbiter {
    /// Marks the run as over: whatever still works for it stops.
    pub(crate) fn end(&self) {
        self.ended.send_replace(true);
    }

    /// Resolves once the run is over (or its arbiter is gone). Holds no
    /// reference to the arbiter itself.
    pub(crate) fn ended(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut ended = self.ended.subscribe();
        async move {
            let _ = ended.wait_for(|&over| over).await;
        }
    }

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

/// What the watchdog enforces, and what its events name.
pub(crate) struct Watch {
    pub(crate) deadline: Option<Instant>,
    pub(crate) grace: Option<Duration>,
    #[cfg(feature = "cancellation")]
    pub(crate) cancel: Option<tokio_util::sync::CancellationToken>,
    /// The program, for events.
    pub(crate) program: String,
    /// The child's pid, for events.
    pub(crate) pid: Option<u32>,
}

impl Watch {
    fn is_empty(&self) -> bool {
        #[cfg(feature = "cancellation")]
        if self.cancel.is_some() {
            return false;
        }
        self.deadline.is_none()
    }

    /// Resolves when the token is cancelled; never without one.
    async fn cancelled(&self) {
        #[cfg(feature = "cancellation")]
        if let Some(token) = &self.cancel {
            return token.cancelled().await;
        }
        std::future::pending().await
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
    mut done: oneshot::Receiver<()>,
) {
    let started = Instant::now();
    let deadline = async {
        match watch.deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    // `biased`: when the token and the deadline are both ready, cancel wins.
    tokio::select! {
        biased;
        _ = &mut done => return,
        () = watch.cancelled() => return cancel(&watch, &slot, &arbiter, started),
        () = deadline => arbiter.mark_timed_out(),
    }
    trace_event!(
        info,
        "timeout",
        program = %watch.program,
        pid = ?watch.pid,
        after = ?started.elapsed(),
        graceful = %watch.grace.is_some(),
    );
    let Some(grace) = watch.grace else {
        let _ = slot.kill();
        return;
    };
    let _ = slot.terminate_gracefully();
    // A cancel during the grace still wins: it kills at once and is what the
    // run reports.
    tokio::select! {
        biased;
        _ = &mut done => {}
        () = watch.cancelled() => return cancel(&watch, &slot, &arbiter, started),
        () = tokio::time::sleep(grace) => {}
    }
    let _ = slot.kill();
}

fn cancel(watch: &Watch, slot: &Slot, arbiter: &Arbiter, started: Instant) {
    arbiter.mark_cancelled();
    let _ = slot.kill();
    trace_event!(
        info,
        "cancel",
        program = %watch.program,
        pid = ?watch.pid,
        after = ?started.elapsed(),
    );
}
