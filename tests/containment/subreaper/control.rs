//! The subreaper beyond a single teardown: an owner SIGKILLed with three
//! groups of daemons, a thousand orphans reaped, per-run kill in a shared
//! group, and signal/suspend/resume/members reaching a `setsid` grandchild.

use super::{
    Escape, EscapingTree, LIMIT, escape_command, exists, group_on, is_shim, ppid, shim_of, size_of,
    state, whole_tree,
};
use crate::common;
use crate::groupctl_support::note;

use std::time::{Duration, Instant};

use common::privileges::{Helper, KillOnDrop, Proc, acting_as, park, report};
use common::{Cleanup, TempDir, all_pids, eventually, eventually_async, read_pids, token};
use processkit::Mechanism;

/// Live pk-shims whose parent is `owner`.
fn shims_of(owner: u32) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|&pid| is_shim(pid) && shim_of(pid, owner))
        .collect()
}

/// Pids whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|&pid| ppid(pid) == Some(parent))
        .collect()
}

/// Zombies whose parent is this process or one of its shims. As PID 1
/// this process inherits every orphan of its container (the orphan reaper's
/// business, proven in `orphans::`): only the shims' zombies count then.
fn our_zombies() -> Vec<u32> {
    let me = std::process::id();
    let mut parents = shims_of(me);
    if me != 1 {
        parents.push(me);
    }
    all_pids()
        .into_iter()
        .filter(|&pid| state(pid).as_deref() == Some("Z"))
        .filter(|&pid| ppid(pid).is_some_and(|p| parents.contains(&p)))
        .collect()
}

const OWNER: &str = "helper_owner_of_three_subreaper_groups";

/// Helper: three subreaper groups, each holding a double-forked daemon tree
/// that writes its pids to `PK_DIR/g<N>/pids`; then waits to be SIGKILLed.
#[test]
#[ignore = "helper process for the owner-death test"]
fn helper_owner_of_three_subreaper_groups() {
    if !acting_as(OWNER) {
        return;
    }
    let dir = std::path::PathBuf::from(std::env::var("PK_DIR").expect("PK_DIR"));
    let token = std::env::var("PK_TOKEN").expect("PK_TOKEN");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        for n in 0..3 {
            let group = group_on(Mechanism::Subreaper);
            let sub = dir.join(format!("g{n}"));
            std::fs::create_dir_all(&sub).expect("group dir");
            let cmd = escape_command(Escape::DoubleForkDaemon, &token, &sub);
            let run = group.start(&cmd).await.expect("start");
            std::mem::forget((run, group));
        }
    });
    report("READY", 3);
    park();
}

