//! Acceptance: the README's group-control examples ("Capping a group's
//! resources", "Signalling and pausing the whole tree", "Inspecting the
//! tree", "Sampling stats over time") in their published shape. The `spec_*`
//! functions must compile as written; the tests run the same calls with
//! programs that exist here (`sh`, `sleep`) and check what they do.
#![cfg(all(target_os = "linux", feature = "process-control", feature = "stats"))]
#![allow(dead_code)]

use crate::common;
use crate::groupctl_support;

use std::time::Duration;

use common::*;
use groupctl_support::*;
#[cfg(feature = "limits")]
use processkit::Error;
use processkit::{Command, ProcessGroup, Signal, StreamExt, wait_any};

// ---- the published examples, verbatim in shape ----

#[cfg(feature = "limits")]
async fn spec_capping_a_groups_resources() -> processkit::Result<()> {
    use processkit::ProcessGroupOptions;
    let group = ProcessGroup::with_options(
        ProcessGroupOptions::default()
            .memory_max(512 * 1024 * 1024) // 512 MiB across the tree
            .max_processes(64)
            .cpu_quota(0.5), // half of one core
    )?;
    let _job = group.start(&Command::new("untrusted-tool")).await?;
    // ... work ...
    Ok(())
}

async fn spec_signalling_and_pausing() -> processkit::Result<()> {
    let group = ProcessGroup::new()?;
    let _server = group.start(&Command::new("my-server")).await?;
    group.signal(Signal::Hup)?; // e.g. "reload configuration"
    group.suspend()?; // freeze the whole tree…
    group.resume()?; // …and let it run again
    Ok(())
}

async fn spec_inspecting_the_tree() -> processkit::Result<()> {
    let group = ProcessGroup::new()?;
    let mut a = group.start(&Command::new("server-a")).await?;
    let mut b = group.start(&Command::new("server-b")).await?;
    println!("live pids: {:?}", group.members()?);
    // Borrows only: the loser stays usable after the race.
    let (idx, code) = wait_any(&mut [&mut a, &mut b]).await?;
    println!("contender #{idx} exited first with {code:?}");
    Ok(())
}

async fn spec_sampling_stats_over_time() -> processkit::Result<()> {
    // A CPU/RSS/process-count series for a whole group:
    let group = ProcessGroup::new()?;
    let _worker = group.start(&Command::new("worker")).await?;
    let mut samples = group.sample_stats(Duration::from_millis(250));
    if let Some(s) = samples.next().await {
        println!(
            "procs={} rss={:?}",
            s.active_process_count, s.peak_memory_bytes
        );
    }
    drop(samples);
    // …or a one-shot summary of a single run:
    let profile = Command::new("crunch")
        .start()
        .await?
        .profile(Duration::from_millis(100))
        .await?;
    println!(
        "exit={:?} took={:?} peak_rss={:?} avg_cpu={:?}",
        profile.exit_code,
        profile.duration,
        profile.peak_memory_bytes,
        profile.avg_cpu(),
    );
    Ok(())
}

// ---- the same calls, run with substitute programs ----

#[cfg(feature = "limits")]
#[tokio::test]
async fn capping_returns_a_bounded_group_or_says_why_not() {
    use processkit::ProcessGroupOptions;
    let result = ProcessGroup::with_options(
        ProcessGroupOptions::default()
            .memory_max(512 * 1024 * 1024)
            .max_processes(64)
            .cpu_quota(0.5),
    );
    match result {
        Ok(group) => {
            assert!(
                host_delegates_limits(),
                "limits accepted on an undelegated host"
            );
            let token = token("speccap");
            let _guard = Cleanup::token(&token);
            let job = group
                .start(&Command::new("sh").args(["-c", "sleep 300; :", &token]))
                .await
                .expect("start under limits");
            assert!(job.id().is_some());
        }
        Err(Error::ResourceLimit { limit, reason, fix }) => {
            assert!(
                !host_delegates_limits(),
                "a delegated host refused: {reason}"
            );
            assert_eq!(limit, "memory_max", "the first requested limit is named");
            assert!(!reason.is_empty() && !fix.is_empty());
        }
        Err(other) => panic!("expected a group or ResourceLimit, got {other:?}"),
    }
}

