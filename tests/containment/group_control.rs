//! Whole-tree control of a ProcessGroup, proven on real processes under both
//! Linux mechanisms: freeze/thaw, signals, members, adopt, teardown of a
//! frozen tree, stats, sampled series, run profiles, and the limit error.
#![cfg(all(target_os = "linux", feature = "process-control", feature = "stats"))]

use crate::common;
use crate::groupctl_support;

use std::time::Duration;

use common::*;
use groupctl_support::*;
use processkit::{Command, Error, Mechanism, ProcessGroup, ProcessGroupOptions, Signal, StreamExt};

const LONG: Duration = Duration::from_secs(15);

/// A group on `mechanism`, or `None` (with a loud SKIP) when this host lacks it.
fn group_on(mechanism: Mechanism) -> Option<ProcessGroup> {
    let options = ProcessGroupOptions::default()
        .mechanism(mechanism)
        .shutdown_grace(Duration::from_secs(2));
    match ProcessGroup::with_options(options) {
        Ok(group) => {
            assert_eq!(group.mechanism(), mechanism, "never a silent downgrade");
            Some(group)
        }
        Err(Error::Unsupported { reason, .. }) => {
            eprintln!("SKIP: {mechanism} is not available on this host: {reason}");
            None
        }
        Err(e) => panic!("creating a {mechanism} group failed: {e}"),
    }
}

/// Every mechanism a Unix host may have (those it lacks are skipped).
const ALL: [Mechanism; 3] = [
    Mechanism::CgroupV2,
    Mechanism::Subreaper,
    Mechanism::ProcessGroup,
];

/// `sh -c SCRIPT TOKEN`: the token lands in argv (as `$0`), so /proc finds it.
/// A child shell that starts a grandchild shell carrying the same token and
/// waits; both stay alive until killed.
fn two_level_tree(token: &str) -> Command {
    sh_as(r#"sh -c 'sleep 300; :' "$0" & wait; :"#, token)
}

#[tokio::test]
async fn freeze_stops_a_grandchilds_counter_and_thaw_restarts_it() {
    for mechanism in ALL {
        let Some(group) = group_on(mechanism) else {
            continue;
        };
        let scratch = TempDir::new("freeze");
        let counter = scratch.join("counter");
        let token = token("freeze");
        let _guard = Cleanup::token(&token);
        let cmd = sh_as(
            r#"sh -c 'while :; do echo x >> "$F"; sleep 0.02; done' "$0" & wait; :"#,
            &token,
        )
        .env("F", &counter);
        let _run = group.start(&cmd).await.expect("start counter tree");
        assert!(
            eventually_async(LONG, || line_count(&counter) >= 3).await,
            "{mechanism}: the grandchild never started counting"
        );
        // Each `sleep 0.02` is forked from the grandchild and carries its
        // argv until it execs, so a single scan may briefly see three.
        assert!(
            eventually_async(LONG, || pids_with_token(&token).len() == 2).await,
            "{mechanism}: child and grandchild, saw {:?}",
            pids_with_token(&token)
        );

        group.suspend().expect("suspend");
        group.suspend().expect("suspend is idempotent");
        // Let a write that was in flight when SIGSTOP landed finish.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let frozen_at = line_count(&counter);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(
            line_count(&counter),
            frozen_at,
            "{mechanism}: the counter moved while the group was suspended"
        );

        group.resume().expect("resume");
        group.resume().expect("resume is idempotent");
        assert!(
            eventually_async(LONG, || line_count(&counter) > frozen_at + 2).await,
            "{mechanism}: the counter did not restart after resume"
        );
    }
}

/// How a suspended group is torn down in [`frozen_group_tears_down`].
#[derive(Debug, Clone, Copy)]
enum Teardown {
    Drop,
    TerminateAll,
    Shutdown,
}

async fn frozen_group_tears_down(how: Teardown) {
    for mechanism in ALL {
        let Some(group) = group_on(mechanism) else {
            continue;
        };
        let token = token("frozen");
        let _guard = Cleanup::token(&token);
        let _run = group.start(&two_level_tree(&token)).await.expect("start");
        assert!(
            eventually_async(LONG, || pids_with_token(&token).len() == 2).await,
            "{mechanism}: tree did not start"
        );
        group.suspend().expect("suspend");
        match how {
            Teardown::Drop => drop(group),
            Teardown::TerminateAll => group.terminate_all().expect("terminate_all"),
            Teardown::Shutdown => group.shutdown().await.expect("shutdown"),
        }
        assert!(
            eventually_async(LONG, || pids_with_token(&token).is_empty()).await,
            "{mechanism}: a suspended tree survived {how:?}: {:?}",
            pids_with_token(&token)
        );
    }
}

#[tokio::test]
async fn a_suspended_group_dies_on_drop() {
    frozen_group_tears_down(Teardown::Drop).await;
}

