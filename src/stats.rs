//! Resource measurement (`stats` feature): the point-in-time
//! [`ProcessGroupStats`], the sampling bounds, and a container's stats as a
//! crate error. `ProcessGroup::stats` and its sampler live in `group::stats`.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::sys::{Container, Usage};

/// The shortest interval a sampler accepts; shorter ones are raised to it.
pub(crate) const MIN_SAMPLE_INTERVAL: Duration = Duration::from_millis(1);

/// The longest interval a sampler uses (a year); longer ones are lowered to
/// it, so the next sample's time can always be represented.
pub(crate) const MAX_SAMPLE_INTERVAL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// `interval` within what a sampler accepts.
pub(crate) fn sample_interval(interval: Duration) -> Duration {
    interval.clamp(MIN_SAMPLE_INTERVAL, MAX_SAMPLE_INTERVAL)
}

/// What a group's tree uses right now. Fields a mechanism cannot measure are
/// `None`; see `docs/process-groups.md` for which mechanism reports what.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessGroupStats {
    /// Live processes in the group (the whole tree under cgroups; under
    /// process groups, the members of the tracked groups).
    pub active_process_count: u64,
    /// Processes ever started in the group, where the mechanism counts them
    /// (Job Object accounting); `None` elsewhere.
    pub total_processes: Option<u64>,
    /// The most processes alive at once (cgroup `pids.peak`, when the pids
    /// controller is enabled for the group).
    pub peak_process_count: Option<u64>,
    /// CPU time consumed, user plus system. Under cgroups this includes
    /// processes that already exited; from `/proc` only live members (and the
    /// children they reaped) count.
    pub cpu_time: Option<Duration>,
    /// The user-mode part of [`cpu_time`](Self::cpu_time).
    pub user_cpu_time: Option<Duration>,
    /// The kernel-mode part of [`cpu_time`](Self::cpu_time).
    pub system_cpu_time: Option<Duration>,
    /// Memory in use now: cgroup `memory.current`, or the summed resident
    /// set of the live members.
    pub memory_bytes: Option<u64>,
    /// Peak memory: cgroup `memory.peak`, or the sum of each live member's
    /// own resident high-water mark (an upper bound; exited processes drop out).
    pub peak_memory_bytes: Option<u64>,
    /// How many processes the kernel's OOM killer ended in this group (cgroup
    /// `memory.events`, when the memory controller is enabled for it).
    pub oom_kills: Option<u64>,
}

impl ProcessGroupStats {
    /// The public form of what `sys` measured.
    pub(crate) fn from_usage(u: Usage) -> ProcessGroupStats {
        ProcessGroupStats {
            active_process_count: u.active_process_count,
            total_processes: u.total_processes,
            peak_process_count: u.peak_process_count,
            cpu_time: u.cpu_time,
            user_cpu_time: u.user_cpu_time,
            system_cpu_time: u.system_cpu_time,
            memory_bytes: u.memory_bytes,
            peak_memory_bytes: u.peak_memory_bytes,
            oom_kills: u.oom_kills,
        }
    }

    /// Average CPU use over `wall` time, in cores (`1.0` = one core busy).
    pub fn cpu_cores_over(&self, wall: Duration) -> Option<f64> {
        let cpu = self.cpu_time?;
        (!wall.is_zero()).then(|| cpu.as_secs_f64() / wall.as_secs_f64())
    }
}

impl Container {
    /// Stats of the whole container, as a crate error.
    pub(crate) fn stats(&self) -> Result<ProcessGroupStats> {
        self.usage()
            .map(ProcessGroupStats::from_usage)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::Unsupported => Error::Unsupported {
                    operation: "stats",
                    reason: e.to_string(),
                },
                _ => Error::group_io(crate::error::Operation::ReadStats, e),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_cores_over_wall_time() {
        let s = ProcessGroupStats {
            cpu_time: Some(Duration::from_millis(500)),
            ..ProcessGroupStats::default()
        };
        assert_eq!(s.cpu_cores_over(Duration::from_secs(1)), Some(0.5));
        assert_eq!(s.cpu_cores_over(Duration::ZERO), None);
        assert_eq!(
            ProcessGroupStats::default().cpu_cores_over(Duration::from_secs(1)),
            None
        );
    }
}
