//! The verbs, written once as "start + finisher" over an [`Expression`].
//! A `Pipeline` is one; `Command` (on a `JobRunner`) and `ProcessRunnerExt`
//! (on any runner) wrap the command in an [`OnRunner`]; `CliClient` delegates.

use std::ffi::OsStr;
use std::future::Future;

use crate::command::Command;
use crate::error::Result;
use crate::finish;
use crate::policy;
use crate::result::ProcessResult;
use crate::runner::{JobRunner, ProcessRunner};
use crate::running::RunningProcess;
use crate::stdio::{Stdio, StdioKind};

/// Something the verbs can run: how to start it, and how to run it to the
/// full outcome (which a double may answer without a live process).
pub(crate) trait Expression: Sync {
    /// Starts the run and returns the live handle.
    fn start(&self) -> impl Future<Output = Result<RunningProcess>> + Send;

    /// Runs to completion and returns the full outcome as raw bytes.
    fn output_bytes(&self) -> impl Future<Output = Result<ProcessResult<Vec<u8>>>> + Send;

    /// Whether a failed exit makes `run` an error; `false` when every
    /// stage involved was marked [`unchecked`](Command::unchecked).
    fn checked(&self) -> bool;
}

/// `cmd` run through `runner`: the expression behind `Command`'s verbs (on a
/// [`JobRunner`]) and behind [`ProcessRunnerExt`].
pub(crate) struct OnRunner<'a, R: ?Sized> {
    pub(crate) runner: &'a R,
    pub(crate) cmd: &'a Command,
}

impl<R: ProcessRunner + ?Sized> Expression for OnRunner<'_, R> {
    /// A [`retry`](Command::retry) policy applies to spawn failures only here.
    async fn start(&self) -> Result<RunningProcess> {
        let program = self.cmd.display_name();
        policy::with_retries(
            self.cmd.retry.as_ref(),
            &self.cmd.cancel,
            &program,
            || self.runner.start(self.cmd),
            |_| None,
        )
        .await
    }

    fn output_bytes(&self) -> impl Future<Output = Result<ProcessResult<Vec<u8>>>> + Send {
        self.runner.output_bytes(self.cmd)
    }

    fn checked(&self) -> bool {
        !self.cmd.unchecked
    }
}

/// Trimmed stdout. Anything but a clean exit 0 is an error, unless the
/// expression is unchecked: then only a timeout (or cancellation) is.
pub(crate) async fn run_of(expr: &impl Expression) -> Result<String> {
    let result = output_string_of(expr).await?;
    if expr.checked() {
        return finish::require_success(result);
    }
    finish::stdout_unless_timed_out(result)
}

/// The full outcome, decoded lossily as UTF-8.
pub(crate) async fn output_string_of(expr: &impl Expression) -> Result<ProcessResult<String>> {
    Ok(expr.output_bytes().await?.into_lossy_string())
}

/// The exit code; a timed-out or killed run is an error.
pub(crate) async fn exit_code_of(expr: &impl Expression) -> Result<i32> {
    finish::exit_code(&expr.output_bytes().await?)
}

/// Exit 0 → `true`, 1 → `false`, anything else is an error.
pub(crate) async fn probe_of(expr: &impl Expression) -> Result<bool> {
    finish::probe(&expr.output_bytes().await?)
}

/// The first stdout line matching `pred`; the tree is killed once it is known.
pub(crate) async fn first_line_of(
    expr: &impl Expression,
    pred: impl FnMut(&str) -> bool,
) -> Result<Option<String>> {
    finish::first_line(expr.start().await?, pred).await
}

/// The verbs, for every [`ProcessRunner`] (including `dyn ProcessRunner`).
pub trait ProcessRunnerExt: ProcessRunner {
    /// Trimmed stdout; a non-zero exit, timeout or signal is an error (on a
    /// command marked [`unchecked`](Command::unchecked), only a timeout is).
    fn run<'a>(&'a self, cmd: &'a Command) -> impl Future<Output = Result<String>> + Send + 'a {
        async move { run_of(&OnRunner { runner: self, cmd }).await }
    }

    /// The full outcome with lossily decoded text.
    fn output_string<'a>(
        &'a self,
        cmd: &'a Command,
    ) -> impl Future<Output = Result<ProcessResult<String>>> + Send + 'a {
        async move { output_string_of(&OnRunner { runner: self, cmd }).await }
    }

    /// The exit code; a timed-out or killed run is an error.
    fn exit_code<'a>(&'a self, cmd: &'a Command) -> impl Future<Output = Result<i32>> + Send + 'a {
        async move { exit_code_of(&OnRunner { runner: self, cmd }).await }
    }

    /// Exit 0 → `true`, 1 → `false`, anything else is an error.
    fn probe<'a>(&'a self, cmd: &'a Command) -> impl Future<Output = Result<bool>> + Send + 'a {
        async move { probe_of(&OnRunner { runner: self, cmd }).await }
    }

    /// The first stdout line matching `pred`, or `None` when stdout closes first.
    fn first_line<'a, P>(
        &'a self,
        cmd: &'a Command,
        pred: P,
    ) -> impl Future<Output = Result<Option<String>>> + Send + 'a
    where
        P: FnMut(&str) -> bool + Send + 'a,
    {
        async move { first_line_of(&OnRunner { runner: self, cmd }, pred).await }
    }
}

