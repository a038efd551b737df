//! Process groups: a shared kill-on-drop container, whole-tree signals,
//! suspend/resume, members, stats and a graceful shutdown.
//!
//! Run it with `cargo run --example process_groups`.

use std::time::Duration;

use processkit::{Command, ProcessGroup, ProcessGroupOptions, Signal, StreamExt};

#[tokio::main]
async fn main() -> processkit::Result<()> {
    let group = ProcessGroup::with_options(
        ProcessGroupOptions::default().shutdown_grace(Duration::from_secs(2)),
    )?;
    println!(
        "mechanism:   {} (contains setsid descendants: {})",
        group.mechanism(),
        group.mechanism().contains_whole_tree()
    );

    // Two children; the first starts a grandchild of its own.
    let mut a = group
        .start(&Command::new("sh").args(["-c", "trap '' HUP; sleep 30 & wait"]))
        .await?;
    let mut b = group
        .start(&Command::new("sh").args(["-c", "trap '' HUP; exec sleep 30"]))
        .await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    println!("members:     {:?}", group.members()?);

    let stats = group.stats()?;
    println!(
        "stats:       {} live processes, cpu {:?}, rss {:?}",
        stats.active_process_count, stats.cpu_time, stats.memory_bytes
    );

    group.suspend()?;
    println!("suspend:     the whole tree is frozen");
    group.resume()?;
    println!("resume:      and running again");

    // Every process ignores SIGHUP (the shells set that up), so the tree
    // survives it; an unprepared tree would have ended.
    group.signal(Signal::Hup)?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    println!(
        "signal:      SIGHUP sent; still {} members",
        group.members()?.len()
    );

    let mut samples = group.sample_stats(Duration::from_millis(100));
    for _ in 0..3 {
        if let Some(s) = samples.next().await {
            println!("sample:      {} processes", s.active_process_count);
        }
    }
    drop(samples);

    group.shutdown().await?;
    // Reap the two direct children so no zombie is left to list.
    let codes = (a.wait().await?, b.wait().await?);
    println!(
        "shutdown:    SIGTERM, then SIGKILL; exit codes {codes:?}, members now {:?}",
        group.members()?
    );
    Ok(())
}
