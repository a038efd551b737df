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
    /// Linux without a writable cgroup2 (a non-root user, a CI runner, a
    /// default container): each run starts under a small shim process that is
    /// a child subreaper, so every orphan of the tree, `setsid` and
    /// double-forked daemons included, is re-parented to the shim and never
    /// leaves the container. No resource limits or kernel counters.
    Subreaper,
}

impl Mechanism {
    /// Whether every descendant is contained, including one that starts a new
    /// session or process group.
    pub fn contains_whole_tree(self) -> bool {
        matches!(
            self,
            Mechanism::CgroupV2 | Mechanism::JobObject | Mechanism::Subreaper
        )
    }

    /// A short lowercase name (`cgroup-v2`, `subreaper`, `process-group`,
    /// `job-object`).
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::CgroupV2 => "cgroup-v2",
            Mechanism::ProcessGroup => "process-group",
            Mechanism::JobObject => "job-object",
            Mechanism::Subreaper => "subreaper",
        }
    }

    /// Parses [`name`](Mechanism::name) back (used by `PROCESSKIT_MECHANISM`).
    pub fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "cgroup-v2" | "cgroup" => Some(Mechanism::CgroupV2),
            "process-group" | "pgroup" => Some(Mechanism::ProcessGroup),
            "job-object" | "job" => Some(Mechanism::JobObject),
            "subreaper" => Some(Mechanism::Subreaper),
            _ => None,
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
