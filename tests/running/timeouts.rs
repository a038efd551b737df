//! The deadline arbiter's timeout tiers: a plain timeout kills at once, a
//! graceful one sends SIGTERM first and SIGKILL only after the grace.
#![cfg(target_os = "linux")]

use crate::common;

use std::time::Duration;

use common::*;
use processkit::{Command, Error};

#[tokio::test]
async fn a_graceful_timeout_lets_the_tree_handle_sigterm() {
    let token = token("grace-term");
    let _reaper = Cleanup::token(&token);
    let dir = TempDir::new("grace-term");
    let marker = dir.join("terminated");
    // The shell notes SIGTERM in a file and exits; sleep runs in the
    // background so the trap fires as soon as the signal arrives.
    let script = format!(
        "trap 'echo term > {}; exit 0' TERM; sleep 1000 & wait; : {token}",
        marker.display()
    );
    let result = Command::new("sh")
        .args(["-c", &script])
        .timeout(Duration::from_millis(200))
        .timeout_grace(Duration::from_secs(30))
        .output_string()
        .await
        .unwrap();
    assert!(result.timed_out());
    assert_eq!(result.code(), None, "a timed-out run reports no exit code");
    assert!(marker.exists(), "SIGTERM never reached the shell");
    assert!(wait_gone(&token).await);
}

#[tokio::test]
async fn a_tree_that_ignores_sigterm_is_killed_after_the_grace() {
    let token = token("grace-kill");
    let _reaper = Cleanup::token(&token);
    let script = format!("trap '' TERM; {}", tree_script(&token));
    let err = Command::new("sh")
        .args(["-c", &script])
        .timeout(Duration::from_millis(100))
        .timeout_grace(Duration::from_millis(300))
        .run()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(
        wait_gone(&token).await,
        "left {:?}",
        pids_with_token(&token)
    );
}

#[tokio::test]
async fn a_plain_timeout_kills_the_whole_tree_at_once() {
    let token = token("timeout-kill");
    let _reaper = Cleanup::token(&token);
    let mut run = Command::new("sh")
        .args(["-c", &tree_script(&token)])
        .timeout(Duration::from_millis(150))
        .start()
        .await
        .unwrap();
    wait_for_count(&token, 2).await;
    assert_eq!(run.wait().await.unwrap(), None);
    assert!(run.timed_out());
    assert!(
        wait_gone(&token).await,
        "left {:?}",
        pids_with_token(&token)
    );
}
