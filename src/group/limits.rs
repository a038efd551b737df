//! `ProcessGroupOptions`' whole-tree resource caps (`limits` feature); the
//! checks and the hand-off to the mechanism live in `crate::limits`.

use super::ProcessGroupOptions;

impl ProcessGroupOptions {
    /// Caps the memory of the whole tree, in bytes. Past the cap the kernel
    /// reclaims, then OOM-kills a process of the group.
    pub fn memory_max(mut self, bytes: u64) -> Self {
        self.limits.memory_max = Some(bytes);
        self
    }

    /// Caps how many processes the tree may hold at once; past it, `fork` fails
    /// inside the group.
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
