//! Spawn-path reliability: a cancelled start owns what it uses and leaves no
//! child, a suspended group never stalls the spawner thread, children are
//! reaped whatever runtime (if any) is alive, and a runtime without the IO
//! driver gets a typed error. Linux only (the spawner thread and pidfds).
#![cfg(target_os = "linux")]
// Some imports serve only the tests of optional features.
#![cfg_attr(
    not(all(feature = "stats", feature = "process-control")),
    allow(unused_imports)
)]

use crate::common;

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Cleanup, TempDir, eventually, eventually_async, pids_with_token_or_zombie, token};
use processkit::{Command, Mechanism, ProcessGroup, ProcessGroupOptions};

/// Set in a re-executed copy of this binary that runs one test under other settings.
const INNER: &str = "PK_RELIABILITY_SPAWN_INNER";

/// Runs test `name` of this binary again in a child process with `envs` set,
/// so process-wide settings read once (the spawner choice) can differ.
fn rerun(name: &str, envs: &[(&str, &str)]) {
    common::run_alone(name, &[&[(INNER, "1")], envs].concat());
}

/// The cgroup2 directory this test process lives in, if we can find it.
fn own_cgroup_dir() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .iter()
        .map(|base| PathBuf::from(format!("{base}{rel}")))
        .find(|dir| dir.join("cgroup.procs").exists())
}

fn sleeper(token: &str) -> Command {
    Command::new("sh")
        .args(["-c", &format!("sleep 30; : {token}")])
        .kill_on_parent_death()
}

/// Starts `count` short `kill_on_parent_death` runs, so the spawner thread has
/// a queue to work through; their handles are awaited (and dropped) later.
/// They run in a process-group group: no cgroup to make per run, so they
/// queue up much faster than the spawner thread can start them.
async fn busy_spawner(count: usize) -> (Arc<ProcessGroup>, Vec<tokio::task::JoinHandle<()>>) {
    let options = ProcessGroupOptions::default().mechanism(Mechanism::ProcessGroup);
    let group = Arc::new(ProcessGroup::with_options(options).unwrap());
    let fillers: Vec<_> = (0..count)
        .map(|_| {
            let group = Arc::clone(&group);
            tokio::spawn(async move {
                let cmd = Command::new("true").kill_on_parent_death();
                if let Ok(mut run) = group.start(&cmd).await {
                    let _ = run.wait().await;
                }
            })
        })
        .collect();
    // On a current-thread runtime every filler queues its spawn before we go on.
    tokio::task::yield_now().await;
    (group, fillers)
}

/// One more spawn through the (FIFO) spawner thread: once it is back, every
/// job queued before it has run.
async fn drain_spawner() {
    let _ = Command::new("true")
        .kill_on_parent_death()
        .output_string()
        .await;
}

