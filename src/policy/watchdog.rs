//! The deadline watchdog: the one place that stops a run (a child's tree, a
//! pipeline, a script) when its timeout expires, its output falls silent for
//! its idle timeout, or its token is cancelled, and the `Arbiter` that records
//! which happened. Cancellation wins when they land together, even during the
//! grace. The arbiter also tells background helpers (the stdin feeder) when
//! the run has ended.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::{Cancel, Idle};
use crate::trace::trace_event;

const RUNNING: u8 = 0;
const TIMED_OUT: u8 = 1;
const CANCELLED: u8 = 2;
const IDLE_TIMED_OUT: u8 = 3;

/// How a run ended, as far as the arbiter knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not ended by the arbiter.
    Running,
    /// The timeout expired and the tree was killed.
    TimedOut,
    /// The token was cancelled and the tree was stopped.
    Cancelled,
    /// No output for the idle timeout, and the tree was stopped.
    IdleTimedOut,
}

impl Verdict {
    /// Either timeout, wall-clock or idle.
    pub(crate) fn is_timeout(self) -> bool {
        matches!(self, Verdict::TimedOut | Verdict::IdleTimedOut)
    }
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
            IDLE_TIMED_OUT => Verdict::IdleTimedOut,
            _ => Verdict::Running,
        }
    }

    /// Records a cancellation; it overrides an earlier timeout.
    pub(crate) fn mark_cancelled(&self) {
        self.verdict.store(CANCELLED, Ordering::Release);
    }

    pub(crate) fn mark_timed_out(&self) {
        self.mark_once(TIMED_OUT);
    }

    pub(crate) fn mark_idle_timed_out(&self) {
        self.mark_once(IDLE_TIMED_OUT);
    }

    fn mark_once(&self, verdict: u8) {
        let _ =
            self.verdict
                .compare_exchange(RUNNING, verdict, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// What a watchdog stops when it fires.
pub(crate) trait Stop: Send + Sync + 'static {
    /// Kills at once.
    fn halt(&self);

    /// Asks to stop (the stop signal), before a kill after the grace;
    /// `false` when nothing polite could be delivered (no grace to wait).
    fn terminate(&self) -> bool {
        self.halt();
        false
    }
}

/// What the watchdog enforces, and what its events name.
#[derive(Debug)]
pub(crate) struct Watch {
    /// When the run times out; `None` for none (or one too far away to represent).
    pub(crate) deadline: Option<Instant>,
    /// Time between the polite stop and the kill at the deadline (or the
    /// idle timeout).
    pub(crate) grace: Option<Duration>,
    /// Stops the run when its output stays silent this long.
    pub(crate) idle: Option<Idle>,
    pub(crate) cancel: Cancel,
    /// Time between the polite stop and the kill on cancellation.
    pub(crate) cancel_grace: Option<Duration>,
    /// The program, for events.
    pub(crate) program: String,
    /// The child's pid, for events.
    pub(crate) pid: Option<u32>,
}

impl Watch {
    /// Whether there is anything to watch for.
    pub(crate) fn is_empty(&self) -> bool {
        self.deadline.is_none() && self.idle.is_none() && !self.cancel.is_armed()
    }

    /// Starts the watchdog as a task unless there is nothing to watch;
    /// dropping the returned guard (the run ended) stops it.
    pub(crate) fn spawn(self, target: impl Stop, arbiter: Arc<Arbiter>) -> Option<Watchdog> {
        if self.is_empty() {
            return None;
        }
        let (done_tx, done_rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            self.enforce(&target, &arbiter, async move {
                let _ = done_rx.await;
            })
            .await;
        });
        Some(Watchdog { _stop: done_tx })
    }

    /// Waits for the deadline, the idle timeout or the token, stops
    /// `target` and records the verdict in `arbiter`; returns once it has
    /// acted, or when `done` (the run ended) resolves first. A run that
    /// ends during the grace is killed at once: what it left behind goes
    /// with it.
    pub(crate) async fn enforce(
        &self,
        target: &dyn Stop,
        arbiter: &Arbiter,
        done: impl Future<Output = ()>,
    ) {
        let started = Instant::now();
        let deadline = async {
            match self.deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let silent = async {
            match &self.idle {
                Some(idle) => idle.silent().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(done);
        // `biased`: when the token and a timeout are both ready, cancel wins.
        let idle = tokio::select! {
            biased;
            () = &mut done => return,
            () = self.cancel.cancelled() => {
                return self.cancel_now(target, arbiter, started, &mut done).await;
            }
            () = deadline => {
                arbiter.mark_timed_out();
                false
            }
            () = silent => {
                arbiter.mark_idle_timed_out();
                true
            }
        };
        trace_event!(
            info,
            "timeout",
            program = %self.program,
            pid = ?self.pid,
            after = ?started.elapsed(),
            idle = %idle,
            graceful = %self.grace.is_some(),
        );
        let Some(grace) = self.grace.filter(|_| target.terminate()) else {
            target.halt();
            return;
        };
        tokio::select! {
            biased;
            () = &mut done => {}
            () = self.cancel.cancelled() => {
                return self.cancel_now(target, arbiter, started, &mut done).await;
            }
            () = tokio::time::sleep(grace) => {}
        }
        target.halt();
    }

    /// Records the cancellation and stops the run: at once, or politely
    /// first when it has a cancel grace (one the run's end cuts short).
    async fn cancel_now(
        &self,
        target: &dyn Stop,
        arbiter: &Arbiter,
        started: Instant,
        done: &mut (impl Future<Output = ()> + Unpin),
    ) {
        arbiter.mark_cancelled();
        trace_event!(
            info,
            "cancel",
            program = %self.program,
            pid = ?self.pid,
            after = ?started.elapsed(),
            graceful = %self.cancel_grace.is_some(),
        );
        if let Some(grace) = self.cancel_grace.filter(|_| target.terminate()) {
            tokio::select! {
                biased;
                () = done => {}
                () = tokio::time::sleep(grace) => {}
            }
        }
        target.halt();
    }
}

/// A running watchdog task; dropping it stops the task.
#[derive(Debug)]
pub(crate) struct Watchdog {
    _stop: oneshot::Sender<()>,
}
