//! Readiness probes: `wait_for_line`, `wait_for_port` and `wait_for`, each
//! on its success, deadline and can-no-longer-pass paths. A failed probe is
//! `Error::NotReady` and leaves the child running.
// These tests drive Unix programs (sh, sleep, seq, ...); tests/windows/
// covers the same ground with Windows programs.
#![cfg(unix)]

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use crate::probe_support::{PATIENT, SHORT, assert_survived, reason, start};
use common::{TempDir, free_port, sh};
use processkit::{Command, Error, NotReadyReason, StreamExt};

#[tokio::test]
async fn wait_for_line_returns_the_match_and_leaves_the_rest() {
    let (mut run, _guard) = start(sh(
        "echo booting; echo 'listening on 1234'; echo after; echo more",
    ))
    .await;
    let banner = run
        .wait_for_line(|l| l.contains("listening on"), PATIENT)
        .await
        .unwrap();
    assert_eq!(banner, "listening on 1234");
    let rest: Vec<String> = run.stdout_lines().collect().await;
    assert_eq!(rest, ["after", "more"]);
    assert_eq!(run.finish_streamed().await.unwrap().0, Some(0));
}

#[tokio::test]
async fn wait_for_line_deadline_is_not_ready_and_the_child_survives() {
    let (mut run, _guard) = start(sh("echo nope; exec sleep 30")).await;
    let err = run
        .wait_for_line(|l| l == "ready", SHORT)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotReady { waited, .. } if *waited >= SHORT),
        "{err:?}"
    );
    assert_eq!(reason(err), NotReadyReason::DeadlineExpired);
    assert_survived(&run);
    // The line read while probing was consumed; the handle still works.
    run.kill().unwrap();
    assert_eq!(run.finish_streamed().await.unwrap().0, None);
}

#[tokio::test]
async fn wait_for_line_fails_fast_when_the_child_exits() {
    let (mut run, _guard) = start(sh("echo nope; exit 3")).await;
    let err = run
        .wait_for_line(|l| l == "ready", PATIENT)
        .await
        .unwrap_err();
    assert_eq!(reason(err), NotReadyReason::StdoutClosed);
    assert_eq!(run.finish_streamed().await.unwrap().0, Some(3));
}

#[tokio::test]
async fn wait_for_line_fails_fast_when_stdout_closes_and_the_child_survives() {
    let (mut run, _guard) = start(sh("echo nope; exec >&-; exec sleep 30")).await;
    let err = run
        .wait_for_line(|l| l == "ready", PATIENT)
        .await
        .unwrap_err();
    assert_eq!(reason(err), NotReadyReason::StdoutClosed);
    assert_survived(&run);
}

/// A child that listens on `port` after a short delay (so the probe retries).
fn listener(port: u16) -> Command {
    let script = format!(
        "import socket, time\n\
         time.sleep(0.3)\n\
         s = socket.socket()\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('127.0.0.1', {port}))\n\
         s.listen()\n\
         print('listening', flush=True)\n\
         time.sleep(30)\n"
    );
    Command::new("python3").arg("-c").arg(script)
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[tokio::test]
async fn wait_for_port_passes_once_the_child_listens() {
    let port = free_port();
    let (mut run, _guard) = start(listener(port)).await;
    run.wait_for_port(local(port), PATIENT).await.unwrap();
    // The probe did not touch stdout: the banner is still there.
    let banner = run.stdout_lines().next().await;
    assert_eq!(banner.as_deref(), Some("listening"));
    assert_survived(&run);
}

#[tokio::test]
async fn wait_for_port_deadline_is_not_ready_and_the_child_survives() {
    let port = free_port();
    let (mut run, _guard) = start(Command::new("sleep").arg("30")).await;
    let err = run.wait_for_port(local(port), SHORT).await.unwrap_err();
    assert_eq!(reason(err), NotReadyReason::DeadlineExpired);
    assert_survived(&run);
}

#[tokio::test]
async fn wait_for_port_fails_fast_when_the_child_exits() {
    let port = free_port();
    let (mut run, _guard) = start(sh("exit 4")).await;
    let err = run.wait_for_port(local(port), PATIENT).await.unwrap_err();
    assert_eq!(reason(err), NotReadyReason::Exited(Some(4)));
}

#[tokio::test]
async fn wait_for_passes_when_the_check_does() {
    let scratch = TempDir::new("wait-for");
    let marker = scratch.file("ready");
    let (mut run, _guard) = start(sh(&format!("sleep 0.2; touch '{marker}'; exec sleep 30"))).await;
    let mut attempts = 0;
    run.wait_for(
        || {
            attempts += 1;
            let marker = marker.clone();
            async move { std::path::Path::new(&marker).exists() }
        },
        PATIENT,
    )
    .await
    .unwrap();
    assert!(attempts >= 1);
    assert_survived(&run);
}

#[tokio::test]
async fn wait_for_deadline_is_not_ready_even_during_a_slow_check() {
    let (mut run, _guard) = start(Command::new("sleep").arg("30")).await;
    let never = || async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        true
    };
    let err = run.wait_for(never, SHORT).await.unwrap_err();
    assert_eq!(reason(err), NotReadyReason::DeadlineExpired);
    assert_survived(&run);
}

#[tokio::test]
async fn wait_for_fails_fast_when_the_child_exits() {
    let (mut run, _guard) = start(sh("exit 5")).await;
    let err = run.wait_for(|| async { false }, PATIENT).await.unwrap_err();
    assert_eq!(reason(err), NotReadyReason::Exited(Some(5)));
    // The exit was recorded; finishing still reports it.
    assert_eq!(run.finish_streamed().await.unwrap().0, Some(5));
}

#[tokio::test]
async fn a_probe_on_a_timed_out_run_reports_no_exit_code() {
    let (mut run, _guard) = start(Command::new("sleep").arg("30").timeout(SHORT)).await;
    let err = run.wait_for(|| async { false }, PATIENT).await.unwrap_err();
    assert_eq!(reason(err), NotReadyReason::Exited(None));
    assert!(run.timed_out());
}

#[tokio::test]
async fn not_ready_is_distinct_from_timeout_in_messages() {
    let (mut run, _guard) = start(Command::new("sleep").arg("30")).await;
    let err = run.wait_for(|| async { false }, SHORT).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("sleep") && text.contains("not ready"),
        "{text}"
    );
}

#[tokio::test]
async fn a_check_that_passes_wins_even_after_the_child_exited() {
    // E.g. a launcher that started a daemon and exited: the service is up.
    let (mut run, _guard) = start(sh("exit 0")).await;
    assert_eq!(run.wait().await.unwrap(), Some(0));
    run.wait_for(|| async { true }, PATIENT).await.unwrap();
}
