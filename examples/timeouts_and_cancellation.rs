//! Timeouts, cancellation and retries: a captured deadline, a polite
//! `timeout_grace`, a token that kills a run from elsewhere, and a retry
//! policy that outlasts a flaky command. Needs the `cancellation` feature.
//!
//! Run it with `cargo run --example timeouts_and_cancellation --features cancellation`.

use std::time::Duration;

use processkit::{CancellationToken, Command, Error, RetryPolicy};

#[tokio::main]
async fn main() -> processkit::Result<()> {
    // A timeout is data in the result.
    let result = Command::new("sh")
        .args(["-c", "echo started; sleep 30"])
        .timeout(Duration::from_millis(300))
        .output_string()
        .await?;
    println!(
        "timeout:       timed_out {}, code {:?}, partial stdout {:?}",
        result.timed_out(),
        result.code(),
        result.stdout().trim()
    );

    // With a grace period the tree gets SIGTERM first and can clean up.
    let polite = Command::new("sh")
        .args([
            "-c",
            "trap 'echo cleaning up; exit 0' TERM; sleep 30 & wait",
        ])
        .timeout(Duration::from_millis(300))
        .timeout_grace(Duration::from_secs(2))
        .output_string()
        .await?;
    println!("timeout_grace: the child said {:?}", polite.stdout().trim());

    // Cancellation is always an error.
    let shutdown = CancellationToken::new();
    let cmd = Command::new("sleep")
        .arg("30")
        .cancel_on(shutdown.child_token());
    let job = tokio::spawn(async move { cmd.run().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    shutdown.cancel();
    match job.await.expect("task ran") {
        Err(Error::Cancelled { program }) => println!("cancel_on:     {program} was cancelled"),
        other => panic!("expected Cancelled, got {other:?}"),
    }

    // A token cancelled before the start spawns nothing at all.
    let early = Command::new("no-such-program")
        .cancel_on(shutdown.clone())
        .run()
        .await;
    println!(
        "pre-cancelled: {:?} (Cancelled, not NotFound)",
        early.err().map(|e| e.to_string())
    );

    // Retry: this command fails twice, then succeeds (it counts in a file).
    let counter = std::env::temp_dir().join(format!("processkit-retry-{}", std::process::id()));
    let flaky = Command::new("sh")
        .args([
            "-c",
            "n=$(cat \"$0\" 2>/dev/null || echo 0); n=$((n+1)); echo $n > \"$0\"; \
             [ $n -ge 3 ] && echo \"ok on attempt $n\" || exit 1",
        ])
        .arg(&counter)
        .retry(
            RetryPolicy::new(5)
                .backoff(Duration::from_millis(50), 2.0)
                .retry_on_failed_exit(),
        );
    let answer = flaky.run().await;
    let _ = std::fs::remove_file(&counter);
    println!("retry:         {}", answer?);
    Ok(())
}
