//! Stats and resource limits per mechanism: the `Container`/`Slot` side of
//! `ProcessGroup::stats`, `RunningProcess::profile` and `with_options` limits.

use std::io;

use super::{Container, ContainerKind, Slot, SlotKind};
use crate::stats::ProcessGroupStats;

impl Container {
    /// What the whole container uses right now.
    pub(crate) fn usage(&self) -> io::Result<ProcessGroupStats> {
        match &self.kind {
            #[cfg(target_os = "linux")]
            ContainerKind::Cgroup(c) => super::linux::usage::cgroup_stats(c.cgroup()),
            #[cfg(unix)]
            ContainerKind::Pgroup(c) => Ok(pgroup_usage(&c.pgids(), &c.adopted_pids())),
            #[cfg(windows)]
            ContainerKind::Job(c) => c.usage(),
        }
    }

    /// Applies whole-tree caps to a fresh container, or explains why not.
    #[cfg(feature = "limits")]
    pub(crate) fn apply_limits(
        &self,
        limits: &crate::limits::Limits,
    ) -> Result<(), crate::error::Error> {
        match &self.kind {
            #[cfg(target_os = "linux")]
            ContainerKind::Cgroup(c) => super::linux::limits::apply(c.cgroup(), limits),
            #[cfg(unix)]
            ContainerKind::Pgroup(_) => Err(crate::limits::unenforceable(
                limits,
                "the process-group mechanism has no whole-tree resource accounting",
                "use a Linux cgroup v2 with delegated controllers (the default mechanism \
                 where one is writable) or a Windows Job Object",
            )),
            #[cfg(windows)]
            ContainerKind::Job(c) => c.set_limits(limits).map_err(|e| {
                crate::limits::unenforceable(
                    limits,
                    &format!("the Job Object refused the limits: {e}"),
                    "CPU rate control needs Windows 8 or later; run outside a job that \
                     forbids nesting with limits",
                )
            }),
        }
    }
}

impl Slot {
    /// What this one run's tree uses right now.
    pub(crate) fn usage(&self) -> io::Result<ProcessGroupStats> {
        match &self.kind {
            #[cfg(target_os = "linux")]
            SlotKind::Cgroup(s) => super::linux::usage::cgroup_stats(s.cgroup()),
            #[cfg(unix)]
            SlotKind::Pgroup(s) => Ok(pgroup_usage(&[s.pgid()], &[])),
            #[cfg(windows)]
            SlotKind::Job(s) => s.usage(),
        }
    }
}

/// Linux can sum `/proc` over the groups' members.
#[cfg(target_os = "linux")]
fn pgroup_usage(pgids: &[i32], adopted: &[u32]) -> ProcessGroupStats {
    super::linux::usage::pgroup_stats(pgids, adopted)
}

/// Elsewhere only the live groups and adopted processes can be counted.
#[cfg(all(unix, not(target_os = "linux")))]
fn pgroup_usage(pgids: &[i32], adopted: &[u32]) -> ProcessGroupStats {
    use super::unix::signal::{group_alive, pid_alive};
    let groups = pgids.iter().filter(|&&g| group_alive(g)).count();
    let others = adopted.iter().filter(|&&p| pid_alive(p)).count();
    ProcessGroupStats {
        active_process_count: (groups + others) as u64,
        ..ProcessGroupStats::default()
    }
}
