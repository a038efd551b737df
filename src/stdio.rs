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

#[derive(Clone)]
pub(crate) enum StdioKind {
    /// `tee`: also forwarded to this process's own stream as it is read.
    Capture {
        tee: bool,
    },
    Inherit,
    Null,
    /// Shared so `Command` stays `Clone`; each start hands the child a
    /// duplicate of the descriptor (the file's offset and append mode are
    /// shared with it, as with any duplicate).
    File(Arc<File>),
}

impl Default for StdioKind {
    fn default() -> StdioKind {
        StdioKind::Capture { tee: false }
    }
}

impl Stdio {
    /// Captured through a pipe: returned in the result, streamed by
    /// `stdout_lines()`/`stderr_lines()`, `events()` and the raw readers.
    pub fn capture() -> Stdio {
        Stdio(StdioKind::Capture { tee: false })
    }

    /// Captured, and at the same time copied to this process's own stdout
    /// (for [`Command::stdout`]) or stderr (for [`Command::stderr`]) as the
    /// child writes it: a build log that reaches the terminal and is still
    /// in the result. The copy is byte for byte; when this process's stream
    /// cannot keep up, the child waits, as with `tee`. Only meaningful on
    /// [`capture`](Stdio::capture); other kinds are returned unchanged.
    ///
    /// [`Command::stdout`]: crate::Command::stdout
    /// [`Command::stderr`]: crate::Command::stderr
    pub fn tee_inherit(self) -> Stdio {
        match self.0 {
            StdioKind::Capture { .. } => Stdio(StdioKind::Capture { tee: true }),
            other => Stdio(other),
        }
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
        matches!(self.0, StdioKind::Capture { .. })
    }

    pub(crate) fn tees(&self) -> bool {
        matches!(self.0, StdioKind::Capture { tee: true })
    }
}

impl fmt::Debug for Stdio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            StdioKind::Capture { tee: false } => "Stdio::capture",
            StdioKind::Capture { tee: true } => "Stdio::capture().tee_inherit()",
            StdioKind::Inherit => "Stdio::inherit",
            StdioKind::Null => "Stdio::null",
            StdioKind::File(_) => "Stdio::file(..)",
        })
    }
}
