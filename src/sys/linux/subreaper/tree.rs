//! The processes below a shim, found through `/proc/<pid>/task/*/children`
//! and each pinned by a pidfd checked to still be its parent's child, so a
//! signal never reaches a process that took over a recycled pid.

use std::collections::HashSet;
use std::os::fd::{AsFd, OwnedFd};
use std::{fs, io};

use rustix::process::{Pid, PidfdFlags};

use crate::sys::linux::pidfd::send_signal;

/// One process of a tree, pinned.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) pid: u32,
    pidfd: OwnedFd,
}

impl Member {
    /// Pins any live process (an adopted one, whoever its parent is).
    pub(crate) fn pin_any(pid: u32) -> io::Result<Member> {
        let target = i32::try_from(pid)
            .ok()
            .and_then(Pid::from_raw)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
        let pidfd = rustix::process::pidfd_open(target, PidfdFlags::empty())?;
        Ok(Member { pid, pidfd })
    }

    /// Another pin of the same process, while it lives.
    pub(crate) fn repin(&self) -> io::Result<Member> {
        send_signal(self.pidfd.as_fd(), 0, 0)?;
        Ok(Member {
            pid: self.pid,
            pidfd: self.pidfd.try_clone()?,
        })
    }

    pub(crate) fn is_alive(&self) -> bool {
        send_signal(self.pidfd.as_fd(), 0, 0).is_ok()
    }

    /// Signals exactly this process; one that has exited meanwhile is no error.
    pub(crate) fn signal(&self, signal: i32) {
        let _ = send_signal(self.pidfd.as_fd(), signal, 0);
    }
}

/// Every live process below `root` (not `root` itself), parents first.
pub(crate) fn descendants(root: u32) -> Vec<Member> {
    let mut found: Vec<Member> = Vec::new();
    let mut parents = vec![root];
    while let Some(parent) = parents.pop() {
        for child in children_of(parent) {
            if let Some(member) = pin(child, parent) {
                parents.push(child);
                found.push(member);
            }
        }
    }
    found
}

/// Stops every process below `roots` with SIGSTOP, walking again until a
/// walk finds nobody new: a stopped process cannot fork, so this ends.
pub(crate) fn stop_all(roots: &[u32]) {
    let mut stopped = HashSet::new();
    // Bounded: a tree that keeps changing under us still gets many passes.
    for _ in 0..64 {
        let mut new = false;
        for root in roots {
            for member in descendants(*root) {
                if stopped.insert(member.pid) {
                    member.signal(libc::SIGSTOP);
                    new = true;
                }
            }
        }
        if !new {
            return;
        }
    }
}

/// The pids listed as children of `pid`, by any of its threads.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut children = Vec::new();
    for task in tasks.flatten() {
        let mut path = task.path();
        path.push("children");
        if let Ok(list) = fs::read_to_string(path) {
            children.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    children
}

/// A pidfd for `pid` if it is (still) a live child of `parent`. The pidfd
/// is opened first: if the pid was recycled before that, the newcomer's
/// parent is not `parent` (or it is, and then it is in the tree too); a
/// process that exits after is answered by the liveness check.
fn pin(pid: u32, parent: u32) -> Option<Member> {
    let target = Pid::from_raw(i32::try_from(pid).ok()?)?;
    let pidfd = rustix::process::pidfd_open(target, PidfdFlags::empty()).ok()?;
    if parent_of(pid)? != parent {
        return None;
    }
    send_signal(pidfd.as_fd(), 0, 0).ok()?;
    Some(Member { pid, pidfd })
}

/// Field 4 of `/proc/<pid>/stat`.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_grandchild_and_not_the_root() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .spawn()
            .unwrap();
        let me = std::process::id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut pids = Vec::new();
        while pids.is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
            pids = descendants(child.id()).iter().map(|m| m.pid).collect();
        }
        let below_me: Vec<u32> = descendants(me).iter().map(|m| m.pid).collect();
        for member in descendants(child.id()) {
            member.signal(libc::SIGKILL);
        }
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(pids.len(), 1, "{pids:?}");
        assert!(below_me.contains(&child.id()) && below_me.contains(&pids[0]));
        assert!(!pids.contains(&child.id()));
    }
}
