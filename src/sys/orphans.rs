//! The platform side of `reap_orphans`: on Linux the registry of our own
//! children and the reaper thread (`linux::own_children`, `linux::orphans`);
//! elsewhere nothing, since no orphan is ever re-parented to a program.

use std::io;

/// Starts reaping orphans re-parented to this process (Linux), once; a
/// no-op elsewhere.
pub(crate) fn start() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    return super::linux::orphans::start();
    #[cfg(not(target_os = "linux"))]
    Ok(())
}

/// How many orphans have been reaped.
pub(crate) fn reaped() -> u64 {
    #[cfg(target_os = "linux")]
    return super::linux::orphans::reaped();
    #[cfg(not(target_os = "linux"))]
    0
}

/// Runs `spawn`, which starts at most one child (named by `pid_of`), so the
/// orphan reaper never takes that child's exit status. Every spawn of ours
/// goes through here.
pub(crate) fn own_spawn<T>(spawn: impl FnOnce() -> T, pid_of: impl FnOnce(&T) -> Option<u32>) -> T {
    #[cfg(target_os = "linux")]
    return super::linux::own_children::own_spawn(spawn, pid_of);
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid_of;
        spawn()
    }
}
