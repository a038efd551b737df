//! The core under faults: fds exhausted at every step of a run, pids recycled
//! under a group's feet, a second program sweeping from another pid
//! namespace, a SIGKILLed owner of three groups, and concurrent drop/cancel
//! races. Every scenario runs in a re-executed copy of this binary (under
//! `prlimit`, or `unshare` with a cgroup of its own), so the damage it does
//! never reaches the test harness; the outer test watches from /proc.
#![cfg(all(target_os = "linux", feature = "process-control"))]

#[path = "../common/mod.rs"]
mod common;
mod support;
use common::privileges as privileges_support;

use std::time::Duration;

use common::{TempDir, eventually, read_pids};
use privileges_support::{KillOnDrop, Proc, is_root};
use processkit::{Mechanism, ProcessGroup, ProcessGroupOptions, StreamExt, guardian_status};
use support::*;

/// The mechanisms this host offers, each with the env value that forces it.
fn mechanisms() -> Vec<Mechanism> {
    [
        Mechanism::CgroupV2,
        Mechanism::Subreaper,
        Mechanism::ProcessGroup,
    ]
    .into_iter()
    .filter(|&m| {
        let ok = ProcessGroup::with_options(ProcessGroupOptions::default().mechanism(m));
        if let Err(e) = &ok {
            say(&format!("SKIP: {m} is not available here: {e}"));
        }
        ok.is_ok()
    })
    .collect()
}

// ---------------------------------------------------------------------------
// fd exhaustion

/// Runs `test`'s scenario under RLIMIT_NOFILE 64 once per mechanism; after
/// each `PK CHECK <what>` line, the marked processes must be gone within
/// LIMIT while the scenario still holds its fds exhausted.
fn under_fd_exhaustion(test: &str) {
    if !prlimit_works() {
        say(&format!("SKIP: {test}: prlimit is unavailable"));
        return;
    }
    let mut failures = Vec::new();
    for mechanism in mechanisms() {
        let (mark, cleanup) = new_mark("fds");
        let expect = guardian_word();
        let env = [
            (MARK_VALUE, mark.as_str()),
            ("PROCESSKIT_MECHANISM", mechanism.name()),
            ("PK_EXPECT_GUARDIAN", expect.as_str()),
        ];
        let wrap = Wrap {
            nofile: Some(64),
            ..Wrap::default()
        };
        let scenario = Scenario::start(test, &env, &wrap);
        while let Some(what) = scenario.next("CHECK", Duration::from_secs(60)) {
            if eventually(LIMIT, || marked(&mark).is_empty()) {
                say(&format!(
                    "{test} under {mechanism}: {what}: nothing survived"
                ));
                continue;
            }
            failures.push(format!(
                "under {mechanism}: {what}: still alive {:?} after {LIMIT:?} while fds stay exhausted",
                describe(marked(&mark))
            ));
            drop(KillMarked(mark.clone()));
        }
        let ended = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            scenario.passed(&format!("{test} under {mechanism}"))
        }));
        if let Err(panic) = ended {
            let text = panic.downcast_ref::<String>().cloned().unwrap_or_default();
            failures.push(text);
        }
        drop(cleanup);
    }
    assert!(failures.is_empty(), "{test}:\n{}", failures.join("\n"));
}

/// The guardian's state in one word ("Running" or the variant's name).
fn guardian_word() -> String {
    let _ = ProcessGroup::new();
    match guardian_status() {
        processkit::GuardianStatus::Running { .. } => "Running".into(),
        other => format!("{other:?}"),
    }
}

/// Holds `fds` for HOLD after telling the test to look, then frees them.
fn look_now(what: &str, fds: Vec<std::fs::File>) {
    tell("CHECK", what);
    std::thread::sleep(HOLD);
    drop(fds);
}

#[test]
fn fds_exhausted_before_the_first_run_give_a_typed_error_and_no_downgrade() {
    const TEST: &str = "fds_exhausted_before_the_first_run_give_a_typed_error_and_no_downgrade";
    if !is_scenario(TEST) {
        return under_fd_exhaustion(TEST);
    }
    block_on(async {
        let fds = exhaust_fds();
        let got = sh("echo ran; exec sleep 30").output_string().await;
        let err = got.expect_err("a run with no fd left must fail");
        say(&format!("cold start out of fds: {err}"));
        look_now("cold start refused", fds);
        // The failure was transient: the process must not stay downgraded.
        let group = ProcessGroup::new().expect("a group once fds are back");
        let wanted = std::env::var("PROCESSKIT_MECHANISM").unwrap();
        assert_eq!(
            group.mechanism().name(),
            wanted,
            "one EMFILE at first use downgraded the mechanism for good"
        );
        let out = sh("echo ran").run().await.expect("a run once fds are back");
        assert_eq!(out, "ran");
        assert_eq!(
            guardian_word(),
            std::env::var("PK_EXPECT_GUARDIAN").unwrap(),
            "one EMFILE at first use left the guardian unavailable for good"
        );
    });
}

