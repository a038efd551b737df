//! A tour of processkit: start a small process tree, show which kernel
//! mechanism contains it, use a few verbs, then drop the tree and prove, pid by
//! pid, that every descendant is gone.
//!
//! Run it with `cargo run --example tour`.

use std::time::{Duration, Instant};

use processkit::{Command, ProcessGroup, Stdin};

#[tokio::main]
async fn main() -> processkit::Result<()> {
    // Verbs: each run gets its own container and is torn down before returning.
    let kernel = Command::new("uname").arg("-sr").run().await?;
    println!("kernel:        {kernel}");
    let failed = Command::new("sh")
        .args(["-c", "echo oops >&2; exit 3"])
        .output_string()
        .await?;
    println!(
        "exit as data:  code {:?}, stderr {:?}",
        failed.code(),
        failed.stderr().trim()
    );
    let sorted = Command::new("sort")
        .stdin(Stdin::from_string("pear\napple\nfig\n"))
        .run()
        .await?;
    println!("sorted stdin:  {}", sorted.replace('\n', " "));
    let slow = Command::new("sleep")
        .arg("30")
        .timeout(Duration::from_millis(200));
    println!(
        "timeout:       timed_out = {}",
        slow.output_string().await?.timed_out()
    );

    // A group holding a three-level tree: a shell, its child shell, and sleeps
    // under both. Every process appends its pid to a file ($0 in the script).
    let group = ProcessGroup::new()?;
    println!(
        "mechanism:     {} (whole tree contained: {})",
        group.mechanism(),
        group.mechanism().contains_whole_tree()
    );
    let pidfile = std::env::temp_dir().join(format!("processkit-tour-{}", std::process::id()));
    let script = r#"sh -c 'echo $$ >> "$0"; sleep 300 & echo $! >> "$0"; wait' "$0" &
                    sleep 300 & echo $! >> "$0"; wait"#;
    let tree = group
        .start(&Command::new("sh").args(["-c", script]).arg(&pidfile))
        .await?;
    let mut pids = vec![tree.id().expect("just started")];
    let deadline = Instant::now() + Duration::from_secs(5);
    while read_pids(&pidfile).len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    pids.extend(read_pids(&pidfile));
    let _ = std::fs::remove_file(&pidfile);
    println!("tree pids:     {pids:?}");
    assert!(
        pids.iter().all(|&p| alive(p)),
        "every process of the tree is running"
    );

    drop(tree);
    drop(group); // kills the whole tree
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let survivors: Vec<u32> = pids.iter().copied().filter(|&p| alive(p)).collect();
    if survivors.is_empty() {
        println!("after drop:    all {} processes are gone", pids.len());
        Ok(())
    } else {
        eprintln!("after drop:    survivors {survivors:?}");
        std::process::exit(1);
    }
}

fn read_pids(file: &std::path::Path) -> Vec<u32> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Whether `pid` is a live process (not a zombie), read from /proc or `ps`.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) if cfg!(target_os = "linux") => false,
        Err(_) => std::process::Command::new("kill")
            .args(["-0", &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success()),
    }
}
