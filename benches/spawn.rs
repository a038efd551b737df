//! Spawn + wait of a tiny static child: processkit (own cgroup, the
//! subreaper and the process-group fallback) against `tokio::process` and std's posix_spawn,
//! sequential and 64 concurrent tasks (on a current-thread and on the
//! multi-thread runtime), then again with the parent at 1 GiB RSS.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use processkit::{Command, JobRunner, Mechanism};
use support::{Contest, fmt, size};

const NAMES: [&str; 5] = [
    "tokio::process status",
    "processkit exit_code (cgroup v2)",
    "processkit start+wait (process group)",
    "processkit start+wait (subreaper)",
    "std::process status (posix_spawn)",
];

async fn once(which: usize, tiny: &Path) {
    match which {
        0 => {
            let status = tokio::process::Command::new(tiny).status().await.unwrap();
            assert!(status.success());
        }
        1 => assert_eq!(Command::new(tiny).exit_code().await.unwrap(), 0),
        2 | 3 => {
            let mechanism = [Mechanism::ProcessGroup, Mechanism::Subreaper][which - 2];
            let runner = JobRunner::with_mechanism(mechanism);
            let mut run = runner.start(&Command::new(tiny)).await.unwrap();
            assert_eq!(run.wait().await.unwrap(), Some(0));
        }
        _ => {
            let status = std::process::Command::new(tiny).status().unwrap();
            assert!(status.success());
        }
    }
}

async fn sequential(title: &str, tiny: &Path, rounds: usize) -> Vec<Duration> {
    let mut contest = Contest::new(title, &NAMES);
    for which in 0..NAMES.len() {
        once(which, tiny).await; // warm-up
    }
    for round in 0..rounds {
        for which in contest.order(round) {
            let begun = Instant::now();
            once(which, tiny).await;
            contest.record(which, begun.elapsed());
        }
    }
    contest.report(0, None);
    contest.medians()
}

async fn concurrent(title: &str, tiny: &Path, tasks: usize, rounds: usize) -> Vec<Duration> {
    let mut contest = Contest::new(title, &NAMES[..4]);
    for round in 0..rounds {
        for which in contest.order(round) {
            let begun = Instant::now();
            let handles: Vec<_> = (0..tasks)
                .map(|_| {
                    let tiny = tiny.to_owned();
                    tokio::spawn(async move { once(which, &tiny).await })
                })
                .collect();
            for h in handles {
                h.await.unwrap();
            }
            contest.record(which, begun.elapsed());
        }
    }
    contest.report(0, None);
    contest.medians()
}

fn main() {
    support::header("spawn");
    let tiny = support::tiny_child();
    let rounds = size(300, 20);
    let big_rounds = size(60, 10);
    let tasks = 64;
    let big = size(1 << 30, 128 << 20);
    // The 64-way case again on a current-thread runtime: every spawn and
    // every wake-up shares one thread, so nothing may block it.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("current-thread runtime")
        .block_on(concurrent(
            &format!("{tasks} concurrent spawn+wait, current-thread runtime, small parent"),
            &tiny,
            tasks,
            size(30, 5),
        ));
    let rt = support::runtime();
    rt.block_on(async {
        println!("parent RSS {} MiB", support::rss_mib());
        let small = sequential("spawn+wait, sequential, small parent", &tiny, rounds).await;
        concurrent(
            &format!("{tasks} concurrent spawn+wait (time for the batch), small parent"),
            &tiny,
            tasks,
            size(30, 5),
        )
        .await;
        let held = support::hold_memory(big);
        println!("\nparent RSS {} MiB", support::rss_mib());
        let large = sequential(
            &format!("spawn+wait, sequential, parent holding {} MiB", big >> 20),
            &tiny,
            big_rounds,
        )
        .await;
        concurrent(
            &format!(
                "{tasks} concurrent spawn+wait, parent holding {} MiB",
                big >> 20
            ),
            &tiny,
            tasks,
            size(10, 3),
        )
        .await;
        drop(held);
        println!("\n## large-RSS spawn / small-RSS spawn (same contender)");
        for (i, name) in NAMES.iter().enumerate() {
            println!(
                "| {:<38} | {:>10} -> {:>10} | {:6.2}x |",
                name,
                fmt(small[i]),
                fmt(large[i]),
                large[i].as_secs_f64() / small[i].as_secs_f64()
            );
        }
    });
}