#[test]
fn fds_exhausted_before_start_give_typed_errors_and_start_nothing() {
    const TEST: &str = "fds_exhausted_before_start_give_typed_errors_and_start_nothing";
    if !is_scenario(TEST) {
        return under_fd_exhaustion(TEST);
    }
    block_on(async {
        sh("true").run().await.expect("warm-up run");
        let group = ProcessGroup::new().expect("group");
        let mut fds = exhaust_fds();
        let cmd = sh("echo ran; exec sleep 30");
        // A refused start closes what it had opened (a ready cgroup's
        // descriptors among them): take those too before the next verb.
        let start = cmd.start().await.map(drop);
        exhaust_more(&mut fds);
        let output = cmd.output_string().await.map(drop);
        exhaust_more(&mut fds);
        let code = cmd.exit_code().await.map(drop);
        exhaust_more(&mut fds);
        let grouped = group.start(&cmd).await.map(drop);
        exhaust_more(&mut fds);
        let piped = (sh("echo ran") | sh("cat")).run().await.map(drop);
        let new_group = ProcessGroup::new().map(drop);
        for (verb, got) in [
            ("start", start),
            ("output_string", output),
            ("exit_code", code),
            ("group.start", grouped),
            ("pipeline run", piped),
        ] {
            let err = got.expect_err(&format!("{verb} with no fd left must fail"));
            say(&format!("{verb} out of fds: {err}"));
        }
        say(&format!("ProcessGroup::new out of fds: {new_group:?}"));
        look_now("starts refused", fds);
    });
}

#[test]
fn fds_exhausted_after_start_still_end_the_run_and_its_tree() {
    const TEST: &str = "fds_exhausted_after_start_still_end_the_run_and_its_tree";
    if !is_scenario(TEST) {
        return under_fd_exhaustion(TEST);
    }
    block_on(async {
        // A timeout that must fire while no fd is free.
        let mut run = sh("sleep 30 & echo up; wait")
            .timeout(Duration::from_millis(300))
            .start()
            .await
            .expect("start");
        run.wait_for_line(|l| l == "up", Duration::from_secs(10))
            .await
            .expect("tree up");
        let fds = exhaust_fds();
        let waited = tokio::time::timeout(Duration::from_secs(15), run.wait()).await;
        let Ok(waited) = waited else {
            look_now("a timed-out run out of fds", fds);
            panic!("a .timeout(300ms) run was still running 15 s later with fds exhausted");
        };
        say(&format!(
            "timed-out run out of fds: {waited:?}, timed_out {}",
            run.timed_out()
        ));
        // Waiting needs no descriptor: the answer is the timeout, not EMFILE.
        assert!(
            matches!(waited, Ok(None)) && run.timed_out(),
            "out of fds, wait() on a timed-out run gave {waited:?}"
        );
        drop(run);
        look_now("a timed-out run out of fds", fds);

        // A finisher that starts capturing after the fds ran out.
        let run = sh("echo a; echo b >&2; sleep 0.2; echo c")
            .start()
            .await
            .expect("start");
        let fds = exhaust_fds();
        let finished = tokio::time::timeout(Duration::from_secs(15), run.finish_streamed()).await;
        let finished = finished.expect("finish_streamed hung with fds exhausted");
        say(&format!("finish_streamed out of fds: {finished:?}"));
        look_now("a capture out of fds", fds);

        // A capture that grows past the size where a reader thread takes it
        // over, with no descriptor left for that thread: read on as before.
        let mut run = sh("echo go >&2; sleep 1; seq 1200000")
            .start()
            .await
            .expect("start");
        let mut errs = run.stderr_lines();
        assert_eq!(errs.next().await.as_deref(), Some("go"));
        drop(errs);
        let fds = exhaust_fds();
        let exited = tokio::time::timeout(Duration::from_secs(30), run.wait()).await;
        drop(fds);
        let exited = exited.expect("a big capture out of fds hung");
        assert_eq!(exited.expect("wait"), Some(0), "the child lost its stdout");
        let mut out = Vec::new();
        let mut stdout = run.stdout_reader().expect("stdout not taken yet");
        tokio::io::AsyncReadExt::read_to_end(&mut stdout, &mut out)
            .await
            .expect("read the capture");
        let expected: String = (1..=1_200_000).map(|i| format!("{i}\n")).collect();
        assert!(
            out == expected.as_bytes(),
            "a big capture out of fds lost bytes"
        );
    });
}

