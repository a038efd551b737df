//! `RunningProcess`: the live handle on one started run, over a `ChildWait`
//! (an OS child, a script, a pipeline chain). It owns the output streams, the
//! stdin pipe and the watchdog; dropping a handle whose run owns its container
//! kills the whole tree.

mod activity;
mod batch;
mod child;
mod detach;
mod events;
mod lines;
mod probe;
mod probe_http;
mod probe_output;
#[cfg(feature = "stats")]
mod profile;
#[cfg(feature = "pty")]
mod pty;
mod pump;
mod raw;
mod spawn;
mod split;
mod status;
mod stdin;
mod stop;
mod stream;
mod tee;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use batch::{LineBatch, LineBatchIter};
#[cfg(feature = "stats")]
pub(crate) use child::Sampled;
pub(crate) use child::{Attribution, ChildExit, ChildWait, GoneFuture, WaitFuture};
pub use events::{OutputEvent, OutputEvents};
#[cfg(feature = "stats")]
pub use profile::RunProfile;
pub(crate) use pump::Capture;
pub use raw::OutputReader;
pub(crate) use spawn::{Placement, StageIo, spawn, spawn_and_finish, spawn_with};
pub use split::MAX_LINE;
pub use stdin::StdinWriter;
pub use stream::LineStream;

use crate::error::{Error, Result};
use crate::policy::{Arbiter, Verdict, Watchdog};
use crate::result::ProcessResult;
use crate::sys::Container;
use crate::sys::spawn::InputPipe;
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
            crate::error::Operation::Start,
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
pub(crate) type OutputPipe = crate::sys::spawn::ReadPipe;

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
    pub(crate) child: Box<dyn ChildWait>,
    pub(crate) pid: Option<u32>,
    /// Present when this run owns its container.
    pub(crate) container: Option<Arc<Container>>,
    pub(crate) started: Instant,
    pub(crate) timeout: Option<Duration>,
    /// The idle timeout, reported as the timeout when it is what expired.
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) arbiter: Arc<Arbiter>,
    pub(crate) watchdog: Option<Watchdog>,
    pub(crate) stdout: Capture,
    pub(crate) stderr: Option<Capture>,
    pub(crate) stdin: Option<InputPipe>,
    pub(crate) exit: Option<Exit>,
    /// Set once the handle killed what was left after the exit: nothing of
    /// the run remains, so it is not killed again (its ids may be reused).
    pub(crate) finished_off: bool,
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
        if self.finished_off {
            return Ok(());
        }
        self.child.kill()?;
        self.finished_off = self.exit.is_some();
        Ok(())
    }

    /// Whether the run's timeout expired: the tree was stopped at the
    /// deadline, or the exit was seen only after it; or its output fell
    /// silent for its [`idle_timeout`](crate::Command::idle_timeout).
    pub fn timed_out(&self) -> bool {
        self.arbiter.verdict().is_timeout()
    }

    /// Whether the timeout that stopped the run was its idle timeout.
    pub(crate) fn idle_timed_out(&self) -> bool {
        self.arbiter.verdict() == Verdict::IdleTimedOut
    }

    /// The timeout that expired, if one did: the idle one or the wall-clock one.
    pub(crate) fn expired_timeout(&self) -> Option<Duration> {
        if self.idle_timed_out() {
            self.idle_timeout
        } else {
            self.timeout
        }
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
        // Taken before an attribution may replace `timeout`.
        let deadline = self.deadline();
        let ended = self.child.wait().await?;
        let exit = Exit {
            code: ended.code,
            signal: ended.signal,
            at: Instant::now(),
        };
        if let Some(attribution) = ended.attribution {
            self.attribute(attribution);
        }
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
        if self.child.keeps_own_time() {
            return None;
        }
        self.started.checked_add(self.timeout?)
    }

    /// Reports the run an exit is attributed to (a pipeline's blamed stage)
    /// as this handle's: its program, stderr, and how it ended.
    fn attribute(&mut self, attribution: Attribution) {
        self.program = attribution.program;
        self.stderr = attribution.stderr;
        if attribution.cancelled {
            self.arbiter.mark_cancelled();
        } else if let Some(stage_timeout) = attribution.timeout
            && self.arbiter.verdict() == Verdict::Running
        {
            // The blamed stage hit its own deadline: report that deadline.
            if attribution.idle {
                self.arbiter.mark_idle_timed_out();
                self.idle_timeout = Some(stage_timeout);
            } else {
                self.arbiter.mark_timed_out();
                self.timeout = Some(stage_timeout);
            }
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
    /// reader had buffered), unless it is already captured or was handed on.
    pub(crate) fn start_stdout_capture(&mut self) {
        self.stdout.resume();
    }

    /// The next stdout line, which an `on_stdout_line` handler sees too
    /// (once); `None` once stdout is closed or was handed on.
    pub(crate) async fn next_stdout_line_handled(&mut self) -> Result<Option<String>> {
        let line = std::future::poll_fn(|cx| {
            self.resume_stderr_capture();
            self.stdout.poll_line(cx, true)
        })
        .await;
        line.map_err(|e| Error::io(&self.program, crate::error::Operation::ReadStdout, e))
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
        let exit = self.wait_exit_draining().await?;
        let _ = self.kill();
        self.arbiter.end();
        let stdout = self.stdout.take();
        let mut bounds: Vec<_> = stdout.bound().into_iter().collect();
        let stdout = stdout.finish(PIPE_GRACE).await;
        let stderr = match self.stderr.take() {
            Some(c) => {
                bounds.extend(c.bound());
                c.finish(PIPE_GRACE).await
            }
            None => Vec::new(),
        };
        let truncated = bounds.iter().any(|b| b.truncated());
        self.check_cancelled()?;
        let timed_out = self.timed_out();
        Ok(ProcessResult {
            program: self.program.clone(),
            code: if timed_out { None } else { exit.code },
            signal: exit.signal,
            stdout,
            stderr,
            timed_out,
            idle_timed_out: self.idle_timed_out(),
            duration: exit.at.saturating_duration_since(self.started),
            timeout: self.expired_timeout(),
            truncated,
        })
    }
}

impl RunningProcess {
    /// `wait_exit`, reading meanwhile the streams this task drains itself
    /// (see `Capture::start_for_finisher`), so no child blocks on a full pipe.
    async fn wait_exit_draining(&mut self) -> Result<Exit> {
        let inline = |c: &Capture| c.drains_inline();
        if !inline(&self.stdout) && !self.stderr.as_ref().is_some_and(inline) {
            return self.wait_exit().await;
        }
        // Out of the handle while it waits: nothing else may move them to a task.
        let mut stdout = self.stdout.take();
        let mut stderr = self.stderr.take();
        let exit = {
            let mut wait = std::pin::pin!(self.wait_exit());
            // The exit first: a child gone by now has left its output in the
            // pipes, which the finish then reads without waiting for tokio.
            std::future::poll_fn(|cx| {
                let exit = wait.as_mut().poll(cx);
                if exit.is_pending() {
                    stdout.poll_inline(cx);
                    if let Some(stderr) = stderr.as_mut() {
                        stderr.poll_inline(cx);
                    }
                }
                exit
            })
            .await
        };
        self.stdout = stdout;
        self.stderr = stderr;
        exit
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
