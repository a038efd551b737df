//! `Supervisor::health_check`: probes on a paused clock against scripted
//! incarnations, and a real incarnation stopped politely by a failing check.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use processkit::{
    Command, Error, Match, Reply, RestartPolicy, RetryPolicy, ScriptedRunner, StopReason,
    StreamExt, Supervisor, SupervisorEvent,
};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A service that would run for an hour and then exit cleanly.
fn hour_long() -> ScriptedRunner {
    ScriptedRunner::new().on(
        Match::program("svc"),
        Reply::success("").exit_after(secs(3600)),
    )
}

fn supervisor(runner: &ScriptedRunner) -> Supervisor<&ScriptedRunner> {
    Supervisor::new(Command::new("svc"))
        .with_runner(runner)
        .backoff(secs(1), 1.0)
        .jitter(false)
}

#[tokio::test(start_paused = true)]
async fn a_failing_probe_stops_the_incarnation_and_it_is_restarted() {
    let runner = hour_long();
    let mut sv = supervisor(&runner)
        .restart(RestartPolicy::OnCrash)
        .max_restarts(2)
        .health_check(secs(10), || async { false });
    let events = sv.events();
    let begun = tokio::time::Instant::now();
    let outcome = sv.run().await.unwrap();
    assert_eq!(outcome.health_check_failures, 3);
    assert_eq!(outcome.restarts, 2);
    assert_eq!(outcome.stopped, StopReason::MaxRestarts);
    assert_eq!(runner.calls(), 3);
    // Each run lived one interval; none reached its hour.
    assert_eq!(begun.elapsed(), secs(3 * 10 + 2));
    let events: Vec<_> = events.collect().await;
    let failed = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                SupervisorEvent::HealthCheckFailed {
                    timed_out: false,
                    ..
                }
            )
        })
        .count();
    assert_eq!(failed, 3, "{events:?}");
    let exits: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            SupervisorEvent::Exited {
                incarnation,
                uptime,
                health_check_failed,
                ..
            } => Some((*incarnation, *uptime, *health_check_failed)),
            _ => None,
        })
        .collect();
    assert_eq!(
        exits,
        [
            (1, secs(10), true),
            (2, secs(10), true),
            (3, secs(10), true)
        ]
    );
    // The failure is reported before the exit it caused.
    assert!(matches!(
        events[1],
        SupervisorEvent::HealthCheckFailed { incarnation: 1, .. }
    ));
    assert!(matches!(events[2], SupervisorEvent::Exited { .. }));
}

#[tokio::test(start_paused = true)]
async fn passing_probes_run_every_interval_and_leave_the_run_alone() {
    let calls = Arc::new(AtomicUsize::new(0));
    let runner = ScriptedRunner::new().on(
        Match::program("svc"),
        Reply::success("done").exit_after(secs(35)),
    );
    let counter = Arc::clone(&calls);
    let outcome = supervisor(&runner)
        .health_check(secs(10), move || {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                // Slow, but within the interval.
                tokio::time::sleep(secs(4)).await;
                true
            }
        })
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.health_check_failures, 0);
    assert_eq!(outcome.stopped, StopReason::PolicyDeclined);
    assert_eq!(outcome.result.stdout(), "done");
    // Probes start at 10 s and 24 s; the one due at 38 s never comes.
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_probe_that_hangs_counts_as_failed_after_one_interval() {
    let runner = hour_long();
    let mut sv = supervisor(&runner)
        .restart(RestartPolicy::Never)
        .health_check(secs(10), std::future::pending::<bool>);
    let events = sv.events();
    let outcome = sv.run().await.unwrap();
    assert_eq!(outcome.health_check_failures, 1);
    assert_eq!(outcome.stopped, StopReason::PolicyDeclined);
    let events: Vec<_> = events.collect().await;
    assert!(
        events.iter().any(|e| matches!(
            e,
            SupervisorEvent::HealthCheckFailed {
                timed_out: true,
                ..
            }
        )),
        "{events:?}"
    );
    // Probed at 10 s, given up on at 20 s.
    assert!(
        events.iter().any(|e| matches!(
            e,
            SupervisorEvent::Exited { uptime, health_check_failed: true, .. } if *uptime == secs(20)
        )),
        "{events:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_health_check_end_is_a_failure_stop_when_never_sees() {
    let runner = hour_long();
    let outcome = supervisor(&runner)
        .restart(RestartPolicy::Always)
        .max_restarts(2)
        .stop_when(|_| true)
        .health_check(secs(10), || async { false })
        .failure_threshold(1.5)
        .failure_decay(secs(365 * 24 * 3600))
        .storm_pause(secs(100))
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.stopped, StopReason::MaxRestarts);
    assert_eq!(outcome.health_check_failures, 3);
    // The first two ends scored in the storm guard (threshold 1.5).
    assert_eq!(outcome.storms, 1);
}