/// Each shim sees its owner's socket close and kills its tree itself; the
/// guardian, when there is one, may help.
fn sigkilled_owner_leaves_nothing(guardian: &str) {
    // As PID 1, the dead owner's shims re-parent to us: a PID 1 program
    // reaps its orphans, as its docs say it must.
    if std::process::id() == 1 {
        processkit::reap_orphans().expect("the orphan reaper starts");
    }
    let scratch = TempDir::new("owner");
    let token = token("owner");
    let pidfiles: Vec<_> = (0..3).map(|n| scratch.join(format!("g{n}/pids"))).collect();
    let _cleanups: Vec<Cleanup> = pidfiles
        .iter()
        .map(|f| Cleanup::token(&token).pidfile(f))
        .collect();
    let dir = scratch.0.to_string_lossy().into_owned();
    let env = [
        ("PK_DIR", dir.as_str()),
        ("PK_TOKEN", token.as_str()),
        ("PROCESSKIT_GUARDIAN", guardian),
    ];
    let mut owner = Helper::start(OWNER, &env);
    assert_eq!(owner.value("READY"), "3");
    let want = size_of(Escape::DoubleForkDaemon);
    let started = eventually(LIMIT, || {
        pidfiles.iter().all(|f| read_pids(f).len() >= want)
    });
    assert!(started, "trees did not start");
    let mut guard = KillOnDrop::default();
    let mut all: Vec<Proc> = pidfiles
        .iter()
        .flat_map(|f| read_pids(f))
        .filter_map(Proc::of)
        .map(|p| guard.add(p))
        .collect();
    assert_eq!(all.len(), 3 * want, "every member alive: {all:?}");
    let shims: Vec<Proc> = shims_of(owner.proc.pid)
        .into_iter()
        .filter_map(Proc::of)
        .map(|p| guard.add(p))
        .collect();
    assert_eq!(shims.len(), 3, "one shim per run: {shims:?}");
    // Each program and each daemon is a shim's child: the shims hold the trees.
    let held = || {
        let parents: Vec<u32> = all.iter().filter_map(|p| ppid(p.pid)).collect();
        parents
            .iter()
            .filter(|p| shims.iter().any(|s| s.pid == **p))
            .count()
    };
    assert!(
        eventually(LIMIT, || held() == 6),
        "{} held by shims",
        held()
    );
    all.extend(&shims);

    let killed_at = Instant::now();
    owner.kill();
    let gone = eventually(LIMIT, || all.iter().all(|p| !p.is_alive()));
    note(&format!(
        "subreaper (PROCESSKIT_GUARDIAN={guardian:?}): {} processes gone {:?} after the owner's SIGKILL",
        all.len(),
        killed_at.elapsed()
    ));
    let alive: Vec<_> = all.iter().filter(|p| p.is_alive()).collect();
    assert!(gone, "survivors of the owner's SIGKILL: {alive:?}");
    let reaped = eventually(LIMIT, || all.iter().all(|p| !exists(p)));
    let zombies: Vec<_> = all.iter().filter(|p| exists(p)).collect();
    assert!(reaped, "zombies left: {zombies:?}");
}

#[test]
fn a_sigkilled_owner_leaves_no_descendant_and_no_zombie() {
    // An empty value is the default: a guardian runs.
    sigkilled_owner_leaves_nothing("");
}

#[test]
fn a_sigkilled_owner_leaves_no_descendant_without_a_guardian() {
    sigkilled_owner_leaves_nothing("0");
}

#[tokio::test]
async fn a_thousand_runs_that_leave_orphans_leave_no_zombies() {
    let group = group_on(Mechanism::Subreaper);
    let token = token("orphans");
    let _cleanup = Cleanup::token(&token);
    // The `sleep` outlives its shell: an orphan the shim must reap.
    let cmd = common::sh_as("sleep 0.01 & :", &token);
    for n in 0..1000 {
        let mut run = group.start(&cmd).await.unwrap();
        assert_eq!(run.wait().await.unwrap(), Some(0), "run {n}");
    }
    let none = eventually_async(LIMIT, || our_zombies().is_empty()).await;
    assert!(none, "zombies under us or our shims: {:?}", our_zombies());
    // A shim whose tree is empty exits (and is reaped) while the group lives.
    let me = std::process::id();
    let idle = || -> Vec<u32> {
        let shims = shims_of(me);
        shims
            .into_iter()
            .filter(|&s| children_of(s).is_empty())
            .collect()
    };
    let settled = eventually_async(LIMIT, || idle().is_empty()).await;
    assert!(settled, "shims with nothing left to hold: {:?}", idle());
    drop(group);
}

#[tokio::test]
async fn killing_one_run_kills_only_its_tree_in_a_shared_group() {
    for mechanism in whole_tree() {
        let group = group_on(mechanism);
        let killed = EscapingTree::new(Escape::SetsidGrandchild);
        let spared = EscapingTree::new(Escape::SetsidGrandchild);
        let mut run = group.start(&killed.command()).await.unwrap();
        let killed_members = killed.started().await;
        let other = group.start(&spared.command()).await.unwrap();
        let spared_members = spared.started().await;

        run.kill().unwrap();
        assert_eq!(run.wait().await.unwrap(), None, "{mechanism}: killed");
        killed.assert_gone(
            &killed_members,
            &format!("its run's kill under {mechanism}"),
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            spared_members.iter().all(Proc::is_alive),
            "{mechanism}: the other run's tree was hit: {spared_members:?}"
        );
        // Its handle goes too: a direct child stays a zombie until reaped.
        drop((group, other));
        spared.assert_gone(
            &spared_members,
            &format!("the group's drop under {mechanism}"),
        );
    }
}

