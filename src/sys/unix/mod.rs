//! POSIX pieces shared by Linux, macOS and the BSDs: the process-group
//! container and its leaders, guarded signal delivery and the pre-exec step.

#[cfg(not(target_os = "linux"))]
pub(crate) mod backend;
pub(crate) mod leader;
pub(crate) mod pgroup;
pub(crate) mod signal;

/// The signal that ended a child, if any.
pub(crate) fn exit_signal(status: &std::process::ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}
