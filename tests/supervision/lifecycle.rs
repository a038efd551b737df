//! The backoff reset after a healthy run and the lifecycle event stream,
//! under a paused clock with scripted incarnations.

use std::time::Duration;

use processkit::{
    Command, Error, Match, Reply, RestartPolicy, RetryPolicy, ScriptedRunner, StopReason,
    StreamExt, Supervisor, SupervisorEvent, SupervisorEvents,
};

/// A bound that only proves "did not hang" (the clock is paused: it passes
/// only if supervision stops making progress).
const GENEROUS: Duration = Duration::from_secs(24 * 3600);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A service that crashes after each of `uptimes` (then keeps crashing
/// after the last one).
fn crashing_after(uptimes: &[u64]) -> ScriptedRunner {
    let replies = uptimes
        .iter()
        .map(|&s| Reply::failure(1, "crash").exit_after(secs(s)));
    ScriptedRunner::new().on_sequence(Match::program("svc"), replies)
}

fn supervisor() -> Supervisor {
    Supervisor::new(Command::new("svc"))
        .restart(RestartPolicy::Always)
        .backoff(secs(1), 2.0)
        .max_backoff(secs(3600))
        .jitter(false)
}

/// Every event of a finished supervision.
async fn all(events: SupervisorEvents) -> Vec<SupervisorEvent> {
    events.collect().await
}

fn delays(events: &[SupervisorEvent]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            SupervisorEvent::Restarting { delay, .. } => Some(delay.as_secs()),
            _ => None,
        })
        .collect()
}

fn resets(events: &[SupervisorEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, SupervisorEvent::BackoffReset { .. }))
        .count()
}

/// A service that crashes once in a long while comes back after the base
/// delay every time, instead of waiting longer after every crash.
#[tokio::test(start_paused = true)]
async fn a_healthy_run_resets_the_backoff() {
    let runner = crashing_after(&[120]);
    let mut sv = supervisor().with_runner(&runner).max_restarts(4);
    let events = sv.events();
    let begun = tokio::time::Instant::now();
    let outcome = sv.run().await.unwrap();
    let events = all(events).await;
    assert_eq!(delays(&events), [1, 1, 1, 1]);
    assert_eq!(resets(&events), 4);
    // The clock agrees: five 120 s runs and four 1 s waits.
    assert_eq!(begun.elapsed(), secs(5 * 120 + 4));
    // Neither the restart count nor its limit is reset.
    assert_eq!(outcome.restarts, 4);
    assert_eq!(outcome.stopped, StopReason::MaxRestarts);
}