#[test]
fn fds_exhausted_at_teardown_still_kill_the_tree() {
    const TEST: &str = "fds_exhausted_at_teardown_still_kill_the_tree";
    if !is_scenario(TEST) {
        return under_fd_exhaustion(TEST);
    }
    block_on(async {
        let tree = sh("sleep 30 & sleep 30 & echo up; wait");
        let mut run = tree.start().await.expect("start");
        run.wait_for_line(|l| l == "up", Duration::from_secs(10))
            .await
            .expect("tree up");
        let fds = exhaust_fds();
        drop(run);
        look_now("a dropped handle out of fds", fds);

        let group = ProcessGroup::new().expect("group");
        let mut run = group.start(&tree).await.expect("start in group");
        run.wait_for_line(|l| l == "up", Duration::from_secs(10))
            .await
            .expect("tree up");
        let fds = exhaust_fds();
        drop(run);
        drop(group);
        look_now("a dropped group out of fds", fds);
    });
}

// ---------------------------------------------------------------------------
// Owner SIGKILL with three groups

#[test]
fn a_sigkilled_owner_of_three_groups_leaves_no_descendant() {
    const TEST: &str = "a_sigkilled_owner_of_three_groups_leaves_no_descendant";
    if is_scenario(TEST) {
        return owner_of_three_groups();
    }
    for mechanism in mechanisms() {
        let (mark, _cleanup) = new_mark("owner");
        let scratch = TempDir::new("faults-owner");
        let pidfile = scratch.join("pids").to_string_lossy().into_owned();
        let env = [
            (MARK_VALUE, mark.as_str()),
            ("PK_PIDFILE", pidfile.as_str()),
            ("PK_MECH", mechanism.name()),
        ];
        let mut owner = Scenario::start(TEST, &env, &Wrap::default());
        let mut guard = KillOnDrop::default();
        let ready = owner.next("READY", Duration::from_secs(60));
        assert!(ready.is_some(), "the owner never got its 3 groups up");
        let tree: Vec<Proc> = read_pids(scratch.join("pids").as_path())
            .into_iter()
            .filter_map(Proc::of)
            .map(|p| guard.add(p))
            .collect();
        assert_eq!(tree.len(), 9, "3 trees of 3 processes: {tree:?}");
        owner.kill();
        let gone = eventually(Duration::from_secs(10), || {
            tree.iter().all(|p| !p.is_alive())
        });
        assert!(
            gone,
            "under {mechanism}, descendants outlived their SIGKILLed owner: {:?}",
            tree.iter().filter(|p| p.is_alive()).collect::<Vec<_>>()
        );
        assert!(
            eventually(LIMIT, || marked(&mark).is_empty()),
            "marked survivors"
        );
    }
}

// ---------------------------------------------------------------------------
// Concurrent drop / cancel races

