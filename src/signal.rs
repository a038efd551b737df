//! `Signal`: the signals a group can broadcast to its whole tree.

/// A signal to deliver to every member of a group.
///
/// On Windows only [`Signal::Kill`] is deliverable (it terminates the Job
/// Object); every other signal returns [`Error::Unsupported`](crate::Error::Unsupported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(not(feature = "process-control"), allow(dead_code))]
pub enum Signal {
    /// SIGHUP: often "reload configuration".
    Hup,
    /// SIGINT: what Ctrl-C sends.
    Int,
    /// SIGQUIT.
    Quit,
    /// SIGKILL: takes the same whole-tree path as `terminate_all()`.
    Kill,
    /// SIGTERM: a polite request to exit.
    Term,
    /// SIGUSR1.
    Usr1,
    /// SIGUSR2.
    Usr2,
    /// Any other signal, by its raw number (Unix only).
    Other(i32),
}
