//! Privilege drop, new sessions and parent-death signals, checked against the
//! real processes: their ids, sessions and cgroups as /proc reports them.
// These tests read /proc and cgroup v2 and exercise PR_SET_PDEATHSIG: Linux only.
#![cfg(target_os = "linux")]

use crate::common;
use crate::common::privileges as privileges_support;

use std::time::Duration;

use tokio::sync::mpsc;

use common::{TempDir, eventually};
use privileges_support::{
    KillOnDrop, LIMIT, LeakedRoots, Proc, acting_as, is_root, park, pid_in, report,
};
use processkit::{
    Command, JobRunner, Mechanism, ProcessGroup, ProcessGroupOptions, ProcessRunnerExt,
};

/// A group on `mechanism`, or `None` (the test is skipped) on a host without it.
fn group_on(mechanism: Mechanism) -> Option<ProcessGroup> {
    match ProcessGroup::with_options(ProcessGroupOptions::default().mechanism(mechanism)) {
        Ok(group) => Some(group),
        Err(processkit::Error::Unsupported { reason, .. }) => {
            eprintln!("skipped: no {mechanism} here: {reason}");
            None
        }
        Err(e) => panic!("cannot create a {mechanism} group: {e}"),
    }
}

/// Starts `cmd` in `group` and returns its stdout lines as they arrive.
async fn start_with_lines(
    group: &ProcessGroup,
    cmd: Command,
) -> (processkit::RunningProcess, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let cmd = cmd.on_stdout_line(move |l| {
        let _ = tx.send(l.to_owned());
    });
    (group.start(&cmd).await.expect("start"), rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .ok()
        .flatten()
        .expect("a line from the child")
}

#[tokio::test]
async fn uid_and_gid_drop_inside_the_groups_cgroup() {
    if !is_root() {
        eprintln!("skipped: dropping privileges needs root");
        return;
    }
    let Some(group) = group_on(Mechanism::CgroupV2) else {
        return;
    };
    let cmd = Command::new("sh")
        .args(["-c", "id -u; id -g; id -G; echo $$; exec sleep 1000"])
        .uid(65534)
        .gid(65534);
    let (_run, mut lines) = start_with_lines(&group, cmd).await;
    assert_eq!(next(&mut lines).await, "65534", "id -u");
    assert_eq!(next(&mut lines).await, "65534", "id -g");
    assert_eq!(
        next(&mut lines).await,
        "65534",
        "supplementary groups are cleared"
    );
    let pid: u32 = next(&mut lines).await.parse().expect("pid");
    let mut guard = KillOnDrop::default();
    let child = guard.add(Proc::of(pid).expect("child alive"));

    assert_eq!(group.mechanism(), Mechanism::CgroupV2);
    let uids = child.status_line("Uid:").expect("Uid line");
    assert!(uids.split_whitespace().all(|u| u == "65534"), "{uids}");
    let cgroup = child.cgroup().expect("cgroup");
    let root = format!("/processkit-{}-", std::process::id());
    assert!(
        cgroup.contains(&root),
        "child cgroup {cgroup} is not below {root}"
    );
    // The group's cgroup is the parent of each run's cgroup: a privileged
    // sibling in the same group shares it, a run in another group does not.
    let group_cgroup = |c: &str| c.rsplit_once('/').map(|(parent, _)| parent.to_owned());
    let sibling = Command::new("sh").args(["-c", "echo $$; exec sleep 1000"]);
    let (_sibling_run, mut sibling_lines) = start_with_lines(&group, sibling).await;
    let sibling = guard.add(Proc::of(next(&mut sibling_lines).await.parse().unwrap()).unwrap());
    let Some(other_group) = group_on(Mechanism::CgroupV2) else {
        return;
    };
    let stranger = Command::new("sh").args(["-c", "echo $$; exec sleep 1000"]);
    let (_stranger_run, mut stranger_lines) = start_with_lines(&other_group, stranger).await;
    let stranger = guard.add(Proc::of(next(&mut stranger_lines).await.parse().unwrap()).unwrap());
    assert_eq!(
        group_cgroup(&cgroup),
        group_cgroup(&sibling.cgroup().unwrap())
    );
    assert_ne!(
        group_cgroup(&cgroup),
        group_cgroup(&stranger.cgroup().unwrap())
    );
    drop(group);
    assert!(
        eventually(LIMIT, || !child.is_alive()),
        "the dropped group killed the child"
    );
}

#[tokio::test]
async fn groups_sets_supplementary_groups() {
    if !is_root() {
        eprintln!("skipped: dropping privileges needs root");
        return;
    }
    let out = Command::new("id")
        .arg("-G")
        .uid(65534)
        .gid(65534)
        .groups([65534, 100])
        .run()
        .await
        .expect("id -G");
    assert_eq!(out, "65534 100");
}

#[tokio::test]
async fn uid_drop_also_works_under_process_groups() {
    if !is_root() {
        eprintln!("skipped: dropping privileges needs root");
        return;
    }
    let cmd = Command::new("sh")
        .args(["-c", "id -u; id -g"])
        .uid(65534)
        .gid(65534);
    let result = JobRunner::with_mechanism(Mechanism::ProcessGroup)
        .run(&cmd)
        .await
        .expect("run");
    assert_eq!(result, "65534\n65534");
}

async fn setsid_tree_dies_with_group(mechanism: Mechanism) {
    let Some(group) = group_on(mechanism) else {
        return;
    };
    let cmd = Command::new("sh")
        .args(["-c", "echo $$; sleep 1000 & echo $!; wait"])
        .setsid();
    let (_run, mut lines) = start_with_lines(&group, cmd).await;
    let mut guard = KillOnDrop::default();
    let child = guard.add(Proc::of(next(&mut lines).await.parse().unwrap()).expect("child"));
    let grandchild =
        guard.add(Proc::of(next(&mut lines).await.parse().unwrap()).expect("grandchild"));

    assert_eq!(
        child.session(),
        Some(child.pid as i32),
        "the child leads a new session"
    );
    assert_eq!(grandchild.session(), Some(child.pid as i32));
    assert_ne!(
        child.session(),
        Proc::of(std::process::id()).unwrap().session(),
        "not our session"
    );
    drop(group);
    assert!(
        eventually(LIMIT, || !child.is_alive() && !grandchild.is_alive()),
        "setsid child and grandchild outlived the {mechanism} group"
    );
}

#[tokio::test]
async fn setsid_child_and_grandchild_die_with_a_cgroup_group() {
    setsid_tree_dies_with_group(Mechanism::CgroupV2).await;
}

#[tokio::test]
async fn setsid_child_and_grandchild_die_with_a_process_group() {
    setsid_tree_dies_with_group(Mechanism::ProcessGroup).await;
}

#[tokio::test]
#[cfg(target_os = "linux")]
async fn setsid_child_and_grandchild_die_with_a_subreaper_group() {
    setsid_tree_dies_with_group(Mechanism::Subreaper).await;
}

#[tokio::test]
async fn create_no_window_is_a_no_op_here() {
    let out = Command::new("echo")
        .arg("hi")
        .create_no_window()
        .run()
        .await;
    assert_eq!(out.expect("runs"), "hi");
}

/// Helper: starts `sh` (armed with `kill_on_parent_death` if `PK_ARM=1`) from
/// a short-lived thread and runtime that then exit, and waits to be killed.
#[test]
#[ignore = "helper process for parent-death tests"]
fn helper_parent_death() {
    if !acting_as("helper_parent_death") {
        return;
    }
    let dir = std::env::var("PK_DIR").expect("PK_DIR");
    let arm = std::env::var("PK_ARM").is_ok_and(|v| v == "1");
    let spawner = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let script = format!("echo $$ > {dir}/child; exec sleep 1000");
            let mut cmd = Command::new("sh").args(["-c", &script]);
            if arm {
                cmd = cmd.kill_on_parent_death();
            }
            let run = cmd.start().await.expect("start child");
            // Outlive this thread and its runtime without killing the child.
            std::mem::forget(run);
        });
    });
    spawner.join().expect("spawning thread");
    report("THREAD_EXITED", 1);
    park();
}

