//! `RecordingRunner`: wraps any runner and keeps a log of every command it
//! was asked to run, for assertions. `Invocation` is that log's entry: what
//! identifies a run, without environment values.

use std::path::PathBuf;
use std::sync::Mutex;

use super::{BoxFuture, ProcessRunner};
use crate::command::Command;
use crate::error::Result;
use crate::result::ProcessResult;
use crate::running::RunningProcess;

/// One command as a runner saw it: program, arguments, working directory,
/// the names (never the values) of the variables it sets, and whether it
/// feeds stdin. Text that is not UTF-8 is converted lossily.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Invocation {
    /// The program as given to [`Command::new`].
    pub program: String,
    /// The arguments, in order.
    pub args: Vec<String>,
    /// The working directory, if one was set.
    pub cwd: Option<PathBuf>,
    /// The sorted names of the variables set or removed explicitly.
    pub env_names: Vec<String>,
    /// Whether stdin was fed (data, a stream, or kept open).
    pub has_stdin: bool,
}

impl Invocation {
    /// Describes `cmd`.
    pub fn of(cmd: &Command) -> Invocation {
        Invocation {
            program: cmd.get_program().to_string_lossy().into_owned(),
            args: cmd
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            cwd: cmd.get_current_dir().map(PathBuf::from),
            env_names: cmd.get_env_names(),
            has_stdin: cmd.has_stdin(),
        }
    }

    /// The program followed by its arguments.
    pub fn argv(&self) -> Vec<&str> {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect()
    }
}

/// A [`ProcessRunner`] that passes every command to `inner` and remembers it.
///
/// ```
/// # async fn demo() -> processkit::Result<()> {
/// use processkit::{Command, ProcessRunnerExt, RecordingRunner, Reply, ScriptedRunner};
/// let runner = RecordingRunner::new(
///     ScriptedRunner::new().prefix("git", ["push"], Reply::success("")),
/// );
/// runner.run(&Command::new("git").args(["push", "origin"]).env("TOKEN", "s3cret")).await?;
/// let pushed = runner.last().expect("one run");
/// assert_eq!(pushed.argv(), ["git", "push", "origin"]);
/// assert_eq!(pushed.env_names, ["TOKEN"]);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RecordingRunner<R> {
    inner: R,
    log: Mutex<Vec<Invocation>>,
}

impl<R: ProcessRunner> RecordingRunner<R> {
    /// Records every command before handing it to `inner`.
    pub fn new(inner: R) -> RecordingRunner<R> {
        RecordingRunner {
            inner,
            log: Mutex::new(Vec::new()),
        }
    }

    /// Every invocation so far, oldest first.
    pub fn invocations(&self) -> Vec<Invocation> {
        self.log().clone()
    }

    /// The most recent invocation.
    pub fn last(&self) -> Option<Invocation> {
        self.log().last().cloned()
    }

    /// How many commands were run.
    pub fn len(&self) -> usize {
        self.log().len()
    }

    /// Whether no command was run yet.
    pub fn is_empty(&self) -> bool {
        self.log().is_empty()
    }

    /// How many invocations ran `program`.
    pub fn count_of(&self, program: &str) -> usize {
        self.log().iter().filter(|i| i.program == program).count()
    }

    /// Forgets the invocations recorded so far.
    pub fn clear(&self) {
        self.log().clear();
    }

    /// The wrapped runner.
    pub fn inner(&self) -> &R {
        &self.inner
    }

    /// Unwraps the runner, dropping the log.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Vec<Invocation>> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remember(&self, cmd: &Command) {
        self.log().push(Invocation::of(cmd));
    }
}

impl<R: ProcessRunner> ProcessRunner for RecordingRunner<R> {
    fn start<'a>(&'a self, cmd: &'a Command) -> BoxFuture<'a, Result<RunningProcess>> {
        self.remember(cmd);
        self.inner.start(cmd)
    }

    fn output_bytes<'a>(
        &'a self,
        cmd: &'a Command,
    ) -> BoxFuture<'a, Result<ProcessResult<Vec<u8>>>> {
        self.remember(cmd);
        self.inner.output_bytes(cmd)
    }
}
