//! Teardown of a 500-process tree: processkit on the subreaper (dropping the
//! group, and `shutdown`) against a raw `killpg`, where every sample runs
//! from the kill until no pid of the tree is left in /proc; and processkit on
//! cgroup v2 against a raw `cgroup.kill`, until the tree's cgroup is removed.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use processkit::{Command, Mechanism, ProcessGroup, ProcessGroupOptions};
use support::{Contest, size};

const CGROUP_NAMES: [&str; 3] = [
    "raw cgroup.kill + poll events + rmdir",
    "processkit drop(ProcessGroup)",
    "processkit ProcessGroup::shutdown",
];

/// `sh` that starts `n - 1` sleepers, says `ready`, and waits.
fn tree_script(n: usize) -> String {
    format!("i=1; while [ $i -lt {n} ]; do sleep 3600 & i=$((i+1)); done; echo ready; wait")
}

/// Kills a hand-made cgroup and removes it on drop, even when a round panics.
struct RawCgroup(PathBuf);

impl Drop for RawCgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0.join("cgroup.kill"), "1");
        for _ in 0..5000 {
            if std::fs::remove_dir(&self.0).is_ok() || !self.0.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn populated(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("cgroup.events"))
        .map(|t| t.lines().any(|l| l == "populated 1"))
        .unwrap_or(false)
}

fn count_procs(dir: &Path) -> usize {
    let mut n = std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| t.lines().count())
        .unwrap_or(0);
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                n += count_procs(&e.path());
            }
        }
    }
    n
}

fn raw_round(parent: &Path, n: usize, round: usize) -> Duration {
    let dir = parent.join(format!("pk-bench-raw-{}-{round}", std::process::id()));
    std::fs::create_dir(&dir).expect("create a raw cgroup");
    let guard = RawCgroup(dir.clone());
    let script = format!(
        "echo $$ > '{}/cgroup.procs' || exit 1; {}",
        dir.display(),
        tree_script(n)
    );
    let mut child = std::process::Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    assert_eq!(
        count_procs(&dir),
        n,
        "the raw tree is not all in its cgroup"
    );
    let begun = Instant::now();
    std::fs::write(dir.join("cgroup.kill"), "1").unwrap();
    while populated(&dir) {
        std::hint::spin_loop();
    }
    std::fs::remove_dir(&dir).unwrap();
    let took = begun.elapsed();
    child.wait().unwrap();
    drop(guard);
    took
}

async fn library_round(n: usize, by_shutdown: bool) -> Duration {
    let options = ProcessGroupOptions::default()
        .mechanism(Mechanism::CgroupV2)
        .shutdown_grace(Duration::ZERO);
    let group = ProcessGroup::with_options(options).unwrap();
    let mut run = group
        .start(&Command::new("sh").args(["-c", &tree_script(n)]))
        .await
        .unwrap();
    run.wait_for_line(|l| l == "ready", Duration::from_secs(120))
        .await
        .unwrap();
    let run_cgroup = support::cgroup_of(run.id().unwrap()).expect("the run's cgroup");
    let group_cgroup = run_cgroup.parent().unwrap().to_owned();
    assert_eq!(
        count_procs(&group_cgroup),
        n,
        "the tree is not all in the group"
    );
    let begun = Instant::now();
    if by_shutdown {
        group.shutdown().await.unwrap();
        drop(group);
    } else {
        drop(group);
    }
    // Gone means what the raw contender proves: empty, and the cgroup removed.
    while group_cgroup.exists() {
        tokio::task::yield_now().await;
    }
    let took = begun.elapsed();
    let _ = run.wait().await;
    took
}

/// The subreaper against a raw `killpg` (Linux only, like the subreaper).
#[cfg(target_os = "linux")]
mod killpg {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    use processkit::{Command, Mechanism, ProcessGroup, ProcessGroupOptions};

    use super::tree_script;
    use crate::support::Contest;

    const KILLPG_NAMES: [&str; 4] = [
        "raw killpg + reap (self as subreaper)",
        "processkit drop(ProcessGroup), subreaper",
        "processkit shutdown(), subreaper",
        "raw killpg, orphans reaped by init",
    ];

    /// A process of the tree, with its start time so a recycled pid is told apart.
    struct Proc {
        pid: u32,
        start: u64,
    }

