//! The scenario bodies that run inside a re-executed test process: an owner
//! of three groups waiting for its SIGKILL, the drop/cancel races, and the
//! pid-namespace scenarios (forced pid reuse, a second program's sweep).

use std::time::Duration;

use processkit::{Command, Mechanism, ProcessGroup, ProcessGroupOptions};

use super::*;
use crate::common::{eventually, read_pids};
use crate::privileges_support::Proc;

/// Inside the scenario: three groups of three-process trees, their pids in
/// `PK_PIDFILE`; then it waits to be SIGKILLed.
pub fn owner_of_three_groups() {
    let pidfile = std::env::var("PK_PIDFILE").unwrap();
    let mechanism = Mechanism::from_name(&std::env::var("PK_MECH").unwrap()).unwrap();
    block_on(async {
        let mut keep = Vec::new();
        for _ in 0..3 {
            let options = ProcessGroupOptions::default().mechanism(mechanism);
            let group = ProcessGroup::with_options(options).expect("group");
            let tree = Command::new("sh")
                .args([
                    "-c",
                    r#"echo $$ >> "$1"; sleep 1000 & echo $! >> "$1"
                       sh -c 'echo $$ >> "$1"; exec sleep 1000' x "$1" & wait"#,
                    "pk-owner",
                    &pidfile,
                ])
                .env(MARK, mark());
            let run = group.start(&tree).await.expect("start tree");
            keep.push((group, run));
        }
        let path = std::path::PathBuf::from(&pidfile);
        let all_up = crate::common::eventually_async(Duration::from_secs(30), || {
            read_pids(&path).len() >= 9
        })
        .await;
        assert!(all_up, "the trees never wrote their pids");
        tell("READY", "1");
        std::thread::sleep(Duration::from_secs(120));
        drop(keep);
    });
}

/// Two fresh spare cgroups at rest, each open as a directory, its kill
/// switch, its `cgroup.events` and its `cpu.stat`.
const POOL_FDS_AT_REST: usize = 8;

/// Descriptors open on processkit's run cgroups (below its own cgroup,
/// which stays open for good).
fn pool_fds() -> usize {
    pool_fd_targets().len()
}

fn pool_fd_targets() -> Vec<String> {
    super::fd_targets()
        .into_iter()
        .filter(|t| {
            t.split_once("/processkit-")
                .is_some_and(|(_, run)| run.contains('/'))
        })
        .collect()
}

/// Eight racers per round, 24 rounds, then no survivor, zombie or extra fd.
pub fn races() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        sh("true").run().await.expect("warm-up");
        let _ = sh("true").kill_on_parent_death().run().await;
        // A handle dropped before its exit starts the process-wide reaper of
        // orphaned children (one thread, one eventfd, kept for good).
        drop(sh("sleep 5").start().await.expect("warm-up start"));
        // The cgroup pool's descriptors come and go on its own thread (a
        // spare half made when counting, reused ones trimmed once idle):
        // they are bounded apart from the rest.
        let fds_before = open_fds() - pool_fds();
        let targets_before = super::fd_targets();
        const ROUNDS: u64 = 24;
        for round in 0..ROUNDS {
            let mut tasks = tokio::task::JoinSet::new();
            let group = std::sync::Arc::new(ProcessGroup::new().expect("group"));
            for i in races_chosen() {
                let group = group.clone();
                let delay = Duration::from_micros((round * 7919 + i * 104_729) % 5000);
                tasks.spawn(async move { one_race(i, delay, group).await });
            }
            // The group itself is dropped while its runs are being finished.
            tokio::time::sleep(Duration::from_micros(round * 211 % 5000)).await;
            drop(group);
            while let Some(joined) = tasks.join_next().await {
                joined.expect("a race task panicked");
            }
        }
        let mark = mark();
        let gone = crate::common::eventually_async(LIMIT, || marked(&mark).is_empty()).await;
        assert!(
            gone,
            "survivors after {ROUNDS} rounds: {:?}",
            describe(marked(&mark))
        );
        let reaped = crate::common::eventually_async(LIMIT, || zombie_children().is_empty()).await;
        let comm =
            |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let zombies: Vec<String> = zombie_children()
            .into_iter()
            .map(|pid| format!("{pid} {}", comm(pid).trim()))
            .collect();
        assert!(reaped, "zombie children after {ROUNDS} rounds: {zombies:?}");
        let settled = || open_fds() - pool_fds() <= fds_before && pool_fds() <= POOL_FDS_AT_REST;
        let closed = crate::common::eventually_async(LIMIT, settled).await;
        let targets_after = super::fd_targets();
        assert!(
            closed,
            "open fds {fds_before} -> {} (and the cgroup pool's {:?}) after {ROUNDS} rounds: \
             new {:?}, gone {:?}",
            open_fds() - pool_fds(),
            pool_fd_targets(),
            targets_after
                .iter()
                .filter(|t| !targets_before.contains(t))
                .collect::<Vec<_>>(),
            targets_before
                .iter()
                .filter(|t| !targets_after.contains(t))
                .collect::<Vec<_>>()
        );
    });
}

