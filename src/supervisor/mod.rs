//! `Supervisor`: the builder that keeps one command alive, restarting it per
//! `RestartPolicy` with bounded restarts, jittered backoff (reset after a
//! healthy run), an opt-in storm guard, health checks and lifecycle events.

mod events;
mod health;
mod outcome;
mod run;
mod storm;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use events::Subscribers;
pub use events::{SupervisorEvent, SupervisorEvents};
use health::HealthCheck;
pub use outcome::{RestartPolicy, StopReason, SupervisionOutcome};
use storm::StormGuard;

use crate::command::Command;
use crate::policy::Backoff;
use crate::result::ProcessResult;
use crate::runner::{JobRunner, ProcessRunner};

type StopCondition = Box<dyn FnMut(&ProcessResult) -> bool + Send>;

/// What a [`Supervisor`] keeps of each incarnation's stdout and stderr
/// unless its command sets [`max_output`](Command::max_output): 1 MiB each
/// (the first and the latest half MiB).
pub const SUPERVISED_OUTPUT: usize = 1 << 20;

/// How long an incarnation must stay up, by default, to count as healthy
/// and reset the backoff: 60 s (see [`Supervisor::healthy_after`]).
pub const DEFAULT_HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// Keeps a command running: whenever it exits, the [`RestartPolicy`] decides
/// whether it starts again, after a backoff delay.
///
/// The n-th restart waits `base * multiplier^(n-1)` (default 100 ms, ×2,
/// capped by [`max_backoff`](Supervisor::max_backoff) at 30 s), jittered into
/// `[d/2, d]` unless [`jitter(false)`](Supervisor::jitter). An incarnation
/// that stayed up for [`healthy_after`](Supervisor::healthy_after) (default
/// [`DEFAULT_HEALTHY_AFTER`]) starts the delays over. All waiting uses
/// tokio's clock, so tests can run it under a paused clock.
///
/// Each incarnation is started with the runner's
/// [`start`](ProcessRunner::start) and finished like `output_bytes` does, so
/// a [`health_check`](Supervisor::health_check) can stop it and
/// [`events`](Supervisor::events) can name its pid. A run that cannot start,
/// or whose `cancel_on` token (feature `cancellation`) is cancelled, ends
/// supervision with that error: restarting into a cancelled token could only
/// fail again. The command's [`retry`](Command::retry) policy, if any,
/// applies within each incarnation.
///
/// ```no_run
/// # async fn demo() -> processkit::Result<()> {
/// use processkit::{Command, ProcessGroup, RestartPolicy, Supervisor};
/// use std::time::Duration;
/// let group = ProcessGroup::new()?;
/// let outcome = Supervisor::new(Command::new("worker"))
///     .with_runner(&group)
///     .restart(RestartPolicy::Always)
///     .max_restarts(3)
///     .backoff(Duration::from_millis(50), 2.0)
///     .run()
///     .await?;
/// println!("{} restarts, stopped: {:?}", outcome.restarts, outcome.stopped);
/// # Ok(()) }
/// ```
pub struct Supervisor<R = JobRunner> {
    command: Command,
    runner: R,
    policy: RestartPolicy,
    max_restarts: Option<u32>,
    backoff: Backoff,
    storm: Option<StormGuard>,
    stop_when: Option<StopCondition>,
    healthy_after: Duration,
    health: Option<HealthCheck>,
    events: Subscribers,
}

impl Supervisor<JobRunner> {
    /// Supervises `command`, each run in a container of its own
    /// ([`JobRunner`]). Defaults: [`RestartPolicy::OnCrash`], no restart
    /// limit, jittered backoff reset after [`DEFAULT_HEALTHY_AFTER`] of
    /// uptime, no storm guard, no health check.
    pub fn new(command: Command) -> Supervisor<JobRunner> {
        // A supervised service may run for months: keep a bounded tail of
        // each incarnation's output unless the command says otherwise.
        let command = match command.max_output {
            Some(_) => command,
            None => command.max_output(SUPERVISED_OUTPUT),
        };
        Supervisor {
            command,
            runner: JobRunner::new(),
            policy: RestartPolicy::default(),
            max_restarts: None,
            backoff: Backoff {
                base: Duration::from_millis(100),
                multiplier: 2.0,
                max: Duration::from_secs(30),
                jitter: true,
            },
            storm: None,
            stop_when: None,
            healthy_after: DEFAULT_HEALTHY_AFTER,
            health: None,
            events: Subscribers::default(),
        }
    }
}

