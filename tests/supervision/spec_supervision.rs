//! The spec's "Supervising a long-lived child" example, verbatim in shape,
//! plus a runnable variant with a substitute program.
#![cfg(unix)]

use crate::common;

use common::TempDir;
use processkit::{Command, RestartPolicy, StopReason, Supervisor};
use std::time::Duration;

/// The spec example as written (`my-server` stands for a real server).
#[allow(dead_code)]
async fn spec_supervising_a_long_lived_child() -> processkit::Result<()> {
    let outcome = Supervisor::new(Command::new("my-server").args(["--port", "8080"]))
        .restart(RestartPolicy::OnCrash) // Always | OnCrash | Never
        .max_restarts(5)
        .backoff(Duration::from_millis(200), 2.0) // base, multiplier (cap: .max_backoff)
        .storm_pause(Duration::from_secs(15)) // crash-loop guard (off by default)
        .stop_when(|res| res.code() == Some(0)) // a clean exit ends supervision
        .run()
        .await?;
    println!(
        "ended after {} restarts: {:?}",
        outcome.restarts, outcome.stopped
    );
    Ok(())
}

#[tokio::test]
async fn the_spec_example_with_a_server_that_crashes_twice() {
    let dir = TempDir::new("spec-sv");
    let runs = dir.join("runs");
    // Crashes on its first two runs, then exits cleanly.
    let server = format!(
        "echo run >> {0}; [ $(wc -l < {0}) -ge 3 ] || exit 1",
        runs.display()
    );
    let outcome = Supervisor::new(Command::new("sh").args(["-c", &server]))
        .restart(RestartPolicy::OnCrash)
        .max_restarts(5)
        .backoff(Duration::from_millis(20), 2.0)
        .storm_pause(Duration::from_secs(15))
        .stop_when(|res| res.code() == Some(0))
        .run()
        .await
        .unwrap();
    println!(
        "ended after {} restarts: {:?}",
        outcome.restarts, outcome.stopped
    );
    assert_eq!(outcome.restarts, 2);
    assert_eq!(outcome.stopped, StopReason::StopCondition);
    assert_eq!(outcome.result.code(), Some(0));
    assert_eq!(
        outcome.storms, 0,
        "two crashes are below the default threshold"
    );
}