/// The races to run: all eight, or those listed in `PK_RACES` (e.g. `3,6`)
/// to single one out.
fn races_chosen() -> Vec<u64> {
    match std::env::var("PK_RACES") {
        Ok(list) => list
            .split(',')
            .filter_map(|n| n.trim().parse().ok())
            .collect(),
        Err(_) => (0..8).collect(),
    }
}

/// One racer: which race it runs depends on `i`; `delay` is the cancel point.
async fn one_race(i: u64, delay: Duration, group: std::sync::Arc<ProcessGroup>) {
    let tree = || sh("sleep 30 & echo up; exec sleep 30");
    match i % 8 {
        // A verb's future dropped at a random await.
        0 => drop(tokio::time::timeout(delay, tree().output_string()).await),
        1 => drop(tokio::time::timeout(delay, tree().first_line(|_| false)).await),
        // A start cancelled midway, with and without kill_on_parent_death.
        2 => drop(tokio::time::timeout(delay, tree().start()).await),
        3 => drop(tokio::time::timeout(delay, tree().kill_on_parent_death().start()).await),
        // A handle dropped while a finisher on a sibling runs.
        4 => {
            let doomed = group.start(&tree()).await;
            let quick = group.start(&sh("echo done")).await;
            let finish = async {
                if let Ok(run) = quick {
                    let _ = run.finish_streamed().await;
                }
            };
            let drop_it = async {
                tokio::time::sleep(delay).await;
                drop(doomed);
            };
            tokio::join!(finish, drop_it);
        }
        // A wait cancelled at a random point, then the handle dropped.
        5 => {
            if let Ok(mut run) = group.start(&tree()).await {
                let _ = tokio::time::timeout(delay, run.wait()).await;
            }
        }
        // A run waited for while its group is dropped under it.
        6 => {
            if let Ok(mut run) = group.start(&tree()).await {
                drop(group);
                let _ = tokio::time::timeout(Duration::from_secs(20), run.wait()).await;
            }
        }
        // A timeout racing a cancelled future.
        _ => {
            let cmd = tree().timeout(delay + Duration::from_millis(1));
            drop(tokio::time::timeout(delay * 2, cmd.output_string()).await);
        }
    }
}

/// Inside a private pid namespace: a member exits, a stranger (its own
/// process group leader) is made to take its pid, then the group signals,
/// terminates and is dropped; the stranger must survive all three.
pub async fn recycled_pid() {
    use processkit::Signal;
    let mechanism = Mechanism::from_name(&std::env::var("PK_MECH").unwrap()).unwrap();
    let options = ProcessGroupOptions::default().mechanism(mechanism);
    let group = ProcessGroup::with_options(options).expect("group");
    let mut keeper = group
        .start(&sh("echo up; exec sleep 30"))
        .await
        .expect("keeper");
    keeper
        .wait_for_line(|l| l == "up", Duration::from_secs(10))
        .await
        .expect("keeper up");
    let keeper_proc = Proc::of(keeper.id().unwrap()).expect("keeper alive");
    let Recycled {
        member,
        mut stranger,
        pid,
    } = stranger_on_a_members_pid(&group).await;
    let pinned = Proc::of(pid).expect("stranger alive");
    let survives = |after: &str| {
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            pinned.is_alive(),
            "under {mechanism}, {after} killed an unrelated process that took pid {pid}"
        );
    };
    let _ = group.signal(Signal::Term);
    survives("group.signal(Term)");
    let _ = group.terminate_all();
    survives("group.terminate_all()");
    assert!(
        eventually(LIMIT, || !keeper_proc.is_alive()),
        "the keeper survived terminate_all"
    );
    drop((member, keeper));
    drop(group);
    survives("dropping the group");
    let _ = stranger.kill();
    let _ = stranger.wait();
}

