//! `reap_orphans`: a program that is PID 1, or a child subreaper standing in
//! for one, reaps every orphan re-parented to it, while processkit's runs
//! (either spawner) and exempted std children keep their exact statuses.
// Orphans are re-parented only on Linux (PR_SET_CHILD_SUBREAPER, /proc).
#![cfg(target_os = "linux")]

use std::fs;
use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use crate::common::eventually;
use crate::common::privileges::{Helper, acting_as, report};
use processkit::{Command, GuardianStatus, OrphanReaper, guardian_status, reap_orphans};

/// Orphans made per exercise, each a `sleep` whose shell has exited.
const ORPHANS: usize = 200;
/// processkit runs started meanwhile, each checked for its exact status.
const RUNS: usize = 300;
/// Everything left must be reaped within this (polled, not timed).
const SETTLE: Duration = Duration::from_secs(30);

/// What one exercise found; empty lists mean it passed.
#[derive(Debug)]
struct Outcome {
    /// Orphan pids that are still children of this process.
    orphans_left: Vec<u32>,
    /// Zombie children of this process at the end, but for those that were
    /// already children when the reaper started (it leaves those alone).
    zombies: Vec<u32>,
    /// Children this process had when the reaper started, but for the early
    /// run and the guardian.
    strangers: Vec<u32>,
    /// processkit runs whose status was not the one they exited with.
    wrong_statuses: Vec<String>,
    /// Exempted std children whose own wait failed.
    exempt_failures: Vec<String>,
    /// Orphans the reaper reports it reaped.
    reaped: u64,
    /// What a run started before the reaper, and left a zombie, reported.
    early_run: String,
    /// Whether that run was seen as a zombie before the reaper started.
    early_zombie: bool,
    orphans_made: usize,
    guardian: String,
}

/// Leaves a processkit run a zombie, turns the reaper on, makes `ORPHANS`
/// orphans on one thread while `RUNS` processkit runs go on a runtime, waits (up to `SETTLE`) for every
/// orphan to be reaped and no zombie child to remain.
fn exercise() -> Outcome {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // Already a zombie when the reaper starts: it must stay the run's.
    let mut early = runtime
        .block_on(Command::new("sh").args(["-c", "exit 42"]).start())
        .expect("early run");
    let early_pid = early.id().expect("pid");
    // Under the subreaper the program is its shim's child, not ours: there
    // is no zombie of ours to protect, only its exact status.
    let early_zombie = early.mechanism() == Some(processkit::Mechanism::Subreaper)
        || eventually(SETTLE, || stat_of(early_pid).is_some_and(|s| s.1 == 'Z'));
    let reaper = reap_orphans().expect("reap_orphans");
    reap_orphans().expect("a second call is a no-op");
    // A superset of the children the reaper treats as ours for good (more
    // may have been re-parented since): as PID 1, earlier tests' orphans.
    let preexisting = children();
    let shims: Vec<u32> = preexisting
        .iter()
        .map(|p| p.0)
        .filter(|&p| is_shim(p))
        .collect();
    let makers = std::thread::spawn(make_orphans);
    let wrong_statuses = runtime.block_on(runs());
    let (orphans, exempt_failures) = makers.join().expect("orphan maker");
    let me = std::process::id();
    let new_zombies = || -> Vec<u32> {
        children()
            .into_iter()
            .filter(|c| c.1 == 'Z' && !preexisting.iter().any(|p| (p.0, p.3) == (c.0, c.3)))
            .map(|c| c.0)
            .collect()
    };
    eventually(SETTLE, || {
        new_zombies().is_empty() && orphans.iter().all(|&p| !is_child_of(p, me))
    });
    let early_run = format!("{:?}", runtime.block_on(early.wait()));
    let (guardian, guardian_pid) = match guardian_status() {
        GuardianStatus::Running { pid } => ("running".to_owned(), pid),
        other => (format!("{other:?}"), 0),
    };
    Outcome {
        orphans_left: orphans
            .iter()
            .copied()
            .filter(|&p| is_child_of(p, me))
            .collect(),
        zombies: new_zombies(),
        strangers: preexisting
            .iter()
            .map(|p| p.0)
            .filter(|&p| p != early_pid && p != guardian_pid && !shims.contains(&p))
            .collect(),
        wrong_statuses,
        exempt_failures,
        reaped: reaper.reaped(),
        early_run,
        early_zombie,
        orphans_made: orphans.len(),
        guardian,
    }
}

