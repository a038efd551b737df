//! Supervision: keep a crashing child alive with bounded, backed-off restarts,
//! then stop when it finally exits cleanly.
//!
//! Run it with `cargo run --example supervision`.

use std::time::Duration;

use processkit::{Command, ProcessGroup, RestartPolicy, Supervisor};

#[tokio::main]
async fn main() -> processkit::Result<()> {
    // The child crashes on its first three runs and exits cleanly on the
    // fourth; it keeps count in a file.
    let counter = std::env::temp_dir().join(format!("processkit-sup-{}", std::process::id()));
    let worker = Command::new("sh")
        .args([
            "-c",
            "n=$(cat \"$0\" 2>/dev/null || echo 0); n=$((n+1)); echo $n > \"$0\"; \
             echo \"run $n\" >&2; [ $n -ge 4 ] || exit 1",
        ])
        .arg(&counter);

    let group = ProcessGroup::new()?;
    let outcome = Supervisor::new(worker)
        .with_runner(&group) // every incarnation lives in one group
        .restart(RestartPolicy::OnCrash)
        .max_restarts(10)
        .backoff(Duration::from_millis(50), 2.0)
        .max_backoff(Duration::from_millis(500))
        .run()
        .await;
    let _ = std::fs::remove_file(&counter);
    let outcome = outcome?;
    println!(
        "OnCrash:   stopped ({:?}) after {} restarts; last exit {:?}",
        outcome.stopped,
        outcome.restarts,
        outcome.result.code()
    );

    // max_restarts bounds a child that never gets better.
    let outcome = Supervisor::new(Command::new("false"))
        .restart(RestartPolicy::Always)
        .max_restarts(3)
        .backoff(Duration::from_millis(20), 1.5)
        .run()
        .await?;
    println!(
        "Always:    stopped ({:?}) after {} restarts",
        outcome.stopped, outcome.restarts
    );

    // stop_when ends supervision on a result you choose.
    let outcome = Supervisor::new(Command::new("sh").args(["-c", "exit 2"]))
        .restart(RestartPolicy::Always)
        .backoff(Duration::from_millis(20), 2.0)
        .stop_when(|r| r.code() == Some(2))
        .run()
        .await?;
    println!(
        "stop_when: stopped ({:?}) after {} restarts",
        outcome.stopped, outcome.restarts
    );
    group.shutdown().await
}