/// Inside a private pid namespace: a member exits, a stranger (carrying the
/// mark) takes its pid, then the owner dies without tearing anything down;
/// the guardian's cleanup must spare the stranger, which the test watches.
pub async fn recycled_pid_at_owner_death() {
    let mechanism = Mechanism::from_name(&std::env::var("PK_MECH").unwrap()).unwrap();
    let options = ProcessGroupOptions::default().mechanism(mechanism);
    let group = ProcessGroup::with_options(options).expect("group");
    let Recycled {
        member, stranger, ..
    } = stranger_on_a_members_pid(&group).await;
    tell("STRANGER", stranger.id());
    // The owner dies holding its group: only the guardian acts now.
    std::mem::forget((member, group, stranger));
    std::process::exit(0);
}

/// A member's pid, freed and taken by a stranger.
struct Recycled {
    /// The member's handle, or `None` when the pid came free only once the
    /// handle was dropped.
    member: Option<processkit::RunningProcess>,
    /// `sleep 30`, its own process group leader, carrying the mark.
    stranger: std::process::Child,
    pid: u32,
}

/// Starts a member that exits at once and makes a stranger take its pid.
/// One of our own processes may take the freed pid first (a subreaper
/// zygote forks its next spare shim while ns_last_pid points at it): that is
/// no stranger, so a new member's pid is tried, up to five times.
async fn stranger_on_a_members_pid(group: &ProcessGroup) -> Recycled {
    let mut taken_by_ours = Vec::new();
    for _ in 0..5 {
        let mut member = group.start(&sh("exit 0")).await.expect("member");
        let pid = member.id().expect("member pid");
        assert_eq!(member.wait().await.expect("member exits"), Some(0));
        let mut member = Some(member);
        let mut stranger = take_pid(pid);
        if stranger.is_none() {
            // Some mechanisms keep the pid until the handle lets it go.
            member = None;
            stranger = take_pid(pid);
        }
        match stranger {
            Some(stranger) => {
                return Recycled {
                    member,
                    stranger,
                    pid,
                };
            }
            None => {
                let held = format!("{pid} ({})", holder(pid));
                say(&format!("the member's pid {held} did not come free"));
                taken_by_ours.push(held);
            }
        }
    }
    panic!("could not make a stranger take a member's pid; held by: {taken_by_ours:?}");
}

/// Who holds `pid` now (its command name), for a failure's message.
fn holder(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map_or_else(|_| "nobody".to_owned(), |comm| comm.trim().to_owned())
}

/// Starts `sleep 30` as its own process group leader with pid `pid`, forced
/// through ns_last_pid; `None` if the pid stayed taken.
fn take_pid(pid: u32) -> Option<std::process::Child> {
    use std::os::unix::process::CommandExt;
    for _ in 0..50 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string())
            .expect("write ns_last_pid");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env(MARK, mark())
            .process_group(0)
            .spawn()
            .expect("spawn the stranger");
        if child.id() == pid {
            return Some(child);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    None
}

pub async fn second_program() {
    let options = ProcessGroupOptions::default().mechanism(Mechanism::CgroupV2);
    let group = match ProcessGroup::with_options(options) {
        Ok(group) => group,
        Err(e) => return say(&format!("SKIP: no cgroup v2 inside the pid namespace: {e}")),
    };
    let tree = sh("sleep 1000 & sleep 1000 & echo up; wait");
    let mut run = group.start(&tree).await.expect("start");
    run.wait_for_line(|l| l == "up", Duration::from_secs(10))
        .await
        .expect("tree up");
    if std::env::var("PK_ROLE").is_ok_and(|r| r == "owner") {
        tell("READY", "1");
        std::thread::sleep(Duration::from_secs(120));
    } else {
        tell("SWEPT", "1");
    }
}

pub fn processkit_roots(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("processkit-"))
        .map(|e| e.path())
        .collect()
}