/// Starts the parent-death helper, checks the child outlived the spawning
/// thread, then SIGKILLs the helper. Returns the child and what cleans up after it.
fn parent_death(arm: bool) -> (Proc, KillOnDrop, LeakedRoots) {
    let scratch = TempDir::new("pdeath");
    let dir = scratch.0.to_string_lossy().into_owned();
    let mut helper = privileges_support::Helper::start(
        "helper_parent_death",
        &[
            ("PK_DIR", &dir),
            ("PK_ARM", if arm { "1" } else { "0" }),
            // Neither the guardian nor another owner's sweep of a stale cgroup
            // may kill the child: this tests PDEATHSIG alone.
            ("PROCESSKIT_GUARDIAN", "0"),
            ("PROCESSKIT_MECHANISM", "process-group"),
        ],
    );
    let mut guard = KillOnDrop::default();
    let child = guard.add(pid_in(&scratch, "child"));
    let leaked = LeakedRoots(privileges_support::roots_of(helper.proc.pid));
    helper.value("THREAD_EXITED");
    // Give a wrongly armed signal time to land after the thread's exit.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.is_alive(),
        "the child died with the thread that spawned it"
    );
    helper.kill();
    (child, guard, leaked)
}

#[test]
fn kill_on_parent_death_child_dies_with_a_sigkilled_parent() {
    let (child, _guard, _leaked) = parent_death(true);
    assert!(
        eventually(LIMIT, || !child.is_alive()),
        "the armed child outlived its SIGKILLed parent"
    );
}

#[test]
fn without_kill_on_parent_death_the_child_survives_its_parent() {
    let (child, _guard, _leaked) = parent_death(false);
    // By the time the parent is reaped a parent-death signal would have been sent.
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.is_alive(), "the unarmed child died with its parent");
}

/// Helper: runs as an unprivileged user and asks for uid 0; reports the error.
#[test]
#[ignore = "helper process for the refused-drop test"]
fn helper_unprivileged_drop() {
    if !acting_as("helper_unprivileged_drop") {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let outcome = rt.block_on(Command::new("true").uid(0).gid(0).run());
    match outcome {
        Err(processkit::Error::Spawn { source, .. }) => report("ERROR", format!("Spawn {source}")),
        other => report("ERROR", format!("{other:?}")),
    }
    park();
}

#[test]
fn a_refused_privilege_change_is_a_typed_spawn_error() {
    if !is_root() {
        eprintln!("skipped: needs root to start the unprivileged helper");
        return;
    }
    let helper = privileges_support::Helper::start_as(
        "helper_unprivileged_drop",
        &[("PROCESSKIT_GUARDIAN", "0")],
        65534,
    );
    let error = helper.value("ERROR");
    assert!(error.starts_with("Spawn "), "{error}");
    assert!(error.contains("not permitted"), "{error}");
}
