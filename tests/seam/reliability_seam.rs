//! The seams of the reliability work: killing and dropping scripted and
//! replayed runs, far-away deadlines on doubles, backoff with a zero base,
//! storm-guard validation, and a killed run that has no code nor signal.

use std::time::Duration;

use processkit::{
    Command, Error, ProcessResult, ProcessRunner, ProcessRunnerExt, Reply, RestartPolicy,
    RetryPolicy, ScriptedRunner, StreamExt, Supervisor,
};

/// A bound that only proves "did not hang": a broken kill waits an hour.
const GENEROUS: Duration = Duration::from_secs(10);

/// A scripted run that would play for an hour unless it is stopped.
fn hour_long() -> ScriptedRunner {
    ScriptedRunner::new().on(
        processkit::Match::program("slow"),
        Reply::lines(["first"])
            .line_after(Duration::from_secs(3600), "never")
            .exit_after(Duration::from_secs(3600)),
    )
}

async fn bounded<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(GENEROUS, fut).await {
        Ok(out) => out,
        Err(_) => panic!("{what} did not end within {GENEROUS:?}"),
    }
}

#[tokio::test]
async fn killing_a_scripted_run_ends_it_at_once_as_killed() {
    let runner = hour_long();
    let mut run = runner.start(&Command::new("slow")).await.unwrap();
    run.kill().unwrap();
    let code = bounded("wait() after kill()", run.wait()).await.unwrap();
    assert_eq!(code, None, "a killed scripted run has no exit code");
    assert!(!run.timed_out());
    run.kill().unwrap(); // harmless once it ended
}

#[tokio::test]
async fn killing_a_scripted_run_closes_its_stdout_mid_stream() {
    let runner = hour_long();
    let mut run = runner.start(&Command::new("slow")).await.unwrap();
    let first = bounded("the first line", run.stdout_lines().next()).await;
    assert_eq!(first.as_deref(), Some("first"));
    run.kill().unwrap();
    let rest = bounded("the stream after kill()", run.stdout_lines().next()).await;
    assert_eq!(rest, None, "the script kept playing after kill()");
    let (code, _) = bounded("finish_streamed", run.finish_streamed())
        .await
        .unwrap();
    assert_eq!(code, None);
}

#[tokio::test]
async fn a_scripted_run_that_already_exited_keeps_its_code_after_kill() {
    let runner = ScriptedRunner::new().on(processkit::Match::program("job"), Reply::failure(3, ""));
    let mut run = runner.start(&Command::new("job")).await.unwrap();
    assert_eq!(run.wait().await.unwrap(), Some(3));
    run.kill().unwrap();
    assert_eq!(run.wait().await.unwrap(), Some(3));
}

#[tokio::test(flavor = "current_thread")]
async fn dropping_a_scripted_run_stops_its_feeder() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let runner = hour_long();
    let run = runner.start(&Command::new("slow")).await.unwrap();
    assert!(
        metrics.num_alive_tasks() > before,
        "the scripted run has no feeder task to observe"
    );
    drop(run);
    let gone = async {
        while metrics.num_alive_tasks() > before {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(5), gone)
        .await
        .is_err()
    {
        panic!(
            "the dropped run's feeder still plays its script: {} tasks alive, {before} before",
            metrics.num_alive_tasks()
        );
    }
}

#[cfg(feature = "record")]
#[tokio::test]
async fn killing_a_replayed_run_ends_it_at_once_as_killed() {
    use processkit::RecordReplayRunner;
    let dir = std::env::temp_dir().join(format!("processkit-seam-replay-{}", std::process::id()));
    let cassette = dir.join("kill.json");
    // More than the in-memory pipe holds: with nobody reading, the replayed
    // script cannot have finished before the kill.
    let big = "x".repeat(1 << 20);
    let inner = ScriptedRunner::new().on(
        processkit::Match::program("big"),
        Reply::success(big.clone()),
    );
    let recorder = RecordReplayRunner::record(&cassette, inner);
    recorder.output_string(&Command::new("big")).await.unwrap();
    recorder.save().unwrap();
    let replay = RecordReplayRunner::replay(&cassette).unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    let mut run = replay.start(&Command::new("big")).await.unwrap();
    run.kill().unwrap();
    let code = bounded("wait() after kill()", run.wait()).await.unwrap();
    assert_eq!(code, None, "the replay played on after kill()");

    // An unkilled replay still answers with the recorded outcome.
    let mut run = replay.start(&Command::new("big")).await.unwrap();
    assert_eq!(run.wait().await.unwrap(), Some(0));
}