impl<R: ProcessRunner + ?Sized> ProcessRunnerExt for R {}

impl Command {
    /// The verbs' view of this command: run through a fresh [`JobRunner`].
    fn on_job<'a>(&'a self, runner: &'a JobRunner) -> OnRunner<'a, JobRunner> {
        OnRunner { runner, cmd: self }
    }

    /// Starts the command in its own container and returns the live handle.
    /// Dropping the handle kills the whole tree. A [`retry`](Command::retry)
    /// policy applies to spawn failures only here.
    pub async fn start(&self) -> Result<RunningProcess> {
        self.on_job(&JobRunner::new()).start().await
    }

    /// Runs to completion and returns trimmed stdout. A non-zero exit
    /// ([`Error::NonZeroExit`](crate::Error::NonZeroExit), with a stderr tail),
    /// a timeout or a death by signal is an error; on a command marked
    /// [`unchecked`](Command::unchecked), only a timeout is.
    pub async fn run(&self) -> Result<String> {
        run_of(&self.on_job(&JobRunner::new())).await
    }

    /// Runs to completion and returns the full outcome, stdout and stderr
    /// decoded lossily as UTF-8. A non-zero exit or a timeout is data here.
    pub async fn output_string(&self) -> Result<ProcessResult<String>> {
        output_string_of(&self.on_job(&JobRunner::new())).await
    }

    /// Runs to completion and returns the full outcome as raw bytes. With a
    /// [`retry`](Command::retry) policy, every attempt is a complete run.
    pub async fn output_bytes(&self) -> Result<ProcessResult<Vec<u8>>> {
        self.on_job(&JobRunner::new()).output_bytes().await
    }

    /// Runs to completion and returns the exit code. A timed-out or killed
    /// run is an error rather than an invented code. Nothing reads the
    /// output here (none of these errors quotes it): unless something
    /// watches a stream (a line handler, an idle timeout, a tee,
    /// `stderr_to_stdout`, a terminal) or it is routed elsewhere, stdout and
    /// stderr go to the null device instead of a pipe.
    pub async fn exit_code(&self) -> Result<i32> {
        let quiet = without_unread_output(self, Keep::Nothing);
        exit_code_of(&quiet.as_ref().unwrap_or(self).on_job(&JobRunner::new())).await
    }

    /// A yes/no question: exit 0 is `true`, exit 1 is `false`, anything else
    /// (another code, a timeout, a signal) is an error. stdout is not read,
    /// as with [`exit_code`](Command::exit_code); stderr is, for the tail
    /// that [`Error::NonZeroExit`](crate::Error::NonZeroExit) quotes.
    pub async fn probe(&self) -> Result<bool> {
        let quiet = without_unread_output(self, Keep::Stderr);
        probe_of(&quiet.as_ref().unwrap_or(self).on_job(&JobRunner::new())).await
    }

    /// The first stdout line for which `pred` is true, or `None` when stdout
    /// closes without one. The tree is killed as soon as the answer is known.
    pub async fn first_line(&self, pred: impl FnMut(&str) -> bool) -> Result<Option<String>> {
        first_line_of(&self.on_job(&JobRunner::new()), pred).await
    }
}

/// What a verb that returns only the exit code still reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    Nothing,
    /// stderr, for the tail a failure quotes.
    Stderr,
}

/// `cmd` with the output nobody reads sent to the null device, for a verb
/// that returns only the exit code: no pipe to make, register and drain.
/// `None` when every stream is watched, routed already, or kept.
fn without_unread_output(cmd: &Command, keep: Keep) -> Option<Command> {
    #[cfg(feature = "pty")]
    let on_terminal = cmd.pty.is_some();
    #[cfg(not(feature = "pty"))]
    let on_terminal = false;
    let unwatched = !on_terminal && cmd.idle_timeout.is_none() && !cmd.stderr_to_stdout;
    let plain_capture = |stdio: &Stdio| matches!(stdio.0, StdioKind::Capture { tee: false });
    let stdout_unread = unwatched && plain_capture(&cmd.stdout) && cmd.stdout_handler.is_none();
    let stderr_unread = unwatched
        && keep == Keep::Nothing
        && plain_capture(&cmd.stderr)
        && cmd.stderr_handler.is_none();
    if !stdout_unread && !stderr_unread {
        return None;
    }
    let mut quiet = cmd.clone();
    if stdout_unread {
        quiet = quiet.stdout(Stdio::null());
    }
    if stderr_unread {
        quiet = quiet.stderr(Stdio::null());
    }
    Some(quiet)
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
