//! Whole-tree caps on a group's cgroup: hands the memory/pids/cpu controllers
//! down to the group (through our own cgroup's and the per-process root's
//! `cgroup.subtree_control`) and writes `memory.max`, `pids.max`, `cpu.max`.
//! When that cannot be done it reports which limit and the facts of why;
//! the `limits` module words them (and the fix) for users.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use super::cgroup::{self, Cgroup};
use crate::sys::Limits;
use crate::sys::{LimitFailure, LimitRefusal, RefusedWhy};

/// `cpu.max` period: 100 ms, the kernel default.
const CPU_PERIOD_USEC: u64 = 100_000;
/// The smallest quota `cpu.max` accepts.
const CPU_MIN_QUOTA_USEC: u64 = 1_000;

/// One cap to write: the option's name, its controller, the file and value.
struct Cap {
    limit: &'static str,
    controller: &'static str,
    file: &'static str,
    value: String,
}

/// Enforces every requested limit on `group`, or fails on the first that
/// cannot be enforced (the group is then discarded by the caller).
pub(crate) fn apply(group: &Cgroup, limits: &Limits) -> Result<(), LimitRefusal> {
    for cap in caps(limits)? {
        enforce(group, &cap).map_err(|failure| LimitRefusal::Cgroup {
            limit: cap.limit,
            failure,
        })?;
    }
    Ok(())
}

fn caps(limits: &Limits) -> Result<Vec<Cap>, LimitRefusal> {
    let mut out = Vec::new();
    if let Some(bytes) = limits.memory_max {
        out.push(Cap {
            limit: "memory_max",
            controller: "memory",
            file: "memory.max",
            value: bytes.to_string(),
        });
    }
    if let Some(count) = limits.max_processes {
        out.push(Cap {
            limit: "max_processes",
            controller: "pids",
            file: "pids.max",
            value: count.to_string(),
        });
    }
    if let Some(cores) = limits.cpu_quota {
        out.push(Cap {
            limit: "cpu_quota",
            controller: "cpu",
            file: "cpu.max",
            value: format!(
                "{} {CPU_PERIOD_USEC}",
                cpu_quota_usec(cores).map_err(|failure| LimitRefusal::Cgroup {
                    limit: "cpu_quota",
                    failure
                })?
            ),
        });
    }
    Ok(out)
}

/// The `cpu.max` quota for `cores`, refusing what the kernel cannot express.
fn cpu_quota_usec(cores: f64) -> Result<u64, LimitFailure> {
    let quota = (cores * CPU_PERIOD_USEC as f64).round();
    if quota < CPU_MIN_QUOTA_USEC as f64 {
        return Err(LimitFailure::QuotaTooSmall { cores });
    }
    Ok(quota as u64)
}

fn enforce(group: &Cgroup, cap: &Cap) -> Result<(), LimitFailure> {
    let root = cgroup::root().map_err(|why| LimitFailure::NoRoot(why.to_string()))?;
    let ours = root.path.parent().unwrap_or(&root.path);
    let mut enabled_in_ours = false;
    if !lists(&root.path.join("cgroup.controllers"), cap.controller) {
        enabled_in_ours = enable_in(ours, cap.controller, true)?;
    }
    if let Err(refusal) = enable_in(&root.path, cap.controller, false) {
        // Leave our own cgroup as we found it when the cap fails anyway.
        if enabled_in_ours {
            let _ = write_control(ours, &format!("-{}", cap.controller));
        }
        return Err(refusal);
    }
    group
        .write(cap.file, &cap.value)
        .map_err(|error| LimitFailure::WriteFailed {
            file: cap.file,
            dir: group.path().to_owned(),
            error,
        })
}

/// Writes `+controller` to `dir`'s `cgroup.subtree_control`; true when this
/// call switched it on. `ours` marks the cgroup this process itself lives in,
/// where the internal-process rule bites.
fn enable_in(dir: &Path, controller: &'static str, ours: bool) -> Result<bool, LimitFailure> {
    if lists(&dir.join("cgroup.subtree_control"), controller) {
        return Ok(false);
    }
    if !lists(&dir.join("cgroup.controllers"), controller) {
        return Err(not_offered(dir, controller));
    }
    write_control(dir, &format!("+{controller}"))
        .map(|()| true)
        .map_err(|error| LimitFailure::Refused {
            dir: dir.to_owned(),
            controller,
            ours,
            why: refused_why(&error),
            error,
        })
}

fn write_control(dir: &Path, change: &str) -> io::Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.subtree_control"))
        .and_then(|mut f| f.write_all(change.as_bytes()))
}

/// The controller is not in `dir`'s `cgroup.controllers`: nobody above
/// delegated it (or, on a hybrid host, a cgroup v1 hierarchy owns it).
fn not_offered(dir: &Path, controller: &'static str) -> LimitFailure {
    LimitFailure::NotOffered {
        dir: dir.to_owned(),
        controller,
        v1_mount: v1_mount_of(controller),
    }
}

/// What a refused `cgroup.subtree_control` write means.
fn refused_why(e: &io::Error) -> RefusedWhy {
    match e.raw_os_error() {
        Some(libc::EBUSY) => RefusedWhy::Busy,
        // A domain cgroup below one that holds processes and hands down a
        // threaded controller (pids, cpu) is "domain invalid" and refuses.
        Some(libc::EOPNOTSUPP) => RefusedWhy::ParentBusy,
        Some(libc::EACCES | libc::EPERM | libc::EROFS) => RefusedWhy::Denied,
        _ => RefusedWhy::Other,
    }
}

/// Whether a space-separated controller list file names `controller`.
fn lists(file: &Path, controller: &str) -> bool {
    fs::read_to_string(file).is_ok_and(|t| t.split_whitespace().any(|c| c == controller))
}

/// The mount point of a cgroup v1 hierarchy that owns `controller`, if any.
fn v1_mount_of(controller: &str) -> Option<String> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    v1_mount_in(&mountinfo, controller)
}

fn v1_mount_in(mountinfo: &str, controller: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut right = right.split_whitespace();
        if right.next()? != "cgroup" {
            return None;
        }
        let options = right.nth(1)?;
        options
            .split(',')
            .any(|o| o == controller)
            .then(|| left.split_whitespace().nth(4).map(str::to_owned))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_v1_hierarchy_that_owns_a_controller() {
        let info = "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
                    42 31 0:39 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                    43 31 0:40 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
        assert_eq!(
            v1_mount_in(info, "memory").as_deref(),
            Some("/sys/fs/cgroup/memory")
        );
        assert_eq!(
            v1_mount_in(info, "cpu").as_deref(),
            Some("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(v1_mount_in(info, "pids"), None);
    }

    #[test]
    fn sorts_each_way_enabling_a_controller_fails() {
        let why = |errno| refused_why(&io::Error::from_raw_os_error(errno));
        assert_eq!(why(libc::EBUSY), RefusedWhy::Busy);
        assert_eq!(why(libc::EOPNOTSUPP), RefusedWhy::ParentBusy);
        assert_eq!(why(libc::EACCES), RefusedWhy::Denied);
        assert_eq!(why(libc::EINVAL), RefusedWhy::Other);
    }

    #[test]
    fn converts_cpu_fractions_to_quota() {
        assert_eq!(cpu_quota_usec(0.2).ok(), Some(20_000));
        assert_eq!(cpu_quota_usec(2.0).ok(), Some(200_000));
        assert!(cpu_quota_usec(0.001).is_err());
    }
}
