//! Whole-tree resource caps for a group (`limits` feature): value checks, the
//! hand-off to the mechanism that enforces them, and the words (reason and
//! fix) for a mechanism's refusal. The option setters live in `group::limits`.

use std::path::Path;

use crate::error::{Error, Result};
use crate::sys::{Container, LimitFailure, LimitRefusal, Limits, RefusedWhy};

impl Limits {
    fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    /// The names of the requested limits, in a fixed order.
    pub(crate) fn requested(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.memory_max.is_some() {
            out.push("memory_max");
        }
        if self.max_processes.is_some() {
            out.push("max_processes");
        }
        if self.cpu_quota.is_some() {
            out.push("cpu_quota");
        }
        out
    }

    /// Rejects values no mechanism could honour.
    fn validate(&self) -> Result<()> {
        let bad = |limit, reason: &str, fix: &str| Error::ResourceLimit {
            limit,
            reason: reason.to_owned(),
            fix: fix.to_owned(),
        };
        if self.memory_max == Some(0) {
            return Err(bad(
                "memory_max",
                "a cap of 0 bytes leaves no room for any process",
                "pass a positive number of bytes",
            ));
        }
        if self.max_processes == Some(0) {
            return Err(bad(
                "max_processes",
                "a cap of 0 processes forbids even the first child",
                "pass at least 1",
            ));
        }
        if let Some(cores) = self.cpu_quota
            && !(cores.is_finite() && cores > 0.0)
        {
            return Err(bad(
                "cpu_quota",
                "the fraction of a core must be a positive, finite number",
                "pass e.g. 0.5 for half a core or 2.0 for two cores",
            ));
        }
        Ok(())
    }
}

/// Applies `limits` to a fresh container, or explains why it cannot.
pub(crate) fn apply(container: &Container, limits: &Limits) -> Result<()> {
    if limits.is_empty() {
        return Ok(());
    }
    limits.validate()?;
    container
        .apply_limits(limits)
        .map_err(|refusal| refusal_error(limits, refusal))
}

/// The user's error for a mechanism's refusal: which limit, why, what fixes it.
fn refusal_error(limits: &Limits, refusal: LimitRefusal) -> Error {
    match refusal {
        LimitRefusal::NoAccounting(mechanism) => unenforceable(
            limits,
            &format!("the {mechanism} mechanism has no whole-tree resource accounting"),
            "use a Linux cgroup v2 with delegated controllers (the default mechanism \
             where one is writable) or a Windows Job Object",
        ),
        LimitRefusal::JobRefused(e) => unenforceable(
            limits,
            &format!("the Job Object refused the limits: {e}"),
            "CPU rate control needs Windows 8 or later; run outside a job that \
             forbids nesting with limits",
        ),
        LimitRefusal::Cgroup { limit, failure } => {
            let (reason, fix) = cgroup_words(failure);
            Error::ResourceLimit { limit, reason, fix }
        }
    }
}

/// Why a cgroup cannot enforce a limit, and what would fix it.
fn cgroup_words(failure: LimitFailure) -> (String, String) {
    match failure {
        LimitFailure::QuotaTooSmall { cores } => (
            format!("{cores} of a core is below what cpu.max can express (1 ms per 100 ms)"),
            "pass at least 0.01".into(),
        ),
        LimitFailure::NoRoot(why) => (
            format!("no per-process cgroup: {why}"),
            "run where a cgroup v2 hierarchy is mounted and writable".into(),
        ),
        LimitFailure::NotOffered {
            dir,
            controller,
            v1_mount,
        } => not_offered(&dir, controller, v1_mount.as_deref()),
        LimitFailure::Refused {
            dir,
            controller,
            ours,
            why,
            error,
        } => refused(&dir, controller, ours, why, &error),
        LimitFailure::WriteFailed { file, dir, error } => (
            format!("writing {file} in {} failed: {error}", dir.display()),
            "check that the controller is delegated to this process's cgroup".into(),
        ),
    }
}

