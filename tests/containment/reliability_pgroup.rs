//! Fault tests for the process-group mechanism and the guardian: pid reuse
//! forced through `ns_last_pid` in a private pid namespace (a recycled id is
//! never signalled by teardown, `signal` or the guardian), a zombie member
//! does not stall `shutdown`, a transient EMFILE does not disable the
//! guardian for good, and a burst of tracked groups reaches it whole.
//!
//! Every dangerous scenario runs in a re-executed copy of this binary (under
//! `unshare` where pids are forced), selected by `PK_PGROUP_SCENARIO`.
#![cfg(all(target_os = "linux", feature = "process-control"))]

use crate::common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{KillPidOnDrop, eventually, eventually_async, is_alive, pids_with_token};
use processkit::{
    Command, GuardianStatus, Mechanism, ProcessGroup, ProcessGroupOptions, Signal, guardian_status,
};

const SCENARIO: &str = "PK_PGROUP_SCENARIO";
const LIMIT: Duration = Duration::from_secs(10);

fn scenario() -> Option<String> {
    std::env::var(SCENARIO).ok()
}

fn pgroup(grace: Duration) -> ProcessGroup {
    ProcessGroup::with_options(
        ProcessGroupOptions::default()
            .mechanism(Mechanism::ProcessGroup)
            .shutdown_grace(grace),
    )
    .expect("a process-group container always exists")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Re-runs test `test` in a copy of this binary with `scenario` selected,
/// optionally under `wrapper` (e.g. `unshare ...`); returns its output, or
/// `None` after a SKIP when the wrapper is refused here.
fn rerun(test: &str, scenario: &str, wrapper: &[&str]) -> Option<String> {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut cmd = std::process::Command::new(program);
            cmd.args(args).arg(&exe);
            cmd
        }
        None => std::process::Command::new(&exe),
    };
    let out = cmd
        .args([
            "--exact",
            &crate::common::test_named(test),
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SCENARIO, scenario)
        .env_remove("PROCESSKIT_GUARDIAN")
        .env_remove("PROCESSKIT_MECHANISM")
        .output()
        .expect("re-run this test binary");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !wrapper.is_empty() && !text.contains("SCENARIO-STARTED") {
        eprintln!("SKIP: cannot run {wrapper:?} here: {text}");
        return None;
    }
    assert!(
        out.status.success() && text.contains("SCENARIO-PASSED"),
        "{text}"
    );
    Some(text)
}

/// A private pid namespace whose processes all die with it (and after 2 minutes at most).
const IN_PID_NS: &[&str] = &[
    "timeout",
    "-s",
    "KILL",
    "120",
    "unshare",
    "--pid",
    "--fork",
    "--kill-child",
    "--mount-proc",
];

/// One line to the parent, at once (it reads our stdout through a pipe), on
/// a line of its own (the harness leaves "test name ... " unterminated).
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "\n{line}");
    let _ = out.flush();
}

fn started() {
    println!("SCENARIO-STARTED");
}

fn passed() {
    println!("SCENARIO-PASSED");
}

/// An unrelated process leading its own group, started so it gets `pid`
/// (the namespace's next pid is forced through `ns_last_pid`).
fn unrelated_with_pid(pid: u32) -> Child {
    for _ in 0..50 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string())
            .expect("write ns_last_pid (root in a private pid namespace)");
        let mut child = std::process::Command::new("sleep")
            .arg("1000")
            .process_group(0)
            .spawn()
            .expect("spawn sleep");
        if child.id() == pid {
            return child;
        }
        // A thread or another process took it first: try again.
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("could not make a process take pid {pid}");
}

/// Whether `child` is still running after a moment in which a wrong signal
/// would have landed.
fn survives(child: &mut Child) -> bool {
    std::thread::sleep(Duration::from_millis(300));
    matches!(child.try_wait(), Ok(None))
}

