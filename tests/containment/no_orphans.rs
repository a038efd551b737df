//! The no-orphan matrix: every way a run or group can end × trees of depth
//! 1-3 × every mechanism of the platform (cgroup v2, subreaper and process group
//! on Linux, the Job Object on Windows). The trees are copies of this test binary
//! (`common::HelperTree`), so the same matrix runs on Linux and under Wine;
//! each case proves every published pid gone.
#![cfg(any(target_os = "linux", windows))]

use crate::common;
use crate::groupctl_support::{on_this_host, skip};

use std::sync::Arc;
use std::time::Duration;

use common::HelperTree;
use processkit::{JobRunner, Mechanism, ProcessGroup, ProcessGroupOptions, ProcessRunnerExt};

const DEPTHS: [usize; 3] = [1, 2, 3];

/// The test whose process acts as a tree member.
const ENTRY: &str = "helper_tree_member";

/// Not a test of its own: the entry point of the helper processes that the
/// trees are made of (a no-op in a test run).
#[test]
fn helper_tree_member() {
    common::act_as_tree_member();
}

/// The mechanisms under test: the platform's, less those this host cannot
/// provide (no writable cgroup v2 for a non-root user or in a container).
/// `PROCESSKIT_MECHANISM` narrows the matrix when CI reruns it under a fallback.
fn mechanisms() -> Vec<Mechanism> {
    let platform = if cfg!(windows) {
        vec![Mechanism::JobObject]
    } else {
        match requested() {
            Some(one @ (Mechanism::ProcessGroup | Mechanism::Subreaper)) => vec![one],
            _ => vec![
                Mechanism::CgroupV2,
                Mechanism::Subreaper,
                Mechanism::ProcessGroup,
            ],
        }
    };
    platform.into_iter().filter(|&m| on_this_host(m)).collect()
}

/// The host's best mechanism that holds a detached grandchild too, if it has
/// one; `PROCESSKIT_MECHANISM=subreaper` picks the subreaper on a cgroup host.
fn whole_tree_mechanism() -> Option<Mechanism> {
    let platform: &[Mechanism] = if cfg!(windows) {
        &[Mechanism::JobObject]
    } else if requested() == Some(Mechanism::Subreaper) {
        &[Mechanism::Subreaper]
    } else {
        &[Mechanism::CgroupV2, Mechanism::Subreaper]
    };
    platform.iter().copied().find(|&m| on_this_host(m))
}

/// The mechanism `PROCESSKIT_MECHANISM` names, if any.
fn requested() -> Option<Mechanism> {
    Mechanism::from_name(&std::env::var("PROCESSKIT_MECHANISM").ok()?)
}

fn group(mechanism: Mechanism) -> ProcessGroup {
    let group = ProcessGroup::with_options(ProcessGroupOptions::default().mechanism(mechanism))
        .expect("group on this host");
    assert_eq!(group.mechanism(), mechanism);
    group
}

#[tokio::test]
async fn dropping_the_handle_kills_the_tree() {
    for mechanism in mechanisms() {
        for depth in DEPTHS {
            let tree = HelperTree::new("drop-handle", depth);
            let run = JobRunner::with_mechanism(mechanism)
                .start(&tree.command(ENTRY))
                .await
                .unwrap();
            assert_eq!(run.mechanism(), Some(mechanism));
            tree.started().await;
            drop(run);
            tree.assert_gone();
        }
    }
}

#[tokio::test]
async fn a_timeout_kills_the_tree_and_is_captured() {
    for mechanism in mechanisms() {
        for depth in DEPTHS {
            let tree = HelperTree::new("timeout", depth);
            // Long enough for the whole tree to start (slow under Wine).
            let limit = Duration::from_millis(if cfg!(windows) { 5000 } else { 700 });
            let cmd = tree.command(ENTRY).timeout(limit);
            let result = JobRunner::with_mechanism(mechanism)
                .output_string(&cmd)
                .await
                .unwrap();
            assert!(result.timed_out(), "{mechanism} depth {depth}: {result:?}");
            assert_eq!(result.code(), None);
            tree.assert_gone();
        }
    }
}

