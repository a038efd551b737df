//! The guardian: a SIGKILLed owner leaves no descendant behind under either
//! mechanism, the guardian itself is detached and gone afterwards, and the
//! stale sweep removes a dead owner's cgroup but never a live owner's.
// These tests read /proc and cgroup v2 and exercise PR_SET_PDEATHSIG: Linux only.
#![cfg(target_os = "linux")]

use crate::common;
use crate::common::privileges as privileges_support;

use std::sync::Mutex;

use common::{TempDir, eventually};
use privileges_support::{
    Helper, KillOnDrop, LIMIT, Proc, acting_as, own_cgroup_dir, park, pid_in, report, roots_of,
};
use processkit::{
    Command, GuardianStatus, Mechanism, ProcessGroup, ProcessGroupOptions, guardian_status,
};

/// Helpers sweep stale roots when they start; one at a time keeps each test's
/// view of the cgroup tree its own.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn status_word(status: &GuardianStatus) -> String {
    match status {
        GuardianStatus::Running { pid } => format!("Running {pid}"),
        other => format!("{other:?}"),
    }
}

fn in_runtime<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn guardian_of_this_process() -> Proc {
    match guardian_status() {
        GuardianStatus::Running { pid } => Proc::of(pid).expect("guardian alive"),
        other => panic!("no guardian: {other:?}"),
    }
}

#[tokio::test]
async fn the_first_container_starts_a_detached_guardian() {
    let _group = ProcessGroup::new().expect("group");
    let guardian = guardian_of_this_process();
    // The guardian detaches right after fork; give it a moment to get there.
    let open_fds = || -> Vec<_> {
        std::fs::read_dir(format!("/proc/{}/fd", guardian.pid))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| std::fs::read_link(e.path()).unwrap_or_default())
            .collect()
    };
    let comm =
        || std::fs::read_to_string(format!("/proc/{}/comm", guardian.pid)).unwrap_or_default();
    let ours = Proc::of(std::process::id()).unwrap();
    let detached = eventually(LIMIT, || {
        comm().trim() == "pk-guardian"
            && guardian.session() == Some(guardian.pid as i32)
            && open_fds().len() == 1
    });
    assert!(
        detached,
        "comm {:?}, session {:?}, fds {:?}",
        comm(),
        guardian.session(),
        open_fds()
    );
    assert_ne!(guardian.pgid(), ours.pgid(), "outside our process group");
    let fds = open_fds();
    assert!(fds[0].to_string_lossy().starts_with("socket:"), "{fds:?}");
    if let Some(cgroup) = guardian.cgroup() {
        assert!(
            !cgroup.contains("processkit-"),
            "the guardian lives outside the root it kills: {cgroup}"
        );
    }
    // A second container reuses the same guardian.
    let _again = ProcessGroup::new().expect("group");
    assert_eq!(guardian_of_this_process(), guardian);
}