fn cleanup(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A finished run whose id is taken by an unrelated group leader: neither
/// `signal` nor the group's drop may reach it, while a live run is still hit.
#[test]
fn a_recycled_leader_pid_is_never_signalled_by_the_group() {
    if scenario().as_deref() == Some("recycled-leader") {
        started();
        runtime().block_on(async {
            let group = pgroup(Duration::from_secs(1));
            let mut live = group
                .start(&Command::new("sleep").arg("1000"))
                .await
                .unwrap();
            let mut done = group.start(&Command::new("true")).await.unwrap();
            let pid = done.id().unwrap();
            done.wait().await.unwrap();
            // `done` stays alive: its slot still records the finished group.
            let mut victim = unrelated_with_pid(pid);
            group.signal(Signal::Term).unwrap();
            assert!(survives(&mut victim), "group.signal(Term) hit pid {pid}");
            assert_eq!(live.wait().await.unwrap(), None, "the live run got SIGTERM");
            drop(group);
            assert!(survives(&mut victim), "dropping the group hit pid {pid}");
            drop(done);
            cleanup(victim);
        });
        return passed();
    }
    rerun(
        "a_recycled_leader_pid_is_never_signalled_by_the_group",
        "recycled-leader",
        IN_PID_NS,
    );
}

/// An adopted process that exited: its recycled pid is not signalled.
#[test]
fn a_recycled_adopted_pid_is_never_signalled() {
    if scenario().as_deref() == Some("recycled-adopted") {
        started();
        let group = pgroup(Duration::from_secs(1));
        let mut adopted = std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .unwrap();
        let pid = adopted.id();
        group.adopt(pid).unwrap();
        let _ = adopted.kill();
        adopted.wait().unwrap();
        let mut victim = unrelated_with_pid(pid);
        group.signal(Signal::Term).unwrap();
        assert!(survives(&mut victim), "group.signal(Term) hit pid {pid}");
        group.terminate_all().unwrap();
        assert!(survives(&mut victim), "terminate_all hit pid {pid}");
        drop(group);
        assert!(survives(&mut victim), "dropping the group hit pid {pid}");
        cleanup(victim);
        return passed();
    }
    rerun(
        "a_recycled_adopted_pid_is_never_signalled",
        "recycled-adopted",
        IN_PID_NS,
    );
}

/// The owner dies after a run's pid was recycled: the guardian kills the
/// live run's group but not the unrelated process that took the old pid.
#[test]
fn the_guardian_never_kills_a_recycled_pgid() {
    match scenario().as_deref() {
        Some("guardian-owner") => return guardian_owner(),
        Some("recycled-guardian") => {}
        _ => {
            rerun(
                "the_guardian_never_kills_a_recycled_pgid",
                "recycled-guardian",
                IN_PID_NS,
            );
            return;
        }
    }
    started();
    let mut owner = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &crate::common::test_named("the_guardian_never_kills_a_recycled_pgid"),
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SCENARIO, "guardian-owner")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(owner.stdout.take().unwrap()).lines();
    let mut value = |key: &str| -> u32 {
        for line in lines.by_ref() {
            if let Some(v) = line.unwrap().strip_prefix(key) {
                return v.trim().parse().unwrap();
            }
        }
        panic!("the owner did not say {key}");
    };
    let (finished, live, guardian) = (value("finished"), value("live"), value("guardian"));
    let mut victim = unrelated_with_pid(finished);
    let _ = owner.kill();
    owner.wait().unwrap();
    // The guardian is ours now (we are the namespace's init): wait for it.
    assert!(
        eventually(LIMIT, || reaped(guardian)),
        "the guardian did not finish"
    );
    assert!(
        eventually(LIMIT, || !is_alive(live)),
        "the guardian left the live run {live} running"
    );
    assert!(
        survives(&mut victim),
        "the guardian killed pid {finished}, recycled by an unrelated process"
    );
    cleanup(victim);
    passed();
}

fn guardian_owner() {
    runtime().block_on(async {
        let group = pgroup(Duration::from_secs(1));
        let live = group
            .start(&Command::new("sleep").arg("1000"))
            .await
            .unwrap();
        let mut done = group.start(&Command::new("true")).await.unwrap();
        let finished = done.id().unwrap();
        done.wait().await.unwrap();
        let GuardianStatus::Running { pid } = guardian_status() else {
            panic!("no guardian: {:?}", guardian_status());
        };
        say(&format!("finished {finished}"));
        say(&format!("live {}", live.id().unwrap()));
        say(&format!("guardian {pid}"));
        // Hold everything until we are killed.
        std::future::pending::<()>().await;
    });
}

/// Whether our child `pid` has exited (reaping it).
fn reaped(pid: u32) -> bool {
    let mut status = 0;
    // SAFETY: waitpid with WNOHANG on a pid only writes `status`.
    let rc = unsafe { libc::waitpid(pid as i32, &mut status, libc::WNOHANG) };
    rc == pid as i32 || rc == -1
}

/// `shutdown()` on a group whose only member is an unreaped zombie returns
/// at once instead of waiting grace + 5 s; a live member in the same group
/// is still terminated.
#[test]
fn shutdown_does_not_wait_for_a_zombie_member() {
    let rt = runtime();
    rt.block_on(async {
        let grace = Duration::from_secs(2);
        let group = pgroup(grace);
        let token = format!("9999.{}{}", std::process::id(), 4711);
        let _guard = common::Cleanup::token(&token);
        // `sleep` stays in the run's process group after `sh` exits.
        let run = group
            .start(&Command::new("sh").args(["-c", &format!("sleep {token} & exit 0")]))
            .await
            .unwrap();
        let zombie = group.start(&Command::new("true")).await.unwrap();
        let pid = zombie.id().unwrap();
        assert!(
            eventually(LIMIT, || state_of(pid) == Some('Z')
                && pids_with_token(&token).len() == 1),
            "the run is not a zombie yet"
        );
        let started = Instant::now();
        group.shutdown().await.unwrap();
        let took = started.elapsed();
        assert!(
            pids_with_token(&token).is_empty(),
            "the leaderless member survived shutdown"
        );
        // Not a timing assertion: the old code waited grace + 5 s.
        assert!(
            took < grace + Duration::from_secs(2),
            "shutdown took {took:?} with only zombies left"
        );
        drop((run, zombie));
    });
}