/// The controller is missing from `dir`'s `cgroup.controllers`: nobody
/// above delegated it (or, on a hybrid host, a cgroup v1 hierarchy owns it).
fn not_offered(dir: &Path, controller: &str, v1_mount: Option<&str>) -> (String, String) {
    let reason = match v1_mount {
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
    let fix = "run on a pure cgroup v2 hierarchy (systemd.unified_cgroup_hierarchy=1) inside a \
               unit or scope with Delegate=yes (e.g. `systemd-run --scope -p Delegate=yes ...`), \
               or as root in a container that delegates memory, pids and cpu";
    (reason, fix.into())
}

/// Enabling `controller` in `dir`'s `cgroup.subtree_control` failed.
fn refused(
    dir: &Path,
    controller: &str,
    ours: bool,
    why: RefusedWhy,
    e: &std::io::Error,
) -> (String, String) {
    let path = dir.display();
    match why {
        RefusedWhy::Busy => (
            format!(
                "the no-internal-process rule: {path} holds processes{}, so it cannot hand \
                 the `{controller}` controller down to the cgroups below it",
                if ours { " (this one among them)" } else { "" }
            ),
            format!(
                "start this program in a leaf of a delegated subtree, or move it into a child \
                 cgroup (e.g. {path}/leaf) before creating the group"
            ),
        ),
        RefusedWhy::ParentBusy => (
            format!(
                "the no-internal-process rule: the cgroup above {path} holds processes, so \
                 the kernel will not hand the `{controller}` controller down through {path}"
            ),
            "start this program in a leaf of a delegated subtree (a cgroup with no \
             other processes and no children), so its own cgroup can delegate"
                .into(),
        ),
        RefusedWhy::Denied => (
            format!("no delegation: not allowed to write {path}/cgroup.subtree_control ({e})"),
            "run as root, or under a systemd unit or scope with Delegate=yes".into(),
        ),
        RefusedWhy::Other => (
            format!("enabling `{controller}` in {path}/cgroup.subtree_control failed: {e}"),
            "check the cgroup v2 delegation of this process's cgroup".into(),
        ),
    }
}

/// The error for a mechanism that can enforce none of the requested limits;
/// it names the first one requested.
pub(crate) fn unenforceable(limits: &Limits, reason: &str, fix: &str) -> Error {
    let requested = limits.requested();
    let limit = requested.first().copied().unwrap_or("limits");
    let reason = if requested.len() > 1 {
        format!("{reason} (requested: {})", requested.join(", "))
    } else {
        reason.to_owned()
    };
    Error::ResourceLimit {
        limit,
        reason,
        fix: fix.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explains_each_way_enabling_a_controller_fails() {
        let dir = Path::new("/sys/fs/cgroup/app.scope");
        let error = std::io::Error::other("refused");
        let (reason, fix) = refused(dir, "memory", true, RefusedWhy::Busy, &error);
        assert!(reason.contains("no-internal-process rule"), "{reason}");
        assert!(reason.contains("this one among them"));
        assert!(fix.contains("/sys/fs/cgroup/app.scope/leaf"), "{fix}");
        let (reason, fix) = refused(dir, "pids", false, RefusedWhy::Denied, &error);
        assert!(reason.contains("no delegation"), "{reason}");
        assert!(fix.contains("Delegate=yes"));
        let (reason, fix) = refused(dir, "pids", false, RefusedWhy::ParentBusy, &error);
        assert!(reason.contains("no-internal-process rule"), "{reason}");
        assert!(fix.contains("leaf"));
        let (reason, _) = refused(dir, "cpu", false, RefusedWhy::Other, &error);
        assert!(reason.contains("`cpu`"), "{reason}");
        let (reason, _) = not_offered(dir, "memory", Some("/sys/fs/cgroup/memory"));
        assert!(reason.contains("cgroup v1 hierarchy"), "{reason}");
    }

    #[test]
    fn rejects_values_no_mechanism_can_honour() {
        let check = |l: Limits| match l.validate() {
            Err(Error::ResourceLimit { limit, .. }) => Some(limit),
            _ => None,
        };
        let base = Limits::default();
        let zero_mem = Limits {
            memory_max: Some(0),
            ..base.clone()
        };
        let zero_procs = Limits {
            max_processes: Some(0),
            ..base.clone()
        };
        let nan_cpu = Limits {
            cpu_quota: Some(f64::NAN),
            ..base.clone()
        };
        let neg_cpu = Limits {
            cpu_quota: Some(-1.0),
            ..base.clone()
        };
        assert_eq!(check(zero_mem), Some("memory_max"));
        assert_eq!(check(zero_procs), Some("max_processes"));
        assert_eq!(check(nan_cpu), Some("cpu_quota"));
        assert_eq!(check(neg_cpu), Some("cpu_quota"));
        let fine = Limits {
            memory_max: Some(1),
            max_processes: Some(1),
            cpu_quota: Some(0.2),
        };
        assert!(fine.validate().is_ok());
        assert_eq!(
            fine.requested(),
            ["memory_max", "max_processes", "cpu_quota"]
        );
    }
}
