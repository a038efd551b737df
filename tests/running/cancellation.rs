//! Cancellation through `Command::cancel_on`: every consuming path reports
//! `Error::Cancelled`, the run's tree dies (and only its tree in a shared
//! group), a pre-cancelled token spawns nothing, and cancel beats timeout.
#![cfg(all(feature = "cancellation", target_os = "linux"))]

use crate::common;

use std::time::Duration;

use common::*;
use processkit::{
    CancellationToken, Command, Error, Mechanism, ProcessGroup, ProcessGroupOptions, RetryPolicy,
    StreamExt,
};

fn tree(token: &str) -> Command {
    Command::new("sh").args(["-c", &tree_script(token)])
}

#[derive(Debug, Clone, Copy)]
enum Verb {
    Run,
    OutputString,
    OutputBytes,
    ExitCode,
    Probe,
    FirstLine,
    StartWait,
    Streamed,
}

async fn consume(verb: Verb, cmd: Command) -> processkit::Result<()> {
    match verb {
        Verb::Run => cmd.run().await.map(drop),
        Verb::OutputString => cmd.output_string().await.map(drop),
        Verb::OutputBytes => cmd.output_bytes().await.map(drop),
        Verb::ExitCode => cmd.exit_code().await.map(drop),
        Verb::Probe => cmd.probe().await.map(drop),
        Verb::FirstLine => cmd.first_line(|_| false).await.map(drop),
        Verb::StartWait => cmd.start().await?.wait().await.map(drop),
        Verb::Streamed => {
            let mut run = cmd.start().await?;
            let mut lines = run.stdout_lines();
            // The stream ends when the cancel kills the tree and the pipe closes.
            while lines.next().await.is_some() {}
            run.finish_streamed().await.map(drop)
        }
    }
}

#[tokio::test]
async fn every_verb_reports_cancelled_and_the_tree_dies() {
    for verb in [
        Verb::Run,
        Verb::OutputString,
        Verb::OutputBytes,
        Verb::ExitCode,
        Verb::Probe,
        Verb::FirstLine,
        Verb::StartWait,
        Verb::Streamed,
    ] {
        let token = token("cancel-verb");
        let _reaper = Cleanup::token(&token);
        let cancel = CancellationToken::new();
        let job = tokio::spawn(consume(verb, tree(&token).cancel_on(cancel.child_token())));
        wait_for_count(&token, 2).await;
        cancel.cancel();
        let outcome = job.await.unwrap();
        assert!(
            matches!(outcome, Err(Error::Cancelled { ref program }) if program == "sh"),
            "{verb:?}: {outcome:?}"
        );
        assert!(
            wait_gone(&token).await,
            "{verb:?} left {:?}",
            pids_with_token(&token)
        );
    }
}

#[tokio::test]
async fn a_pre_cancelled_token_spawns_nothing() {
    let dir = TempDir::new("cancel-pre");
    let marker = dir.join("marker");
    let cancel = CancellationToken::new();
    cancel.cancel();
    let cmd = Command::new("sh")
        .args(["-c", &format!("touch {}", marker.display())])
        .cancel_on(cancel.clone());
    let group = ProcessGroup::new().unwrap();
    let retrying = cmd.clone().retry(RetryPolicy::new(5).retry_if(|_| true));
    let outcomes = [
        cmd.run().await.map(drop),
        cmd.output_bytes().await.map(drop),
        cmd.start().await.map(drop),
        group.start(&cmd).await.map(drop),
        retrying.run().await.map(drop),
        // Cancellation is decided before the program is even looked up.
        Command::new("processkit-no-such-program")
            .cancel_on(cancel.clone())
            .run()
            .await
            .map(drop),
    ];
    for outcome in outcomes {
        assert!(
            matches!(outcome, Err(Error::Cancelled { .. })),
            "{outcome:?}"
        );
    }
    // Give anything that did start time to create the marker.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!marker.exists(), "a cancelled command ran");
    // The same command with a live token does run: the marker test can fail.
    Command::new("sh")
        .args(["-c", &format!("touch {}", marker.display())])
        .cancel_on(CancellationToken::new())
        .run()
        .await
        .unwrap();
    assert!(marker.exists());
}

