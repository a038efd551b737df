//! `Command::idle_timeout`: a child whose output falls silent is stopped and
//! reported as an idle timeout (not a wall-clock one); a child that keeps
//! writing a heartbeat is left alone; refusals where nothing can be measured.
#![cfg(unix)]

use std::time::Duration;

use processkit::{Command, Error, Stdio};

use crate::common::*;

/// Prints `beats` heartbeats 100 ms apart, then falls silent.
fn heartbeat_then_silence(beats: u32, token: &str) -> Command {
    sh(&format!(
        "i=0; while [ $i -lt {beats} ]; do echo beat $i; i=$((i+1)); sleep 0.1; done; \
         sleep 1000; : {token}"
    ))
}

#[tokio::test]
async fn a_silent_child_is_stopped_and_the_result_says_idle() {
    let token = token("idle-silent");
    let _cleanup = Cleanup::token(&token);
    let result = heartbeat_then_silence(5, &token)
        .idle_timeout(Duration::from_millis(700))
        .output_string()
        .await
        .unwrap();
    assert!(result.timed_out());
    assert!(result.idle_timed_out());
    assert_eq!(result.code(), None);
    // Every heartbeat arrived: the heartbeats kept it alive.
    assert_eq!(result.stdout().lines().count(), 5, "{:?}", result.stdout());
    assert!(wait_gone(&token).await);
}

#[tokio::test]
async fn a_heartbeat_keeps_a_run_alive_longer_than_its_idle_timeout() {
    // 20 beats 100 ms apart: 2 s in all, four times the idle timeout.
    let result = sh("i=0; while [ $i -lt 20 ]; do echo beat; i=$((i+1)); sleep 0.1; done")
        .idle_timeout(Duration::from_millis(500))
        .output_string()
        .await
        .unwrap();
    assert!(!result.timed_out(), "{result:?}");
    assert_eq!(result.code(), Some(0));
    assert_eq!(result.stdout().lines().count(), 20);
}

#[tokio::test]
async fn stderr_counts_as_output_too() {
    let result = sh("i=0; while [ $i -lt 15 ]; do echo beat >&2; i=$((i+1)); sleep 0.1; done")
        .idle_timeout(Duration::from_millis(500))
        .output_string()
        .await
        .unwrap();
    assert!(!result.timed_out(), "{result:?}");
}

#[tokio::test]
async fn verbs_that_require_success_report_an_idle_timeout_error() {
    let token = token("idle-error");
    let _cleanup = Cleanup::token(&token);
    let err = sh(&format!("sleep 1000; : {token}"))
        .idle_timeout(Duration::from_millis(200))
        .run()
        .await
        .unwrap_err();
    match err {
        Error::IdleTimeout { idle, .. } => assert_eq!(idle, Duration::from_millis(200)),
        other => panic!("expected an idle timeout, got {other:?}"),
    }
    assert!(wait_gone(&token).await);
}

#[tokio::test]
async fn the_wall_clock_timeout_is_told_apart() {
    let result = sh("while :; do echo beat; sleep 0.05; done")
        .idle_timeout(Duration::from_secs(30))
        .timeout(Duration::from_millis(400))
        .output_string()
        .await
        .unwrap();
    assert!(result.timed_out());
    assert!(!result.idle_timed_out());
}

#[tokio::test]
async fn an_idle_timeout_with_a_grace_asks_politely_first() {
    let dir = TempDir::new("idle-grace");
    let marker = dir.join("got");
    let script = format!(
        "trap 'echo TERM > {m}; exit 0' TERM; echo hi; sleep 1000 & wait",
        m = marker.display()
    );
    let status = sh(&script)
        .idle_timeout(Duration::from_millis(300))
        .timeout_grace(Duration::from_secs(60))
        .start()
        .await
        .unwrap()
        .wait_status()
        .await
        .unwrap();
    assert!(status.timed_out() && status.idle_timed_out(), "{status}");
    assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), "TERM");
}

#[tokio::test]
async fn an_idle_timeout_that_cannot_be_measured_is_refused() {
    let err = sh("true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .idle_timeout(Duration::from_secs(1))
        .run()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidCommand { .. }), "{err:?}");
    let err = sh("true")
        .idle_timeout(Duration::ZERO)
        .run()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidCommand { .. }), "{err:?}");
    let err = sh("echo a")
        .idle_timeout(Duration::from_secs(1))
        .pipe(sh("cat"))
        .run()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidCommand { .. }), "{err:?}");
}

#[tokio::test]
async fn a_tee_counts_as_read_output() {
    let result = sh("i=0; while [ $i -lt 10 ]; do echo beat; i=$((i+1)); sleep 0.1; done")
        .stdout(Stdio::capture().tee_inherit())
        .stderr(Stdio::null())
        .idle_timeout(Duration::from_millis(600))
        .output_string()
        .await
        .unwrap();
    assert!(!result.timed_out(), "{result:?}");
}

#[tokio::test(start_paused = true)]
async fn a_scripted_run_honours_the_idle_timeout_on_the_paused_clock() {
    use processkit::{ProcessRunnerExt, Reply, ScriptedRunner};
    let runner = ScriptedRunner::new().on(
        processkit::Match::program("svc"),
        Reply::success("")
            .line_after(Duration::from_secs(5), "one")
            .line_after(Duration::from_secs(5), "two")
            .line_after(Duration::from_secs(60), "late"),
    );
    let result = runner
        .output_string(&Command::new("svc").idle_timeout(Duration::from_secs(30)))
        .await
        .unwrap();
    assert!(result.idle_timed_out());
    assert_eq!(result.stdout(), "one\ntwo\n");
}
