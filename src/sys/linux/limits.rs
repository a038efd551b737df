//! Whole-tree caps on a group's cgroup: hands the memory/pids/cpu controllers
//! down to the group (through our own cgroup's and the per-process root's
//! `cgroup.subtree_control`) and writes `memory.max`, `pids.max`, `cpu.max`.
//! When that cannot be done the error says which limit, why, and what fixes it.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use super::cgroup::{self, Cgroup};
use crate::error::Error;
use crate::limits::Limits;

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

/// Why a cap cannot be enforced, and what would fix it.
struct Refusal {
    reason: String,
    fix: String,
}

/// Enforces every requested limit on `group`, or fails on the first that
/// cannot be enforced (the group is then discarded by the caller).
pub(crate) fn apply(group: &Cgroup, limits: &Limits) -> Result<(), Error> {
    for cap in caps(limits)? {
        enforce(group, &cap).map_err(|r| Error::ResourceLimit {
            limit: cap.limit,
            reason: r.reason,
            fix: r.fix,
        })?;
    }
    Ok(())
}

fn caps(limits: &Limits) -> Result<Vec<Cap>, Error> {
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
            value: format!("{} {CPU_PERIOD_USEC}", cpu_quota_usec(cores)?),
        });
    }
    Ok(out)
}

/// The `cpu.max` quota for `cores`, refusing what the kernel cannot express.
fn cpu_quota_usec(cores: f64) -> Result<u64, Error> {
    let quota = (cores * CPU_PERIOD_USEC as f64).round();
    if quota < CPU_MIN_QUOTA_USEC as f64 {
        return Err(Error::ResourceLimit {
            limit: "cpu_quota",
            reason: format!(
                "{cores} of a core is below what cpu.max can express (1 ms per 100 ms)"
            ),
            fix: "pass at least 0.01".into(),
        });
    }
    Ok(quota as u64)
}

fn enforce(group: &Cgroup, cap: &Cap) -> Result<(), Refusal> {
    let root = cgroup::root().map_err(|why| Refusal {
        reason: format!("no per-process cgroup: {why}"),
        fix: "run where a cgroup v2 hierarchy is mounted and writable".into(),
    })?;
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
    group.write(cap.file, &cap.value).map_err(|e| Refusal {
        reason: format!(
            "writing {} in {} failed: {e}",
            cap.file,
            group.path().display()
        ),
        fix: "check that the controller is delegated to this process's cgroup".into(),
    })
}

/// Writes `+controller` to `dir`'s `cgroup.subtree_control`; true when this
/// call switched it on. `ours` marks the cgroup this process itself lives in,
/// where the internal-process rule bites.
fn enable_in(dir: &Path, controller: &str, ours: bool) -> Result<bool, Refusal> {
    if lists(&dir.join("cgroup.subtree_control"), controller) {
        return Ok(false);
    }
    if !lists(&dir.join("cgroup.controllers"), controller) {
        return Err(not_offered(dir, controller));
    }
    write_control(dir, &format!("+{controller}"))
        .map(|()| true)
        .map_err(|e| refused(dir, controller, ours, &e))
}

fn write_control(dir: &Path, change: &str) -> io::Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.subtree_control"))
        .and_then(|mut f| f.write_all(change.as_bytes()))
}

/// The controller is not in `dir`'s `cgroup.controllers`: nobody above
/// delegated it (or, on a hybrid host, a cgroup v1 hierarchy owns it).
fn not_offered(dir: &Path, controller: &str) -> Refusal {
    let reason = match v1_mount_of(controller) {
        Some(v1) => format!(
            "the `{controller}` controller is bound to a cgroup v1 hierarchy ({v1}), so the \
             cgroup v2 tree cannot use it: it is missing from {}/cgroup.controllers",
            dir.display()
        ),
        None => format!(
            "the `{controller}` controller is not delegated to {}: it is missing from its \
             cgroup.controllers (the parent's cgroup.subtree_control does not enable it)",
            dir.display()
        ),
    };
    Refusal {
        reason,
        fix: "run on a pure cgroup v2 hierarchy (systemd.unified_cgroup_hierarchy=1) inside a \
              unit or scope with Delegate=yes (e.g. `systemd-run --scope -p Delegate=yes ...`), \
              or as root in a container that delegates memory, pids and cpu"
            .into(),
    }
}

fn refused(dir: &Path, controller: &str, ours: bool, e: &io::Error) -> Refusal {
    let path = dir.display();
    match e.raw_os_error() {
        Some(libc::EBUSY) => Refusal {
            reason: format!(
                "the no-internal-process rule: {path} holds processes{}, so it cannot hand \
                 the `{controller}` controller down to the cgroups below it",
                if ours { " (this one among them)" } else { "" }
            ),
            fix: format!(
                "start this program in a leaf of a delegated subtree, or move it into a child \
                 cgroup (e.g. {path}/leaf) before creating the group"
            ),
        },
        // A domain cgroup below one that holds processes and hands down a
        // threaded controller (pids, cpu) is "domain invalid" and refuses.
        Some(libc::EOPNOTSUPP) => Refusal {
            reason: format!(
                "the no-internal-process rule: the cgroup above {path} holds processes, so \
                 the kernel will not hand the `{controller}` controller down through {path}"
            ),
            fix: "start this program in a leaf of a delegated subtree (a cgroup with no \
                  other processes and no children), so its own cgroup can delegate"
                .into(),
        },
        Some(libc::EACCES | libc::EPERM | libc::EROFS) => Refusal {
            reason: format!(
                "no delegation: not allowed to write {path}/cgroup.subtree_control ({e})"
            ),
            fix: "run as root, or under a systemd unit or scope with Delegate=yes".into(),
        },
        _ => Refusal {
            reason: format!("enabling `{controller}` in {path}/cgroup.subtree_control failed: {e}"),
            fix: "check the cgroup v2 delegation of this process's cgroup".into(),
        },
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
    fn explains_each_way_enabling_a_controller_fails() {
        let dir = Path::new("/sys/fs/cgroup/app.scope");
        let busy = refused(
            dir,
            "memory",
            true,
            &io::Error::from_raw_os_error(libc::EBUSY),
        );
        assert!(
            busy.reason.contains("no-internal-process rule"),
            "{}",
            busy.reason
        );
        assert!(busy.reason.contains("this one among them"));
        assert!(
            busy.fix.contains("/sys/fs/cgroup/app.scope/leaf"),
            "{}",
            busy.fix
        );
        let denied = refused(
            dir,
            "pids",
            false,
            &io::Error::from_raw_os_error(libc::EACCES),
        );
        assert!(denied.reason.contains("no delegation"), "{}", denied.reason);
        assert!(denied.fix.contains("Delegate=yes"));
        let invalid = refused(
            dir,
            "pids",
            false,
            &io::Error::from_raw_os_error(libc::EOPNOTSUPP),
        );
        assert!(
            invalid.reason.contains("no-internal-process rule"),
            "{}",
            invalid.reason
        );
        assert!(invalid.fix.contains("leaf"));
        let other = refused(
            dir,
            "cpu",
            false,
            &io::Error::from_raw_os_error(libc::EINVAL),
        );
        assert!(other.reason.contains("`cpu`"), "{}", other.reason);
    }

    #[test]
    fn converts_cpu_fractions_to_quota() {
        assert_eq!(cpu_quota_usec(0.2).ok(), Some(20_000));
        assert_eq!(cpu_quota_usec(2.0).ok(), Some(200_000));
        assert!(cpu_quota_usec(0.001).is_err());
    }
}
