//! `Command::spawn_detached`: the child is outside every container and is
//! nobody's child of ours. A re-executed copy of this binary (the owner)
//! makes a group, starts a detached helper and exits without any teardown
//! of its own; the guardian then kills the group, and the detached helper
//! is still alive. Every helper is killed by pid when the test ends.
#![cfg(target_os = "linux")]

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::{
    HelperTree, KillPidOnDrop, TempDir, eventually_async, is_alive, pids_with_token, test_named,
};
use processkit::{Command, Error, Mechanism, ProcessGroup, Stdin, Stdio};

/// The test whose process acts as the detached helper.
const MEMBER: &str = "detached_member";
/// The test whose process acts as the owner.
const OWNER: &str = "detached_owner";
/// Where the owner writes the detached pid (set only in the owner).
const OWNER_OUT: &str = "PK_DETACH_OWNER_OUT";
const OWNER_TOKEN: &str = "PK_DETACH_OWNER_TOKEN";

/// Not a test of its own: the detached helper's entry point.
#[test]
fn detached_member() {
    common::act_as_tree_member();
}

/// `pid`'s `(ppid, pgid, sid)` from /proc.
fn ids(pid: u32) -> (u32, u32, u32) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<u32> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .skip(1)
        .take(3)
        .map(|f| f.parse().unwrap())
        .collect();
    (fields[0], fields[1], fields[2])
}

/// Our children that are zombies (read from every process's stat).
fn zombie_children() -> Vec<u32> {
    let me = std::process::id();
    common::all_pids()
        .into_iter()
        .filter(|&pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let mut rest = stat
                .rsplit_once(')')
                .map_or("", |(_, r)| r)
                .split_whitespace();
            rest.next() == Some("Z") && rest.next() == Some(&me.to_string())
        })
        .collect()
}

/// The member command the owner starts: this binary, as the helper.
fn member(token: &str) -> Command {
    let exe = std::env::current_exe().unwrap();
    Command::new(exe).args([
        "--exact",
        &test_named(MEMBER),
        "--nocapture",
        "--test-threads=1",
        token,
    ])
}

/// Not a test of its own: the owner's entry point (a no-op in a test run).
/// It needs the helper's environment (`HelperTree::env`) to pass on.
#[test]
fn detached_owner() {
    let (Some(out), Some(token)) = (std::env::var_os(OWNER_OUT), std::env::var(OWNER_TOKEN).ok())
    else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // A group with a member, so the guardian (and, under the subreaper
        // mechanism, the zygote) are running when the owner goes.
        let group = ProcessGroup::new().unwrap();
        let marker = format!("{token}-in-group");
        group
            .start(&Command::new("sh").args(["-c", &format!("sleep 600; : {marker}")]))
            .await
            .unwrap();
        let pid = member(&token).spawn_detached().unwrap();
        assert_ne!(ids(pid).0, std::process::id(), "the helper is our child");
        assert!(zombie_children().is_empty(), "{:?}", zombie_children());
        std::fs::write(&out, pid.to_string()).unwrap();
        // No Drop, no teardown of ours: the guardian ends the group.
        std::mem::forget(group);
        std::process::exit(0);
    });
}

#[tokio::test]
async fn a_detached_child_outlives_its_owner_under_every_mechanism() {
    let mechanisms = [
        Mechanism::CgroupV2,
        Mechanism::Subreaper,
        Mechanism::ProcessGroup,
    ];
    for mechanism in mechanisms {
        if ProcessGroup::with_options(
            processkit::ProcessGroupOptions::default().mechanism(mechanism),
        )
        .is_err()
        {
            continue;
        }
        let tree = HelperTree::new("detached-owner", 1);
        let scratch = TempDir::new("detached-owner-out");
        let out = scratch.join("pid");
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                &test_named(OWNER),
                "--nocapture",
                "--test-threads=1",
            ])
            .envs(tree.env())
            .env(OWNER_OUT, &out)
            .env(OWNER_TOKEN, &tree.token)
            .env("PROCESSKIT_MECHANISM", mechanism.to_string())
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "{mechanism}: the owner failed: {status:?}"
        );
        let pid: u32 = std::fs::read_to_string(&out)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let _guard = KillPidOnDrop(Some(pid));
        assert_eq!(tree.started().await, vec![pid], "{mechanism}");
        // The guardian ends the owner's group...
        let marker = format!("{}-in-group", tree.token);
        let group_gone = eventually_async(Duration::from_secs(30), || {
            pids_with_token(&marker).is_empty()
        })
        .await;
        assert!(group_gone, "{mechanism}: the owner's group outlived it");
        // ...and leaves the detached child alone.
        assert!(
            is_alive(pid),
            "{mechanism}: the detached child died with its owner"
        );
        assert_eq!(tree.survivors(), vec![pid]);
    }
}

