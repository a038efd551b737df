//! `RunningProcess`: the live handle on one started child. It owns the read
//! pumps, the stdin pipe and the deadline watchdog; dropping a handle whose
//! run owns its container kills the whole tree.

mod arbiter;
mod batch;
mod lines;
mod probe;
#[cfg(feature = "stats")]
mod profile;
mod pump;
pub(crate) mod scripted;
mod spawn;
mod stdin;
mod stream;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncRead;
use tokio::sync::oneshot;

pub(crate) use arbiter::{Arbiter, Verdict};
pub use batch::{LineBatch, LineBatchIter};
pub(crate) use lines::LineReader;
pub use lines::MAX_LINE;
#[cfg(feature = "stats")]
pub use profile::RunProfile;
pub(crate) use pump::Capture;
pub(crate) use spawn::{Placement, StageIo, spawn, spawn_with};
pub use stdin::StdinWriter;
pub use stream::LineStream;

use crate::error::{Error, Result};
use crate::result::ProcessResult;
use crate::sys::spawn::{InputPipe, OsChild};
use crate::sys::{self, Container, Slot};
use crate::trace::trace_event;

/// How long pumps may take to reach end-of-file once the run's tree is dead,
/// before what was read so far is returned (an escaped process may hold a pipe).
pub(crate) const PIPE_GRACE: Duration = Duration::from_millis(500);

/// Fails unless the current tokio runtime can run a child: deadlines, the
/// capture grace and the watchdog need its time driver, and panicking in
/// there (or in a background task, silently) is no way to say so.
pub(crate) fn check_runtime(program: &str) -> Result<()> {
    let unusable = |why: &str| {
        Error::io(
            program,
            "start",
            std::io::Error::new(std::io::ErrorKind::Unsupported, why.to_owned()),
        )
    };
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(unusable("a run must be started inside a tokio runtime"));
    }
    // Creating a timer is the only way tokio offers to ask; it panics without
    // a time driver, and it registers nothing until polled.
    let timer = std::panic::catch_unwind(|| drop(tokio::time::sleep(Duration::ZERO)));
    if timer.is_err() {
        return Err(unusable(
            "the tokio runtime has no time driver: build it with enable_time() or enable_all()",
        ));
    }
    Ok(())
}

/// A readable output stream: a child's pipe, or canned bytes from a double.
pub(crate) type OutputPipe = Box<dyn AsyncRead + Send + Unpin>;

/// What the handle waits on for the exit: an OS child, or a double's script.
// tokio's Windows `Child` is large; there is one `Waiter` per run, not per poll.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Waiter {
    /// A real child process.
    Os(OsChild),
    /// A test double's scripted exit: `(code, signal)`.
    Scripted(scripted::ScriptedExit),
    /// Every stage of a pipeline; the exit is the pipefail attribution.
    Pipeline(Box<crate::pipeline::Stages>),
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Waiter::Os(child) => child.fmt(f),
            Waiter::Scripted(_) => f.write_str("Scripted"),
            Waiter::Pipeline(stages) => stages.fmt(f),
        }
    }
}

/// What happened to stdout so far.
pub(crate) enum StdoutState {
    /// Nobody has read it yet.
    Pipe(OutputPipe),
    /// Drained in the background into a buffer.
    Capturing(Capture),
    /// Being read line by line by the caller; unread bytes stay buffered.
    Lines(LineReader<OutputPipe>),
    /// Handed to a consumer (a line stream) or finished.
    Taken,
}

impl std::fmt::Debug for StdoutState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StdoutState::Pipe(_) => "Pipe",
            StdoutState::Capturing(_) => "Capturing",
            StdoutState::Lines(_) => "Lines",
            StdoutState::Taken => "Taken",
        })
    }
}

/// How the child exited.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exit {
    pub(crate) code: Option<i32>,
    pub(crate) signal: Option<i32>,
    pub(crate) at: Instant,
}

/// A started child. Obtain one from [`Command::start`](crate::Command::start)
/// or [`ProcessGroup::start`](crate::ProcessGroup::start).
///
/// When the run owns its container (the `Command::start` path), dropping the
/// handle kills the child and every descendant. A run started in a shared
/// [`ProcessGroup`](crate::ProcessGroup) lives until the group is torn down.
pub struct RunningProcess {
    pub(crate) program: String,
    pub(crate) child: Waiter,
    pub(crate) pid: Option<u32>,
    /// Where the run lives; `None` for a test double's scripted run.
    pub(crate) slot: Option<Arc<Slot>>,
    /// Present when this run owns its container.
    pub(crate) container: Option<Arc<Container>>,
    pub(crate) started: Instant,
    pub(crate) timeout: Option<Duration>,
    pub(crate) arbiter: Arc<Arbiter>,
    pub(crate) watchdog: Option<oneshot::Sender<()>>,
    pub(crate) stdout: StdoutState,
    pub(crate) stderr: Option<Capture>,
    pub(crate) stdin: Option<InputPipe>,
    pub(crate) exit: Option<Exit>,
}

