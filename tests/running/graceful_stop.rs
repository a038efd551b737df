//! Graceful stops under every Linux mechanism: `RunningProcess::stop` with a
//! child that handles its stop signal, one that ignores it, a chosen
//! `stop_signal`, grandchildren, a shared group's sibling, a suspended run,
//! pipelines, `timeout_grace` and `cancel_grace` using the stop signal.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::time::{Duration, Instant};

use processkit::{Command, JobRunner, Mechanism, ProcessGroup, ProcessGroupOptions, Signal};

use crate::common::*;

/// Every Linux mechanism, by name (cgroup v2 only where this host can).
fn mechanisms() -> Vec<Mechanism> {
    let mut all = vec![Mechanism::Subreaper, Mechanism::ProcessGroup];
    if ProcessGroup::with_options(ProcessGroupOptions::default().mechanism(Mechanism::CgroupV2))
        .is_ok()
    {
        all.insert(0, Mechanism::CgroupV2);
    }
    all
}

fn group(mechanism: Mechanism) -> ProcessGroup {
    ProcessGroup::with_options(ProcessGroupOptions::default().mechanism(mechanism)).unwrap()
}

/// Starts `sleep 1000` in the background and waits until it has exec'd: a
/// signal that reaches the shell's fork before its exec runs the inherited
/// trap there and is lost, so the sleep would outlive a polite stop.
const BG_SLEEP: &str =
    "sleep 1000 & until [ \"$(cat /proc/$!/comm 2>/dev/null)\" = sleep ]; do :; done;";

/// A shell that notes `signal` (as its trap name) in `marker`, ends its
/// background sleep and exits 0; `: token` names the tree.
fn handles(signal: &str, marker: &Path, token: &str) -> Command {
    let script = format!(
        "trap 'echo {signal} > {m}; kill $! 2>/dev/null; exit 0' {signal}; \
         {BG_SLEEP} echo ready; wait; : {token}",
        m = marker.display()
    );
    sh_trapping(&script)
}

/// A shell and its sleep that both ignore SIGTERM.
fn ignores_term(token: &str) -> Command {
    sh(&format!(
        "trap '' TERM; sleep 1000 & echo ready; wait; : {token}"
    ))
}

async fn wait_ready(run: &mut processkit::RunningProcess) {
    let line = run
        .wait_for_line(|l| l == "ready", Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(line, "ready");
}

#[tokio::test]
async fn stop_returns_the_clean_exit_of_a_child_that_handles_the_signal() {
    for mechanism in mechanisms() {
        let token = token("stop-clean");
        let _cleanup = Cleanup::token(&token);
        let dir = TempDir::new("stop-clean");
        let marker = dir.join("got");
        let runner = JobRunner::with_mechanism(mechanism);
        let mut run = runner
            .start(&handles("TERM", &marker, &token))
            .await
            .unwrap();
        wait_ready(&mut run).await;
        let began = Instant::now();
        let status = run.stop(Duration::from_secs(60)).await.unwrap();
        eprintln!("{mechanism}: stopped in {:?}", began.elapsed());
        assert_eq!(status.code(), Some(0), "{mechanism}: {status}");
        assert!(!status.timed_out());
        assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), "TERM");
        assert!(
            wait_gone(&token).await,
            "{mechanism}: left {:?}",
            pids_with_token(&token)
        );
    }
}

#[tokio::test]
async fn a_child_that_ignores_the_signal_is_killed_after_the_grace() {
    for mechanism in mechanisms() {
        let token = token("stop-ignored");
        let _cleanup = Cleanup::token(&token);
        let runner = JobRunner::with_mechanism(mechanism);
        let mut run = runner.start(&ignores_term(&token)).await.unwrap();
        wait_ready(&mut run).await;
        let began = Instant::now();
        let status = run.stop(Duration::from_millis(300)).await.unwrap();
        assert_eq!(status.code(), None, "{mechanism}: {status}");
        assert_eq!(status.signal(), Some(9), "{mechanism}: {status}");
        // Generous: the kill follows the grace, not a test of speed.
        assert!(began.elapsed() < Duration::from_secs(30));
        assert!(
            wait_gone(&token).await,
            "{mechanism}: left {:?}",
            pids_with_token(&token)
        );
    }
}

#[tokio::test]
async fn stop_signal_chooses_what_is_sent() {
    for mechanism in mechanisms() {
        let token = token("stop-int");
        let _cleanup = Cleanup::token(&token);
        let dir = TempDir::new("stop-int");
        let marker = dir.join("got");
        let script = format!(
            "trap 'echo TERM > {m}; exit 1' TERM; \
             trap 'echo INT > {m}; kill $! 2>/dev/null; exit 0' INT; \
             {BG_SLEEP} echo ready; wait; : {token}",
            m = marker.display()
        );
        let cmd = sh_trapping(&script).stop_signal(Signal::Int);
        assert_eq!(cmd.get_stop_signal(), Signal::Int);
        let mut run = JobRunner::with_mechanism(mechanism)
            .start(&cmd)
            .await
            .unwrap();
        wait_ready(&mut run).await;
        let status = run.stop(Duration::from_secs(60)).await.unwrap();
        assert_eq!(status.code(), Some(0), "{mechanism}: {status}");
        assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), "INT");
    }
}

