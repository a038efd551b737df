//! Resource limits proven on a kernel that delegates memory, pids and cpu to
//! cgroup v2: run it with `../shared/tools/vm-test --cargo-test limits`
//! (`VM_FEATURES="--features limits"`). Only busybox exists in there, so
//! every workload is a busybox shell one-liner.
//!
//! Where our own cgroup does not offer those controllers (a hybrid host such
//! as the development machine) each test prints a SKIP reason past the
//! harness's capture and returns: nothing here is claimed as proven then.
#![cfg(all(target_os = "linux", feature = "limits", feature = "process-control"))]

use crate::common;
use crate::groupctl_support;

use std::time::{Duration, Instant};

use common::*;
use groupctl_support::*;
use processkit::{Mechanism, ProcessGroup, ProcessGroupOptions};

const LONG: Duration = Duration::from_secs(60);

/// A limited group, or `None` after a loud SKIP where the kernel cannot
/// enforce limits for this process.
fn limited(options: ProcessGroupOptions, test: &str) -> Option<ProcessGroup> {
    if !host_delegates_limits() {
        skip(&format!(
            "{test}: this process's cgroup v2 does not offer memory+pids+cpu \
             (hybrid or undelegated host); run `vm-test --cargo-test containment -- limits::` to prove limits"
        ));
        return None;
    }
    note(&format!("{test}: starting"));
    let group = ProcessGroup::with_options(options)
        .unwrap_or_else(|e| panic!("{test}: a delegated cgroup refused the limit: {e}"));
    assert_eq!(group.mechanism(), Mechanism::CgroupV2);
    Some(group)
}

#[tokio::test]
async fn a_tree_over_memory_max_is_oom_killed_and_says_so() {
    let options = ProcessGroupOptions::default().memory_max(32 << 20);
    let Some(group) = limited(options, "memory_max") else {
        return;
    };
    // dd reads into one 200 MB buffer: six times the cap. Its parent shell
    // reports how dd ended.
    let tree =
        sh("dd if=/dev/zero of=/dev/null bs=200000000 count=1 2>/dev/null; echo dd-status=$?");
    let profile = group
        .start(&tree)
        .await
        .expect("start tree")
        .profile(Duration::from_millis(50))
        .await
        .expect("profile");
    assert_eq!(profile.exit_code, Some(0), "{profile:?}");
    assert_eq!(
        profile.output.stdout().trim(),
        "dd-status=137",
        "dd died of SIGKILL (128 + 9)"
    );
    let stats = group.stats().expect("stats");
    assert!(stats.oom_kills.is_some_and(|n| n >= 1), "{stats:?}");
    assert!(
        stats.peak_memory_bytes.is_some_and(|p| p <= 32 << 20),
        "the peak stayed under the cap: {stats:?}"
    );
}

#[tokio::test]
async fn max_processes_makes_forks_fail_past_the_cap() {
    let options = ProcessGroupOptions::default().max_processes(5);
    let Some(group) = limited(options, "max_processes") else {
        return;
    };
    let forker = sh("i=0; while [ $i -lt 20 ]; do sleep 60 & i=$((i+1)); done; echo all-forked");
    let mut run = group.start(&forker).await.expect("start forker");
    run.wait().await.expect("the forking shell ends");
    let members = group.members().expect("members");
    assert!(
        !members.is_empty() && members.len() < 5,
        "only the cap's worth of sleeps exist (of 20 asked): {members:?}"
    );
    let stats = group.stats().expect("stats");
    if let Some(peak) = stats.peak_process_count {
        assert!(peak <= 5, "pids.peak above the cap: {stats:?}");
    }
    let profile = run
        .profile(Duration::from_millis(50))
        .await
        .expect("finish");
    let stderr = profile.output.stderr().to_lowercase();
    assert!(
        stderr.contains("fork") || stderr.contains("resource temporarily unavailable"),
        "the shell reported the failed fork: {stderr:?}"
    );
    group.terminate_all().expect("terminate");
}

#[tokio::test]
async fn cpu_quota_holds_a_spinner_near_a_fifth_of_a_core() {
    let options = ProcessGroupOptions::default().cpu_quota(0.2);
    let Some(group) = limited(options, "cpu_quota") else {
        return;
    };
    let _spinner = group
        .start(&sh("while :; do :; done"))
        .await
        .expect("start spinner");
    // Skip the start-up burst, then measure usage over wall time.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (cpu0, t0) = (cpu(&group), Instant::now());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (cpu1, t1) = (cpu(&group), Instant::now());
    let share = (cpu1 - cpu0).as_secs_f64() / (t1 - t0).as_secs_f64();
    note(&format!("cpu_quota(0.2): measured {share:.3} of a core"));
    assert!(
        (0.1..=0.3).contains(&share),
        "measured {share:.3} of a core"
    );
    group.terminate_all().expect("terminate");
}

fn cpu(group: &ProcessGroup) -> Duration {
    group.stats().expect("stats").cpu_time.expect("cpu.stat")
}

