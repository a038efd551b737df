//! `Command::retry`: attempt counts, the classifier's defaults and opt-ins,
//! backoff growth under a paused clock, and a real transient spawn failure.
#![cfg(unix)]

use crate::common;

use std::io;
use std::time::Duration;

use common::*;
use processkit::{Command, Error, RetryPolicy};

fn counting_script(count: &std::path::Path, succeed_from: usize) -> Command {
    let script = format!(
        "echo attempt >> {0}; [ $(wc -l < {0}) -ge {succeed_from} ] || exit 3",
        count.display()
    );
    Command::new("sh").args(["-c", &script])
}

fn quick(attempts: u32) -> RetryPolicy {
    RetryPolicy::new(attempts).backoff(Duration::from_millis(1), 2.0)
}

#[tokio::test]
async fn failed_exits_are_not_retried_by_default() {
    let dir = TempDir::new("retry-default");
    let count = dir.join("n");
    let cmd = counting_script(&count, 100).retry(quick(5));
    let result = cmd.output_string().await.unwrap();
    assert_eq!(result.code(), Some(3));
    assert_eq!(line_count(&count), 1);
    let err = cmd.run().await.unwrap_err();
    assert!(matches!(err, Error::NonZeroExit { code: 3, .. }), "{err:?}");
    assert_eq!(line_count(&count), 2);
}

#[tokio::test]
async fn opted_in_failed_exits_use_every_attempt_then_report_the_last() {
    let dir = TempDir::new("retry-exhaust");
    let count = dir.join("n");
    let cmd = counting_script(&count, 100).retry(quick(4).retry_on_failed_exit());
    let result = cmd.output_string().await.unwrap();
    assert_eq!(
        result.code(),
        Some(3),
        "the last outcome is data for output_*"
    );
    assert_eq!(line_count(&count), 4);
    let err = cmd.exit_code().await;
    assert!(matches!(err, Ok(3)), "{err:?}");
    assert_eq!(line_count(&count), 8);
}

#[tokio::test]
async fn retries_stop_at_the_first_success() {
    let dir = TempDir::new("retry-success");
    let count = dir.join("n");
    let cmd = counting_script(&count, 3).retry(quick(10).retry_on_failed_exit());
    cmd.run().await.unwrap();
    assert_eq!(line_count(&count), 3);
}

#[tokio::test]
async fn timeouts_are_retried_only_when_asked() {
    let dir = TempDir::new("retry-timeout");
    let count = dir.join("n");
    let script = format!("echo attempt >> {}; sleep 1000", count.display());
    let slow = Command::new("sh")
        .args(["-c", &script])
        .timeout(Duration::from_millis(100));
    let result = slow.clone().retry(quick(3)).output_string().await.unwrap();
    assert!(result.timed_out());
    assert_eq!(line_count(&count), 1);
    let err = slow
        .retry(quick(3).retry_on_timeout())
        .run()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert_eq!(line_count(&count), 4);
}

fn spawn_error(source: io::Error) -> Error {
    Error::Spawn {
        program: "x".into(),
        source,
    }
}

#[test]
fn the_default_classifier_retries_transient_spawn_errors_only() {
    let policy = RetryPolicy::default();
    assert_eq!(policy.max_attempts(), 3);
    for kind in [
        io::ErrorKind::WouldBlock,
        io::ErrorKind::Interrupted,
        io::ErrorKind::ExecutableFileBusy,
        io::ErrorKind::OutOfMemory,
    ] {
        assert!(policy.is_retryable(&spawn_error(kind.into())), "{kind:?}");
    }
    #[cfg(unix)]
    for errno in [
        24, /* EMFILE */
        23, /* ENFILE */
        11, /* EAGAIN */
        26, /* ETXTBSY */
    ] {
        let err = spawn_error(io::Error::from_raw_os_error(errno));
        assert!(policy.is_retryable(&err), "errno {errno}");
    }
    let permanent = [
        spawn_error(io::ErrorKind::PermissionDenied.into()),
        Error::NotFound {
            program: "x".into(),
        },
        Error::InvalidCommand {
            program: "x".into(),
            reason: "nul".into(),
        },
        Error::NonZeroExit {
            program: "x".into(),
            code: 1,
            stderr_tail: String::new(),
        },
        Error::Signalled {
            program: "x".into(),
            signal: 9,
        },
        Error::Timeout {
            program: "x".into(),
            timeout: Duration::from_secs(1),
        },
        Error::Cancelled {
            program: "x".into(),
        },
    ];
    for err in &permanent {
        assert!(!policy.is_retryable(err), "{err:?}");
    }
}