impl std::fmt::Debug for RunningProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningProcess")
            .field("program", &self.program)
            .field("pid", &self.pid)
            .field("child", &self.child)
            .field("stdout", &self.stdout)
            .field("stdin_open", &self.stdin.is_some())
            .field("exit", &self.exit)
            .finish_non_exhaustive()
    }
}

impl RunningProcess {
    /// The child's pid, or `None` once it has been reaped.
    pub fn id(&self) -> Option<u32> {
        if self.exit.is_some() { None } else { self.pid }
    }

    /// The program this handle runs.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The containment mechanism of this run's own container, if it owns one.
    pub fn mechanism(&self) -> Option<crate::Mechanism> {
        self.container.as_ref().map(|c| c.mechanism())
    }

    /// Takes the writer for the child's stdin; `Some` once, and only when the
    /// command used [`keep_stdin_open`](crate::Command::keep_stdin_open).
    pub fn standard_input(&mut self) -> Option<StdinWriter> {
        let program = self.program.clone();
        self.stdin
            .take()
            .map(|pipe| StdinWriter::new(program, pipe))
    }

    /// Waits for the child to exit and returns its exit code (`None` when it
    /// was killed by a signal or its timeout). Output keeps being drained
    /// meanwhile. A cancelled run reports [`Error::Cancelled`].
    pub async fn wait(&mut self) -> Result<Option<i32>> {
        let exit = self.wait_exit().await?;
        self.check_cancelled()?;
        Ok(if self.timed_out() { None } else { exit.code })
    }

    /// Kills the child and everything it started (not its siblings in a
    /// shared group). Harmless after the child exited. A test double's
    /// scripted run stops its script at once and reports killed.
    pub fn kill(&mut self) -> Result<()> {
        match &self.child {
            Waiter::Pipeline(stages) => return stages.kill_all(),
            Waiter::Scripted(exit) => {
                exit.kill();
                return Ok(());
            }
            Waiter::Os(_) => {}
        }
        match &self.slot {
            Some(slot) => slot.kill().map_err(|e| Error::io(&self.program, "kill", e)),
            None => Ok(()),
        }
    }

    /// Whether the run's timeout expired: the tree was killed at the
    /// deadline, or the exit was seen only after it.
    pub fn timed_out(&self) -> bool {
        self.arbiter.verdict() == Verdict::TimedOut
    }

    /// Waits for the direct child's exit (at most once; later calls return the
    /// recorded exit). stdout is drained in the background if nobody reads it.
    pub(crate) async fn wait_exit(&mut self) -> Result<Exit> {
        if let Some(exit) = self.exit {
            return Ok(exit);
        }
        self.start_stdout_capture();
        self.reap().await
    }

    /// Waits for the direct child's exit like `wait_exit`, but leaves stdout
    /// alone (probes and `wait_any` must not consume output). Cancel-safe.
    pub(crate) async fn reap(&mut self) -> Result<Exit> {
        self.resume_stderr_capture();
        if let Some(exit) = self.exit {
            return Ok(exit);
        }
        // Taken before a pipeline's attribution may replace `timeout`.
        let deadline = self.deadline();
        let (code, signal) = match &mut self.child {
            Waiter::Os(child) => {
                let status = child
                    .wait()
                    .await
                    .map_err(|e| Error::io(&self.program, "wait", e))?;
                sys::exit_parts(&status, self.slot.as_deref())
            }
            Waiter::Scripted(exit) => exit.await,
            Waiter::Pipeline(stages) => {
                let blame = stages.wait_all().await?;
                blame.record(
                    &mut self.program,
                    &mut self.stderr,
                    &mut self.timeout,
                    &self.arbiter,
                )
            }
        };
        let exit = Exit {
            code,
            signal,
            at: Instant::now(),
        };
        trace_event!(
            debug,
            "exit",
            program = %self.program,
            pid = ?self.pid,
            code = ?exit.code,
            signal = ?exit.signal,
            duration = ?exit.at.saturating_duration_since(self.started),
        );
        self.exit = Some(exit);
        self.watchdog = None;
        self.check_deadline(deadline, exit);
        Ok(exit)
    }

    /// When the run's own deadline falls, if it has one a run can miss: a
    /// double's script keeps its own time, and a deadline too far away to
    /// represent is none.
    fn deadline(&self) -> Option<Instant> {
        match self.child {
            Waiter::Scripted(_) => None,
            Waiter::Os(_) | Waiter::Pipeline(_) => self.started.checked_add(self.timeout?),
        }
    }