/// Each orphan: a shell, exempted so its own status stays ours, that
/// starts a short `sleep` in the background, prints its pid and exits.
fn make_orphans() -> (Vec<u32>, Vec<String>) {
    let mut orphans = Vec::new();
    let mut failures = Vec::new();
    for _ in 0..ORPHANS {
        let spawned = OrphanReaper::spawn_exempt(|| {
            std::process::Command::new("sh")
                // Long enough that the shell exits first even under load
                // (else it may reap its own child: no orphan to count).
                .args(["-c", "sleep 0.5 >/dev/null 2>&1 & echo $!; exit 3"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
        });
        let mut child = spawned.expect("spawn sh");
        let mut out = String::new();
        let _ = child.stdout.take().expect("piped").read_to_string(&mut out);
        match child.wait() {
            Ok(status) if status.code() == Some(3) => {}
            other => failures.push(format!("{other:?}")),
        }
        orphans.extend(out.trim().parse::<u32>().ok());
    }
    (orphans, failures)
}

/// `RUNS` processkit runs, 25 at a time: exit codes, deaths by signal, and
/// every third through the spawner thread (`kill_on_parent_death`).
async fn runs() -> Vec<String> {
    let mut wrong = Vec::new();
    for batch in (0..RUNS).collect::<Vec<_>>().chunks(25) {
        let mut set = tokio::task::JoinSet::new();
        for &i in batch {
            set.spawn(async move {
                let (script, expected) = if i % 5 == 4 {
                    ("kill -TERM $$".to_owned(), (None, Some(15)))
                } else {
                    let code = (i * 7 % 256) as i32;
                    (format!("exit {code}"), (Some(code), None))
                };
                let mut cmd = Command::new("sh").args(["-c", &script]);
                if i % 3 == 0 {
                    cmd = cmd.kill_on_parent_death();
                }
                match cmd.output_string().await {
                    Ok(r) if (r.code(), r.signal()) == expected => None,
                    other => Some(format!("run {i} ({script}): {other:?}")),
                }
            });
        }
        while let Some(joined) = set.join_next().await {
            wrong.extend(joined.expect("run task"));
        }
    }
    wrong
}

/// Every child of this process, as its `stat_of`.
fn children() -> Vec<Stat> {
    let mut children = Vec::new();
    for task in fs::read_dir("/proc/self/task").expect("tasks").flatten() {
        let list = fs::read_to_string(task.path().join("children")).unwrap_or_default();
        children.extend(
            list.split_whitespace()
                .filter_map(|p| stat_of(p.parse().ok()?)),
        );
    }
    children
}

/// The early run's shim under the subreaper (ours, not a stranger).
fn is_shim(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "pk-shim")
}

fn is_child_of(pid: u32, parent: u32) -> bool {
    stat_of(pid).is_some_and(|s| s.2 == parent)
}

/// pid, state letter, parent pid and start time, while it exists.
type Stat = (u32, char, u32, u64);

fn stat_of(pid: u32) -> Option<Stat> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((pid, state, ppid, fields.nth(17)?.parse().ok()?))
}

fn assert_passed(outcome: &Outcome) {
    assert_eq!(outcome.orphans_made, ORPHANS, "{outcome:?}");
    assert!(outcome.orphans_left.is_empty(), "{outcome:?}");
    assert!(outcome.zombies.is_empty(), "{outcome:?}");
    assert!(outcome.wrong_statuses.is_empty(), "{outcome:?}");
    assert!(outcome.exempt_failures.is_empty(), "{outcome:?}");
    assert!(outcome.reaped >= ORPHANS as u64, "{outcome:?}");
    assert_eq!(outcome.guardian, "running", "{outcome:?}");
    assert!(outcome.early_zombie, "{outcome:?}");
    assert_eq!(outcome.early_run, "Ok(Some(42))", "{outcome:?}");
}

/// Helper: a child subreaper (as PID 1 would be) running the exercise.
#[test]
#[ignore = "helper process for orphan tests"]
fn helper_subreaper_exercise() {
    if !acting_as("helper_subreaper_exercise") {
        return;
    }
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).expect("subreaper");
    let outcome = exercise();
    report("OUTCOME", format!("{outcome:?}"));
    // A fresh process: no other child for the reaper to leave alone.
    let passed = outcome.strangers.is_empty()
        && std::panic::catch_unwind(|| assert_passed(&outcome)).is_ok();
    report("PASSED", passed);
}

#[test]
fn a_child_subreaper_reaps_every_orphan_and_keeps_every_run_status() {
    if std::process::id() == 1 {
        // PID 1 runs the exercise in this process (below); a helper would
        // share its reaper with every other test here.
        return;
    }
    for spawner in ["clone", "std"] {
        let helper = Helper::start(
            "helper_subreaper_exercise",
            &[("PROCESSKIT_SPAWNER", spawner)],
        );
        let outcome = helper.value("OUTCOME");
        assert_eq!(
            helper.value("PASSED"),
            "true",
            "spawner {spawner}: {outcome}"
        );
    }
}

/// Under `in-container --pid1 <this binary> orphans::` this process is PID 1
/// of its own pid namespace; elsewhere there is nothing to prove.
#[test]
fn as_pid_1_every_orphan_is_reaped_and_every_run_status_kept() {
    if std::process::id() != 1 {
        eprintln!("not PID 1: run under `in-container --pid1` to exercise this");
        return;
    }
    let outcome = exercise();
    eprintln!("as PID 1: {outcome:?}");
    assert_passed(&outcome);
}
