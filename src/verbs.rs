//! The verbs on `Command`, and the one-liners `run` and `output`. Each is
//! `JobRunner::start` plus a finisher, so the command gets its own container.

use std::ffi::OsStr;

use crate::command::Command;
use crate::error::Result;
use crate::finish;
use crate::policy;
use crate::result::ProcessResult;
use crate::runner::{JobRunner, ProcessRunner};
use crate::running::RunningProcess;

impl Command {
    /// Starts the command in its own container and returns the live handle.
    /// Dropping the handle kills the whole tree. A [`retry`](Command::retry)
    /// policy applies to spawn failures only here.
    pub async fn start(&self) -> Result<RunningProcess> {
        let runner = JobRunner::new();
        let program = self.display_name();
        policy::with_retries(
            self.retry.as_ref(),
            &self.cancel,
            &program,
            || runner.start(self),
            |_| None,
        )
        .await
    }

    /// Runs to completion and returns trimmed stdout. A non-zero exit
    /// ([`Error::NonZeroExit`](crate::Error::NonZeroExit), with a stderr tail),
    /// a timeout or a death by signal is an error.
    pub async fn run(&self) -> Result<String> {
        finish::require_success(self.output_string().await?)
    }

    /// Runs to completion and returns the full outcome, stdout and stderr
    /// decoded lossily as UTF-8. A non-zero exit or a timeout is data here.
    pub async fn output_string(&self) -> Result<ProcessResult<String>> {
        Ok(self.output_bytes().await?.into_lossy_string())
    }

    /// Runs to completion and returns the full outcome as raw bytes. With a
    /// [`retry`](Command::retry) policy, every attempt is a complete run.
    pub async fn output_bytes(&self) -> Result<ProcessResult<Vec<u8>>> {
        ProcessRunner::output_bytes(&JobRunner::new(), self).await
    }

    /// Runs to completion and returns the exit code. A timed-out or killed
    /// run is an error rather than an invented code.
    pub async fn exit_code(&self) -> Result<i32> {
        finish::exit_code(&self.output_bytes().await?)
    }

    /// A yes/no question: exit 0 is `true`, exit 1 is `false`, anything else
    /// (another code, a timeout, a signal) is an error.
    pub async fn probe(&self) -> Result<bool> {
        finish::probe(&self.output_bytes().await?)
    }

    /// The first stdout line for which `pred` is true, or `None` when stdout
    /// closes without one. The tree is killed as soon as the answer is known.
    pub async fn first_line(&self, pred: impl FnMut(&str) -> bool) -> Result<Option<String>> {
        finish::first_line(self.start().await?, pred).await
    }
}

/// Runs `program` with `args` and returns trimmed stdout (see [`Command::run`]).
pub async fn run<I, S>(program: impl AsRef<OsStr>, args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(program).args(args).run().await
}

/// Runs `program` with `args` and returns the full outcome (see [`Command::output_string`]).
pub async fn output<I, S>(program: impl AsRef<OsStr>, args: I) -> Result<ProcessResult<String>>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(program).args(args).output_string().await
}