impl<R: ProcessRunner> Supervisor<R> {
    /// Runs every incarnation through `runner`: pass `&group` to keep them
    /// all in one shared [`ProcessGroup`](crate::ProcessGroup), or a test double.
    pub fn with_runner<S: ProcessRunner>(self, runner: S) -> Supervisor<S> {
        Supervisor {
            command: self.command,
            runner,
            policy: self.policy,
            max_restarts: self.max_restarts,
            backoff: self.backoff,
            storm: self.storm,
            stop_when: self.stop_when,
            healthy_after: self.healthy_after,
            health: self.health,
            events: self.events,
        }
    }

    /// When to restart (default [`RestartPolicy::OnCrash`]).
    pub fn restart(mut self, policy: RestartPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// At most `max` restarts (so at most `max + 1` runs). Unlimited by default.
    pub fn max_restarts(mut self, max: u32) -> Self {
        self.max_restarts = Some(max);
        self
    }

    /// The delay before the first restart and the factor (at least 1) each
    /// later delay grows by. A zero base means no delay at all; a factor
    /// below 1, NaN or infinite makes [`run`](Supervisor::run) fail with
    /// [`Error::InvalidCommand`](crate::Error::InvalidCommand).
    pub fn backoff(mut self, base: Duration, multiplier: f64) -> Self {
        self.backoff.base = base;
        self.backoff.multiplier = multiplier;
        self
    }

    /// Caps the delay between runs (default 30 s).
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.backoff.max = max;
        self
    }

