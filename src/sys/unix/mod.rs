//! POSIX pieces shared by Linux, macOS and the BSDs: the process-group
//! container and its leaders, guarded signal delivery, pseudo-terminals.

#[cfg(not(target_os = "linux"))]
pub(crate) mod backend;
pub(crate) mod leader;
pub(crate) mod pgroup;
#[cfg(feature = "pty")]
pub(crate) mod pty;
pub(crate) mod signal;
pub(crate) mod terminal;

/// The signal that ended a child, if any.
pub(crate) fn exit_signal(status: &std::process::ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

/// Whether `error` says the process or the system ran out of file descriptors.
pub(crate) fn is_descriptor_exhaustion(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}