#[tokio::test]
async fn a_duration_max_timeout_on_a_scripted_run_is_no_deadline() {
    let runner =
        ScriptedRunner::new().on(processkit::Match::program("ok"), Reply::success("done\n"));
    let cmd = Command::new("ok").timeout(Duration::MAX);
    let result = runner.output_string(&cmd).await.unwrap();
    assert_eq!(result.code(), Some(0));
    assert!(!result.timed_out());
    assert_eq!(result.stdout(), "done\n");
}

#[test]
fn a_zero_base_retry_backoff_stays_zero_at_every_attempt() {
    let policy = RetryPolicy::new(5000).backoff(Duration::ZERO, 2.0);
    for n in 1..=5000 {
        assert_eq!(policy.backoff_delay(n), Duration::ZERO, "retry {n}");
    }
    assert_eq!(policy.backoff_delay(u32::MAX), Duration::ZERO);
    // Any other base saturates at the cap and stays there.
    let policy = RetryPolicy::new(3)
        .backoff(Duration::from_nanos(1), 2.0)
        .max_backoff(Duration::from_secs(7));
    for n in [100, 1024, 1025, 1100, u32::MAX] {
        assert_eq!(policy.backoff_delay(n), Duration::from_secs(7), "retry {n}");
    }
}

/// A runner whose every run fails, so a supervisor restarts it.
fn always_failing() -> ScriptedRunner {
    ScriptedRunner::new().on(processkit::Match::program("crash"), Reply::failure(1, ""))
}

#[tokio::test(start_paused = true)]
async fn a_zero_base_supervisor_backoff_never_waits() {
    let runner = always_failing();
    let begun = tokio::time::Instant::now();
    let outcome = Supervisor::new(Command::new("crash"))
        .with_runner(&runner)
        .restart(RestartPolicy::OnCrash)
        .max_restarts(1100)
        .backoff(Duration::ZERO, 2.0)
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.restarts, 1100);
    // The paused clock moves only when something sleeps: any wait shows.
    assert_eq!(
        begun.elapsed(),
        Duration::ZERO,
        "a zero-base backoff waited"
    );
}

#[tokio::test]
async fn invalid_backoff_multipliers_are_typed_errors_before_any_run() {
    for multiplier in [f64::NAN, f64::INFINITY, -2.0, 0.5] {
        let runner = always_failing();
        let err = Supervisor::new(Command::new("crash"))
            .with_runner(&runner)
            .backoff(Duration::from_millis(1), multiplier)
            .run()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidCommand { .. }), "{err}");
        assert_eq!(runner.calls(), 0, "multiplier {multiplier} ran the command");

        let cmd = Command::new("crash").retry(
            RetryPolicy::new(3)
                .backoff(Duration::from_millis(1), multiplier)
                .retry_on_failed_exit(),
        );
        let err = runner.output_string(&cmd).await.unwrap_err();
        assert!(matches!(err, Error::InvalidCommand { .. }), "{err}");
        assert_eq!(runner.calls(), 0, "multiplier {multiplier} ran the command");
    }
}

