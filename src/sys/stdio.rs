//! Handing one child's stdout pipe to the next child as its stdin, so the
//! kernel carries the bytes between pipeline stages and the parent never does.

use std::io;
use std::process::Stdio;

use tokio::process::ChildStdout;

/// The read end of `stdout` as a blocking descriptor for another child's stdin.
/// The parent's copy closes when the `Stdio` (and the command holding it) drops.
pub(crate) fn into_stdin(stdout: ChildStdout) -> io::Result<Stdio> {
    #[cfg(unix)]
    return stdout.into_owned_fd().map(Stdio::from);
    #[cfg(windows)]
    return stdout.into_owned_handle().map(Stdio::from);
}
