//! Whole-tree resource caps for a group (`limits` feature).

use crate::error::{Error, Result};
use crate::group::ProcessGroupOptions;
use crate::sys::Container;

/// The caps requested for one group.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Limits {
    pub(crate) memory_max: Option<u64>,
    pub(crate) max_processes: Option<u64>,
    pub(crate) cpu_quota: Option<f64>,
}

impl Limits {
    fn is_empty(&self) -> bool {
        *self == Limits::default()
    }
}

impl ProcessGroupOptions {
    /// Caps the memory of the whole tree, in bytes.
    pub fn memory_max(mut self, bytes: u64) -> Self {
        self.limits.memory_max = Some(bytes);
        self
    }

    /// Caps how many processes the tree may hold at once.
    pub fn max_processes(mut self, count: u64) -> Self {
        self.limits.max_processes = Some(count);
        self
    }

    /// Caps CPU time as a fraction of one core (`0.5` = half a core, `2.0` = two cores).
    pub fn cpu_quota(mut self, cores: f64) -> Self {
        self.limits.cpu_quota = Some(cores);
        self
    }
}

/// Applies `limits` to a fresh container, or explains why it cannot.
pub(crate) fn apply(container: &Container, limits: &Limits) -> Result<()> {
    if limits.is_empty() {
        return Ok(());
    }
    let _ = container;
    Err(Error::ResourceLimit {
        limit: "memory_max",
        reason: "resource limits are not implemented yet".into(),
        fix: "none yet".into(),
    })
}
