//! Where a child's stdout or stderr goes: captured (the default), the
//! parent's own descriptor, the null device, or an open file.

use std::fmt;
use std::fs::File;
use std::sync::Arc;

/// Where a child's stdout or stderr goes, for
/// [`Command::stdout`](crate::Command::stdout) and
/// [`Command::stderr`](crate::Command::stderr). The default is
/// [`Stdio::capture`]. A stream that is not captured comes back empty in
/// the result, and its line stream ends at once.
#[derive(Clone, Default)]
pub struct Stdio(pub(crate) StdioKind);

#[derive(Clone, Default)]
pub(crate) enum StdioKind {
    #[default]
    Capture,
    Inherit,
    Null,
    /// Shared so `Command` stays `Clone`; each start hands the child a
    /// duplicate of the descriptor (the file's offset and append mode are
    /// shared with it, as with any duplicate).
    File(Arc<File>),
}

impl Stdio {
    /// Captured through a pipe: returned in the result, streamed by
    /// `stdout_lines()`/`stderr_lines()`, `events()` and the raw readers.
    pub fn capture() -> Stdio {
        Stdio(StdioKind::Capture)
    }

    /// This process's own stdout (for [`Command::stdout`]) or stderr (for
    /// [`Command::stderr`]): the child writes straight to it, as a shell
    /// would show it.
    ///
    /// [`Command::stdout`]: crate::Command::stdout
    /// [`Command::stderr`]: crate::Command::stderr
    pub fn inherit() -> Stdio {
        Stdio(StdioKind::Inherit)
    }

    /// The null device: the output is discarded without being read.
    pub fn null() -> Stdio {
        Stdio(StdioKind::Null)
    }

    /// An open file: the child writes to it directly (nothing passes
    /// through this process). A file opened for appending is appended to.
    pub fn file(file: File) -> Stdio {
        Stdio(StdioKind::File(Arc::new(file)))
    }

    pub(crate) fn is_captured(&self) -> bool {
        matches!(self.0, StdioKind::Capture)
    }
}

impl fmt::Debug for Stdio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            StdioKind::Capture => "Stdio::capture",
            StdioKind::Inherit => "Stdio::inherit",
            StdioKind::Null => "Stdio::null",
            StdioKind::File(_) => "Stdio::file(..)",
        })
    }
}
