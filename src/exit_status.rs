//! `ExitStatus`: how a finished run ended — an exit code, a signal (Unix),
//! its timeout, or a kill that left neither — as the OS reported it.

use std::fmt;

/// How a finished run ended, as returned by
/// [`RunningProcess::wait_status`](crate::RunningProcess::wait_status).
///
/// Nothing here is made up: a run that hit its timeout has no exit code, a
/// child ended by a signal reports that signal's number (Unix), and a
/// Windows child still running when processkit terminated its Job Object
/// has neither a code nor a signal.
///
/// ```no_run
/// # async fn demo() -> processkit::Result<()> {
/// use processkit::Command;
/// let mut run = Command::new("make").arg("test").start().await?;
/// let status = run.wait_status().await?;
/// if !status.success() {
///     eprintln!("make {status}");
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    code: Option<i32>,
    signal: Option<i32>,
    timed_out: bool,
    idle_timed_out: bool,
}

impl ExitStatus {
    /// A run that timed out reports no exit code, whatever it exited with.
    pub(crate) fn new(code: Option<i32>, signal: Option<i32>, timed_out: bool) -> ExitStatus {
        ExitStatus {
            code: if timed_out { None } else { code },
            signal,
            timed_out,
            idle_timed_out: false,
        }
    }

    /// Marks the timeout as the idle one.
    pub(crate) fn idle(mut self, idle: bool) -> ExitStatus {
        self.idle_timed_out = idle && self.timed_out;
        self
    }

    /// The exit code, or `None` when the child did not exit on its own: it
    /// was ended by a signal, by its timeout, or (Windows) by a termination
    /// of its Job Object.
    pub fn code(&self) -> Option<i32> {
        self.code
    }

    /// The number of the signal that ended the child, if one did. A tree
    /// processkit killed (a kill, a timeout, a teardown) reports `SIGKILL`.
    #[cfg(unix)]
    pub fn signal(&self) -> Option<i32> {
        self.signal
    }

    /// Whether a timeout of the run expired (its wall-clock one or its
    /// idle one) and its tree was stopped.
    pub fn timed_out(&self) -> bool {
        self.timed_out
    }

    /// Whether the timeout that stopped the run was its
    /// [`idle_timeout`](crate::Command::idle_timeout).
    pub fn idle_timed_out(&self) -> bool {
        self.idle_timed_out
    }

    /// Exit code 0 within the timeout.
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.timed_out, self.code, self.signal) {
            (true, _, _) if self.idle_timed_out => {
                f.write_str("wrote no output for its idle timeout and was stopped")
            }
            (true, _, _) => f.write_str("timed out and was killed"),
            (false, Some(code), _) => write!(f, "exited with code {code}"),
            (false, None, Some(signal)) => write!(f, "was killed by signal {signal}"),
            (false, None, None) => f.write_str("was killed (no exit code)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ExitStatus;

    #[test]
    fn a_timeout_hides_the_code_and_is_no_success() {
        let status = ExitStatus::new(Some(0), None, true);
        assert_eq!(status.code(), None);
        assert!(status.timed_out() && !status.success());
        assert_eq!(status.to_string(), "timed out and was killed");
    }

    #[test]
    fn display_names_what_ended_the_run() {
        assert_eq!(
            ExitStatus::new(Some(3), None, false).to_string(),
            "exited with code 3"
        );
        assert_eq!(
            ExitStatus::new(None, Some(15), false).to_string(),
            "was killed by signal 15"
        );
        assert_eq!(
            ExitStatus::new(None, None, false).to_string(),
            "was killed (no exit code)"
        );
        assert!(ExitStatus::new(Some(0), None, false).success());
    }
}