#[test]
fn concurrent_drops_and_cancels_leave_no_survivor_zombie_or_fd() {
    const TEST: &str = "concurrent_drops_and_cancels_leave_no_survivor_zombie_or_fd";
    if is_scenario(TEST) {
        return races();
    }
    let mut failures = Vec::new();
    for mechanism in mechanisms() {
        let (mark, _cleanup) = new_mark("races");
        let races = std::env::var("PK_RACES").unwrap_or_else(|_| "0,1,2,3,4,5,6,7".into());
        let env = [
            (MARK_VALUE, mark.as_str()),
            ("PROCESSKIT_MECHANISM", mechanism.name()),
            ("PK_RACES", races.as_str()),
        ];
        let scenario = Scenario::start(TEST, &env, &Wrap::default());
        let passed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            scenario.passed(&format!("{TEST} under {mechanism}"))
        }));
        if let Err(panic) = passed {
            failures.push(panic.downcast_ref::<String>().cloned().unwrap_or_default());
        }
        if !eventually(LIMIT, || marked(&mark).is_empty()) {
            failures.push(format!(
                "under {mechanism}: survivors after the scenario ended: {:?}",
                describe(marked(&mark))
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// pid namespaces: forced pid reuse and a second program's sweep

/// Root, `unshare --pid` and a writable cgroup2 next to ours, or a SKIP.
fn namespace_cgroup(test: &str, label: &str) -> Option<OwnCgroup> {
    if !is_root() || !pid_namespaces_work() {
        say(&format!("SKIP: {test}: needs root and `unshare --pid`"));
        return None;
    }
    let cgroup = OwnCgroup::new(label);
    if cgroup.is_none() {
        say(&format!(
            "SKIP: {test}: cannot create a cgroup2 directory next to ours"
        ));
    }
    cgroup
}

#[test]
fn a_recycled_pid_is_never_signalled_by_its_old_group() {
    const TEST: &str = "a_recycled_pid_is_never_signalled_by_its_old_group";
    if is_scenario(TEST) {
        return block_on(recycled_pid());
    }
    for mechanism in mechanisms() {
        // Its own cgroup: a program in another pid namespace must not sweep ours.
        let Some(cgroup) = namespace_cgroup(TEST, "reuse") else {
            return;
        };
        let (mark, _cleanup) = new_mark("reuse");
        let env = [(MARK_VALUE, mark.as_str()), ("PK_MECH", mechanism.name())];
        let wrap = Wrap {
            pid_ns: true,
            cgroup: Some(cgroup.0.clone()),
            ..Wrap::default()
        };
        let scenario = Scenario::start(TEST, &env, &wrap);
        scenario.passed(&format!("{TEST} under {mechanism}"));
    }
}

#[test]
fn a_recycled_pid_is_spared_by_the_guardian_when_the_owner_dies() {
    const TEST: &str = "a_recycled_pid_is_spared_by_the_guardian_when_the_owner_dies";
    if is_scenario(TEST) {
        return block_on(recycled_pid_at_owner_death());
    }
    let mut failures = Vec::new();
    for mechanism in mechanisms() {
        let Some(cgroup) = namespace_cgroup(TEST, "reuse-guardian") else {
            return;
        };
        let (mark, _cleanup) = new_mark("reuse-guardian");
        let env = [(MARK_VALUE, mark.as_str()), ("PK_MECH", mechanism.name())];
        let wrap = Wrap {
            pid_ns: true,
            cgroup: Some(cgroup.0.clone()),
            linger_secs: 6,
            ..Wrap::default()
        };
        let scenario = Scenario::start(TEST, &env, &wrap);
        let stranger = scenario.next("STRANGER", Duration::from_secs(60));
        assert!(
            stranger.is_some(),
            "under {mechanism}: no stranger took the pid"
        );
        // The namespace lingers 6 s after the owner's exit; the guardian acts
        // at once, so 3 s without the stranger vanishing means it was spared.
        if eventually(Duration::from_secs(3), || marked(&mark).is_empty()) {
            failures.push(format!(
                "under {mechanism}, the guardian killed an unrelated process that took \
                 a dead member's pid when the owner died"
            ));
        }
        scenario.passed(&format!("{TEST} under {mechanism}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_second_program_in_another_pid_namespace_spares_a_live_owner() {
    const TEST: &str = "a_second_program_in_another_pid_namespace_spares_a_live_owner";
    if is_scenario(TEST) {
        return block_on(second_program());
    }
    if !mechanisms().contains(&Mechanism::CgroupV2) {
        return say(&format!("SKIP: {TEST}: no cgroup v2 here"));
    }
    let Some(cgroup) = namespace_cgroup(TEST, "sweep") else {
        return;
    };
    let (mark, _cleanup) = new_mark("owner");
    let in_cgroup = Wrap {
        cgroup: Some(cgroup.0.clone()),
        ..Wrap::default()
    };
    let owner = Scenario::start(
        TEST,
        &[(MARK_VALUE, &mark), ("PK_ROLE", "owner")],
        &in_cgroup,
    );
    owner
        .next("READY", Duration::from_secs(60))
        .expect("the owner never got ready");
    // A child caught mid-exec shows no environment for a moment: look again.
    eventually(LIMIT, || marked(&mark).len() >= 3);
    let mut guard = KillOnDrop::default();
    let tree: Vec<Proc> = marked(&mark)
        .into_iter()
        .filter_map(Proc::of)
        .map(|p| guard.add(p))
        .collect();
    assert!(tree.len() >= 3, "the owner's tree: {tree:?}");
    let roots = processkit_roots(&cgroup.0);
    assert_eq!(roots.len(), 1, "the owner's root: {roots:?}");

    let (other, _cleanup_other) = new_mark("sweeper");
    let sweeper = Scenario::start(
        TEST,
        &[(MARK_VALUE, &other), ("PK_ROLE", "sweeper")],
        &Wrap {
            pid_ns: true,
            ..in_cgroup
        },
    );
    let swept = sweeper.next("SWEPT", Duration::from_secs(60));
    sweeper.passed("the second program");
    if swept.is_none() {
        return; // it printed SKIP
    }
    std::thread::sleep(Duration::from_millis(500));
    let dead: Vec<_> = tree.iter().filter(|p| !p.is_alive()).collect();
    assert!(
        dead.is_empty(),
        "a program in another pid namespace killed a live owner's processes: {dead:?}"
    );
    assert!(
        roots.iter().all(|r| r.exists()),
        "a program in another pid namespace removed a live owner's root: {roots:?}"
    );
    drop(owner);
}