#[test]
fn opt_ins_and_custom_classifiers_never_retry_cancelled() {
    let nonzero = Error::NonZeroExit {
        program: "x".into(),
        code: 1,
        stderr_tail: String::new(),
    };
    let signalled = Error::Signalled {
        program: "x".into(),
        signal: 9,
    };
    let timeout = Error::Timeout {
        program: "x".into(),
        timeout: Duration::from_secs(1),
    };
    let cancelled = Error::Cancelled {
        program: "x".into(),
    };
    let exits = RetryPolicy::new(2).retry_on_failed_exit();
    assert!(exits.is_retryable(&nonzero) && exits.is_retryable(&signalled));
    assert!(!exits.is_retryable(&timeout));
    let timeouts = RetryPolicy::new(2).retry_on_timeout();
    assert!(timeouts.is_retryable(&timeout) && !timeouts.is_retryable(&nonzero));
    let everything = RetryPolicy::new(2).retry_if(|_| true);
    assert!(everything.is_retryable(&nonzero));
    assert!(!everything.is_retryable(&cancelled));
    let only_code_75 =
        RetryPolicy::new(2).retry_if(|e| matches!(e, Error::NonZeroExit { code: 75, .. }));
    assert!(!only_code_75.is_retryable(&nonzero));
}

#[test]
fn backoff_delays_grow_by_the_multiplier_up_to_the_cap() {
    let policy = RetryPolicy::new(10)
        .backoff(Duration::from_millis(10), 3.0)
        .max_backoff(Duration::from_millis(500));
    let ms: Vec<u128> = (1..=6)
        .map(|n| policy.backoff_delay(n).as_millis())
        .collect();
    assert_eq!(ms, [10, 30, 90, 270, 500, 500]);
}

#[tokio::test(start_paused = true)]
async fn attempts_are_spaced_by_the_growing_backoff() {
    // A missing program fails before anything spawns, so the only time that
    // passes is the backoff between the four attempts.
    let start = tokio::time::Instant::now();
    let err = Command::new("processkit-no-such-program")
        .retry(
            RetryPolicy::new(4)
                .backoff(Duration::from_millis(10), 3.0)
                .jitter(false)
                .retry_if(|e| matches!(e, Error::NotFound { .. })),
        )
        .run()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }));
    assert_eq!(start.elapsed(), Duration::from_millis(10 + 30 + 90));
}

#[tokio::test(start_paused = true)]
async fn a_bad_multiplier_is_a_typed_error() {
    let err = Command::new("processkit-no-such-program")
        .retry(RetryPolicy::new(3).backoff(Duration::from_millis(1), f64::NAN))
        .run()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidCommand { .. }), "{err:?}");
}

#[tokio::test]
async fn a_busy_executable_is_retried_until_it_can_run() {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("retry-txtbsy");
    let script = dir.join("tool.sh");
    let mut writer = std::fs::File::create(&script).unwrap();
    writer.write_all(b"#!/bin/sh\necho ok\n").unwrap();
    writer.flush().unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    // While we hold it open for writing, exec fails with ETXTBSY.
    let err = Command::new(&script).run().await.unwrap_err();
    assert!(
        matches!(&err, Error::Spawn { source, .. } if source.kind() == io::ErrorKind::ExecutableFileBusy),
        "{err:?}"
    );
    assert!(RetryPolicy::default().is_retryable(&err));
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(writer);
    });
    let out = Command::new(&script)
        .retry(RetryPolicy::new(200).backoff(Duration::from_millis(20), 1.0))
        .run()
        .await
        .unwrap();
    assert_eq!(out, "ok");
    release.await.unwrap();
}

#[cfg(feature = "cancellation")]
#[tokio::test(start_paused = true)]
async fn cancelling_during_backoff_ends_the_retries() {
    let cancel = processkit::CancellationToken::new();
    let canceller = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            cancel.cancel();
        })
    };
    let start = tokio::time::Instant::now();
    let err = Command::new("processkit-no-such-program")
        .cancel_on(cancel)
        .retry(
            RetryPolicy::new(100)
                .backoff(Duration::from_secs(3600), 1.0)
                .retry_if(|_| true),
        )
        .run()
        .await
        .unwrap_err();
    canceller.await.unwrap();
    assert!(matches!(err, Error::Cancelled { .. }), "{err:?}");
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn any_runner_honours_the_policy_through_its_verbs() {
    use processkit::{Match, ProcessRunnerExt, Reply, ScriptedRunner};
    let flaky = || {
        ScriptedRunner::new().on_sequence(
            Match::program("flaky"),
            [
                Reply::failure(1, "busy"),
                Reply::failure(1, "busy"),
                Reply::success("ok\n"),
            ],
        )
    };
    let policy = RetryPolicy::new(5)
        .backoff(Duration::from_secs(1), 2.0)
        .jitter(false);
    // Without the opt-in a failed exit is final.
    let runner = flaky();
    let once = Command::new("flaky").retry(policy.clone());
    assert!(matches!(
        runner.run(&once).await,
        Err(Error::NonZeroExit { .. })
    ));
    assert_eq!(runner.calls(), 1);
    // With it, the third scripted reply succeeds after 1 s + 2 s of backoff.
    let runner = flaky();
    let retried = Command::new("flaky").retry(policy.retry_on_failed_exit());
    let start = tokio::time::Instant::now();
    assert_eq!(runner.run(&retried).await.unwrap(), "ok");
    assert_eq!(runner.calls(), 3);
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}