#[tokio::test]
async fn a_suspended_group_dies_on_terminate_all() {
    frozen_group_tears_down(Teardown::TerminateAll).await;
}

#[tokio::test]
async fn a_suspended_group_dies_on_shutdown() {
    frozen_group_tears_down(Teardown::Shutdown).await;
}

#[tokio::test]
async fn a_signal_reaches_every_member_of_a_two_level_tree() {
    for mechanism in ALL {
        let Some(group) = group_on(mechanism) else {
            continue;
        };
        let scratch = TempDir::new("signal");
        let token = token("signal");
        let _guard = Cleanup::token(&token);
        let inner = r#"trap 'echo inner > "$D/inner"; exit 0' USR1; : > "$D/inner-ready"; while :; do sleep 0.05; done"#;
        let outer = r#"trap 'echo outer > "$D/outer"; exit 0' USR1; sh -c "$INNER" "$0" & : > "$D/outer-ready"; while :; do sleep 0.05; done"#;
        let cmd = sh_as(outer, &token)
            .env("D", &scratch.0)
            .env("INNER", inner);
        let _run = group.start(&cmd).await.expect("start");
        assert!(
            eventually_async(LONG, || {
                scratch.join("inner-ready").exists() && scratch.join("outer-ready").exists()
            })
            .await,
            "{mechanism}: traps were never installed"
        );
        group.signal(Signal::Usr1).expect("signal");
        assert!(
            eventually_async(LONG, || {
                scratch.join("inner").exists() && scratch.join("outer").exists()
            })
            .await,
            "{mechanism}: not every member saw SIGUSR1 (outer: {}, inner: {})",
            scratch.join("outer").exists(),
            scratch.join("inner").exists()
        );
    }
}

#[tokio::test]
async fn signal_kill_takes_the_terminate_path() {
    for mechanism in ALL {
        let Some(group) = group_on(mechanism) else {
            continue;
        };
        let token = token("sigkill");
        let _guard = Cleanup::token(&token);
        let _run = group.start(&two_level_tree(&token)).await.expect("start");
        assert!(eventually_async(LONG, || pids_with_token(&token).len() == 2).await);
        group.signal(Signal::Kill).expect("signal kill");
        assert!(
            eventually_async(LONG, || pids_with_token(&token).is_empty()).await,
            "{mechanism}: Signal::Kill left members alive"
        );
    }
}

#[tokio::test]
async fn members_lists_the_child_and_its_grandchildren_under_cgroups() {
    let Some(group) = group_on(Mechanism::CgroupV2) else {
        return;
    };
    let token = token("members");
    let _guard = Cleanup::token(&token);
    let cmd = sh_as(
        r#"sh -c 'sleep 300; :' "$0" & sh -c 'sleep 300; :' "$0" & wait; :"#,
        &token,
    );
    let run = group.start(&cmd).await.expect("start");
    assert!(eventually_async(LONG, || pids_with_token(&token).len() == 3).await);
    let members = group.members().expect("members");
    let child = run.id().expect("child pid");
    assert!(
        members.contains(&child),
        "child {child} missing from {members:?}"
    );
    for pid in pids_with_token(&token) {
        assert!(
            members.contains(&pid),
            "descendant {pid} missing from {members:?}"
        );
    }
    // The two inner shells' `sleep` children join the list once forked.
    assert!(
        eventually_async(LONG, || group.members().is_ok_and(|m| m.len() >= 5)).await,
        "expected the whole tree, got {:?}",
        group.members()
    );
}

#[tokio::test]
async fn members_lists_the_tracked_leaders_under_process_groups() {
    let Some(group) = group_on(Mechanism::ProcessGroup) else {
        return;
    };
    let token = token("leaders");
    let _guard = Cleanup::token(&token);
    let a = group.start(&two_level_tree(&token)).await.expect("start a");
    let b = group.start(&two_level_tree(&token)).await.expect("start b");
    assert!(eventually_async(LONG, || pids_with_token(&token).len() == 4).await);
    let mut leaders = vec![a.id().expect("pid a"), b.id().expect("pid b")];
    leaders.sort_unstable();
    assert_eq!(group.members().expect("members"), leaders);
}

/// An unrelated process (started with std, in no group) killed on drop if
/// the test fails before the group takes it down.
struct Stranger(std::process::Child);