#[tokio::test]
async fn dropping_the_verb_future_kills_the_tree() {
    for mechanism in mechanisms() {
        for depth in DEPTHS {
            let tree = HelperTree::new("drop-future", depth);
            let cmd = tree.command(ENTRY);
            let runner = JobRunner::with_mechanism(mechanism);
            tokio::select! {
                r = runner.output_string(&cmd) => panic!("tree ended on its own: {r:?}"),
                _ = tree.started() => {}
            }
            tree.assert_gone();
        }
    }
}

#[tokio::test]
async fn a_panic_in_the_owning_task_kills_the_tree() {
    for mechanism in mechanisms() {
        for depth in DEPTHS {
            let tree = Arc::new(HelperTree::new("panic", depth));
            let cmd = tree.command(ENTRY);
            let watched = Arc::clone(&tree);
            let task = tokio::spawn(async move {
                let _run = JobRunner::with_mechanism(mechanism)
                    .start(&cmd)
                    .await
                    .unwrap();
                watched.started().await;
                panic!("deliberate panic while owning a run");
            });
            assert!(task.await.unwrap_err().is_panic());
            tree.assert_gone();
        }
    }
}

#[tokio::test]
async fn dropping_the_group_kills_every_tree() {
    for mechanism in mechanisms() {
        let group = group(mechanism);
        let trees: Vec<HelperTree> = DEPTHS
            .iter()
            .map(|&d| HelperTree::new("drop-group", d))
            .collect();
        let mut handles = Vec::new();
        for tree in &trees {
            handles.push(group.start(&tree.command(ENTRY)).await.unwrap());
            tree.started().await;
        }
        drop(group);
        for tree in &trees {
            tree.assert_gone();
        }
        drop(handles);
    }
}

#[tokio::test]
async fn shutdown_kills_every_tree() {
    for mechanism in mechanisms() {
        let group = ProcessGroup::with_options(
            ProcessGroupOptions::default()
                .mechanism(mechanism)
                .shutdown_grace(Duration::from_millis(300)),
        )
        .unwrap();
        let trees: Vec<HelperTree> = DEPTHS
            .iter()
            .map(|&d| HelperTree::new("shutdown", d))
            .collect();
        for tree in &trees {
            // Handles dropped before shutdown: the group, not the handle, owns
            // group runs. Not before the tree has started: a member whose
            // stdout reader is gone dies in libtest's first line.
            let run = group.start(&tree.command(ENTRY)).await.unwrap();
            tree.started().await;
            drop(run);
        }
        group.shutdown().await.unwrap();
        for tree in &trees {
            tree.assert_gone();
        }
    }
}

/// A child whose grandchild leaves its session and process group (`setsid`;
/// on Windows a detached process in a new process group), with a child of its own.
fn detached_tree(label: &str) -> HelperTree {
    HelperTree::new(label, 3).detached()
}

#[tokio::test]
async fn a_detached_grandchild_is_killed_by_a_whole_tree_mechanism() {
    let Some(mechanism) = whole_tree_mechanism() else {
        skip("no whole-tree mechanism on this host: the detached grandchild test");
        return;
    };
    let tree = detached_tree("detached-whole");
    let runner = JobRunner::with_mechanism(mechanism);
    let run = runner.start(&tree.command(ENTRY)).await.unwrap();
    tree.started().await;
    drop(run);
    tree.assert_gone();
}

#[cfg(unix)]
#[tokio::test]
async fn a_setsid_escape_is_reported_under_process_groups() {
    let tree = detached_tree("setsid-pgroup");
    // The child starts a grandchild in a new session: it leaves the process group.
    let runner = JobRunner::with_mechanism(Mechanism::ProcessGroup);
    let run = runner.start(&tree.command(ENTRY)).await.unwrap();
    let mechanism = run.mechanism().unwrap();
    tree.started().await;
    drop(run);
    // The escape is not hidden: the mechanism says it cannot contain a new session…
    assert_eq!(mechanism, Mechanism::ProcessGroup);
    assert!(!mechanism.contains_whole_tree());
    // …and indeed the session leader survived (the tree kills it on drop).
    std::thread::sleep(Duration::from_millis(200));
    assert!(!tree.survivors().is_empty());
}
