//! `Supervisor`: keeps one command alive, restarting it per `RestartPolicy`
//! with bounded restarts, jittered exponential backoff and an opt-in
//! failure-storm guard. Every run goes through a `ProcessRunner`.

mod outcome;
mod storm;

use std::fmt;
use std::time::Duration;

pub use outcome::{RestartPolicy, StopReason, SupervisionOutcome};
use storm::StormGuard;

use crate::command::Command;
use crate::error::Result;
use crate::policy::Backoff;
use crate::result::ProcessResult;
use crate::runner::{JobRunner, ProcessRunner};
use crate::trace::trace_event;

type StopCondition = Box<dyn FnMut(&ProcessResult) -> bool + Send>;

/// What a [`Supervisor`] keeps of each incarnation's stdout and stderr
/// unless its command sets [`max_output`](Command::max_output): 1 MiB each
/// (the first and the latest half MiB).
pub const SUPERVISED_OUTPUT: usize = 1 << 20;

/// Keeps a command running: whenever it exits, the [`RestartPolicy`] decides
/// whether it starts again, after a backoff delay.
///
/// The n-th restart waits `base * multiplier^(n-1)` (default 100 ms, ×2,
/// capped by [`max_backoff`](Supervisor::max_backoff) at 30 s), jittered into
/// `[d/2, d]` unless [`jitter(false)`](Supervisor::jitter). All waiting uses
/// tokio's clock, so tests can run it under a paused clock.
///
/// A run that cannot start, or whose `cancel_on` token (feature
/// `cancellation`) is cancelled, ends supervision with that error: restarting into a
/// cancelled token could only fail again. The command's
/// [`retry`](Command::retry) policy, if any, applies within each run (the
/// runners' default `output_bytes` honours it).
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
}

impl Supervisor<JobRunner> {
    /// Supervises `command`, each run in a container of its own
    /// ([`JobRunner`]). Defaults: [`RestartPolicy::OnCrash`], no restart
    /// limit, jittered backoff, no storm guard.
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

    fn storm_guard(&mut self) -> &mut StormGuard {
        self.storm.get_or_insert_with(StormGuard::new)
    }

    /// Runs the command, restarting it per policy, until supervision ends.
    /// Returns the last run's result, the restart count and why it stopped;
    /// a run that fails to start or is cancelled ends it with that error.
    /// Settings that cannot work (see [`backoff`](Supervisor::backoff) and
    /// the storm guard's) fail with `Error::InvalidCommand` before any run.
    pub async fn run(mut self) -> Result<SupervisionOutcome> {
        let cmd = &self.command;
        let program = cmd.display_name();
        self.backoff.check(&program)?;
        if let Some(guard) = &self.storm {
            guard.check(&program)?;
        }
        let mut restarts = 0;
        let mut storms = 0;
        loop {
            cmd.cancel.check(&program)?;
            let result = self.runner.output_bytes(cmd).await?.into_lossy_string();
            let stop = |stopped| SupervisionOutcome {
                result: result.clone(),
                restarts,
                storms,
                stopped,
            };
            if self
                .stop_when
                .as_mut()
                .is_some_and(|accept| accept(&result))
            {
                return Ok(stop(StopReason::StopCondition));
            }
            if !self.policy.restarts_after(&result) {
                return Ok(stop(StopReason::PolicyDeclined));
            }
            if self.max_restarts.is_some_and(|max| restarts >= max) {
                return Ok(stop(StopReason::MaxRestarts));
            }
            restarts += 1;
            let mut delay = self.backoff.next_delay(restarts);
            let failed = !result.is_success();
            if let Some(guard) = self.storm.as_mut().filter(|_| failed)
                && guard.record_failure(tokio::time::Instant::now())
            {
                // A storm pause never shortens the wait the backoff asks for.
                delay = delay.max(guard.pause);
                storms += 1;
                trace_event!(
                    warn,
                    "storm",
                    program = %program,
                    restarts = %restarts,
                    pause = ?delay,
                );
            }
            trace_event!(
                info,
                "restart",
                program = %program,
                restart = %restarts,
                code = ?result.code(),
                signal = ?result.signal(),
                timed_out = %result.timed_out(),
                delay = ?delay,
            );
            cmd.cancel.sleep(&program, delay).await?;
        }
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
            .finish()
    }
}
