//! The crate's one error type. Every variant names the program it concerns;
//! none carries argument or environment values.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Shorthand for `std::result::Result<T, processkit::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a readiness probe could not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotReadyReason {
    /// The probe's deadline passed.
    DeadlineExpired,
    /// The child exited before the probe passed.
    Exited(Option<i32>),
    /// stdout closed before a matching line arrived.
    StdoutClosed,
}

/// Everything that can go wrong when starting, running or controlling a child.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The program could not be found (not on `PATH`, or the path does not exist).
    NotFound {
        /// The program as given to [`Command::new`](crate::Command::new).
        program: String,
    },
    /// The OS refused to start the program.
    Spawn {
        /// The program being started.
        program: String,
        /// The underlying OS error.
        source: io::Error,
    },
    /// The command itself is malformed (e.g. a NUL byte in an argument).
    InvalidCommand {
        /// The program being started.
        program: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The working directory set with `current_dir` does not exist or is not a directory.
    WorkingDirectory {
        /// The program being started.
        program: String,
        /// The directory that was requested.
        dir: PathBuf,
    },
    /// The child exited with a non-zero code where success was required.
    NonZeroExit {
        /// The program that failed.
        program: String,
        /// Its exit code.
        code: i32,
        /// The last part of its stderr (at most a few KiB), for the message.
        stderr_tail: String,
    },
    /// The child hit its timeout and was killed, where a result was required.
    Timeout {
        /// The program that timed out.
        program: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The child was ended by a signal (Unix) where success was required.
    Signalled {
        /// The program that was signalled.
        program: String,
        /// The signal number.
        signal: i32,
    },
    /// The child was killed and left neither an exit code nor a signal
    /// number, where success was required: on Windows, a run still running
    /// when processkit terminated its Job Object (a kill, a timeout, a group
    /// teardown); anywhere, a result built with neither.
    Killed {
        /// The program that was killed.
        program: String,
    },
    /// The run was cancelled; there is no result to inspect.
    Cancelled {
        /// The program whose run was cancelled.
        program: String,
    },
    /// A readiness probe failed: its deadline passed or it can no longer pass.
    NotReady {
        /// The program that did not become ready.
        program: String,
        /// Why it is not ready.
        reason: NotReadyReason,
        /// How long the probe waited.
        waited: Duration,
    },
    /// A requested resource limit cannot be enforced here.
    ResourceLimit {
        /// Which limit (`memory_max`, `max_processes`, `cpu_quota`).
        limit: &'static str,
        /// Why it cannot be enforced.
        reason: String,
        /// What would make it enforceable.
        fix: String,
    },
    /// The operation does not exist on this platform or mechanism.
    Unsupported {
        /// What was asked for.
        operation: &'static str,
        /// Why it is not available here.
        reason: String,
    },
    /// Writing to the child's stdin failed because the child closed it or exited.
    StdinClosed {
        /// The program whose stdin is closed.
        program: String,
    },
    /// Any other I/O failure, with what was being done.
    Io {
        /// The program concerned, or the group operation.
        program: String,
        /// What processkit was doing.
        context: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// A run that was expected to have a recorded or scripted reply had none.
    NoReply {
        /// The program of the unmatched invocation.
        program: String,
        /// The arguments' count and a description of the miss (never env values).
        detail: String,
    },
}

impl Error {
    /// The program this error concerns, where there is one.
    pub fn program(&self) -> Option<&str> {
        match self {
            Error::NotFound { program }
            | Error::Spawn { program, .. }
            | Error::InvalidCommand { program, .. }
            | Error::WorkingDirectory { program, .. }
            | Error::NonZeroExit { program, .. }
            | Error::Timeout { program, .. }
            | Error::Signalled { program, .. }
            | Error::Killed { program }
            | Error::Cancelled { program }
            | Error::NotReady { program, .. }
            | Error::StdinClosed { program }
            | Error::Io { program, .. }
            | Error::NoReply { program, .. } => Some(program),
            Error::ResourceLimit { .. } | Error::Unsupported { .. } => None,
        }
    }

    pub(crate) fn io(program: &str, context: &'static str, source: io::Error) -> Error {
        Error::Io {
            program: program.to_owned(),
            context,
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound { program } => {
                write!(
                    f,
                    "`{program}`: program not found (check the name and PATH)"
                )
            }
            Error::Spawn { program, source } => write!(f, "`{program}`: failed to start: {source}"),
            Error::InvalidCommand { program, reason } => {
                write!(f, "`{program}`: invalid command: {reason}")
            }
            Error::WorkingDirectory { program, dir } => write!(
                f,
                "`{program}`: working directory {} does not exist or is not a directory",
                dir.display()
            ),
            Error::NonZeroExit {
                program,
                code,
                stderr_tail,
            } => {
                write!(f, "`{program}` exited with code {code}")?;
                if !stderr_tail.trim().is_empty() {
                    write!(f, ": {}", stderr_tail.trim())?;
                }
                Ok(())
            }
            Error::Timeout { program, timeout } => {
                write!(f, "`{program}` timed out after {timeout:?} and was killed")
            }
            Error::Signalled { program, signal } => {
                write!(f, "`{program}` was killed by signal {signal}")
            }
            Error::Killed { program } => {
                write!(f, "`{program}` was killed (no exit code)")
            }
            Error::Cancelled { program } => write!(f, "`{program}`: run was cancelled"),
            Error::NotReady {
                program,
                reason,
                waited,
            } => {
                let why = match reason {
                    NotReadyReason::DeadlineExpired => "the deadline passed".to_owned(),
                    NotReadyReason::Exited(code) => format!("it exited (code {code:?})"),
                    NotReadyReason::StdoutClosed => "its stdout closed".to_owned(),
                };
                write!(f, "`{program}` was not ready after {waited:?}: {why}")
            }
            Error::ResourceLimit { limit, reason, fix } => {
                write!(f, "cannot enforce `{limit}`: {reason}; {fix}")
            }
            Error::Unsupported { operation, reason } => {
                write!(f, "`{operation}` is not supported here: {reason}")
            }
            Error::StdinClosed { program } => {
                write!(
                    f,
                    "`{program}`: stdin is closed (the child exited or stopped reading)"
                )
            }
            Error::Io {
                program,
                context,
                source,
            } => {
                write!(f, "`{program}`: {context}: {source}")
            }
            Error::NoReply { program, detail } => {
                write!(f, "`{program}`: no reply for this invocation: {detail}")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Spawn { source, .. } | Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