#[tokio::test]
async fn the_guardian_ignores_terminal_signals() {
    let _group = ProcessGroup::new().expect("group");
    let guardian = guardian_of_this_process();
    let mask = || {
        let ignored = guardian.status_line("SigIgn:").unwrap_or_default();
        u64::from_str_radix(&ignored, 16).unwrap_or(0)
    };
    let tstp = 1 << (20 - 1);
    assert!(
        eventually(LIMIT, || mask() & tstp != 0),
        "the guardian never ignored SIGTSTP"
    );
    let mask = mask();
    for (name, number) in [("HUP", 1), ("INT", 2), ("QUIT", 3), ("TSTP", 20)] {
        assert!(mask & (1 << (number - 1)) != 0, "SIG{name} not ignored");
        let sent = std::process::Command::new("kill")
            .args([&format!("-{name}"), &guardian.pid.to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(guardian.is_alive());
    assert_ne!(
        guardian.stat_field(3).as_deref(),
        Some("T"),
        "not stopped by SIGTSTP"
    );
    assert_eq!(guardian_of_this_process(), guardian);
}

/// Helper: a group on `PK_MECH` holding a three-level tree that writes its
/// pids into `PK_DIR`; reports the guardian and waits to be SIGKILLed.
#[test]
#[ignore = "helper process for guardian tests"]
fn helper_guarded_tree() {
    if !acting_as("helper_guarded_tree") {
        return;
    }
    let dir = std::env::var("PK_DIR").expect("PK_DIR");
    let mechanism = Mechanism::from_name(&std::env::var("PK_MECH").unwrap()).unwrap();
    in_runtime(async {
        let group = ProcessGroup::with_options(ProcessGroupOptions::default().mechanism(mechanism))
            .expect("group");
        let script = r#"echo $$ > "$1/l1"
            sh -c 'echo $$ > "$1/l2"; sleep 1000 & echo $! > "$1/l3"; wait' "$0" "$1"
            wait"#;
        let tree = Command::new("sh").args(["-c", script, "pk-guarded-tree", &dir]);
        let run = group.start(&tree).await.expect("start tree");
        report("MECH", group.mechanism());
        report("GUARDIAN", status_word(&guardian_status()));
        std::mem::forget((run, group));
    });
    park();
}

fn sigkilled_owner_leaves_no_descendant(mechanism: Mechanism) {
    let options = ProcessGroupOptions::default().mechanism(mechanism);
    if let Err(e) = ProcessGroup::with_options(options) {
        eprintln!("skipped: no {mechanism} here: {e}");
        return;
    }
    let _serial = serial();
    let scratch = TempDir::new("guardian");
    let dir = scratch.0.to_string_lossy().into_owned();
    let mut helper = Helper::start(
        "helper_guarded_tree",
        &[("PK_DIR", &dir), ("PK_MECH", mechanism.name())],
    );
    let mut guard = KillOnDrop::default();
    let tree = ["l1", "l2", "l3"].map(|level| guard.add(pid_in(&scratch, level)));
    assert_eq!(helper.value("MECH"), mechanism.name());
    let status = helper.value("GUARDIAN");
    let guardian_pid = status
        .strip_prefix("Running ")
        .expect(&status)
        .parse()
        .unwrap();
    let guardian = guard.add(Proc::of(guardian_pid).expect("guardian alive"));
    let roots = roots_of(helper.proc.pid);
    if mechanism == Mechanism::CgroupV2 {
        assert_eq!(roots.len(), 1, "one per-process root: {roots:?}");
    }
    assert!(tree.iter().all(Proc::is_alive), "tree is up");

    helper.kill();
    let killed_at = std::time::Instant::now();
    let tree_gone = eventually(LIMIT, || tree.iter().all(|p| !p.is_alive()));
    eprintln!(
        "{mechanism}: tree gone {:?} after the owner's SIGKILL",
        killed_at.elapsed()
    );
    assert!(
        tree_gone,
        "descendants outlived their SIGKILLed owner under {mechanism}: {:?}",
        tree.iter().filter(|p| p.is_alive()).collect::<Vec<_>>()
    );
    assert!(
        eventually(LIMIT, || !guardian.is_alive()),
        "the guardian stayed"
    );
    assert!(
        eventually(LIMIT, || roots.iter().all(|r| !r.exists())),
        "the guardian left the root behind: {roots:?}"
    );
}

#[test]
fn a_sigkilled_owner_leaves_no_descendant_under_cgroups() {
    sigkilled_owner_leaves_no_descendant(Mechanism::CgroupV2);
}

#[test]
fn a_sigkilled_owner_leaves_no_descendant_under_process_groups() {
    sigkilled_owner_leaves_no_descendant(Mechanism::ProcessGroup);
}

#[test]
fn a_sigkilled_owner_leaves_no_descendant_under_subreaper() {
    sigkilled_owner_leaves_no_descendant(Mechanism::Subreaper);
}

/// Helper: a cgroup group holding one `sleep` that writes its pid to
/// `PK_DIR/child`; reports the guardian status and waits to be killed.
#[test]
#[ignore = "helper process for stale-sweep tests"]
fn helper_hold() {
    if !acting_as("helper_hold") {
        return;
    }
    let dir = std::env::var("PK_DIR").expect("PK_DIR");
    in_runtime(async {
        let group = ProcessGroup::with_options(
            ProcessGroupOptions::default().mechanism(Mechanism::CgroupV2),
        )
        .expect("cgroup group");
        let hold = Command::new("sh").args([
            "-c",
            r#"echo $$ > "$1/child"; exec sleep 1000"#,
            "pk-hold",
            &dir,
        ]);
        let run = group.start(&hold).await.expect("start");
        report("STATUS", status_word(&guardian_status()));
        std::mem::forget((run, group));
    });
    park();
}

#[test]
fn the_stale_sweep_removes_a_dead_owners_cgroup_but_not_a_live_ones() {
    let cgroups = ProcessGroupOptions::default().mechanism(Mechanism::CgroupV2);
    if own_cgroup_dir().is_none() || ProcessGroup::with_options(cgroups).is_err() {
        eprintln!("skipped: no cgroup v2 here");
        return;
    }
    let _serial = serial();
    let mut guard = KillOnDrop::default();
    let (dead, live, next) = (
        TempDir::new("dead"),
        TempDir::new("live"),
        TempDir::new("next"),
    );
    let path = |s: &TempDir| s.0.to_string_lossy().into_owned();

    let mut dead_owner = Helper::start(
        "helper_hold",
        &[("PK_DIR", &path(&dead)), ("PROCESSKIT_GUARDIAN", "0")],
    );
    assert_eq!(dead_owner.value("STATUS"), "Disabled");
    let dead_child = guard.add(pid_in(&dead, "child"));
    let dead_roots = roots_of(dead_owner.proc.pid);
    let live_owner = Helper::start("helper_hold", &[("PK_DIR", &path(&live))]);
    assert!(live_owner.value("STATUS").starts_with("Running"));
    let live_child = guard.add(pid_in(&live, "child"));
    let live_roots = roots_of(live_owner.proc.pid);
    assert_eq!((dead_roots.len(), live_roots.len()), (1, 1));

    dead_owner.kill();
    let left_behind = dead_roots[0].exists() && dead_child.is_alive();
    let next_owner = Helper::start("helper_hold", &[("PK_DIR", &path(&next))]);
    next_owner.value("STATUS");
    let swept = eventually(LIMIT, || !dead_roots[0].exists() && !dead_child.is_alive());
    let live_kept = live_roots[0].exists() && live_child.is_alive();
    for root in dead_roots.iter().filter(|r| r.exists()) {
        privileges_support::remove_cgroup_tree(root);
    }
    assert!(
        left_behind,
        "without a guardian the dead owner's cgroup stays until a sweep"
    );
    assert!(
        swept,
        "the next owner did not sweep the dead owner's cgroup"
    );
    assert!(live_kept, "the sweep touched a live owner's cgroup");
}

/// Helper: starts a group, reports its guardian, then reports the status it
/// sees once the test has killed that guardian.
#[test]
#[ignore = "helper process for guardian tests"]
fn helper_watch_guardian() {
    if !acting_as("helper_watch_guardian") {
        return;
    }
    in_runtime(async {
        let group = ProcessGroup::new().expect("group");
        report("GUARDIAN", status_word(&guardian_status()));
        let gone = eventually(LIMIT, || {
            !matches!(guardian_status(), GuardianStatus::Running { .. })
        });
        report("GONE", gone);
        report("AFTER", format!("{:?}", guardian_status()));
        // Groups keep working without a guardian.
        let out = group.start(&Command::new("true")).await.map(|_| "started");
        report("GROUP", format!("{out:?}"));
    });
    park();
}

#[test]
fn a_guardian_that_died_is_reported_with_a_reason() {
    let _serial = serial();
    let mut helper = Helper::start("helper_watch_guardian", &[]);
    let status = helper.value("GUARDIAN");
    let pid: u32 = status
        .strip_prefix("Running ")
        .expect(&status)
        .parse()
        .unwrap();
    let guardian = Proc::of(pid).expect("guardian alive");
    guardian.kill();
    assert_eq!(helper.value("GONE"), "true");
    let after = helper.value("AFTER");
    assert!(
        after.starts_with("Unavailable") && after.contains("killed by signal 9"),
        "{after}"
    );
    let group = helper.value("GROUP");
    // Without its guardian the helper's root outlives it: remove it here.
    helper.kill();
    for root in roots_of(helper.proc.pid) {
        privileges_support::remove_cgroup_tree(&root);
    }
    assert_eq!(group, r#"Ok("started")"#);
}