#[tokio::test(start_paused = true)]
async fn storm_guard_settings_that_cannot_work_are_typed_errors() {
    let thresholds = [f64::NAN, f64::INFINITY, 0.0, -1.0, 0.5];
    for threshold in thresholds {
        let runner = always_failing();
        let outcome = Supervisor::new(Command::new("crash"))
            .with_runner(&runner)
            .max_restarts(2)
            .failure_threshold(threshold)
            .run()
            .await;
        assert!(
            matches!(outcome, Err(Error::InvalidCommand { .. })),
            "threshold {threshold}: {outcome:?}"
        );
        assert_eq!(runner.calls(), 0, "threshold {threshold} ran the command");
    }
    let runner = always_failing();
    let outcome = Supervisor::new(Command::new("crash"))
        .with_runner(&runner)
        .max_restarts(2)
        .failure_decay(Duration::ZERO)
        .run()
        .await;
    assert!(
        matches!(outcome, Err(Error::InvalidCommand { .. })),
        "zero half-life: {outcome:?}"
    );
    // Sound settings still run.
    let outcome = Supervisor::new(Command::new("crash"))
        .with_runner(&runner)
        .max_restarts(2)
        .failure_threshold(1)
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.storms, 2);
}

#[tokio::test(start_paused = true)]
async fn a_storm_pause_never_shortens_the_backoff() {
    let runner = always_failing();
    let begun = tokio::time::Instant::now();
    let outcome = Supervisor::new(Command::new("crash"))
        .with_runner(&runner)
        .max_restarts(3)
        .backoff(Duration::from_secs(10), 1.0)
        .jitter(false)
        .failure_threshold(1)
        .storm_pause(Duration::from_secs(1))
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.storms, 3);
    assert!(
        begun.elapsed() >= Duration::from_secs(30),
        "three restarts waited {:?}, less than their 10 s backoffs",
        begun.elapsed()
    );
}

#[test]
fn a_result_with_neither_code_nor_signal_is_killed_not_sigkill() {
    let result = ProcessResult::new("x", None, String::new(), String::new());
    let err = result.into_success().unwrap_err();
    assert!(
        matches!(&err, Error::Killed { program } if program == "x"),
        "a killed run without a signal was reported as {err:?}"
    );
}

#[tokio::test]
async fn a_scripted_killed_reply_has_no_code_nor_signal() {
    let runner = ScriptedRunner::new().on(processkit::Match::program("k"), Reply::killed());
    let result = runner.output_string(&Command::new("k")).await.unwrap();
    assert_eq!((result.code(), result.signal()), (None, None));
    let err = runner.run(&Command::new("k")).await.unwrap_err();
    assert!(matches!(err, Error::Killed { .. }), "{err}");
    let err = runner.probe(&Command::new("k")).await.unwrap_err();
    assert!(matches!(err, Error::Killed { .. }), "{err}");
    let err = runner.exit_code(&Command::new("k")).await.unwrap_err();
    assert!(matches!(err, Error::Killed { .. }), "{err}");
}

#[cfg(feature = "record")]
#[tokio::test]
async fn a_replayed_run_with_neither_code_nor_signal_stays_killed() {
    use processkit::RecordReplayRunner;
    let dir = std::env::temp_dir().join(format!("processkit-seam-killed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cassette = dir.join("killed.json");
    // As a Windows recording of a run whose job was terminated looks.
    let entry = r#"{"version": 1, "entries": [{"program": "k", "args": [],
        "code": null, "signal": null, "timed_out": false,
        "stdout": "", "stderr": ""}]}"#;
    std::fs::write(&cassette, entry).unwrap();
    let replay = RecordReplayRunner::replay(&cassette).unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    let err = replay.run(&Command::new("k")).await.unwrap_err();
    assert!(matches!(err, Error::Killed { .. }), "{err:?}");
    // The live handle a replay hands out reports the same, not a SIGKILL.
    let run = replay.start(&Command::new("k")).await.unwrap();
    let (code, _) = run.finish_streamed().await.unwrap();
    assert_eq!(code, None);
    let mut run = replay.start(&Command::new("k")).await.unwrap();
    assert_eq!(run.wait().await.unwrap(), None);
    let err = processkit::ProcessRunnerExt::probe(&replay, &Command::new("k"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Killed { .. }), "{err:?}");
}
