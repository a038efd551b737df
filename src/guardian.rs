//! The guardian's public face: whether a watchdog process stands ready to
//! tear down everything this process started if it dies without running `Drop`.

use crate::sys::{self, GuardianState};

/// Environment variable that turns the guardian off (`0`, `off`, `false` or `no`).
pub const GUARDIAN_ENV: &str = "PROCESSKIT_GUARDIAN";

/// The state of this process's guardian, as reported by [`guardian_status`].
///
/// On Linux the first container this process creates also starts one small
/// guardian process. If this process dies abruptly (`SIGKILL`, a crash, an
/// `exec`), the guardian kills every process it started and removes its
/// cgroups. Without a guardian, groups still work; only that last line of
/// defence is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GuardianStatus {
    /// No container has been created yet, so no guardian was needed so far.
    NotStarted,
    /// The guardian is running as process `pid`.
    Running {
        /// The guardian's process id.
        pid: u32,
    },
    /// Turned off through the `PROCESSKIT_GUARDIAN` environment variable.
    Disabled,
    /// It could not be started, or it has exited; `reason` says why. A start
    /// that failed for a passing reason (out of descriptors, memory or
    /// processes) is tried again when the next container is created.
    Unavailable {
        /// What went wrong.
        reason: String,
    },
    /// This platform's container already dies with its owner (a Windows Job
    /// Object closes with the last handle to it).
    NotNeeded,
}

/// Reports whether the guardian is watching over this process's containers.
///
/// ```no_run
/// # fn demo() -> processkit::Result<()> {
/// use processkit::{GuardianStatus, ProcessGroup, guardian_status};
/// let _group = ProcessGroup::new()?; // the first container starts the guardian
/// if let GuardianStatus::Unavailable { reason } = guardian_status() {
///     eprintln!("no guardian: {reason}");
/// }
/// # Ok(()) }
/// ```
pub fn guardian_status() -> GuardianStatus {
    match sys::guardian_status() {
        GuardianState::NotStarted => GuardianStatus::NotStarted,
        GuardianState::Running { pid } => GuardianStatus::Running { pid },
        GuardianState::Disabled => GuardianStatus::Disabled,
        GuardianState::Unavailable { reason } => GuardianStatus::Unavailable { reason },
        GuardianState::NotNeeded => GuardianStatus::NotNeeded,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn publishes_the_variable_sys_reads() {
        assert_eq!(super::GUARDIAN_ENV, crate::sys::GUARDIAN_ENV);
    }
}