    /// An exit seen only after the deadline is a timeout, whether or not
    /// the watchdog got to run first (a busy runtime may hold it up): the
    /// tree is killed and the run reports `timed_out`, never a success.
    fn check_deadline(&mut self, deadline: Option<Instant>, exit: Exit) {
        let Some(deadline) = deadline else { return };
        if exit.at < deadline || self.arbiter.verdict() != Verdict::Running {
            return;
        }
        self.arbiter.mark_timed_out();
        trace_event!(
            info,
            "timeout",
            program = %self.program,
            pid = ?self.pid,
            after = ?exit.at.saturating_duration_since(self.started),
            graceful = %false,
        );
        let _ = self.kill();
    }

    /// Moves stdout into a background capture (keeping any bytes a line
    /// reader had buffered), unless it is already captured or taken.
    pub(crate) fn start_stdout_capture(&mut self) {
        self.stdout = match std::mem::replace(&mut self.stdout, StdoutState::Taken) {
            StdoutState::Pipe(pipe) => {
                StdoutState::Capturing(Capture::start(Vec::new(), pipe, None))
            }
            StdoutState::Lines(reader) => {
                let (unread, pipe) = reader.into_parts();
                StdoutState::Capturing(Capture::start(unread, pipe, None))
            }
            // A line reader that took the pipe back stops reading it now.
            StdoutState::Capturing(mut capture) => {
                capture.resume();
                StdoutState::Capturing(capture)
            }
            other => other,
        };
    }

    /// stdout as a line reader, unless it is being captured or was taken.
    pub(crate) fn stdout_reader(&mut self) -> Option<&mut LineReader<OutputPipe>> {
        if let StdoutState::Pipe(_) = self.stdout {
            let StdoutState::Pipe(pipe) = std::mem::replace(&mut self.stdout, StdoutState::Taken)
            else {
                unreachable!("checked above")
            };
            self.stdout = StdoutState::Lines(LineReader::new(pipe));
        }
        match &mut self.stdout {
            StdoutState::Lines(reader) => Some(reader),
            _ => None,
        }
    }

    /// The next stdout line, which an `on_stdout_line` handler sees too
    /// (once); `None` once stdout is closed or was taken.
    pub(crate) async fn next_stdout_line_handled(&mut self) -> Result<Option<String>> {
        if let StdoutState::Capturing(_) = self.stdout {
            return Ok(std::future::poll_fn(|cx| self.poll_stdout_line(cx, true)).await);
        }
        let program = self.program.clone();
        match self.stdout_reader() {
            Some(reader) => {
                (reader.next_line().await).map_err(|e| Error::io(&program, "read stdout", e))
            }
            None => Ok(None),
        }
    }

    pub(crate) fn check_cancelled(&self) -> Result<()> {
        if self.arbiter.verdict() == Verdict::Cancelled {
            return Err(Error::Cancelled {
                program: self.program.clone(),
            });
        }
        Ok(())
    }

    /// Ends the run: waits for exit, kills whatever the run left behind, and
    /// collects both streams. The core of every output verb.
    pub(crate) async fn finish_output(mut self) -> Result<ProcessResult<Vec<u8>>> {
        let exit = self.wait_exit().await?;
        let _ = self.kill();
        self.arbiter.end();
        let stdout = match std::mem::replace(&mut self.stdout, StdoutState::Taken) {
            StdoutState::Capturing(c) => c.finish(PIPE_GRACE).await,
            StdoutState::Pipe(_) | StdoutState::Lines(_) | StdoutState::Taken => Vec::new(),
        };
        let stderr = match self.stderr.take() {
            Some(c) => c.finish(PIPE_GRACE).await,
            None => Vec::new(),
        };
        self.check_cancelled()?;
        let timed_out = self.timed_out();
        Ok(ProcessResult {
            program: self.program.clone(),
            code: if timed_out { None } else { exit.code },
            signal: exit.signal,
            stdout,
            stderr,
            timed_out,
            duration: exit.at.saturating_duration_since(self.started),
            timeout: self.timeout,
        })
    }
}

impl Drop for RunningProcess {
    fn drop(&mut self) {
        // Background helpers of the run (the stdin feeder) stop with it.
        self.arbiter.end();
        // A run that owns its container dies with its handle; the container's
        // own Drop kills the tree. An unreaped direct child is reaped in the background.
        if let Some(container) = &self.container {
            trace_event!(
                debug,
                "teardown",
                program = %self.program,
                pid = ?self.pid,
                mechanism = %container.mechanism(),
            );
            let _ = self.kill();
        }
    }
}
