//! Handing one child's stdout pipe to the next child as its stdin, so the
//! kernel carries the bytes between pipeline stages and the parent never does.

use std::io;

use tokio::process::ChildStdout;

/// A blocking pipe end passed from one pipeline stage to the next.
#[cfg(unix)]
pub(crate) type StagePipe = std::os::fd::OwnedFd;
/// A blocking pipe end passed from one pipeline stage to the next.
#[cfg(windows)]
pub(crate) type StagePipe = std::os::windows::io::OwnedHandle;

/// The read end of `stdout` as a blocking descriptor for another child's stdin.
pub(crate) fn into_stage_pipe(stdout: ChildStdout) -> io::Result<StagePipe> {
    #[cfg(unix)]
    return stdout.into_owned_fd();
    #[cfg(windows)]
    return stdout.into_owned_handle();
}
