//! `Signal`: the signals a group can broadcast to its whole tree, and the
//! polite one a graceful stop sends.

/// A signal: broadcast to a group's tree with `ProcessGroup::signal`
/// (feature `process-control`), or chosen as a command's polite stop with
/// [`Command::stop_signal`](crate::Command::stop_signal).
///
/// On Windows only [`Signal::Kill`] can be broadcast (it terminates the Job
/// Object); every other broadcast returns [`Error::Unsupported`](crate::Error::Unsupported).
/// A graceful stop there sends `CTRL_BREAK_EVENT` and `WM_CLOSE` whatever
/// the stop signal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Signal {
    /// SIGHUP: often "reload configuration".
    Hup,
    /// SIGINT: what Ctrl-C sends.
    Int,
    /// SIGQUIT.
    Quit,
    /// SIGKILL: takes the same whole-tree path as `terminate_all()`.
    Kill,
    /// SIGTERM: a polite request to exit (the default stop signal).
    #[default]
    Term,
    /// SIGUSR1.
    Usr1,
    /// SIGUSR2.
    Usr2,
    /// Any other signal, by its raw number (Unix only).
    Other(i32),
}