/// A child that starts a `setsid` grandchild; both trap SIGUSR1 (writing
/// `outer`/`inner` to `$1/usr1`), write their pids to `$1/outer` and `$1/inner`,
/// and loop on short sleeps.
#[cfg(feature = "process-control")]
const TRAPPING_TREE: &str = r#"setsid sh -c 'trap "echo inner >> \"$1/usr1\"" USR1
    echo $$ > "$1/inner"; while :; do sleep 0.05; done' "$0" "$1" &
    trap 'echo outer >> "$1/usr1"' USR1
    echo $$ > "$1/outer"; while :; do sleep 0.05; done"#;

#[cfg(feature = "process-control")]
#[tokio::test]
async fn signal_suspend_resume_and_members_reach_a_setsid_grandchild() {
    use common::privileges::pid_in;
    use processkit::Signal;

    let group = group_on(Mechanism::Subreaper);
    let scratch = TempDir::new("control");
    let token = token("control");
    let _cleanup = Cleanup::token(&token);
    let cmd = common::sh_as(TRAPPING_TREE, &token).arg(scratch.path());
    let run = group.start(&cmd).await.unwrap();
    let mut guard = KillOnDrop::default();
    let outer = guard.add(pid_in(&scratch, "outer"));
    let inner = guard.add(pid_in(&scratch, "inner"));
    let shim = ppid(outer.pid).expect("the program's parent");
    assert!(
        is_shim(shim),
        "the program's parent {shim} is not a pk-shim"
    );

    let members = group.members().unwrap();
    assert!(
        members.contains(&inner.pid) && members.contains(&outer.pid),
        "members {members:?} lack the child {} or the setsid grandchild {}",
        outer.pid,
        inner.pid
    );
    let shims: Vec<&u32> = members
        .iter()
        .filter(|&&p| p == shim || is_shim(p))
        .collect();
    assert!(shims.is_empty(), "shims among the members: {shims:?}");

    group.signal(Signal::Usr1).unwrap();
    let usr1 = scratch.join("usr1");
    let both = || std::fs::read_to_string(&usr1).unwrap_or_default();
    let reached = eventually_async(LIMIT, || {
        both().contains("inner") && both().contains("outer")
    });
    assert!(reached.await, "SIGUSR1 reached only {:?}", both());

    group.suspend().unwrap();
    // A shell caught in vfork waits (`D`) for its child, stopped before exec:
    // it cannot run either, and stops the moment the child is let go.
    let suspended = |pid: u32| match state(pid).as_deref() {
        Some("T") => true,
        Some("D") => children_of(pid)
            .iter()
            .any(|&c| state(c).as_deref() == Some("T")),
        _ => false,
    };
    let stopped = eventually_async(LIMIT, || [outer, inner].iter().all(|p| suspended(p.pid)));
    assert!(
        stopped.await,
        "suspended: child {:?}, grandchild {:?}",
        state(outer.pid),
        state(inner.pid)
    );
    group.resume().unwrap();
    let running = eventually_async(LIMIT, || {
        [outer, inner]
            .iter()
            .all(|p| state(p.pid).as_deref() != Some("T"))
    });
    assert!(
        running.await,
        "resumed: child {:?}, grandchild {:?}",
        state(outer.pid),
        state(inner.pid)
    );

    drop((group, run));
    let gone = eventually_async(LIMIT, || !exists(&outer) && !exists(&inner)).await;
    assert!(gone, "left: {:?} {:?}", state(outer.pid), state(inner.pid));
}
