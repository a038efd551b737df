//! Stats and resource limits per mechanism: the `Container`/`Slot` side of
//! `ProcessGroup::stats`, `RunningProcess::profile` and `with_options` limits,
//! and the plain data both carry (`Usage`, `Limits`).
//! Refusals come back as plain facts; the `limits` module words them for users.

use std::io;

use std::time::Duration;

use super::{Container, Slot};

/// What a tree uses, as measured; `None` where the mechanism cannot measure
/// it. The `stats` module publishes it as `ProcessGroupStats`, whose fields
/// say what each one means per mechanism.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(crate) active_process_count: u64,
    pub(crate) total_processes: Option<u64>,
    pub(crate) peak_process_count: Option<u64>,
    pub(crate) cpu_time: Option<Duration>,
    pub(crate) user_cpu_time: Option<Duration>,
    pub(crate) system_cpu_time: Option<Duration>,
    pub(crate) memory_bytes: Option<u64>,
    pub(crate) peak_memory_bytes: Option<u64>,
    pub(crate) oom_kills: Option<u64>,
}

#[cfg(feature = "limits")]
/// The caps requested for one group; the `limits` module checks them and words
/// a refusal.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Limits {
    pub(crate) memory_max: Option<u64>,
    pub(crate) max_processes: Option<u64>,
    pub(crate) cpu_quota: Option<f64>,
}

impl Container {
    /// What the whole container uses right now.
    pub(crate) fn usage(&self) -> io::Result<Usage> {
        self.kind.usage()
    }

    /// Applies whole-tree caps to a fresh container, or says why not.
    #[cfg(feature = "limits")]
    pub(crate) fn apply_limits(&self, limits: &Limits) -> Result<(), LimitRefusal> {
        self.kind.apply_limits(limits)
    }
}

impl Slot {
    /// What this one run's tree uses right now.
    pub(crate) fn usage(&self) -> io::Result<Usage> {
        self.kind.usage()
    }
}

/// Why a container cannot enforce the requested limits.
#[cfg(feature = "limits")]
#[derive(Debug)]
pub(crate) enum LimitRefusal {
    /// The mechanism has no whole-tree resource accounting (process groups,
    /// the subreaper).
    #[cfg_attr(windows, allow(dead_code))]
    NoAccounting(crate::mechanism::Mechanism),
    /// The Job Object refused the limits.
    #[cfg_attr(not(windows), allow(dead_code))]
    JobRefused(io::Error),
    /// A cgroup cannot enforce `limit` (`memory_max`, `max_processes`, `cpu_quota`).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Cgroup {
        /// Which limit.
        limit: &'static str,
        /// Why not.
        failure: LimitFailure,
    },
}

/// One cgroup limit that cannot be enforced, and the facts of why.
#[cfg(feature = "limits")]
#[derive(Debug)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) enum LimitFailure {
    /// `cores` is below what `cpu.max` can express.
    QuotaTooSmall {
        /// The requested fraction of a core.
        cores: f64,
    },
    /// There is no per-process cgroup root: why.
    NoRoot(String),
    /// `controller` is missing from `dir`'s `cgroup.controllers`; `v1_mount`
    /// is the cgroup v1 hierarchy that owns it, if one does.
    NotOffered {
        /// The cgroup that lacks it.
        dir: std::path::PathBuf,
        /// `memory`, `pids` or `cpu`.
        controller: &'static str,
        /// Where a cgroup v1 hierarchy holding the controller is mounted.
        v1_mount: Option<String>,
    },
    /// Writing `+controller` to `dir`'s `cgroup.subtree_control` failed.
    Refused {
        /// The cgroup that refused.
        dir: std::path::PathBuf,
        /// `memory`, `pids` or `cpu`.
        controller: &'static str,
        /// Whether `dir` is the cgroup this process itself lives in.
        ours: bool,
        /// What the failure means.
        why: RefusedWhy,
        /// The OS's error.
        error: io::Error,
    },
    /// Writing the cap itself (`file` in `dir`) failed.
    WriteFailed {
        /// The interface file, e.g. `memory.max`.
        file: &'static str,
        /// The group's cgroup.
        dir: std::path::PathBuf,
        /// The OS's error.
        error: io::Error,
    },
}

/// What a refused `cgroup.subtree_control` write means.
#[cfg(feature = "limits")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) enum RefusedWhy {
    /// `EBUSY`: the cgroup holds processes (the no-internal-process rule).
    Busy,
    /// `EOPNOTSUPP`: the cgroup above holds processes ("domain invalid").
    ParentBusy,
    /// `EACCES`, `EPERM`, `EROFS`: not delegated to us.
    Denied,
    /// Anything else.
    Other,
}