/// A run whose leader was reaped but left a member in its group: the group
/// is still ours (the member keeps its id from being reused) and is killed.
#[tokio::test]
async fn a_leaderless_group_is_still_torn_down() {
    let group = pgroup(Duration::from_secs(1));
    let token = format!("9999.{}{}", std::process::id(), 1618);
    let _guard = common::Cleanup::token(&token);
    let mut run = group
        .start(&Command::new("sh").args(["-c", &format!("sleep {token} & exit 0")]))
        .await
        .unwrap();
    assert_eq!(run.wait().await.unwrap(), Some(0));
    assert!(
        eventually_async(LIMIT, || pids_with_token(&token).len() == 1).await,
        "the member did not start"
    );
    group.signal(Signal::Term).unwrap();
    assert!(
        eventually_async(LIMIT, || pids_with_token(&token).is_empty()).await,
        "the leaderless member outlived group.signal(Term)"
    );
    drop(run);
}

fn state_of(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// Out of descriptors when the first group is made, the guardian is
/// unavailable; once descriptors are free again, the next group starts it.
#[test]
fn a_transient_emfile_does_not_disable_the_guardian_for_good() {
    if scenario().as_deref() != Some("guardian-emfile") {
        rerun(
            "a_transient_emfile_does_not_disable_the_guardian_for_good",
            "guardian-emfile",
            &[],
        );
        return;
    }
    let limit = libc::rlimit {
        rlim_cur: 64,
        rlim_max: 64,
    };
    // SAFETY: setrlimit reads the struct on our stack; this is a re-executed child.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let mut hoard = Vec::new();
    while let Ok(file) = std::fs::File::open("/dev/null") {
        hoard.push(file);
    }
    let first = pgroup(Duration::from_secs(1));
    let status = guardian_status();
    assert!(
        !matches!(status, GuardianStatus::Running { .. }),
        "the guardian started without descriptors? {status:?}"
    );
    drop(hoard);
    let second = pgroup(Duration::from_secs(1));
    let status = guardian_status();
    assert!(
        matches!(status, GuardianStatus::Running { .. }),
        "still no guardian once descriptors are free: {status:?}"
    );
    drop((first, second));
    passed();
}

/// 2000 runs tracked while the guardian is stopped (its socket fills up),
/// then the owner is SIGKILLed: every run dies, none was dropped.
#[test]
fn a_burst_of_groups_all_reach_the_guardian() {
    const RUNS: usize = 2000;
    let token = format!("9999.{}{}", std::process::id(), 2718);
    if scenario().as_deref() == Some("burst-owner") {
        return burst_owner(RUNS, &std::env::var("PK_BURST_TOKEN").unwrap());
    }
    let _guard = common::Cleanup::token(&token);
    let mut owner = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &crate::common::test_named("a_burst_of_groups_all_reach_the_guardian"),
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SCENARIO, "burst-owner")
        .env("PK_BURST_TOKEN", &token)
        .env_remove("PROCESSKIT_GUARDIAN")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let owner_pid = KillPidOnDrop(Some(owner.id()));
    let ready = BufReader::new(owner.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .any(|l| l == "ready");
    assert!(ready, "the owner did not start its runs");
    assert_eq!(pids_with_token(&token).len(), RUNS, "all runs started");
    let _ = owner.kill();
    owner.wait().unwrap();
    drop(owner_pid);
    assert!(
        eventually(Duration::from_secs(30), || pids_with_token(&token)
            .is_empty()),
        "{} of {RUNS} runs outlived their SIGKILLed owner",
        pids_with_token(&token).len()
    );
}

fn burst_owner(runs: usize, token: &str) {
    runtime().block_on(async {
        let group = pgroup(Duration::from_secs(1));
        let GuardianStatus::Running { pid: guardian } = guardian_status() else {
            panic!("no guardian: {:?}", guardian_status());
        };
        // A stopped guardian reads nothing: the socket buffer fills up.
        common::signal(guardian, "STOP");
        let mut handles = Vec::with_capacity(runs);
        for _ in 0..runs {
            handles.push(
                group
                    .start(&Command::new("sleep").arg(token))
                    .await
                    .unwrap(),
            );
        }
        common::signal(guardian, "CONT");
        // Each tracked group's pidfd lands in the guardian: wait until all did.
        let fds = || std::fs::read_dir(format!("/proc/{guardian}/fd")).map_or(0, |d| d.count());
        eventually_async(Duration::from_secs(20), || fds() > runs).await;
        say("ready");
        std::future::pending::<()>().await;
    });
}