#[tokio::test]
async fn the_grandchild_gets_the_stop_signal_too() {
    for mechanism in mechanisms() {
        let token = token("stop-grandchild");
        let _cleanup = Cleanup::token(&token);
        let dir = TempDir::new("stop-grandchild");
        let marker = dir.join("grandchild");
        // The grandchild handles TERM by itself; its parent just waits.
        let up = dir.join("up");
        let inner = format!(
            "trap \"echo TERM > {m}; kill \\$! 2>/dev/null; exit 0\" TERM; {BG_SLEEP} echo up > {up}; wait; : {token}",
            m = marker.display(),
            up = up.display(),
        )
        .replace('\'', "'\\''");
        let script = format!("sh -c '{inner}' & echo ready; wait; : {token}");
        let mut run = JobRunner::with_mechanism(mechanism)
            .start(&sh(&script))
            .await
            .unwrap();
        wait_ready(&mut run).await;
        assert!(eventually_async(Duration::from_secs(20), || up.exists()).await);
        run.stop(Duration::from_secs(60)).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&marker)
                .map(|m| m.trim().to_owned())
                .ok(),
            Some("TERM".to_owned()),
            "{mechanism}: the grandchild was not asked to stop"
        );
        assert!(
            wait_gone(&token).await,
            "{mechanism}: left {:?}",
            pids_with_token(&token)
        );
    }
}

#[tokio::test]
async fn stopping_one_run_of_a_shared_group_spares_its_sibling() {
    for mechanism in mechanisms() {
        let sibling_token = token("stop-sibling");
        let token = token("stop-one");
        let _cleanup = Cleanup::tokens(&[&token, &sibling_token]);
        let dir = TempDir::new("stop-one");
        let group = group(mechanism);
        let mut sibling = group
            .start(&sh(&format!(
                "sh -c 'sleep 1000; : {sibling_token}' & echo ready; wait; : {sibling_token}"
            )))
            .await
            .unwrap();
        wait_ready(&mut sibling).await;
        let sibling_tree = wait_for_settled(&sibling_token, 2).await;
        let mut run = group
            .start(&handles("TERM", &dir.join("got"), &token))
            .await
            .unwrap();
        wait_ready(&mut run).await;
        let status = run.stop(Duration::from_secs(60)).await.unwrap();
        assert_eq!(status.code(), Some(0), "{mechanism}: {status}");
        assert!(wait_gone(&token).await);
        assert!(
            sibling_tree.iter().all(|&pid| is_alive(pid)),
            "{mechanism}: the sibling's tree was touched"
        );
        assert!(sibling.id().is_some());
        drop(group);
        assert!(wait_gone(&sibling_token).await);
    }
}

#[tokio::test]
async fn stop_after_the_exit_reports_it_and_kills_nothing() {
    for mechanism in mechanisms() {
        let mut run = JobRunner::with_mechanism(mechanism)
            .start(&sh("exit 7"))
            .await
            .unwrap();
        assert_eq!(run.wait().await.unwrap(), Some(7));
        let status = run.stop(Duration::from_secs(5)).await.unwrap();
        assert_eq!(status.code(), Some(7), "{mechanism}");
        // Twice is harmless.
        assert_eq!(run.stop(Duration::ZERO).await.unwrap().code(), Some(7));
    }
}

#[tokio::test]
async fn a_pipeline_stop_asks_every_stage() {
    for mechanism in mechanisms() {
        if mechanism != Mechanism::ProcessGroup && mechanism != Mechanism::CgroupV2 {
            // Pipelines pick the default mechanism; the loop covers it once.
            continue;
        }
        let token = token("stop-pipe");
        let _cleanup = Cleanup::token(&token);
        let dir = TempDir::new("stop-pipe");
        let first = dir.join("first");
        let last = dir.join("last");
        // The consumer may end first: a `tick` into its closed pipe must not
        // kill the producer by SIGPIPE before its INT trap has run.
        let producer = format!(
            "trap 'echo INT > {m}; exit 0' INT; trap '' PIPE; \
             while :; do echo tick; sleep 0.05; done; : {token}",
            m = first.display()
        );
        let consumer = format!(
            "trap 'echo TERM > {m}; exit 0' TERM; while read l; do echo \"$l\"; done; : {token}",
            m = last.display()
        );
        let mut run = sh_trapping(&producer)
            .stop_signal(Signal::Int)
            .pipe(sh_trapping(&consumer))
            .start()
            .await
            .unwrap();
        wait_ready_tick(&mut run).await;
        run.stop(Duration::from_secs(60)).await.unwrap();
        assert_eq!(std::fs::read_to_string(&first).unwrap().trim(), "INT");
        assert_eq!(std::fs::read_to_string(&last).unwrap().trim(), "TERM");
        assert!(
            wait_gone(&token).await,
            "left {:?}",
            pids_with_token(&token)
        );
    }
}

