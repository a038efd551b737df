//! Teardown of a 500-process tree: processkit (dropping the group, and
//! `shutdown`) against a raw `cgroup.kill` on a cgroup created by hand.
//! Each sample runs from the kill until the tree is gone and its cgroup removed.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use processkit::{Command, Mechanism, ProcessGroup, ProcessGroupOptions};
use support::{Contest, size};

const NAMES: [&str; 3] = [
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
    let options = ProcessGroupOptions::default().shutdown_grace(Duration::ZERO);
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

fn main() {
    support::header("teardown");
    let Some(parent) = support::writable_cgroup_dir() else {
        println!("no writable cgroup v2 here: nothing to compare");
        return;
    };
    let n = size(500, 50);
    let rounds = size(9, 2);
    let rt = support::runtime();
    rt.block_on(async {
        if ProcessGroup::new().unwrap().mechanism() != Mechanism::CgroupV2 {
            println!("processkit does not use cgroup v2 here: nothing to compare");
            return;
        }
        let mut contest = Contest::new(format!("teardown of a {n}-process tree"), &NAMES);
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
    });
}
