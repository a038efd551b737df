//! The spec's "Cancelling a run" example, verbatim in shape, plus a runnable
//! variant with a real long-running child.
#![cfg(all(feature = "cancellation", unix))]

use processkit::{CancellationToken, Command};

/// The spec example as written (`long-job` stands for any program).
async fn spec_cancelling_a_run() -> processkit::Result<()> {
    let token = CancellationToken::new();
    let job = tokio::spawn({
        let token = token.child_token();
        async move { Command::new("long-job").cancel_on(token).run().await }
    });
    // elsewhere — a shutdown signal, a sibling failure, a UI button:
    token.cancel();
    assert!(matches!(
        job.await.unwrap(),
        Err(processkit::Error::Cancelled { .. })
    ));
    Ok(())
}

#[tokio::test]
async fn the_spec_example_runs_as_written() {
    // On the current-thread runtime the token is cancelled before the task
    // first runs, so the missing `long-job` is never even looked up.
    spec_cancelling_a_run().await.unwrap();
}

#[tokio::test]
async fn the_spec_example_with_a_real_long_job() {
    let token = CancellationToken::new();
    let job = tokio::spawn({
        let token = token.child_token();
        async move {
            Command::new("sleep")
                .arg("1000")
                .cancel_on(token)
                .run()
                .await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    token.cancel();
    assert!(matches!(
        job.await.unwrap(),
        Err(processkit::Error::Cancelled { .. })
    ));
}
