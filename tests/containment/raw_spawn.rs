//! `ProcessGroup::spawn`: a caller-built tokio command started inside a
//! group dies with it, grandchildren included, under every mechanism this
//! host offers; the subreaper mechanism refuses it rather than hold it less.
#![cfg(target_os = "linux")]

use crate::common;
use crate::groupctl_support::on_this_host;

use std::time::Duration;

use common::{HelperTree, eventually_async, pids_with_token};
use processkit::{Error, Mechanism, ProcessGroup, ProcessGroupOptions};

/// The test whose process acts as a tree member (in `no_orphans`).
const ENTRY: &str = "helper_tree_member";

fn group(mechanism: Mechanism) -> ProcessGroup {
    let group = ProcessGroup::with_options(ProcessGroupOptions::default().mechanism(mechanism))
        .expect("group on this host");
    assert_eq!(group.mechanism(), mechanism);
    group
}

/// The mechanisms that take a raw child, as this host offers them.
fn holding_mechanisms() -> Vec<Mechanism> {
    [Mechanism::CgroupV2, Mechanism::ProcessGroup]
        .into_iter()
        .filter(|&m| on_this_host(m))
        .collect()
}

/// Whether `pid` sits in a cgroup of processkit's (below a per-process root).
fn in_processkit_cgroup(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|c| {
        c.lines()
            .any(|l| l.starts_with("0::") && l.contains("processkit-"))
    })
}

#[tokio::test]
async fn a_raw_command_and_its_grandchildren_die_with_the_group() {
    for mechanism in holding_mechanisms() {
        let tree = HelperTree::new("raw-spawn", 3);
        let group = group(mechanism);
        let mut cmd = tree.tokio_command(ENTRY);
        let mut child = group.spawn(&mut cmd).unwrap();
        let pids = tree.started().await;
        assert_eq!(pids.len(), 3, "{mechanism}");
        #[cfg(feature = "process-control")]
        {
            let members = group.members().unwrap();
            let direct = child.id().unwrap();
            assert!(members.contains(&direct), "{mechanism}: {members:?}");
        }
        if mechanism == Mechanism::CgroupV2 {
            assert!(pids.iter().all(|&p| in_processkit_cgroup(p)), "{mechanism}");
        }
        drop(group);
        tree.assert_gone();
        // The direct child is the caller's to reap, through tokio.
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("the killed child was reaped")
            .unwrap();
        assert!(!status.success(), "{mechanism}: {status:?}");
    }
}

#[tokio::test]
async fn a_grandchild_in_a_new_session_still_dies_under_a_cgroup() {
    if !on_this_host(Mechanism::CgroupV2) {
        return;
    }
    let tree = HelperTree::new("raw-setsid", 3).detached();
    let group = group(Mechanism::CgroupV2);
    let _child = group.spawn(&mut tree.tokio_command(ENTRY)).unwrap();
    tree.started().await;
    drop(group);
    tree.assert_gone();
}

#[tokio::test]
async fn terminate_all_and_shutdown_reach_a_raw_child() {
    for mechanism in holding_mechanisms() {
        let group = group(mechanism);
        let tree = HelperTree::new("raw-terminate", 2);
        let _child = group.spawn(&mut tree.tokio_command(ENTRY)).unwrap();
        tree.started().await;
        group.terminate_all().unwrap();
        tree.assert_gone();

        let tree = HelperTree::new("raw-shutdown", 2);
        let _child = group.spawn(&mut tree.tokio_command(ENTRY)).unwrap();
        tree.started().await;
        let report = group.stop(Duration::from_secs(5)).await.unwrap();
        assert!(report.signalled >= 1, "{mechanism}: {report:?}");
        tree.assert_gone();
    }
}

#[tokio::test]
async fn the_same_command_joins_its_new_group_each_time() {
    if !on_this_host(Mechanism::CgroupV2) {
        return;
    }
    let tree = HelperTree::new("raw-reuse", 1);
    let mut cmd = tree.tokio_command(ENTRY);
    let first = group(Mechanism::CgroupV2);
    let _a = first.spawn(&mut cmd).unwrap();
    let second = group(Mechanism::CgroupV2);
    let b = second.spawn(&mut cmd).unwrap();
    let b_pid = b.id().unwrap();
    let found = eventually_async(Duration::from_secs(30), || tree.pids().len() == 2).await;
    assert!(found, "{:?}", tree.pids());
    // Dropping the first group leaves the second one's member running.
    drop(first);
    let first_gone =
        eventually_async(Duration::from_secs(10), || tree.survivors() == vec![b_pid]).await;
    assert!(first_gone, "{:?} vs {b_pid}", tree.survivors());
    #[cfg(feature = "process-control")]
    assert!(second.members().unwrap().contains(&b_pid));
    drop(second);
    tree.assert_gone();
}

#[tokio::test]
async fn the_hook_left_on_a_command_does_nothing_outside_the_group() {
    if !on_this_host(Mechanism::CgroupV2) {
        return;
    }
    let tree = HelperTree::new("raw-inert", 1);
    let mut cmd = tree.tokio_command(ENTRY);
    let group = group(Mechanism::CgroupV2);
    let _inside = group.spawn(&mut cmd).unwrap();
    // The same command spawned by tokio itself: not ours to contain.
    let mut outside = cmd.kill_on_drop(true).spawn().unwrap();
    let outside_pid = outside.id().unwrap();
    let found = eventually_async(Duration::from_secs(30), || tree.pids().len() == 2).await;
    assert!(found, "{:?}", tree.pids());
    assert!(!in_processkit_cgroup(outside_pid));
    drop(group);
    let only_outside = eventually_async(Duration::from_secs(10), || {
        tree.survivors() == vec![outside_pid]
    })
    .await;
    assert!(only_outside, "{:?}", tree.survivors());
    outside.kill().await.unwrap();
}

#[tokio::test]
async fn the_subreaper_mechanism_refuses_a_raw_command() {
    if !on_this_host(Mechanism::Subreaper) {
        return;
    }
    let tree = HelperTree::new("raw-subreaper", 1);
    let group = group(Mechanism::Subreaper);
    let err = group.spawn(&mut tree.tokio_command(ENTRY)).unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { operation, .. } if *operation == "ProcessGroup::spawn"),
        "{err:?}"
    );
    // Nothing was started.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(tree.pids().is_empty() && pids_with_token(&tree.token).is_empty());
}

#[cfg(feature = "process-control")]
#[tokio::test]
async fn a_suspended_group_refuses_a_raw_command() {
    for mechanism in holding_mechanisms() {
        let group = group(mechanism);
        group.suspend().unwrap();
        let mut cmd = tokio::process::Command::new("true");
        let err = group.spawn(&mut cmd).unwrap_err();
        assert!(
            matches!(&err, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::ResourceBusy),
            "{mechanism}: {err:?}"
        );
        group.resume().unwrap();
    }
}

#[tokio::test]
async fn raw_spawn_errors_are_typed() {
    let group = ProcessGroup::new().unwrap();
    if group.mechanism() == Mechanism::Subreaper {
        return;
    }
    let mut missing = tokio::process::Command::new("processkit-no-such-program-here");
    let err = group.spawn(&mut missing).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let mut cmd = tokio::process::Command::new("true");
    let err = group
        .spawn_with_creation_flags(&mut cmd, 0x0800_0000)
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
}
