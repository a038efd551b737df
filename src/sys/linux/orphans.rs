//! The orphan reaper: a thread (`processkit-orphans`) that polls this
//! process's children in `/proc` and reaps, one pid at a time, the zombies
//! that are not our own (`own_children`): orphans re-parented to us.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rustix::process::{Pid, WaitId, WaitIdOptions};

use super::own_children::{self, Stat};

/// The pause after a scan that found an orphan; doubled after each idle
/// scan up to `IDLE_PAUSE`. There is no SIGCHLD to wait on: tokio's handler
/// owns it (through signal-hook-registry) and a signalfd would need it
/// blocked in every thread.
const BUSY_PAUSE: Duration = Duration::from_millis(100);
const IDLE_PAUSE: Duration = Duration::from_secs(1);

/// Whether the thread runs (a failed start is tried again on the next call).
static STARTED: Mutex<bool> = Mutex::new(false);
/// Orphans reaped so far.
static REAPED: AtomicU64 = AtomicU64::new(0);

/// Turns the registry on and starts the reaper thread, once.
pub(crate) fn start() -> io::Result<()> {
    let mut started = STARTED.lock().unwrap_or_else(PoisonError::into_inner);
    if *started {
        return Ok(());
    }
    // Everything below reads /proc as this process sees it (a container's
    // PID 1 with its own /proc mounted).
    fs::read_dir("/proc/self/task")?;
    own_children::enable(|| children().into_iter().collect());
    std::thread::Builder::new()
        .name("processkit-orphans".into())
        .spawn(run)?;
    *started = true;
    Ok(())
}

/// How many orphans the thread has reaped.
pub(crate) fn reaped() -> u64 {
    REAPED.load(Ordering::Relaxed)
}

fn run() {
    let mut pause = BUSY_PAUSE;
    loop {
        pause = if scan() {
            BUSY_PAUSE
        } else {
            (pause * 2).min(IDLE_PAUSE)
        };
        std::thread::sleep(pause);
    }
}

/// One pass: reaps the zombie children that are not our own; `true` if it
/// found any.
fn scan() -> bool {
    let children = children();
    if own_children::len() > children.len() {
        own_children::prune(|pid| !children.contains(&pid));
    }
    let orphans: Vec<(u32, u64)> = children
        .iter()
        .filter_map(|&pid| {
            let stat = own_children::stat(pid)?;
            (stat.state == 'Z' && !own_children::is_own(pid, stat.start))
                .then_some((pid, stat.start))
        })
        .collect();
    if orphans.is_empty() {
        return false;
    }
    // Held while deciding: a spawn that was between fork and registration
    // during the scan above has registered its child by now.
    let _exclusive = own_children::exclusive();
    let me = std::process::id();
    for (pid, start) in orphans {
        let same = own_children::stat(pid).is_some_and(|now| {
            now == Stat {
                state: 'Z',
                ppid: me,
                start,
            }
        });
        if same && !own_children::is_own(pid, start) && reap(pid) {
            REAPED.fetch_add(1, Ordering::Relaxed);
        }
    }
    true
}

/// Reaps exactly `pid` if it has exited: never `waitpid(-1)`, which could
/// take a status someone else waits for.
fn reap(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return false;
    };
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG;
    matches!(
        rustix::process::waitid(WaitId::Pid(pid), options),
        Ok(Some(_))
    )
}

/// This process's children: every thread's `children` file (a child's
/// parent is the thread that forked it, or any of ours once re-parented).
/// Kernels built without those files are answered by a scan of `/proc`.
fn children() -> HashSet<u32> {
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return HashSet::new();
    };
    let mut children = HashSet::new();
    for task in tasks.flatten() {
        match fs::read_to_string(task.path().join("children")) {
            Ok(list) => children.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return children_by_ppid(),
            // A thread that has just exited.
            Err(_) => {}
        }
    }
    children
}

/// The slow way: every process whose parent is us.
fn children_by_ppid() -> HashSet<u32> {
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return HashSet::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| own_children::stat(pid).is_some_and(|s| s.ppid == me))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::linux::own_children::tests::Killed;

    #[test]
    fn lists_a_child_both_ways_and_never_reaps_a_live_one() {
        let mut child = Killed(
            std::process::Command::new("sleep")
                .arg("30")
                .spawn()
                .expect("sleep"),
        );
        let pid = child.0.id();
        assert!(children().contains(&pid));
        assert!(children_by_ppid().contains(&pid));
        assert!(!reap(pid), "a running child is not reaped");
        child.0.kill().expect("kill");
        child.0.wait().expect("still ours to wait for");
    }
}