/// Rounds of: spawner busy, a `kill_on_parent_death` start into a group
/// cancelled while queued, descriptors opened at once (they take the numbers
/// the cancelled start's slot closed). The start must neither write into
/// them, nor be born in the cgroup they name, nor leave a child behind.
async fn cancelled_starts(mechanism: Option<Mechanism>) {
    let files = TempDir::new("cancelled-start");
    let own = own_cgroup_dir();
    let tokens: Vec<String> = (0..20).map(|_| token("cancelled")).collect();
    let _cleanup = Cleanup::tokens(&tokens.iter().map(String::as_str).collect::<Vec<_>>());
    let mut failures = Vec::new();
    for (round, token) in tokens.iter().enumerate() {
        let options = match mechanism {
            Some(m) => ProcessGroupOptions::default().mechanism(m),
            None => ProcessGroupOptions::default(),
        };
        let group = ProcessGroup::with_options(options).unwrap();
        let (_busy, fillers) = busy_spawner(100).await;
        let cmd = sleeper(token);
        // Polled once (its spawn is queued behind the fillers), then dropped.
        let mut start = Box::pin(group.start(&cmd));
        tokio::select! {
            biased;
            done = &mut start => panic!("round {round}: the start was not queued: {done:?}"),
            () = std::future::ready(()) => {}
        }
        drop(start);
        // Reuse the numbers the dropped start closed: files to write to, and
        // this process's own cgroup directory to be born in.
        let mut opened = Vec::new();
        for i in 0..4 {
            let path = files.path().join(format!("round-{round}-{i}"));
            let file = || (Some(path.clone()), File::create(&path).unwrap());
            let dir = || own.as_ref().map(|dir| (None, File::open(dir).unwrap()));
            // The lowest free number goes first: to what each spawner would misuse.
            if clone_spawner() {
                opened.extend(dir());
                opened.push(file());
            } else {
                opened.push(file());
                opened.extend(dir());
            }
        }
        for filler in fillers {
            filler.await.unwrap();
        }
        drain_spawner().await;
        drop(group);
        let written: Vec<_> = opened
            .iter()
            .filter_map(|(path, _)| path.as_ref())
            .filter(|path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) > 0)
            .collect();
        if !written.is_empty() {
            failures.push(format!("round {round}: the child wrote into {written:?}"));
        }
        let gone = eventually_async(Duration::from_secs(5), || {
            pids_with_token_or_zombie(token).is_empty()
        })
        .await;
        if !gone {
            let pids = pids_with_token_or_zombie(token);
            failures.push(format!(
                "round {round}: the cancelled start left {pids:?} behind"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_cancelled_kill_on_parent_death_start_owns_its_descriptors_and_leaves_no_child() {
    cancelled_starts(None).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_cancelled_kill_on_parent_death_start_leaves_no_process_group_behind() {
    cancelled_starts(Some(Mechanism::ProcessGroup)).await;
}

#[test]
fn a_cancelled_kill_on_parent_death_start_is_safe_with_the_std_spawner() {
    if std::env::var_os(INNER).is_some() {
        return;
    }
    rerun(
        "a_cancelled_kill_on_parent_death_start_owns_its_descriptors_and_leaves_no_child",
        &[("PROCESSKIT_SPAWNER", "std")],
    );
    rerun(
        "a_cancelled_kill_on_parent_death_start_leaves_no_process_group_behind",
        &[("PROCESSKIT_SPAWNER", "std")],
    );
}

/// Resumes a group on drop, so a failing test never leaves the spawner
/// thread stuck behind a frozen child.
#[cfg(feature = "process-control")]
struct Resume(Arc<ProcessGroup>);

#[cfg(feature = "process-control")]
impl Drop for Resume {
    fn drop(&mut self) {
        let _ = self.0.resume();
    }
}

#[cfg(feature = "process-control")]
#[tokio::test(flavor = "current_thread")]
async fn suspending_a_group_with_a_queued_start_does_not_stall_the_spawner() {
    let group = Arc::new(ProcessGroup::new().unwrap());
    if group.mechanism() != Mechanism::CgroupV2 {
        eprintln!("SKIP: suspending freezes only a cgroup; this group is a process group");
        return;
    }
    let token = token("frozen-start");
    let _cleanup = Cleanup::token(&token);
    let _resume = Resume(Arc::clone(&group));
    let (_busy, fillers) = busy_spawner(100).await;
    let queued = tokio::spawn({
        let group = Arc::clone(&group);
        let cmd = sleeper(&token);
        async move { group.start(&cmd).await.map(|_run| ()) }
    });
    tokio::task::yield_now().await;
    group.suspend().unwrap();

    // An unrelated run through the same spawner thread.
    let began = Instant::now();
    let other = tokio::time::timeout(
        Duration::from_secs(10),
        Command::new("echo")
            .arg("unrelated")
            .kill_on_parent_death()
            .output_string(),
    )
    .await;
    assert!(
        matches!(&other, Ok(Ok(out)) if out.stdout().trim() == "unrelated"),
        "an unrelated kill_on_parent_death run stalled for {:?}: {other:?}",
        began.elapsed()
    );
    // The queued start, awaited before resume(): it must answer, not hang.
    let answer = tokio::time::timeout(Duration::from_secs(10), queued).await;
    let answer = answer.expect("the start queued before suspend() never answered");
    match answer.unwrap() {
        Err(processkit::Error::Io { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::ResourceBusy, "{source}");
        }
        other => panic!("a start into a suspended group: {other:?}"),
    }
    for filler in fillers {
        filler.await.unwrap();
    }
    group.resume().unwrap();
    let started = group.start(&sleeper(&token)).await;
    assert!(started.is_ok(), "a start after resume(): {started:?}");
}

/// Whether this process uses the clone spawner (its children are ours to reap;
/// std children are reaped by tokio's orphan queue, which needs a runtime).
fn clone_spawner() -> bool {
    std::env::var("PROCESSKIT_SPAWNER").map_or(true, |v| v.trim() != "std")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The state letter of `pid` if it is still a child of ours (`Z`: unreaped).
fn our_child_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid: u32 = fields.next()?.parse().ok()?;
    (ppid == std::process::id()).then_some(state)
}

/// Starts a sleeper in `group` on a runtime that is then dropped, and returns
/// its handle and pid.
fn started_on_a_dropped_runtime(
    group: &ProcessGroup,
    token: &str,
) -> (processkit::RunningProcess, u32) {
    let first = runtime();
    let run = first
        .block_on(group.start(&Command::new("sh").args(["-c", &format!("sleep 30; : {token}")])))
        .unwrap();
    drop(first);
    let pid = run.id().unwrap();
    (run, pid)
}

#[test]
fn a_handle_dropped_outside_any_runtime_leaves_no_zombie() {
    if !clone_spawner() {
        eprintln!("SKIP: std children are reaped by tokio, which needs a live runtime");
        return;
    }
    let token = token("dropped-outside");
    let _cleanup = Cleanup::token(&token);
    let group = ProcessGroup::new().unwrap();
    let (run, pid) = started_on_a_dropped_runtime(&group, &token);
    // No runtime here: the handle goes, then the group kills the child, which
    // must still be reaped.
    drop(run);
    group.terminate_all().unwrap();
    assert!(
        eventually(Duration::from_secs(5), || our_child_state(pid).is_none()),
        "pid {pid} left in state {:?}",
        our_child_state(pid)
    );
}

#[test]
fn a_handle_dropped_in_another_runtime_leaves_no_zombie() {
    if !clone_spawner() {
        eprintln!("SKIP: std children are reaped by tokio's orphan queue");
        return;
    }
    let token = token("dropped-elsewhere");
    let _cleanup = Cleanup::token(&token);
    let group = ProcessGroup::new().unwrap();
    let (run, pid) = started_on_a_dropped_runtime(&group, &token);
    let second = runtime();
    second.block_on(async {
        drop(run);
        group.terminate_all().unwrap();
        let reaped =
            eventually_async(Duration::from_secs(5), || our_child_state(pid).is_none()).await;
        assert!(reaped, "pid {pid} left in state {:?}", our_child_state(pid));
    });
}

#[test]
fn wait_works_after_the_spawning_runtime_is_gone() {
    let first = runtime();
    let mut run = first
        .block_on(Command::new("sh").args(["-c", "sleep 0.3; exit 3"]).start())
        .unwrap();
    drop(first);
    let second = runtime();
    let code =
        second.block_on(async { tokio::time::timeout(Duration::from_secs(10), run.wait()).await });
    assert!(
        matches!(code, Ok(Ok(Some(3)))),
        "wait() in a second runtime: {code:?}"
    );
}

#[test]
fn a_runtime_without_the_io_driver_is_refused_after_one_with_it_on_the_same_thread() {
    // Whether a runtime has an IO driver is remembered per thread: the answer
    // for one runtime must not be taken for the next.
    let token = token("no-io-after-io");
    let _cleanup = Cleanup::token(&token);
    let io = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let no_io = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let code = io.block_on(Command::new("true").exit_code()).unwrap();
    assert_eq!(code, 0);
    let cmd = Command::new("sh").args(["-c", &format!("sleep 30; : {token}")]);
    for _ in 0..2 {
        let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            no_io.block_on(cmd.start()).map(drop)
        }));
        let error = started
            .expect("start() panicked on a runtime without the IO driver")
            .expect_err("start() succeeded without an IO driver");
        assert!(error.to_string().contains("enable_io"), "{error}");
        // And the runtime with a driver still works in between.
        assert_eq!(io.block_on(Command::new("true").exit_code()).unwrap(), 0);
    }
    assert!(
        eventually(Duration::from_secs(5), || pids_with_token_or_zombie(&token)
            .is_empty()),
        "left behind: {:?}",
        pids_with_token_or_zombie(&token)
    );
}

#[test]
fn a_runtime_without_the_io_driver_gets_a_typed_error_and_nothing_runs() {
    let token = token("no-io");
    let _cleanup = Cleanup::token(&token);
    let no_io = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let cmd = Command::new("sh").args(["-c", &format!("sleep 30; : {token}")]);
    let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        no_io.block_on(cmd.start()).map(drop)
    }));
    let started = started.expect("start() panicked on a runtime without the IO driver");
    let error = started.expect_err("start() succeeded without an IO driver");
    assert!(
        error.to_string().contains("enable_io"),
        "the error does not say what is missing: {error}"
    );
    assert!(
        eventually(Duration::from_secs(5), || pids_with_token_or_zombie(&token)
            .is_empty()),
        "left behind: {:?}",
        pids_with_token_or_zombie(&token)
    );
}