#[tokio::test]
async fn stats_report_memory_and_cpu_from_the_cgroup() {
    let options = ProcessGroupOptions::default().memory_max(256 << 20);
    let Some(group) = limited(options, "stats") else {
        return;
    };
    let _run = group
        .start(&sh(
            "x=$(yes | head -c 2000000); i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; sleep 60; :",
        ))
        .await
        .expect("start");
    assert!(
        eventually_async(LONG, || {
            group.stats().is_ok_and(|s| {
                // The shell holds the 2 MB string and sleeps: two processes.
                s.active_process_count == 2
                    && s.memory_bytes.is_some_and(|m| m >= 2_000_000)
                    && s.cpu_time.is_some_and(|c| c > Duration::ZERO)
            })
        })
        .await,
        "stats never showed the shell asleep: {:?}",
        group.stats()
    );
    let s = group.stats().expect("stats");
    assert!(s.peak_memory_bytes.is_some_and(|p| p >= 2_000_000), "{s:?}");
    assert_eq!(s.oom_kills, Some(0), "{s:?}");
    assert!(
        s.user_cpu_time.is_some() && s.system_cpu_time.is_some(),
        "{s:?}"
    );
    group.terminate_all().expect("terminate");
}

#[tokio::test]
async fn stats_come_from_the_cgroup_controllers_even_without_limits() {
    if !host_delegates_limits() || !own_subtree_enables(&["memory", "pids"]) {
        skip("stats without limits: memory/pids are not enabled below this process's cgroup");
        return;
    }
    let group = ProcessGroup::new().expect("group");
    assert_eq!(group.mechanism(), Mechanism::CgroupV2);
    let _run = group
        .start(&sh("x=$(yes | head -c 2000000); sleep 60; :"))
        .await
        .expect("start");
    assert!(
        eventually_async(LONG, || group
            .stats()
            .is_ok_and(|s| s.memory_bytes.is_some_and(|m| m >= 2_000_000)))
        .await,
        "memory.current never showed the shell's string: {:?}",
        group.stats()
    );
    let s = group.stats().expect("stats");
    // Only the controllers report these two.
    assert!(s.peak_process_count.is_some_and(|p| p >= 2), "{s:?}");
    assert_eq!(s.oom_kills, Some(0), "{s:?}");
    group.terminate_all().expect("terminate");
}

/// Whether our own cgroup's `cgroup.subtree_control` enables `controllers`
/// (so the per-program cgroup below it is offered them).
fn own_subtree_enables(controllers: &[&str]) -> bool {
    let membership = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let own = membership
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("/");
    let dir = std::path::Path::new("/sys/fs/cgroup").join(own.trim_start_matches('/'));
    let enabled = std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
    controllers
        .iter()
        .all(|c| enabled.split_whitespace().any(|e| e == *c))
}

/// Set in the re-executed test binary that plays "a program living in a
/// cgroup with processes of its own".
const INNER_BUSY: &str = "PROCESSKIT_TEST_INNER_BUSY";

#[test]
fn a_program_in_a_cgroup_with_processes_gets_the_internal_process_rule_explained() {
    if std::env::var_os(INNER_BUSY).is_some() {
        inner_busy_cgroup();
        return;
    }
    if !host_delegates_limits() || !own_subtree_enables(&["memory", "pids"]) {
        skip("internal-process rule: memory/pids are not handed down from this cgroup");
        return;
    }
    // A fresh process, so that its per-program cgroup is created after it moved.
    let status = std::process::Command::new(std::env::current_exe().expect("own path"))
        .args([
            "--exact",
            &crate::common::test_named(
                "a_program_in_a_cgroup_with_processes_gets_the_internal_process_rule_explained",
            ),
            "--nocapture",
        ])
        .env(INNER_BUSY, "1")
        .status()
        .expect("re-run this test");
    assert!(status.success(), "the inner run failed: {status}");
}

fn inner_busy_cgroup() {
    let busy = std::path::Path::new("/sys/fs/cgroup").join(format!("busy-{}", std::process::id()));
    std::fs::create_dir_all(&busy).expect("create a cgroup to live in");
    std::fs::write(busy.join("cgroup.procs"), std::process::id().to_string())
        .expect("move this process into it");
    match ProcessGroup::with_options(ProcessGroupOptions::default().memory_max(64 << 20)) {
        Err(processkit::Error::ResourceLimit { limit, reason, fix }) => {
            note(&format!("memory_max from a busy cgroup: {reason}; {fix}"));
            assert_eq!(limit, "memory_max");
            assert!(reason.contains("no-internal-process rule"), "{reason}");
            assert!(fix.contains("leaf"), "{fix}");
        }
        other => panic!("expected the internal-process refusal, got {other:?}"),
    }
    // pids is a threaded controller: the busy cgroup may switch it on, but
    // the per-program cgroup below it then refuses to pass it further.
    match ProcessGroup::with_options(ProcessGroupOptions::default().max_processes(8)) {
        Err(processkit::Error::ResourceLimit { limit, reason, fix }) => {
            note(&format!(
                "max_processes from a busy cgroup: {reason}; {fix}"
            ));
            assert_eq!(limit, "max_processes");
            assert!(reason.contains("no-internal-process rule"), "{reason}");
        }
        other => panic!("expected the internal-process refusal, got {other:?}"),
    }
    let control = std::fs::read_to_string(busy.join("cgroup.subtree_control")).unwrap_or_default();
    assert!(
        !control.contains("pids"),
        "a failed cap leaves our own cgroup as it was: {control:?}"
    );
    // Back to the root cgroup; the busy one is left for the VM to discard.
    let _ = std::fs::write(
        "/sys/fs/cgroup/cgroup.procs",
        std::process::id().to_string(),
    );
}
