//! `Pipeline`: `a | b | c` without a shell. Stages are plain `Command`s joined
//! by kernel pipes in one shared container; the verbs mirror `Command`'s.

mod outcome;
mod start;
mod watch;

use std::future::Future;
use std::ops::BitOr;
use std::time::Duration;

use crate::command::Command;
use crate::error::Result;
use crate::finish;
use crate::result::ProcessResult;
use crate::running::RunningProcess;
use crate::verbs::{self, Expression};

/// Two or more [`Command`]s whose stdout feeds the next one's stdin, like a
/// shell's `a | b | c` but without a shell: no quoting, no injection surface.
///
/// Build one with [`Command::pipe`] or the `|` operator, then finish it with
/// the same verbs as a single command. Every stage runs in one kill-on-drop
/// container, and the bytes between stages flow through OS pipes without
/// passing through this process.
///
/// The outcome follows *pipefail*: stdout is the last stage's, while the exit
/// code, stderr and [`program`](ProcessResult::program) come from the first
/// stage that did not exit cleanly, or from the last stage when all did.
/// Stages marked [`Command::unchecked`] are skipped by that search.
///
/// ```no_run
/// # async fn demo() -> processkit::Result<()> {
/// use processkit::Command;
/// let authors = (Command::new("git").args(["log", "--format=%an"])
///     | Command::new("sort")
///     | Command::new("uniq").arg("-c"))
///     .run()
///     .await?;
/// println!("{authors}");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Pipeline {
    pub(crate) stages: Vec<Command>,
    pub(crate) timeout: Option<Duration>,
}

impl Command {
    /// Feeds this command's stdout into `next`'s stdin, returning a
    /// [`Pipeline`]. This command's stdin source stays the pipeline's input.
    pub fn pipe(self, next: Command) -> Pipeline {
        Pipeline {
            stages: vec![self, next],
            timeout: None,
        }
    }
}

impl Pipeline {
    /// Appends `next` as the new last stage.
    pub fn pipe(mut self, next: Command) -> Pipeline {
        self.stages.push(next);
        self
    }

    /// Bounds the whole chain: at the deadline every stage and everything the
    /// stages started is killed. As with [`Command::timeout`], the expiry is
    /// captured in the result; verbs that require success report
    /// [`Error::Timeout`](crate::Error::Timeout).
    pub fn timeout(mut self, timeout: Duration) -> Pipeline {
        self.timeout = Some(timeout);
        self
    }

    /// The stages, first to last.
    pub fn stages(&self) -> &[Command] {
        &self.stages
    }

    /// The chain's timeout, if one was set.
    pub fn get_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Starts every stage and returns one handle on the chain: its stdin is
    /// the first stage's (with [`Command::keep_stdin_open`] on that stage), its
    /// stdout the last stage's, and waiting on it waits for every stage and
    /// reports the pipefail outcome. [`kill`](RunningProcess::kill) and
    /// dropping the handle end every stage. Until the chain has been waited
    /// for, [`id`](RunningProcess::id) and [`program`](RunningProcess::program)
    /// describe the last stage; afterwards `program` names the attributed one.
    ///
    /// A stage that cannot start (e.g. [`Error::NotFound`](crate::Error::NotFound))
    /// fails the call, and the stages already started are killed.
    pub async fn start(&self) -> Result<RunningProcess> {
        start::start(self).await
    }

    /// Runs the chain and returns the last stage's trimmed stdout. Any checked
    /// stage that fails (non-zero exit, signal, timeout) makes this an error
    /// naming that stage; when every stage is [`unchecked`](Command::unchecked),
    /// only a timeout is.
    pub async fn run(&self) -> Result<String> {
        verbs::run_of(self).await
    }

    /// Runs the chain and returns the pipefail outcome, decoded lossily as
    /// UTF-8. A failing stage or a timeout is data here.
    pub async fn output_string(&self) -> Result<ProcessResult<String>> {
        verbs::output_string_of(self).await
    }

    /// Runs the chain and returns the pipefail outcome as raw bytes.
    pub async fn output_bytes(&self) -> Result<ProcessResult<Vec<u8>>> {
        Expression::output_bytes(self).await
    }

    /// Runs the chain and returns the attributed exit code; a timed-out or
    /// killed chain is an error rather than an invented code.
    pub async fn exit_code(&self) -> Result<i32> {
        verbs::exit_code_of(self).await
    }

    /// A yes/no question: an attributed exit 0 is `true`, 1 is `false`,
    /// anything else is an error.
    pub async fn probe(&self) -> Result<bool> {
        verbs::probe_of(self).await
    }

    /// The first line of the last stage's stdout for which `pred` is true, or
    /// `None` when it closes without one. The whole chain is killed as soon
    /// as the answer is known.
    pub async fn first_line(&self, pred: impl FnMut(&str) -> bool) -> Result<Option<String>> {
        verbs::first_line_of(self, pred).await
    }
}

impl Expression for Pipeline {
    fn start(&self) -> impl Future<Output = Result<RunningProcess>> + Send {
        start::start(self)
    }

    async fn output_bytes(&self) -> Result<ProcessResult<Vec<u8>>> {
        finish::output_bytes(start::start(self).await?).await
    }

    /// Pipefail blames an unchecked stage only when no stage is checked.
    fn checked(&self) -> bool {
        self.stages.iter().any(|stage| !stage.unchecked)
    }
}

impl BitOr<Command> for Command {
    type Output = Pipeline;

    /// `a | b` is `a.pipe(b)`.
    fn bitor(self, next: Command) -> Pipeline {
        self.pipe(next)
    }
}

impl BitOr<Command> for Pipeline {
    type Output = Pipeline;

    /// `pipeline | c` is `pipeline.pipe(c)`.
    fn bitor(self, next: Command) -> Pipeline {
        self.pipe(next)
    }
}