    /// Turns jitter on or off (default on): with it, each delay is drawn from
    /// `[d/2, d]` so a fleet restarted together does not stampede.
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.backoff.jitter = jitter;
        self
    }

    /// Enables the storm guard with this failure score threshold (default 5).
    /// It must be a finite number of at least 1 (each failure scores 1):
    /// otherwise [`run`](Supervisor::run) fails with
    /// [`Error::InvalidCommand`](crate::Error::InvalidCommand).
    pub fn failure_threshold(mut self, threshold: impl Into<f64>) -> Self {
        self.storm_guard().threshold = threshold.into();
        self
    }

    /// Enables the storm guard with this half-life for the failure score
    /// (default 60 s): the score halves every `half_life`. A zero half-life
    /// is rejected by [`run`](Supervisor::run) with
    /// [`Error::InvalidCommand`](crate::Error::InvalidCommand).
    pub fn failure_decay(mut self, half_life: Duration) -> Self {
        self.storm_guard().half_life = half_life;
        self
    }

    /// Enables the storm guard with this pause (default 30 s): when the
    /// failure score reaches the threshold, the next restart waits `pause`
    /// (or the backoff delay, when that is longer), and the score starts over.
    pub fn storm_pause(mut self, pause: Duration) -> Self {
        self.storm_guard().pause = pause;
        self
    }

    /// Ends supervision as soon as `condition` accepts a run's result,
    /// whatever the restart policy says.
    pub fn stop_when(
        mut self,
        condition: impl FnMut(&ProcessResult) -> bool + Send + 'static,
    ) -> Self {
        self.stop_when = Some(Box::new(condition));
        self
    }

    /// An incarnation that stayed up at least `uptime` (start to exit, on
    /// tokio's clock) counts as healthy: the next restart waits the base
    /// delay again, as if it were the first, and the storm guard's failure
    /// score starts over. Default [`DEFAULT_HEALTHY_AFTER`] (60 s), so a
    /// service that crashes once a day always comes back after the base
    /// delay. The restart count and [`max_restarts`](Supervisor::max_restarts)
    /// are never reset.
    ///
    /// `Duration::MAX` turns the reset off (no run stays up that long). A
    /// zero duration, which would call every run healthy and keep the
    /// backoff from ever growing, makes [`run`](Supervisor::run) fail with
    /// [`Error::InvalidCommand`](crate::Error::InvalidCommand).
    pub fn healthy_after(mut self, uptime: Duration) -> Self {
        self.healthy_after = uptime;
        self
    }

    /// Checks each incarnation's health while it runs: one `interval` after
    /// the start, and then `interval` after each answer, `probe` is called.
    /// When it answers `false`, or gives no answer within `interval` (a
    /// probe that hangs counts as failed and is dropped), the incarnation is
    /// stopped with [`RunningProcess::stop`](crate::RunningProcess::stop):
    /// its stop signal, then a kill after its command's
    /// [`timeout_grace`](Command::timeout_grace), or 5 s without one.
    ///
    /// That end counts as a failure however the process exited: it is
    /// restarted under [`RestartPolicy::OnCrash`] and `Always` (not under
    /// `Never`), scores in the storm guard, is never offered to
    /// [`stop_when`](Supervisor::stop_when), and is counted in
    /// [`SupervisionOutcome::health_check_failures`] and reported by a
    /// [`SupervisorEvent::HealthCheckFailed`]. A zero `interval` makes
    /// [`run`](Supervisor::run) fail with
    /// [`Error::InvalidCommand`](crate::Error::InvalidCommand).
    ///
    /// ```no_run
    /// # async fn demo() -> processkit::Result<()> {
    /// use processkit::{Command, Supervisor};
    /// use std::time::Duration;
    /// let outcome = Supervisor::new(Command::new("my-server"))
    ///     .health_check(Duration::from_secs(10), || async {
    ///         tokio::net::TcpStream::connect("127.0.0.1:8080").await.is_ok()
    ///     })
    ///     .run()
    ///     .await?;
    /// println!("{} health check failures", outcome.health_check_failures);
    /// # Ok(()) }
    /// ```
    pub fn health_check<F, Fut>(mut self, interval: Duration, probe: F) -> Self
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        self.health = Some(HealthCheck::new(interval, probe));
        self
    }

    /// A new stream of this supervisor's [`SupervisorEvent`]s, from the
    /// first start to the end of supervision; call it before
    /// [`run`](Supervisor::run). Every stream gets every event. Events are
    /// queued per stream without bound (there are only a few per restart)
    /// and never wait for a reader, so a slow, dropped or unread stream
    /// cannot hold supervision up; one that is never read keeps its events
    /// in memory until it is dropped. The stream ends when supervision ends.
    ///
    /// ```no_run
    /// # async fn demo() -> processkit::Result<()> {
    /// use processkit::{Command, StreamExt, Supervisor};
    /// let mut supervisor = Supervisor::new(Command::new("queue-worker"));
    /// let mut events = supervisor.events();
    /// let log = tokio::spawn(async move {
    ///     while let Some(event) = events.next().await {
    ///         println!("queue-worker: {event}");
    ///     }
    /// });
    /// let outcome = supervisor.run().await;
    /// log.await.expect("the log task");
    /// # outcome.map(drop) }
    /// ```
    pub fn events(&mut self) -> SupervisorEvents {
        self.events.subscribe()
    }

    fn storm_guard(&mut self) -> &mut StormGuard {
        self.storm.get_or_insert_with(StormGuard::new)
    }
}

impl<R: fmt::Debug> fmt::Debug for Supervisor<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("command", &self.command)
            .field("runner", &self.runner)
            .field("policy", &self.policy)
            .field("max_restarts", &self.max_restarts)
            .field("backoff", &self.backoff)
            .field("storm", &self.storm)
            .field("stop_when", &self.stop_when.is_some())
            .field("healthy_after", &self.healthy_after)
            .field("health_check", &self.health.as_ref().map(|h| h.interval))
            .field("subscribers", &self.events.len())
            .finish()
    }
}