#[tokio::test(start_paused = true)]
async fn the_retry_policy_does_not_retry_a_health_check_end() {
    let runner = hour_long();
    let cmd = Command::new("svc").retry(RetryPolicy::new(5).retry_if(|_| true));
    let outcome = Supervisor::new(cmd)
        .with_runner(&runner)
        .restart(RestartPolicy::Never)
        .health_check(secs(10), || async { false })
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.health_check_failures, 1);
    assert_eq!(runner.calls(), 1);
}

/// Supervision with a health check can run in a task of its own.
#[tokio::test(start_paused = true)]
async fn a_supervisor_with_a_health_check_runs_in_a_spawned_task() {
    let runner = Arc::new(hour_long());
    let supervision = Supervisor::new(Command::new("svc"))
        .with_runner(Arc::clone(&runner))
        .restart(RestartPolicy::Never)
        .health_check(secs(10), || async { false })
        .run();
    let outcome = tokio::spawn(supervision).await.unwrap().unwrap();
    assert_eq!(outcome.health_check_failures, 1);
    assert_eq!(runner.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_zero_interval_is_a_typed_error_and_runs_nothing() {
    let runner = hour_long();
    let err = supervisor(&runner)
        .health_check(Duration::ZERO, || async { true })
        .run()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidCommand { .. }), "{err:?}");
    assert_eq!(runner.calls(), 0);
}

/// A real `sh` that traps the stop signal: a failing health check must stop
/// it politely (the trap writes its marker and exits 0), and that clean exit
/// still counts as a failure that `OnCrash` restarts.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_failing_health_check_stops_a_real_incarnation_gracefully() {
    use crate::common::*;

    let token = token("sv-health");
    let _reaper = Cleanup::token(&token);
    let dir = TempDir::new("sv-health");
    let up = dir.join("up");
    let termed = dir.join("termed");
    let script = format!(
        "trap 'echo term >> {termed}; exit 0' TERM; echo up >> {up}; \
         while :; do sleep 0.05; done; : {token}",
        termed = termed.display(),
        up = up.display(),
    );
    // Healthy until the current incarnation has set its trap and said so.
    let (up_probe, termed_probe) = (up.clone(), termed.clone());
    let probe = move || {
        let unhealthy = line_count(&up_probe) > line_count(&termed_probe);
        async move { !unhealthy }
    };
    let mut sv = Supervisor::new(Command::new("sh").args(["-c", &script]))
        .restart(RestartPolicy::OnCrash)
        .max_restarts(1)
        .backoff(Duration::from_millis(10), 1.0)
        .health_check(Duration::from_millis(100), probe);
    let events = sv.events();
    let outcome = tokio::time::timeout(Duration::from_secs(60), sv.run())
        .await
        .expect("supervision hung")
        .unwrap();
    assert_eq!(outcome.health_check_failures, 2);
    assert_eq!(outcome.stopped, StopReason::MaxRestarts);
    assert_eq!(
        line_count(&termed),
        2,
        "each incarnation got the polite signal"
    );
    assert_eq!(
        outcome.result.code(),
        Some(0),
        "the trap's exit, not a kill"
    );
    let events: Vec<_> = events.collect().await;
    let pids: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            SupervisorEvent::Started { pid, .. } => *pid,
            _ => None,
        })
        .collect();
    assert_eq!(pids.len(), 2, "a real incarnation has a pid: {events:?}");
    assert!(wait_gone(&token).await, "{:?}", pids_with_token(&token));
}
