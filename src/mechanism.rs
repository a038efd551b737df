//! `Mechanism`: which kernel primitive contains a group's processes.

use std::fmt;

/// The containment primitive behind a group. Always reported, never silently
/// downgraded: ask [`ProcessGroup::mechanism`](crate::ProcessGroup::mechanism).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mechanism {
    /// A Linux cgroup v2: every descendant is contained, `setsid` included;
    /// teardown is one `cgroup.kill` write.
    CgroupV2,
    /// A POSIX process group per run (macOS, BSD, Linux without a writable
    /// cgroup2). A descendant that calls `setsid` leaves the group and escapes.
    ProcessGroup,
    /// A Windows Job Object with kill-on-close.
    JobObject,
}

impl Mechanism {
    /// Whether every descendant is contained, including one that starts a new
    /// session or process group.
    pub fn contains_whole_tree(self) -> bool {
        matches!(self, Mechanism::CgroupV2 | Mechanism::JobObject)
    }

    /// A short lowercase name (`cgroup-v2`, `process-group`, `job-object`).
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::CgroupV2 => "cgroup-v2",
            Mechanism::ProcessGroup => "process-group",
            Mechanism::JobObject => "job-object",
        }
    }

    /// Parses [`name`](Mechanism::name) back (used by `PROCESSKIT_MECHANISM`).
    pub fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "cgroup-v2" | "cgroup" => Some(Mechanism::CgroupV2),
            "process-group" | "pgroup" => Some(Mechanism::ProcessGroup),
            "job-object" | "job" => Some(Mechanism::JobObject),
            _ => None,
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