#[tokio::test]
async fn a_timeout_alone_is_captured_in_the_result() {
    let token = token("cancel-timeout");
    let _reaper = Cleanup::token(&token);
    let result = tree(&token)
        .cancel_on(CancellationToken::new())
        .timeout(Duration::from_millis(200))
        .output_string()
        .await
        .unwrap();
    assert!(result.timed_out());
    assert_eq!(result.code(), None);
    assert!(wait_gone(&token).await);
}

#[tokio::test]
async fn cancel_during_the_timeout_grace_wins_and_kills_at_once() {
    let token = token("cancel-grace");
    let _reaper = Cleanup::token(&token);
    let cancel = CancellationToken::new();
    // The tree ignores SIGTERM, so only the grace's SIGKILL (in 1000 s) or the
    // cancel can end it.
    let script = format!("trap '' TERM; {}", tree_script(&token));
    let mut run = Command::new("sh")
        .args(["-c", &script])
        .timeout(Duration::from_millis(100))
        .timeout_grace(Duration::from_secs(1000))
        .cancel_on(cancel.clone())
        .start()
        .await
        .unwrap();
    wait_for_count(&token, 2).await;
    for _ in 0..1000 {
        if run.timed_out() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(run.timed_out(), "the deadline never fired");
    // SIGTERM was ignored: both token carriers are still there.
    wait_for_settled(&token, 2).await;
    cancel.cancel();
    let waited = tokio::time::timeout(Duration::from_secs(60), run.wait()).await;
    let outcome = waited.expect("cancel did not end the grace period");
    assert!(
        matches!(outcome, Err(Error::Cancelled { .. })),
        "{outcome:?}"
    );
    assert!(
        !run.timed_out(),
        "cancellation must override the timeout verdict"
    );
    assert!(wait_gone(&token).await);
}

async fn cancel_spares_siblings(group: ProcessGroup) {
    let sibling_token = token("cancel-sibling");
    let victim_token = token("cancel-victim");
    let _reaper = Cleanup::tokens(&[&sibling_token, &victim_token]);
    let cancel = CancellationToken::new();
    let mut sibling = group.start(&tree(&sibling_token)).await.unwrap();
    let mut victim = group
        .start(&tree(&victim_token).cancel_on(cancel.clone()))
        .await
        .unwrap();
    // Each tree settles at two token carriers: the script's shell and the
    // background shell (the sleeps carry no token).
    let siblings_before = wait_for_settled(&sibling_token, 2).await;
    wait_for_settled(&victim_token, 2).await;
    cancel.cancel();
    let outcome = victim.wait().await;
    assert!(
        matches!(outcome, Err(Error::Cancelled { .. })),
        "{outcome:?}"
    );
    assert!(wait_gone(&victim_token).await, "victim's tree survived");
    let siblings_after = pids_with_token(&sibling_token);
    for pid in &siblings_before {
        assert!(siblings_after.contains(pid), "sibling {pid} was hit");
    }
    assert!(sibling.id().is_some());
    drop(group);
    assert!(
        wait_gone(&sibling_token).await,
        "group drop left the sibling"
    );
    assert!(
        sibling.wait().await.unwrap().is_none(),
        "sibling should have been killed"
    );
}

#[tokio::test]
async fn cancel_on_a_shared_cgroup_group_spares_siblings() {
    cancel_spares_siblings(ProcessGroup::new().unwrap()).await;
}

#[tokio::test]
async fn cancel_on_a_shared_process_group_spares_siblings() {
    let options = ProcessGroupOptions::default().mechanism(Mechanism::ProcessGroup);
    cancel_spares_siblings(ProcessGroup::with_options(options).unwrap()).await;
}

#[tokio::test]
async fn cancelling_a_parent_token_cancels_a_child_token_run() {
    let token = token("cancel-parent");
    let _reaper = Cleanup::token(&token);
    let parent = CancellationToken::new();
    let job = tokio::spawn({
        let child = parent.child_token();
        let cmd = tree(&token).cancel_on(child);
        async move { cmd.run().await }
    });
    wait_for_count(&token, 2).await;
    parent.cancel();
    assert!(matches!(job.await.unwrap(), Err(Error::Cancelled { .. })));
    assert!(wait_gone(&token).await);
}

#[tokio::test]
async fn a_run_that_finishes_before_cancel_keeps_its_result() {
    let cancel = CancellationToken::new();
    let out = Command::new("echo")
        .arg("done")
        .cancel_on(cancel.clone())
        .run()
        .await
        .unwrap();
    cancel.cancel();
    assert_eq!(out, "done");
}