#[tokio::test]
async fn signalling_and_pausing_reach_the_server() {
    // A shell cannot trap a signal it was started with ignored (POSIX), and
    // children inherit what we ignore: under `nohup` there is nothing to see.
    if hup_ignored_here() {
        eprintln!("SKIP: SIGHUP is ignored by this process (nohup?): sh cannot trap it");
        return;
    }
    let scratch = TempDir::new("spechup");
    let token = token("spechup");
    let _guard = Cleanup::token(&token);
    let group = ProcessGroup::new().expect("group");
    // A stand-in server that records each SIGHUP ("reload") it receives.
    let server =
        r#"trap 'echo reload >> "$D/reloads"' HUP; : > "$D/ready"; while :; do sleep 0.05; done"#;
    let server = group
        .start(
            &Command::new("sh")
                .args(["-c", server, &token])
                .env("D", &scratch.0),
        )
        .await
        .expect("start");
    let server_pid = server.id().expect("a live server has a pid");
    assert!(eventually_async(Duration::from_secs(15), || scratch.join("ready").exists()).await);
    group.signal(Signal::Hup).expect("signal");
    assert!(
        eventually_async(Duration::from_secs(15), || line_count(
            &scratch.join("reloads")
        ) == 1)
        .await,
        "the server did not see SIGHUP"
    );
    group.suspend().expect("suspend");
    group.resume().expect("resume");
    // Its loop forks `sleep` all the time, and a fork carries the token
    // until it execs: look for the server itself.
    assert!(
        pids_with_token(&token).contains(&server_pid),
        "the server did not survive suspend/resume"
    );
}

#[tokio::test]
async fn inspecting_lists_both_servers_and_races_them() {
    let token = token("specmembers");
    let _guard = Cleanup::token(&token);
    let group = ProcessGroup::new().expect("group");
    let mut a = group
        .start(&Command::new("sh").args(["-c", "sleep 300; :", &token]))
        .await
        .expect("start a");
    let mut b = group
        .start(&Command::new("sh").args(["-c", "sleep 0.3; exit 7", &token]))
        .await
        .expect("start b");
    let members = group.members().expect("members");
    let b_pid = b.id().expect("b");
    for pid in [a.id().expect("a"), b_pid] {
        assert!(members.contains(&pid), "{pid} missing from {members:?}");
    }
    let (idx, code) = wait_any(&mut [&mut a, &mut b]).await.expect("race");
    assert_eq!((idx, code), (1, Some(7)), "the short-lived contender wins");
    assert!(a.id().is_some(), "the loser is still running and usable");
    let after = group.members().expect("members");
    assert!(
        !after.contains(&b_pid),
        "the winner left the tree: {after:?}"
    );
}

#[tokio::test]
async fn sampling_yields_a_series_and_a_profile() {
    let token = token("specsample");
    let _guard = Cleanup::token(&token);
    let group = ProcessGroup::new().expect("group");
    let _worker = group
        .start(&Command::new("sh").args(["-c", "sleep 300; :", &token]))
        .await
        .expect("start worker");
    let mut samples = group.sample_stats(Duration::from_millis(250));
    let s = samples.next().await.expect("a live group yields a sample");
    assert!(s.active_process_count >= 1, "{s:?}");
    assert!(
        s.peak_memory_bytes.is_some(),
        "Linux measures memory: {s:?}"
    );
    drop(samples);

    let crunch = "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done";
    let profile = Command::new("sh")
        .args(["-c", crunch])
        .start()
        .await
        .expect("start crunch")
        // Process groups are sampled from /proc while the child lives (a cgroup
        // keeps its totals after exit), so sample often enough to see the loop.
        .profile(Duration::from_millis(10))
        .await
        .expect("profile");
    assert_eq!(profile.exit_code, Some(0));
    assert!(profile.duration > Duration::ZERO);
    assert!(profile.avg_cpu().is_some_and(|c| c > 0.0), "{profile:?}");
}

/// Whether this process ignores SIGHUP (`SigIgn` in /proc, bit 0).
fn hup_ignored_here() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let mask = s.lines().find_map(|l| l.strip_prefix("SigIgn:"))?;
            u64::from_str_radix(mask.trim(), 16).ok()
        })
        .is_some_and(|mask| mask & 1 != 0)
}