async fn wait_ready_tick(run: &mut processkit::RunningProcess) {
    run.wait_for_line(|l| l == "tick", Duration::from_secs(20))
        .await
        .unwrap();
}

#[cfg(feature = "process-control")]
#[tokio::test]
async fn a_run_suspended_with_its_group_is_thawed_to_stop_and_its_sibling_stays_suspended() {
    for mechanism in mechanisms() {
        let sibling_token = token("stop-frozen-sibling");
        let token = token("stop-frozen");
        let _cleanup = Cleanup::tokens(&[&token, &sibling_token]);
        let dir = TempDir::new("stop-frozen");
        let ticks = dir.join("ticks");
        let group = group(mechanism);
        let mut sibling = group
            .start(&sh(&format!(
                "echo ready; while :; do echo t >> {t}; sleep 0.02; done; : {sibling_token}",
                t = ticks.display()
            )))
            .await
            .unwrap();
        wait_ready(&mut sibling).await;
        assert!(eventually_async(Duration::from_secs(20), || ticks.exists()).await);
        let marker = dir.join("got");
        let mut run = group
            .start(&handles("TERM", &marker, &token))
            .await
            .unwrap();
        wait_ready(&mut run).await;
        group.suspend().unwrap();
        let began = Instant::now();
        let status = run.stop(Duration::from_secs(60)).await.unwrap();
        eprintln!("{mechanism}: stopped in {:?}", began.elapsed());
        assert_eq!(status.code(), Some(0), "{mechanism}: {status}");
        assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), "TERM");
        // The sibling made no progress while the run was stopped and after.
        let before = std::fs::read_to_string(&ticks).unwrap().len();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let after = std::fs::read_to_string(&ticks).unwrap().len();
        assert_eq!(before, after, "{mechanism}: the sibling was thawed too");
        group.resume().unwrap();
        assert!(
            eventually_async(Duration::from_secs(20), || {
                std::fs::read_to_string(&ticks).unwrap().len() > after
            })
            .await,
            "{mechanism}: the sibling did not resume"
        );
        drop(group);
        assert!(wait_gone(&sibling_token).await);
    }
}

#[tokio::test]
async fn timeout_grace_sends_the_stop_signal() {
    let dir = TempDir::new("timeout-int");
    let marker = dir.join("got");
    let token = token("timeout-int");
    let _cleanup = Cleanup::token(&token);
    let result = handles("INT", &marker, &token)
        .stop_signal(Signal::Int)
        .timeout(Duration::from_millis(300))
        .timeout_grace(Duration::from_secs(60))
        .output_string()
        .await
        .unwrap();
    assert!(result.timed_out());
    assert!(!result.idle_timed_out());
    assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), "INT");
}

#[cfg(feature = "cancellation")]
#[tokio::test]
async fn a_cancelled_run_with_a_cancel_grace_is_stopped_politely() {
    for mechanism in mechanisms() {
        let token = token("cancel-grace");
        let _cleanup = Cleanup::token(&token);
        let dir = TempDir::new("cancel-grace");
        let marker = dir.join("got");
        let cancel = processkit::CancellationToken::new();
        let cmd = handles("TERM", &marker, &token)
            .cancel_on(cancel.clone())
            .cancel_grace(Duration::from_secs(60));
        let mut run = JobRunner::with_mechanism(mechanism)
            .start(&cmd)
            .await
            .unwrap();
        wait_ready(&mut run).await;
        cancel.cancel();
        let err = run.wait().await.unwrap_err();
        assert!(
            matches!(err, processkit::Error::Cancelled { .. }),
            "{err:?}"
        );
        assert_eq!(
            std::fs::read_to_string(&marker)
                .map(|m| m.trim().to_owned())
                .ok(),
            Some("TERM".to_owned()),
            "{mechanism}: the cancelled run was not asked to stop"
        );
        drop(run);
        assert!(wait_gone(&token).await);
    }
}

#[cfg(feature = "cancellation")]
#[tokio::test]
async fn a_cancelled_run_without_a_cancel_grace_is_killed_at_once() {
    let dir = TempDir::new("cancel-kill");
    let marker = dir.join("got");
    let token = token("cancel-kill");
    let _cleanup = Cleanup::token(&token);
    let cancel = processkit::CancellationToken::new();
    let cmd = handles("TERM", &marker, &token).cancel_on(cancel.clone());
    let mut run = cmd.start().await.unwrap();
    wait_ready(&mut run).await;
    cancel.cancel();
    assert!(run.wait().await.is_err());
    assert!(!marker.exists(), "a plain cancel must not ask politely");
}