impl Drop for Stranger {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn adopt_ties_an_unrelated_process_to_the_group() {
    use std::os::unix::process::ExitStatusExt;
    for mechanism in ALL {
        let Some(group) = group_on(mechanism) else {
            continue;
        };
        let mut stranger = Stranger(
            std::process::Command::new("sleep")
                .arg("300")
                .spawn()
                .expect("spawn unrelated sleep"),
        );
        let pid = stranger.0.id();
        group.adopt(pid).expect("adopt");
        assert!(
            group.members().expect("members").contains(&pid),
            "{mechanism}"
        );
        drop(group);
        let mut status = None;
        assert!(
            eventually_async(LONG, || {
                status = stranger.0.try_wait().expect("try_wait");
                status.is_some()
            })
            .await,
            "{mechanism}: the adopted process outlived its group"
        );
        assert_eq!(status.and_then(|s| s.signal()), Some(9), "{mechanism}");
    }
}

#[tokio::test]
async fn adopt_refuses_bad_pids_with_typed_errors() {
    let group = ProcessGroup::new().expect("group");
    for pid in [0, 1, std::process::id()] {
        match group.adopt(pid) {
            Err(Error::Io { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::InvalidInput, "pid {pid}")
            }
            other => panic!("adopt({pid}) should be refused, got {other:?}"),
        }
    }
    match group.adopt(u32::MAX) {
        Err(Error::Io { source, .. }) => assert_eq!(source.kind(), std::io::ErrorKind::NotFound),
        other => panic!("adopting a missing pid should fail, got {other:?}"),
    }
}

/// A child that burns some CPU, then idles next to a sleeping sibling.
fn busy_tree(token: &str) -> Command {
    sh_as(
        r#"sh -c 'i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; sleep 300; :' "$0" & sleep 300; :"#,
        token,
    )
}

#[tokio::test]
async fn stats_and_a_sampled_series_on_a_live_tree() {
    for mechanism in ALL {
        let Some(group) = group_on(mechanism) else {
            continue;
        };
        let token = token("stats");
        let _guard = Cleanup::token(&token);
        let _run = group.start(&busy_tree(&token)).await.expect("start");
        // Wait for the burner to finish its loop and reach `sleep`.
        assert!(
            eventually_async(LONG, || {
                group.stats().is_ok_and(|s| {
                    s.active_process_count >= 4
                        && s.cpu_time.is_some_and(|c| c >= Duration::from_millis(20))
                })
            })
            .await,
            "{mechanism}: stats never showed the tree and its CPU time: {:?}",
            group.stats()
        );
        let s = group.stats().expect("stats");
        assert!(s.memory_bytes.is_some_and(|m| m > 0), "{mechanism}: {s:?}");
        assert!(s.peak_memory_bytes >= s.memory_bytes, "{mechanism}: {s:?}");
        let user = s.user_cpu_time.unwrap_or_default();
        let system = s.system_cpu_time.unwrap_or_default();
        assert!(user + system > Duration::ZERO, "{mechanism}: {s:?}");

        let mut samples = group.sample_stats(Duration::from_millis(50));
        for _ in 0..3 {
            let sample = tokio::time::timeout(LONG, samples.next())
                .await
                .expect("a sample within the limit")
                .expect("the stream continues while the tree lives");
            assert!(sample.active_process_count >= 4, "{mechanism}: {sample:?}");
            assert!(sample.cpu_time >= s.cpu_time.map(|c| c / 2), "{mechanism}");
        }
        group.terminate_all().expect("terminate");
        let rest: Vec<_> = tokio::time::timeout(LONG, samples.collect::<Vec<_>>())
            .await
            .expect("the stream ends once the group is empty");
        assert!(rest.len() < 200, "{mechanism}: the stream kept going");
    }
}

#[tokio::test]
async fn a_sample_stream_ends_when_its_group_is_dropped() {
    let group = ProcessGroup::new().expect("group");
    let token = token("dropstream");
    let _guard = Cleanup::token(&token);
    let _run = group.start(&two_level_tree(&token)).await.expect("start");
    assert!(eventually_async(LONG, || pids_with_token(&token).len() == 2).await);
    let mut samples = group.sample_stats(Duration::from_millis(20));
    assert!(
        samples.next().await.is_some(),
        "a live group yields a sample"
    );
    drop(group);
    let end = tokio::time::timeout(LONG, async { while samples.next().await.is_some() {} }).await;
    assert!(
        end.is_ok(),
        "the stream did not end after the group was dropped"
    );
    assert!(eventually_async(LONG, || pids_with_token(&token).is_empty()).await);
}

#[tokio::test]
async fn profile_summarises_a_run() {
    let profile = sh_as(
        "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; echo done",
        &token("profile"),
    )
    .start()
    .await
    .expect("start")
    .profile(Duration::from_millis(20))
    .await
    .expect("profile");
    assert_eq!(profile.exit_code, Some(0));
    assert_eq!(profile.output.stdout().trim(), "done");
    assert!(profile.samples >= 2, "{profile:?}");
    assert!(
        profile.cpu_time.is_some_and(|c| c > Duration::ZERO),
        "{profile:?}"
    );
    assert!(profile.avg_cpu().is_some_and(|c| c > 0.0), "{profile:?}");
    assert!(
        profile.peak_memory_bytes.is_some_and(|m| m > 0),
        "{profile:?}"
    );
    assert!(profile.peak_process_count >= 1, "{profile:?}");
}

#[tokio::test]
async fn profile_keeps_the_runs_timeout() {
    let token = token("proftimeout");
    let _guard = Cleanup::token(&token);
    let profile = sh_as("echo started; sleep 300; :", &token)
        .timeout(Duration::from_millis(300))
        .start()
        .await
        .expect("start")
        .profile(Duration::from_millis(50))
        .await
        .expect("a timeout is data, not an error");
    assert_eq!(profile.exit_code, None);
    assert!(profile.output.timed_out());
    assert_eq!(profile.output.stdout().trim(), "started");
    assert!(eventually_async(LONG, || pids_with_token(&token).is_empty()).await);
}

#[tokio::test]
async fn profile_samples_a_run_in_a_process_group() {
    let Some(group) = group_on(Mechanism::ProcessGroup) else {
        return;
    };
    let token = token("profpg");
    let _guard = Cleanup::token(&token);
    let profile = group
        .start(&sh_as(
            "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; echo done",
            &token,
        ))
        .await
        .expect("start")
        .profile(Duration::from_millis(10))
        .await
        .expect("profile");
    assert_eq!(profile.exit_code, Some(0));
    assert!(profile.peak_process_count >= 1, "{profile:?}");
    assert!(
        profile.peak_memory_bytes.is_some_and(|m| m > 0),
        "{profile:?}"
    );
}

#[cfg(feature = "limits")]
#[test]
fn every_limit_is_refused_with_a_reason_where_controllers_are_not_delegated() {
    if host_delegates_limits() {
        eprintln!("NOTE: this host delegates memory/pids/cpu; limits must be accepted");
        let group = ProcessGroup::with_options(ProcessGroupOptions::default().max_processes(64));
        assert!(
            group.is_ok(),
            "delegated host refused a limit: {:?}",
            group.err()
        );
        return;
    }
    let cases: [(&str, ProcessGroupOptions); 3] = [
        (
            "memory_max",
            ProcessGroupOptions::default().memory_max(64 << 20),
        ),
        (
            "max_processes",
            ProcessGroupOptions::default().max_processes(8),
        ),
        ("cpu_quota", ProcessGroupOptions::default().cpu_quota(0.5)),
    ];
    for (name, options) in cases {
        match ProcessGroup::with_options(options) {
            Err(Error::ResourceLimit { limit, reason, fix }) => {
                assert_eq!(limit, name);
                assert!(!reason.is_empty() && !fix.is_empty());
                eprintln!("{name}: {reason}; fix: {fix}");
            }
            other => panic!("{name}: expected ResourceLimit, got {other:?}"),
        }
    }
}

#[cfg(feature = "limits")]
#[test]
fn limits_on_process_groups_and_bad_values_are_refused() {
    let on_pgroup = ProcessGroupOptions::default()
        .mechanism(Mechanism::ProcessGroup)
        .memory_max(64 << 20);
    assert!(matches!(
        ProcessGroup::with_options(on_pgroup),
        Err(Error::ResourceLimit {
            limit: "memory_max",
            ..
        })
    ));
    let bad = [
        ("memory_max", ProcessGroupOptions::default().memory_max(0)),
        (
            "max_processes",
            ProcessGroupOptions::default().max_processes(0),
        ),
        (
            "cpu_quota",
            ProcessGroupOptions::default().cpu_quota(f64::NAN),
        ),
        ("cpu_quota", ProcessGroupOptions::default().cpu_quota(0.0)),
    ];
    for (name, options) in bad {
        match ProcessGroup::with_options(options) {
            Err(Error::ResourceLimit { limit, .. }) => assert_eq!(limit, name),
            other => panic!("{name}: expected ResourceLimit, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn starting_into_a_suspended_group_is_refused_until_resume() {
    for mechanism in ALL {
        let Some(group) = group_on(mechanism) else {
            continue;
        };
        let token = token("startfrozen");
        let _guard = Cleanup::token(&token);
        let _first = group.start(&two_level_tree(&token)).await.expect("start");
        group.suspend().expect("suspend");
        match group.start(&two_level_tree(&token)).await {
            Err(Error::Io { source, .. }) => {
                assert_eq!(
                    source.kind(),
                    std::io::ErrorKind::ResourceBusy,
                    "{mechanism}"
                )
            }
            other => panic!("{mechanism}: expected a refusal, got {other:?}"),
        }
        group.resume().expect("resume");
        let second = group
            .start(&two_level_tree(&token))
            .await
            .expect("start after resume");
        assert!(second.id().is_some());
        assert!(
            eventually_async(LONG, || pids_with_token(&token).len() == 4).await,
            "{mechanism}"
        );
    }
}
