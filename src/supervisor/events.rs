//! The supervisor's lifecycle events (`SupervisorEvent`) and the streams
//! that deliver them (`SupervisorEvents`): one unbounded channel per
//! subscriber, so a slow or absent reader never holds supervision up.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::Stream;

use super::StopReason;
use crate::exit_status::ExitStatus;

/// One step in the life of a supervised command, as
/// [`Supervisor::events`](crate::Supervisor::events) reports it.
///
/// A simple crash and restart reads `Started`, `Exited`, `Restarting`,
/// `Started`, …, and supervision that ends normally closes with `Stopped`.
/// Around a restart the optional steps come in this order: `Exited`,
/// `BackoffReset`, `StormPauseStarted`, `Restarting`, (the wait),
/// `StormPauseEnded`, `Started`. A health check that fails reports
/// `HealthCheckFailed` before the `Exited` of the incarnation it stopped.
///
/// `Display` renders one short log line per event.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> processkit::Result<()> {
/// use processkit::{Command, Match, Reply, ScriptedRunner, StopReason, StreamExt, Supervisor, SupervisorEvent};
/// use std::time::Duration;
/// let runner = ScriptedRunner::new().on_sequence(
///     Match::program("worker"),
///     [Reply::failure(1, "boom"), Reply::success("")],
/// );
/// let mut supervisor = Supervisor::new(Command::new("worker"))
///     .with_runner(&runner)
///     .backoff(Duration::from_millis(1), 2.0);
/// let events = supervisor.events();
/// supervisor.run().await?;
/// let events: Vec<SupervisorEvent> = events.collect().await;
/// for event in &events {
///     println!("{event}"); // "incarnation 1 started", "incarnation 1 exited with code 1 after …", …
/// }
/// assert!(matches!(events[0], SupervisorEvent::Started { incarnation: 1, .. }));
/// assert!(matches!(events[2], SupervisorEvent::Restarting { restart: 1, .. }));
/// assert!(matches!(
///     events.last(),
///     Some(SupervisorEvent::Stopped { reason: StopReason::PolicyDeclined, .. })
/// ));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SupervisorEvent {
    /// An incarnation started.
    #[non_exhaustive]
    Started {
        /// Which run this is, counting from 1 (restart `n` starts
        /// incarnation `n + 1`).
        incarnation: u32,
        /// Its process id; `None` for a test double's scripted run.
        pid: Option<u32>,
    },
    /// The health check failed; the incarnation is being stopped.
    #[non_exhaustive]
    HealthCheckFailed {
        /// The incarnation the probe was checking.
        incarnation: u32,
        /// `true` when the probe gave no answer within the interval,
        /// `false` when it answered `false`.
        timed_out: bool,
    },
    /// An incarnation ended.
    #[non_exhaustive]
    Exited {
        /// The incarnation that ended.
        incarnation: u32,
        /// How it ended: exit code, signal or timeout.
        status: ExitStatus,
        /// How long it stayed up, start to exit, on tokio's clock.
        uptime: Duration,
        /// Whether a failing health check stopped it (it then counts as a
        /// failure, whatever `status` says).
        health_check_failed: bool,
    },
    /// The incarnation that just ended stayed up at least
    /// [`healthy_after`](crate::Supervisor::healthy_after): the coming
    /// restart waits the base delay again and the storm guard's failure
    /// score starts over.
    #[non_exhaustive]
    BackoffReset {
        /// How long that incarnation stayed up.
        uptime: Duration,
    },
    /// The storm guard tripped: the coming restart waits `pause`.
    #[non_exhaustive]
    StormPauseStarted {
        /// The wait before the restart (the storm pause, or the backoff
        /// delay when that is longer).
        pause: Duration,
    },
    /// A restart is due after `delay`.
    #[non_exhaustive]
    Restarting {
        /// Which restart this is, counting from 1; never reset.
        restart: u32,
        /// The wait before it starts.
        delay: Duration,
    },
    /// The storm pause is over; the restart follows.
    StormPauseEnded,
    /// Supervision ended, for this reason: always the last event. When
    /// supervision ends with an error instead (a start that fails, a
    /// cancellation), the stream ends without it.
    #[non_exhaustive]
    Stopped {
        /// Why supervision ended.
        reason: StopReason,
    },
}

impl fmt::Display for SupervisorEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SupervisorEvent::Started { incarnation, pid } => {
                write!(f, "incarnation {incarnation} started")?;
                match pid {
                    Some(pid) => write!(f, " (pid {pid})"),
                    None => Ok(()),
                }
            }
            SupervisorEvent::HealthCheckFailed {
                incarnation,
                timed_out,
            } => {
                let why = if *timed_out {
                    "did not answer"
                } else {
                    "failed"
                };
                write!(f, "incarnation {incarnation}: health check {why}")
            }
            SupervisorEvent::Exited {
                incarnation,
                status,
                uptime,
                health_check_failed,
            } => {
                write!(f, "incarnation {incarnation} {status} after {uptime:?}")?;
                if *health_check_failed {
                    f.write_str(" (stopped by its health check)")?;
                }
                Ok(())
            }
            SupervisorEvent::BackoffReset { uptime } => {
                write!(f, "backoff reset after a healthy run of {uptime:?}")
            }
            SupervisorEvent::StormPauseStarted { pause } => {
                write!(f, "failure storm: pausing {pause:?}")
            }
            SupervisorEvent::Restarting { restart, delay } => {
                write!(f, "restart {restart} in {delay:?}")
            }
            SupervisorEvent::StormPauseEnded => f.write_str("failure storm pause over"),
            SupervisorEvent::Stopped { reason } => write!(f, "supervision stopped: {reason:?}"),
        }
    }
}

/// The stream of [`SupervisorEvent`]s returned by
/// [`Supervisor::events`](crate::Supervisor::events); read it with
/// [`StreamExt::next`](crate::StreamExt::next). It ends when supervision
/// ends (or when the supervisor is dropped without running).
#[derive(Debug)]
#[must_use = "a stream does nothing unless polled"]
pub struct SupervisorEvents {
    rx: mpsc::UnboundedReceiver<SupervisorEvent>,
}

impl Stream for SupervisorEvents {
    type Item = SupervisorEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SupervisorEvent>> {
        self.rx.poll_recv(cx)
    }
}

/// Every subscriber's sending end. Sending never waits: the channels are
/// unbounded (a supervisor emits a handful of events per restart) and a
/// send to a dropped subscriber is simply lost.
#[derive(Debug, Default)]
pub(crate) struct Subscribers(Vec<mpsc::UnboundedSender<SupervisorEvent>>);

impl Subscribers {
    pub(crate) fn subscribe(&mut self) -> SupervisorEvents {
        let (tx, rx) = mpsc::unbounded_channel();
        self.0.push(tx);
        SupervisorEvents { rx }
    }

    pub(crate) fn emit(&self, event: SupervisorEvent) {
        for tx in &self.0 {
            let _ = tx.send(event.clone());
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}