#[tokio::test]
async fn a_detached_child_is_in_its_own_session_and_no_container() {
    let tree = HelperTree::new("detached-here", 1);
    let mut cmd = member(&tree.token);
    for (name, value) in tree.env() {
        cmd = cmd.env(name, value);
    }
    let pid = cmd.spawn_detached().unwrap();
    let _guard = KillPidOnDrop(Some(pid));
    assert_eq!(tree.started().await, vec![pid]);
    let (ppid, pgid, sid) = ids(pid);
    let me = std::process::id();
    let (_, my_pgid, my_sid) = ids(me);
    assert_ne!(ppid, me);
    assert_ne!(pgid, my_pgid);
    assert_ne!(sid, my_sid);
    // It does not lead its session: it can never get a controlling terminal.
    assert_ne!(sid, pid);
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(!cgroup.contains("processkit-"), "{cgroup}");
    assert!(!zombie_children().contains(&ppid));
}

#[tokio::test]
async fn its_stdio_defaults_to_the_null_device() {
    let tree = HelperTree::new("detached-stdio", 1);
    let mut cmd = member(&tree.token);
    for (name, value) in tree.env() {
        cmd = cmd.env(name, value);
    }
    let pid = cmd.spawn_detached().unwrap();
    let _guard = KillPidOnDrop(Some(pid));
    assert_eq!(tree.started().await, vec![pid]);
    for fd in 0..3 {
        let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap();
        assert_eq!(target, Path::new("/dev/null"), "fd {fd}");
    }
}

#[tokio::test]
async fn stdout_can_go_to_a_file_and_the_environment_applies() {
    let scratch = TempDir::new("detached-file");
    let log = scratch.join("log");
    let file = std::fs::File::create(&log).unwrap();
    Command::new("sh")
        .args(["-c", "echo \"$PK_DETACHED_VALUE in $(pwd)\""])
        .env("PK_DETACHED_VALUE", "hello")
        .current_dir(scratch.path())
        .stdout(Stdio::file(file))
        .spawn_detached()
        .unwrap();
    let want = format!("hello in {}\n", scratch.path().display());
    let written = eventually_async(Duration::from_secs(30), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t == want)
    })
    .await;
    assert!(written, "{:?}", std::fs::read_to_string(&log));
}

#[tokio::test]
async fn what_cannot_apply_to_a_detached_child_is_refused() {
    let invalid = |cmd: Command| match cmd.spawn_detached() {
        Err(Error::InvalidCommand { .. }) => {}
        other => panic!("expected InvalidCommand, got {other:?}"),
    };
    invalid(Command::new("true").timeout(Duration::from_secs(1)));
    invalid(Command::new("true").idle_timeout(Duration::from_secs(1)));
    invalid(Command::new("true").kill_on_parent_death());
    invalid(Command::new("cat").stdin(Stdin::from_string("data")));
    invalid(Command::new("cat").keep_stdin_open());
}

#[test]
fn a_missing_program_is_not_found() {
    let err = Command::new("processkit-no-such-program-here")
        .spawn_detached()
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let dir = Path::new("/processkit-no-such-dir");
    let err = Command::new("true")
        .current_dir(dir)
        .spawn_detached()
        .unwrap_err();
    assert!(matches!(err, Error::WorkingDirectory { .. }), "{err:?}");
    // Other tests of this binary run at once: their children may be zombies
    // for a moment before they are reaped; one left by a refused start stays.
    assert!(
        common::eventually(Duration::from_secs(5), || zombie_children().is_empty()),
        "{:?}",
        zombie_children()
    );
}
