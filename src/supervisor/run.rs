//! The supervision loop: start an incarnation, watch it (and its health)
//! until it ends, then stop or restart after a backoff that a healthy run
//! resets.

use std::time::Duration;

use tokio::time::Instant;

use super::events::{Subscribers, SupervisorEvent};
use super::health::{HealthCheck, stop_grace};
use super::{RestartPolicy, StopReason, SupervisionOutcome, Supervisor};
use crate::command::Command;
use crate::error::{Error, Result};
use crate::exit_status::ExitStatus;
use crate::finish;
use crate::result::ProcessResult;
use crate::runner::ProcessRunner;
use crate::trace::trace_event;

/// How one incarnation ended.
struct Ended {
    result: ProcessResult<Vec<u8>>,
    /// Start to exit, on tokio's clock.
    uptime: Duration,
    /// `Some(timed_out)` when its health check stopped it.
    health_failure: Option<bool>,
}

impl<R: ProcessRunner> Supervisor<R> {
    /// Runs the command, restarting it per policy, until supervision ends.
    /// Returns the last run's result, the restart count and why it stopped;
    /// a run that fails to start or is cancelled ends it with that error.
    /// Settings that cannot work (see [`backoff`](Supervisor::backoff),
    /// [`healthy_after`](Supervisor::healthy_after),
    /// [`health_check`](Supervisor::health_check) and the storm guard's)
    /// fail with `Error::InvalidCommand` before any run.
    pub async fn run(self) -> Result<SupervisionOutcome> {
        let Supervisor {
            command: cmd,
            runner,
            policy,
            max_restarts,
            backoff,
            mut storm,
            mut stop_when,
            healthy_after,
            health,
            events,
        } = self;
        let program = cmd.display_name();
        backoff.check(&program)?;
        if let Some(guard) = &storm {
            guard.check(&program)?;
        }
        if let Some(check) = &health {
            check.check(&program)?;
        }
        if healthy_after.is_zero() {
            return Err(Error::InvalidCommand {
                program,
                reason:
                    "healthy_after must be longer than zero (Duration::MAX turns the reset off)"
                        .to_owned(),
            });
        }
        let mut restarts = 0;
        let mut storms = 0;
        let mut health_check_failures = 0;
        // Restarts since the last healthy run: what the backoff grows with.
        let mut streak = 0;
        loop {
            cmd.cancel.check(&program)?;
            let incarnation = restarts + 1;
            let ended =
                incarnation_run(&runner, &cmd, incarnation, health.as_ref(), &events).await?;
            let ended_by_health = ended.health_failure.is_some();
            health_check_failures += u32::from(ended_by_health);
            let failed = ended_by_health || !ended.result.is_success();
            let result = ended.result.into_lossy_string();
            events.emit(SupervisorEvent::Exited {
                incarnation,
                status: status_of(&result),
                uptime: ended.uptime,
                health_check_failed: ended_by_health,
            });
            // A run the health check ended did not choose its exit: it is
            // not offered to `stop_when`.
            let stopped =
                if !ended_by_health && stop_when.as_mut().is_some_and(|accept| accept(&result)) {
                    Some(StopReason::StopCondition)
                } else if !restarts_after(policy, &result, ended_by_health) {
                    Some(StopReason::PolicyDeclined)
                } else if max_restarts.is_some_and(|max| restarts >= max) {
                    Some(StopReason::MaxRestarts)
                } else {
                    None
                };
            if let Some(stopped) = stopped {
                events.emit(SupervisorEvent::Stopped { reason: stopped });
                return Ok(SupervisionOutcome {
                    result,
                    restarts,
                    storms,
                    health_check_failures,
                    stopped,
                });
            }
            restarts += 1;
            if ended.uptime >= healthy_after {
                streak = 0;
                if let Some(guard) = storm.as_mut() {
                    guard.reset();
                }
                trace_event!(
                    info,
                    "backoff-reset",
                    program = %program,
                    uptime = ?ended.uptime,
                );
                events.emit(SupervisorEvent::BackoffReset {
                    uptime: ended.uptime,
                });
            }
            streak += 1;
            let mut delay = backoff.next_delay(streak);
            let mut stormed = false;
            if let Some(guard) = storm.as_mut().filter(|_| failed)
                && guard.record_failure(Instant::now())
            {
                // A storm pause never shortens the wait the backoff asks for.
                delay = delay.max(guard.pause);
                storms += 1;
                stormed = true;
                trace_event!(
                    warn,
                    "storm",
                    program = %program,
                    restarts = %restarts,
                    pause = ?delay,
                );
                events.emit(SupervisorEvent::StormPauseStarted { pause: delay });
            }
            trace_event!(
                info,
                "restart",
                program = %program,
                restart = %restarts,
                code = ?result.code(),
                signal = ?result.signal(),
                timed_out = %result.timed_out(),
                health_check_failed = %ended_by_health,
                delay = ?delay,
            );
            events.emit(SupervisorEvent::Restarting {
                restart: restarts,
                delay,
            });
            cmd.cancel.sleep(&program, delay).await?;
            if stormed {
                events.emit(SupervisorEvent::StormPauseEnded);
            }
        }
    }
}

/// Runs incarnation `n` to its end under the command's retry policy, each
/// attempt started with the runner's `start` and finished like
/// `output_bytes`. An attempt its health check stopped is not retried: it
/// goes straight back to the supervisor as a failure.
async fn incarnation_run<R: ProcessRunner>(
    runner: &R,
    cmd: &Command,
    n: u32,
    health: Option<&HealthCheck>,
    events: &Subscribers,
) -> Result<Ended> {
    let program = cmd.display_name();
    let attempt = || async {
        let mut run = runner.start(cmd).await?;
        let started = Instant::now();
        events.emit(SupervisorEvent::Started {
            incarnation: n,
            pid: run.id(),
        });
        let health_failure = match health {
            None => {
                run.wait_exit().await?;
                None
            }
            Some(check) => tokio::select! {
                // An exit seen in the same poll as a failed probe wins: the
                // run ended on its own.
                biased;
                exit = run.wait_exit() => {
                    exit?;
                    None
                }
                timed_out = check.failure() => Some(timed_out),
            },
        };
        if let Some(timed_out) = health_failure {
            trace_event!(
                warn,
                "health-check",
                program = %run.program(),
                pid = ?run.id(),
                timed_out = %timed_out,
            );
            events.emit(SupervisorEvent::HealthCheckFailed {
                incarnation: n,
                timed_out,
            });
            // A failed stop (the run was cancelled meanwhile) is reported
            // by the finish below.
            let _ = run.stop(stop_grace(cmd)).await;
        }
        let uptime = started.elapsed();
        let result = finish::output_bytes(run).await?;
        Ok(Ended {
            result,
            uptime,
            health_failure,
        })
    };
    let failure_of = |ended: &Ended| match ended.health_failure {
        Some(_) => None,
        None => ended.result.failure(),
    };
    crate::policy::with_retries(
        cmd.retry.as_ref(),
        &cmd.cancel,
        &program,
        attempt,
        failure_of,
    )
    .await
}

/// Whether the policy restarts a run that ended with `result`: one its
/// health check stopped is a crash, whatever its exit status.
fn restarts_after(policy: RestartPolicy, result: &ProcessResult, ended_by_health: bool) -> bool {
    match policy {
        RestartPolicy::Never => false,
        _ if ended_by_health => true,
        policy => policy.restarts_after(result),
    }
}

fn status_of(result: &ProcessResult) -> ExitStatus {
    ExitStatus::new(result.code, result.signal, result.timed_out).idle(result.idle_timed_out)
}
