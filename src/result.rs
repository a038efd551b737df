//! `ProcessResult`: the full outcome of a finished run, where a non-zero exit is data.

use std::time::Duration;

use crate::error::{Error, Result};

/// How much of stderr an error message carries.
const STDERR_TAIL_BYTES: usize = 4096;

/// The outcome of a finished run. `T` is `String` for
/// [`output_string`](crate::Command::output_string) and `Vec<u8>` for
/// [`output_bytes`](crate::Command::output_bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessResult<T = String> {
    pub(crate) program: String,
    pub(crate) code: Option<i32>,
    pub(crate) signal: Option<i32>,
    pub(crate) stdout: T,
    pub(crate) stderr: T,
    pub(crate) timed_out: bool,
    /// The timeout that expired was the idle one (`timeout` holds it).
    pub(crate) idle_timed_out: bool,
    pub(crate) duration: Duration,
    pub(crate) timeout: Option<Duration>,
    /// A bounded capture dropped bytes (see `Command::max_output`).
    pub(crate) truncated: bool,
}

impl<T> ProcessResult<T> {
    /// Builds a result by hand, e.g. for a test double.
    pub fn new(program: impl Into<String>, code: Option<i32>, stdout: T, stderr: T) -> Self {
        ProcessResult {
            program: program.into(),
            code,
            signal: None,
            stdout,
            stderr,
            timed_out: false,
            idle_timed_out: false,
            duration: Duration::ZERO,
            timeout: None,
            truncated: false,
        }
    }

    /// Marks the result as ended by `signal` (builder for doubles).
    pub fn with_signal(mut self, signal: i32) -> Self {
        self.code = None;
        self.signal = Some(signal);
        self
    }

    /// Marks the result as timed out after `timeout` (builder for doubles).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.code = None;
        self.timed_out = true;
        self.timeout = Some(timeout);
        self
    }

    /// Sets the wall-clock duration (builder for doubles).
    pub fn with_duration(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }

    /// The exit code, or `None` when the child was killed (its timeout, a
    /// signal, or on Windows a termination of its Job Object by processkit).
    pub fn code(&self) -> Option<i32> {
        self.code
    }

    /// The signal that ended the child (Unix), if any. A run processkit
    /// killed reports 9 (SIGKILL) on Unix; on Windows there are no signals,
    /// so a killed run has neither a code nor a signal.
    pub fn signal(&self) -> Option<i32> {
        self.signal
    }

    /// Everything the child wrote to stdout.
    pub fn stdout(&self) -> &T {
        &self.stdout
    }

    /// Everything the child wrote to stderr.
    pub fn stderr(&self) -> &T {
        &self.stderr
    }

    /// Consumes the result, returning stdout.
    pub fn into_stdout(self) -> T {
        self.stdout
    }

    /// Whether the run hit a timeout (its wall-clock
    /// [`timeout`](crate::Command::timeout) or its
    /// [`idle_timeout`](crate::Command::idle_timeout)) and was stopped.
    pub fn timed_out(&self) -> bool {
        self.timed_out
    }

    /// Whether the timeout that stopped the run was the idle one: neither
    /// stream produced a byte for [`idle_timeout`](crate::Command::idle_timeout).
    pub fn idle_timed_out(&self) -> bool {
        self.idle_timed_out
    }

    /// Exit code 0 and no timeout.
    pub fn is_success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }

    /// Wall-clock time from spawn to exit.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// Whether a bounded capture
    /// ([`Command::max_output`](crate::Command::max_output)) dropped bytes of
    /// stdout or stderr: the kept text then has the line
    /// `[processkit: output truncated]` where they were.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The program that ran (for a pipeline: the stage the outcome is attributed to).
    pub fn program(&self) -> &str {
        &self.program
    }

    /// Maps stdout and stderr, keeping everything else.
    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> ProcessResult<U> {
        ProcessResult {
            program: self.program,
            code: self.code,
            signal: self.signal,
            stdout: f(self.stdout),
            stderr: f(self.stderr),
            timed_out: self.timed_out,
            idle_timed_out: self.idle_timed_out,
            duration: self.duration,
            timeout: self.timeout,
            truncated: self.truncated,
        }
    }
}

impl ProcessResult<Vec<u8>> {
    /// Decodes stdout and stderr as UTF-8, replacing invalid sequences.
    pub fn into_lossy_string(self) -> ProcessResult<String> {
        self.map(|b| match String::from_utf8(b) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }
}

impl<T: AsRef<[u8]>> ProcessResult<T> {
    /// `Ok(self)` when the run succeeded, otherwise the typed error that
    /// describes the failure (timeout, signal, or non-zero exit).
    pub fn into_success(self) -> Result<Self> {
        if let Some(err) = self.failure() {
            return Err(err);
        }
        Ok(self)
    }

    /// The error describing why this run did not succeed, if it did not.
    pub(crate) fn failure(&self) -> Option<Error> {
        let program = self.program.clone();
        if self.timed_out {
            let timeout = self.timeout.unwrap_or_default();
            if self.idle_timed_out {
                return Some(Error::IdleTimeout {
                    program,
                    idle: timeout,
                });
            }
            return Some(Error::Timeout { program, timeout });
        }
        match (self.code, self.signal) {
            (Some(0), _) => None,
            (Some(code), _) => Some(Error::NonZeroExit {
                program,
                code,
                stderr_tail: stderr_tail(self.stderr.as_ref()),
            }),
            (None, Some(signal)) => Some(Error::Signalled { program, signal }),
            // Killed with no signal to name (a terminated Windows job):
            // inventing one would make it look like a Unix SIGKILL.
            (None, None) => Some(Error::Killed { program }),
        }
    }
}

fn stderr_tail(stderr: &[u8]) -> String {
    let start = stderr.len().saturating_sub(STDERR_TAIL_BYTES);
    String::from_utf8_lossy(&stderr[start..]).into_owned()
}