#[tokio::test(start_paused = true)]
async fn short_runs_keep_growing_the_backoff_until_a_healthy_one() {
    // Runs of 10 s are below the default 60 s; the 100 s one is healthy.
    let runner = crashing_after(&[10, 10, 100, 10, 10]);
    let mut sv = supervisor().with_runner(&runner).max_restarts(4);
    let events = sv.events();
    sv.run().await.unwrap();
    let events = all(events).await;
    assert_eq!(delays(&events), [1, 2, 1, 2]);
    assert_eq!(resets(&events), 1);
    let reset_at = events
        .iter()
        .position(
            |e| matches!(e, SupervisorEvent::BackoffReset { uptime, .. } if *uptime == secs(100)),
        )
        .expect("a reset after the 100 s run");
    assert!(
        matches!(
            events[reset_at + 1],
            SupervisorEvent::Restarting { restart: 3, .. }
        ),
        "{events:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn healthy_after_sets_the_bar_and_duration_max_turns_the_reset_off() {
    let runner = crashing_after(&[10]);
    let mut sv = supervisor()
        .with_runner(&runner)
        .max_restarts(3)
        .healthy_after(secs(10));
    let events = sv.events();
    sv.run().await.unwrap();
    assert_eq!(
        delays(&all(events).await),
        [1, 1, 1],
        "10 s runs are healthy"
    );

    let runner = crashing_after(&[1000]);
    let mut sv = supervisor()
        .with_runner(&runner)
        .max_restarts(3)
        .healthy_after(Duration::MAX);
    let events = sv.events();
    sv.run().await.unwrap();
    let events = all(events).await;
    assert_eq!(delays(&events), [1, 2, 4]);
    assert_eq!(resets(&events), 0);
}

#[tokio::test(start_paused = true)]
async fn a_zero_healthy_after_is_a_typed_error_and_runs_nothing() {
    let runner = crashing_after(&[1]);
    let err = supervisor()
        .with_runner(&runner)
        .healthy_after(Duration::ZERO)
        .run()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidCommand { .. }), "{err:?}");
    assert_eq!(runner.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_healthy_run_resets_the_storm_score() {
    // A score that barely decays (n failures score just under n) and a
    // threshold of 2.5: without the reset the third failure would trip the
    // guard; with it, the fifth does.
    let runner = crashing_after(&[10, 10, 100, 10, 10, 10]);
    let mut sv = supervisor()
        .with_runner(&runner)
        .backoff(secs(1), 1.0)
        .failure_threshold(2.5)
        .failure_decay(secs(365 * 24 * 3600))
        .storm_pause(secs(500))
        .max_restarts(5);
    let events = sv.events();
    let outcome = sv.run().await.unwrap();
    let events = all(events).await;
    assert_eq!(outcome.storms, 1);
    assert_eq!(delays(&events), [1, 1, 1, 1, 500]);
    let storm = events
        .iter()
        .position(
            |e| matches!(e, SupervisorEvent::StormPauseStarted { pause, .. } if *pause == secs(500)),
        )
        .expect("a storm pause");
    assert!(matches!(
        events[storm + 1],
        SupervisorEvent::Restarting { restart: 5, .. }
    ));
    assert!(matches!(
        events[storm + 2],
        SupervisorEvent::StormPauseEnded
    ));
    assert!(matches!(
        events[storm + 3],
        SupervisorEvent::Started { incarnation: 6, .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn a_crash_a_restart_and_a_clean_exit_in_order() {
    let runner = ScriptedRunner::new().on_sequence(
        Match::program("svc"),
        [
            Reply::failure(3, "boom").exit_after(secs(2)),
            Reply::success("ok").exit_after(secs(5)),
        ],
    );
    let mut sv = Supervisor::new(Command::new("svc"))
        .with_runner(&runner)
        .backoff(Duration::from_millis(100), 2.0)
        .jitter(false);
    let first = sv.events();
    let second = sv.events();
    let outcome = sv.run().await.unwrap();
    let events = all(first).await;
    assert_eq!(
        events,
        all(second).await,
        "every subscriber gets every event"
    );
    assert_eq!(events.len(), 6, "{events:?}");
    assert!(matches!(
        events[0],
        SupervisorEvent::Started {
            incarnation: 1,
            pid: None,
            ..
        }
    ));
    assert!(
        matches!(
            &events[1],
            SupervisorEvent::Exited { incarnation: 1, status, uptime, health_check_failed: false, .. }
                if status.code() == Some(3) && *uptime == secs(2)
        ),
        "{:?}",
        events[1]
    );
    assert!(matches!(
        events[2],
        SupervisorEvent::Restarting { restart: 1, delay, .. } if delay == Duration::from_millis(100)
    ));
    assert!(matches!(
        events[3],
        SupervisorEvent::Started { incarnation: 2, .. }
    ));
    assert!(matches!(
        &events[4],
        SupervisorEvent::Exited { incarnation: 2, status, uptime, .. }
            if status.success() && *uptime == secs(5)
    ));
    assert!(matches!(
        events[5],
        SupervisorEvent::Stopped {
            reason: StopReason::PolicyDeclined,
            ..
        }
    ));
    assert_eq!(outcome.restarts, 1);
    // One line each for logs.
    assert_eq!(
        events[1].to_string(),
        "incarnation 1 exited with code 3 after 2s"
    );
    assert_eq!(events[2].to_string(), "restart 1 in 100ms");
}

#[tokio::test(start_paused = true)]
async fn dropped_and_unread_subscribers_never_hold_supervision_up() {
    let runner = crashing_after(&[0]);
    let mut sv = supervisor()
        .with_runner(&runner)
        .backoff(Duration::ZERO, 1.0)
        .max_restarts(2000);
    drop(sv.events());
    let unread = sv.events();
    let read = sv.events();
    let reader = tokio::spawn(async move {
        let mut read = read;
        let mut last = None;
        while let Some(event) = read.next().await {
            last = Some(event);
        }
        last
    });
    let outcome = tokio::time::timeout(GENEROUS, sv.run())
        .await
        .expect("supervision hung")
        .unwrap();
    assert_eq!(outcome.restarts, 2000);
    let last = reader.await.unwrap();
    assert!(
        matches!(last, Some(SupervisorEvent::Stopped { .. })),
        "{last:?}"
    );
    // The unread stream kept everything: 2001 starts, 2001 exits, 2000 restarts, the stop.
    assert_eq!(all(unread).await.len(), 2001 * 2 + 2000 + 1);
}

#[tokio::test(start_paused = true)]
async fn the_stream_ends_without_stopped_when_supervision_fails() {
    let runner = ScriptedRunner::new().on_sequence(
        Match::program("svc"),
        [Reply::failure(1, "crash"), Reply::not_found()],
    );
    let mut sv = supervisor().with_runner(&runner);
    let events = sv.events();
    let err = sv.run().await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let events = all(events).await;
    assert!(
        matches!(events.last(), Some(SupervisorEvent::Restarting { .. })),
        "{events:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_commands_retry_policy_applies_within_each_incarnation() {
    let runner = ScriptedRunner::new().on_sequence(
        Match::program("svc"),
        [
            Reply::failure(1, "busy"),
            Reply::failure(1, "busy"),
            Reply::success("ok"),
        ],
    );
    let retried = Command::new("svc").retry(
        RetryPolicy::new(3)
            .backoff(secs(1), 1.0)
            .jitter(false)
            .retry_on_failed_exit(),
    );
    let mut sv = Supervisor::new(retried).with_runner(&runner);
    let events = sv.events();
    let outcome = sv.run().await.unwrap();
    assert_eq!(
        outcome.restarts, 0,
        "the retries made the first run succeed"
    );
    assert!(outcome.result.is_success());
    assert_eq!(runner.calls(), 3);
    let events = all(events).await;
    let starts: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            SupervisorEvent::Started { incarnation, .. } => Some(*incarnation),
            _ => None,
        })
        .collect();
    assert_eq!(
        starts,
        [1, 1, 1],
        "each attempt starts the same incarnation"
    );
    let exits = events
        .iter()
        .filter(|e| matches!(e, SupervisorEvent::Exited { .. }))
        .count();
    assert_eq!(exits, 1, "{events:?}");
}