    /// The start time (field 22 of `/proc/<pid>/stat`), if the pid exists.
    fn start_time(pid: u32) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (_, rest) = stat.rsplit_once(')')?;
        rest.split_whitespace().nth(19)?.parse().ok()
    }

    fn parent_of(pid: u32) -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (_, rest) = stat.rsplit_once(')')?;
        rest.split_whitespace().nth(1)?.parse().ok()
    }

    /// `root` and every process below it, found through
    /// `/proc/<pid>/task/*/children` (taken while the tree is quiet).
    fn tree_of(root: u32) -> Vec<Proc> {
        let mut pids = vec![root];
        let mut i = 0;
        while i < pids.len() {
            if let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", pids[i])) {
                for task in tasks.flatten() {
                    let children = std::fs::read_to_string(task.path().join("children"));
                    pids.extend(
                        children
                            .unwrap_or_default()
                            .split_whitespace()
                            .filter_map(|p| p.parse::<u32>().ok()),
                    );
                }
            }
            i += 1;
        }
        pids.into_iter()
            .filter_map(|pid| {
                Some(Proc {
                    pid,
                    start: start_time(pid)?,
                })
            })
            .collect()
    }

    /// Polls until no process of `tree` has a /proc entry (reaped, not merely
    /// dead). The hot loop only stats `/proc/<pid>`, the same for every
    /// contender; a pid that lingers is checked against its start time, so a
    /// recycled one does not keep the loop waiting.
    async fn until_gone(mut tree: Vec<Proc>) {
        let begun = Instant::now();
        let mut checked = Duration::ZERO;
        while !tree.is_empty() {
            tree.retain(|p| std::fs::symlink_metadata(format!("/proc/{}", p.pid)).is_ok());
            if begun.elapsed() > checked + Duration::from_secs(1) {
                checked = begun.elapsed();
                tree.retain(|p| start_time(p.pid) == Some(p.start));
                assert!(checked < Duration::from_secs(60), "the tree outlived 60 s");
            }
            tokio::task::yield_now().await;
        }
    }

    /// Kills a hand-made process group on drop, even when a round panics.
    struct RawGroup(rustix::process::Pid);

    impl Drop for RawGroup {
        fn drop(&mut self) {
            let _ = rustix::process::kill_process_group(self.0, rustix::process::Signal::KILL);
        }
    }

    /// `reap_self`: this process is made a child subreaper for the round, so
    /// the orphans of `sh` come to it and it reaps the whole group itself
    /// (`waitpid` on the process group), as the shim does for its tree.
    /// Otherwise they go to init, and the round waits for init to reap them.
    async fn killpg_round(n: usize, reap_self: bool) -> Duration {
        use rustix::process::{Pid, Signal, WaitOptions};
        if reap_self {
            rustix::process::set_child_subreaper(Some(rustix::process::getpid())).unwrap();
        }
        let mut child = std::process::Command::new("sh")
            .args(["-c", &tree_script(n)])
            .process_group(0)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let pgid = Pid::from_raw(child.id() as i32).unwrap();
        let guard = RawGroup(pgid);
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        let tree = tree_of(child.id());
        assert_eq!(tree.len(), n, "the raw tree is not all there");
        let begun = Instant::now();
        rustix::process::kill_process_group(pgid, Signal::KILL).unwrap();
        if reap_self {
            // Until ECHILD: `sh` is reaped only after its orphans became ours.
            while rustix::process::waitpgid(pgid, WaitOptions::empty()).is_ok() {}
        } else {
            child.wait().unwrap();
        }
        until_gone(tree).await;
        let took = begun.elapsed();
        if reap_self {
            rustix::process::set_child_subreaper(None).unwrap();
        }
        let _ = child.try_wait();
        drop(guard);
        took
    }

    async fn subreaper_round(n: usize, by_shutdown: bool) -> Duration {
        let options = ProcessGroupOptions::default()
            .mechanism(Mechanism::Subreaper)
            .shutdown_grace(Duration::ZERO);
        let group = ProcessGroup::with_options(options).unwrap();
        let mut run = group
            .start(&Command::new("sh").args(["-c", &tree_script(n)]))
            .await
            .unwrap();
        run.wait_for_line(|l| l == "ready", Duration::from_secs(120))
            .await
            .unwrap();
        // The shim is counted too: processkit's teardown is not over while it lives.
        let shim = parent_of(run.id().unwrap()).expect("the run's shim");
        let tree = tree_of(shim);
        assert_eq!(tree.len(), n + 1, "the tree is not all below the shim");
        let begun = Instant::now();
        if by_shutdown {
            group.shutdown().await.unwrap();
        }
        drop(group);
        until_gone(tree).await;
        let took = begun.elapsed();
        let _ = run.wait().await;
        took
    }

    pub async fn against_killpg(n: usize, rounds: usize) {
        let probe = ProcessGroupOptions::default().mechanism(Mechanism::Subreaper);
        if let Err(e) = ProcessGroup::with_options(probe) {
            println!("no subreaper here ({e}): nothing to compare with killpg");
            return;
        }
        let title = format!("teardown of a {n}-process tree, until no pid is left in /proc");
        let mut contest = Contest::new(title, &KILLPG_NAMES);
        for round in 0..rounds {
            for which in contest.order(round) {
                let took = match which {
                    0 => killpg_round(n, true).await,
                    1 => subreaper_round(n, false).await,
                    2 => subreaper_round(n, true).await,
                    _ => killpg_round(n, false).await,
                };
                contest.record(which, took);
            }
        }
        contest.report(0, None);
    }
}

async fn against_cgroup_kill(n: usize, rounds: usize) {
    let Some(parent) = support::writable_cgroup_dir() else {
        println!("no writable cgroup v2 here: nothing to compare with cgroup.kill");
        return;
    };
    if ProcessGroup::new().unwrap().mechanism() != Mechanism::CgroupV2 {
        println!("processkit does not use cgroup v2 here: nothing to compare with cgroup.kill");
        return;
    }
    let title = format!("teardown of a {n}-process tree, until its cgroup is removed");
    let mut contest = Contest::new(title, &CGROUP_NAMES);
    for round in 0..rounds {
        for which in contest.order(round) {
            let took = match which {
                0 => raw_round(&parent, n, round),
                1 => library_round(n, false).await,
                _ => library_round(n, true).await,
            };
            contest.record(which, took);
        }
    }
    contest.report(0, None);
}

fn main() {
    support::header("teardown");
    let n = size(500, 50);
    let rounds = size(9, 2);
    let rt = support::runtime();
    rt.block_on(async {
        #[cfg(target_os = "linux")]
        killpg::against_killpg(n, rounds).await;
        against_cgroup_kill(n, rounds).await;
    });
}
