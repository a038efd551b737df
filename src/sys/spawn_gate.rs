//! The gate that keeps spawns out of a suspended tree.

use std::io;
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

/// Keeps spawns out of a suspended tree: a child joining a frozen cgroup would
/// freeze before exec and block the thread that spawns it (for
/// `kill_on_parent_death`, the one process-wide spawner thread). A spawn holds
/// the gate shared from its last check until the clone returns; suspend takes
/// it exclusively just to close it, so it never freezes a spawn in flight. A
/// subreaper start holds it only while it sends its request: a suspend that
/// comes before the shim's report stops the run as it is attached.
#[derive(Debug, Default)]
pub(crate) struct SpawnGate {
    suspended: RwLock<bool>,
}

impl SpawnGate {
    /// Lets one spawn through, or refuses it while the tree is suspended. Hold
    /// the guard until the child has exec'd (the clone has returned).
    pub(crate) fn enter(&self) -> io::Result<RwLockReadGuard<'_, bool>> {
        let suspended = self
            .suspended
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if *suspended {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                "the group is suspended; resume() it before starting another run",
            ));
        }
        Ok(suspended)
    }

    /// Whether the tree is suspended now.
    pub(crate) fn is_closed(&self) -> bool {
        *self
            .suspended
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set(&self, suspended: bool) {
        *self
            .suspended
            .write()
            .unwrap_or_else(PoisonError::into_inner) = suspended;
    }
}
