//! Whole-tree resource caps for a group (`limits` feature): the option
//! setters, value checks, and the hand-off to the mechanism that enforces them.

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

/// Applies `limits` to a fresh container, or explains why it cannot.
pub(crate) fn apply(container: &Container, limits: &Limits) -> Result<()> {
    if limits.is_empty() {
        return Ok(());
    }
    limits.validate()?;
    container.apply_limits(limits)
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
