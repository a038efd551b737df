//! The no-orphan matrix: every way a run or group can end × trees of depth
//! 1-3 × both Linux mechanisms. Each case finds the real processes (pidfile +
//! argv token) and proves every one of them gone.
#![cfg(target_os = "linux")]

use crate::common;

use std::time::Duration;

use common::Tree;
use processkit::{
    Command, JobRunner, Mechanism, ProcessGroup, ProcessGroupOptions, ProcessRunnerExt,
};

const DEPTHS: [usize; 3] = [1, 2, 3];

/// The mechanisms under test. `PROCESSKIT_MECHANISM` narrows the matrix when CI
/// reruns it under the fallback.
fn mechanisms() -> Vec<Mechanism> {
    match std::env::var("PROCESSKIT_MECHANISM").ok().as_deref() {
        Some("process-group") => vec![Mechanism::ProcessGroup],
        _ => vec![Mechanism::CgroupV2, Mechanism::ProcessGroup],
    }
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
            let tree = Tree::new("drop-handle", depth);
            let run = JobRunner::with_mechanism(mechanism)
                .start(&tree.command())
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
            let tree = Tree::new("timeout", depth);
            let cmd = tree.command().timeout(Duration::from_millis(700));
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
            let tree = Tree::new("drop-future", depth);
            let cmd = tree.command();
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
            let tree = Tree::new("panic", depth);
            let cmd = tree.command();
            let pidfile = tree.pidfile.clone();
            let task = tokio::spawn(async move {
                let _run = JobRunner::with_mechanism(mechanism)
                    .start(&cmd)
                    .await
                    .unwrap();
                while common::read_pids(&pidfile).len() < 2 * depth {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
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
        let trees: Vec<Tree> = DEPTHS.iter().map(|&d| Tree::new("drop-group", d)).collect();
        let mut handles = Vec::new();
        for tree in &trees {
            handles.push(group.start(&tree.command()).await.unwrap());
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
        let trees: Vec<Tree> = DEPTHS.iter().map(|&d| Tree::new("shutdown", d)).collect();
        for tree in &trees {
            // Handles dropped at once: the group, not the handle, owns group runs.
            group.start(&tree.command()).await.unwrap();
            tree.started().await;
        }
        group.shutdown().await.unwrap();
        for tree in &trees {
            tree.assert_gone();
        }
    }
}

/// `sh -c 'setsid tree.sh 2 … & wait'`: a grandchild tree in a new session.
fn setsid_tree_command(tree: &Tree) -> Command {
    Command::new("sh")
        .args(["-c", "setsid \"$@\" & wait", "sh", "sh"])
        .arg(common::fixture("tree.sh"))
        .args([tree.depth.to_string().as_str(), tree.token.as_str()])
        .arg(&tree.pidfile)
}

#[tokio::test]
async fn a_setsid_grandchild_is_killed_under_cgroups() {
    let tree = Tree::new("setsid-cgroup", 2);
    let runner = JobRunner::with_mechanism(Mechanism::CgroupV2);
    let run = runner.start(&setsid_tree_command(&tree)).await.unwrap();
    tree.started().await;
    drop(run);
    tree.assert_gone();
}

#[tokio::test]
async fn a_setsid_escape_is_reported_under_process_groups() {
    let tree = Tree::new("setsid-pgroup", 1);
    // The child starts a grandchild in a new session: it leaves the process group.
    let runner = JobRunner::with_mechanism(Mechanism::ProcessGroup);
    let run = runner.start(&setsid_tree_command(&tree)).await.unwrap();
    let mechanism = run.mechanism().unwrap();
    tree.started().await;
    drop(run);
    // The escape is not hidden: the mechanism says it cannot contain a new session…
    assert_eq!(mechanism, Mechanism::ProcessGroup);
    assert!(!mechanism.contains_whole_tree());
    // …and indeed the session leader survived (the Cleanup guard kills it by pid).
    std::thread::sleep(Duration::from_millis(200));
    assert!(!common::pids_with_token(&tree.token).is_empty());
}
