//! The crate's one error type, with the typed [`Subject`] and [`Operation`]
//! of an I/O failure. Every variant names what it concerns; none carries
//! argument or environment values.

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
    /// stderr closed (or was never captured) before a matching line arrived.
    StderrClosed,
}

/// What an [`Error::Io`] concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Subject {
    /// A run of this program, as given to [`Command::new`](crate::Command::new).
    Program(String),
    /// A [`ProcessGroup`](crate::ProcessGroup) as a whole, not one run in it.
    Group,
    /// A record/replay cassette file.
    Cassette(PathBuf),
}

impl Subject {
    /// The program, when the subject is one run of it.
    pub fn program(&self) -> Option<&str> {
        match self {
            Subject::Program(program) => Some(program),
            Subject::Group | Subject::Cassette(_) => None,
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Program(program) => f.write_str(program),
            Subject::Group => f.write_str("process group"),
            Subject::Cassette(path) => write!(f, "cassette {}", path.display()),
        }
    }
}

/// What processkit was doing when an operation failed (see [`Error::Io`]
/// and [`Error::InvalidArgument`]). Displays as a short phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// Checking that a run can start here (a tokio runtime with a time driver).
    Start,
    /// Creating the container a run gets of its own.
    PrepareContainer,
    /// Moving a just-started child into its container.
    PlaceInContainer,
    /// Waiting for a child's exit.
    Wait,
    /// Killing a run's tree, or a group's.
    Kill,
    /// Asking a run's tree to stop (its stop signal, a console break).
    Stop,
    /// Killing every stage of a pipeline.
    KillPipeline,
    /// Reading a child's stdout.
    ReadStdout,
    /// Writing to a child's stdin.
    WriteStdin,
    /// Delivering a signal to a group.
    Signal,
    /// Tearing a group down.
    Terminate,
    /// Creating a group's cgroup.
    CreateCgroup,
    /// Creating a group's Job Object.
    CreateJobObject,
    /// Opening a cgroup's `cgroup.procs` to place a child.
    OpenCgroupProcs,
    /// Reading a group's resource statistics.
    ReadStats,
    /// Freezing a group.
    Suspend,
    /// Thawing a group.
    Resume,
    /// Listing a group's members.
    ListMembers,
    /// Adopting a process into a group.
    Adopt,
    /// Reading a cassette file.
    ReadCassette,
    /// Writing a cassette file.
    WriteCassette,
    /// Racing running children with [`wait_any`](crate::wait_any).
    WaitAny,
    /// Running a batch of commands with [`output_all`](crate::output_all).
    OutputAll,
    /// Opening the file a command reads as its stdin
    /// ([`Stdin::from_file`](crate::Stdin::from_file)).
    OpenStdin,
    /// Probing a URL with
    /// [`RunningProcess::wait_for_http`](crate::RunningProcess::wait_for_http).
    WaitForHttp,
    /// Opening the pseudo-terminal of a [`pty`](crate::Command::pty) run.
    #[cfg(feature = "pty")]
    #[cfg_attr(docsrs, doc(cfg(feature = "pty")))]
    OpenPty,
    /// Resizing a run's pseudo-terminal
    /// ([`resize_pty`](crate::RunningProcess::resize_pty)).
    #[cfg(feature = "pty")]
    #[cfg_attr(docsrs, doc(cfg(feature = "pty")))]
    ResizePty,
}

impl Operation {
    /// The phrase this operation displays as.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Operation::Start => "start",
            Operation::PrepareContainer => "prepare container",
            Operation::PlaceInContainer => "place child in container",
            Operation::Wait => "wait",
            Operation::Kill => "kill",
            Operation::Stop => "stop",
            Operation::KillPipeline => "kill pipeline",
            Operation::ReadStdout => "read stdout",
            Operation::WriteStdin => "write to stdin",
            Operation::Signal => "signal",
            Operation::Terminate => "terminate",
            Operation::CreateCgroup => "create cgroup",
            Operation::CreateJobObject => "create job object",
            Operation::OpenCgroupProcs => "open cgroup.procs",
            Operation::ReadStats => "read stats",
            Operation::Suspend => "suspend",
            Operation::Resume => "resume",
            Operation::ListMembers => "list members",
            Operation::Adopt => "adopt",
            Operation::ReadCassette => "read cassette",
            Operation::WriteCassette => "write cassette",
            Operation::WaitAny => "wait_any",
            Operation::OutputAll => "output_all",
            Operation::OpenStdin => "open stdin file",
            Operation::WaitForHttp => "wait_for_http",
            #[cfg(feature = "pty")]
            Operation::OpenPty => "open pseudo-terminal",
            #[cfg(feature = "pty")]
            Operation::ResizePty => "resize pseudo-terminal",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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
    /// The child produced no output for its
    /// [`idle_timeout`](crate::Command::idle_timeout) and was stopped.
    IdleTimeout {
        /// The program that fell silent.
        program: String,
        /// The idle time that expired.
        idle: Duration,
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
    /// Any other I/O failure, with what it concerns and what was being done.
    Io {
        /// The run, group or file concerned.
        subject: Subject,
        /// What processkit was doing.
        operation: Operation,
        /// The underlying error.
        source: io::Error,
    },
    /// An argument to a function that concerns no single program is unusable
    /// (e.g. [`wait_any`](crate::wait_any) with nothing to wait for).
    InvalidArgument {
        /// The function called.
        operation: Operation,
        /// What is wrong with the argument.
        reason: String,
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
    /// The program this error concerns, where there is one: `None` for an
    /// error about a whole group, a cassette file or an invalid argument.
    pub fn program(&self) -> Option<&str> {
        match self {
            Error::NotFound { program }
            | Error::Spawn { program, .. }
            | Error::InvalidCommand { program, .. }
            | Error::WorkingDirectory { program, .. }
            | Error::NonZeroExit { program, .. }
            | Error::Timeout { program, .. }
            | Error::IdleTimeout { program, .. }
            | Error::Signalled { program, .. }
            | Error::Killed { program }
            | Error::Cancelled { program }
            | Error::NotReady { program, .. }
            | Error::StdinClosed { program }
            | Error::NoReply { program, .. } => Some(program),
            Error::Io { subject, .. } => subject.program(),
            Error::ResourceLimit { .. }
            | Error::Unsupported { .. }
            | Error::InvalidArgument { .. } => None,
        }
    }

    /// An I/O failure of one run of `program` while doing `operation`.
    pub(crate) fn io(program: &str, operation: Operation, source: io::Error) -> Error {
        Error::Io {
            subject: Subject::Program(program.to_owned()),
            operation,
            source,
        }
    }

    /// An I/O failure of a whole group while doing `operation`.
    pub(crate) fn group_io(operation: Operation, source: io::Error) -> Error {
        Error::Io {
            subject: Subject::Group,
            operation,
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
            Error::IdleTimeout { program, idle } => {
                write!(
                    f,
                    "`{program}` wrote no output for {idle:?} and was stopped"
                )
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
                    NotReadyReason::StderrClosed => "its stderr closed".to_owned(),
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
                subject,
                operation,
                source,
            } => {
                write!(f, "`{subject}`: {operation}: {source}")
            }
            Error::InvalidArgument { operation, reason } => {
                write!(f, "`{operation}`: invalid argument: {reason}")
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
