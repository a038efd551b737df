//! The seam under the handle: `ChildWait` is what a `RunningProcess` waits on
//! and kills. An OS child implements it here; the scripted double (in
//! `runner`) and a pipeline chain (in `pipeline`) implement it where they live.
//! An exit carries its own attribution, so nobody writes into the handle.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::{Capture, LineBatch};
use crate::error::{Error, Result};
use crate::policy::Stop;
use crate::sys::spawn::OsChild;
use crate::sys::{self, Slot};

/// The future of `ChildWait::wait`.
pub(crate) type WaitFuture<'a> = Pin<Box<dyn Future<Output = Result<ChildExit>> + Send + 'a>>;

/// The future of `ChildWait::wait_gone`: whether the tree is gone.
pub(crate) type GoneFuture<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// How a child ended.
#[derive(Debug)]
pub(crate) struct ChildExit {
    pub(crate) code: Option<i32>,
    pub(crate) signal: Option<i32>,
    /// The run this exit is reported for, when that is not the handle's own
    /// (a pipeline's blamed stage).
    pub(crate) attribution: Option<Attribution>,
}

impl ChildExit {
    /// An exit of the handle's own child, as `(code, signal)`.
    pub(crate) fn own((code, signal): (Option<i32>, Option<i32>)) -> ChildExit {
        ChildExit {
            code,
            signal,
            attribution: None,
        }
    }
}

/// The run an exit is attributed to, and what of it the handle reports.
#[derive(Debug)]
pub(crate) struct Attribution {
    pub(crate) program: String,
    pub(crate) stderr: Option<Capture>,
    /// Its own timeout, when that is what ended it.
    pub(crate) timeout: Option<Duration>,
    /// That timeout was its idle timeout.
    pub(crate) idle: bool,
    /// A cancellation token of the chain fired.
    pub(crate) cancelled: bool,
}

/// What a handle waits on and kills: the async counterpart of tokio's
/// `Wait`/`Kill` seam. The handle is the one owner that calls `kill`.
pub(crate) trait ChildWait: Send + fmt::Debug {
    /// Waits for the exit and reaps it. Cancel-safe.
    fn wait(&mut self) -> WaitFuture<'_>;

    /// Kills the child and everything it started; harmless once it exited.
    fn kill(&self) -> Result<()>;

    /// Asks the child and everything it started to stop (its stop signal,
    /// after a thaw). A child that cannot be asked is killed.
    fn ask_to_stop(&self) -> Result<()> {
        self.kill()
    }

    /// Waits until nothing the child started is left, at most `limit`;
    /// `true` once the tree is gone.
    fn wait_gone(&self, _limit: Duration) -> GoneFuture<'_> {
        Box::pin(std::future::ready(true))
    }

    /// Whether the child keeps its own time (a script), so the handle's
    /// deadline is not checked against its exit.
    fn keeps_own_time(&self) -> bool {
        false
    }

    /// What a profile samples for this child's tree.
    #[cfg(feature = "stats")]
    fn sampled(&self) -> Sampled {
        Sampled::Nothing
    }

    /// stderr the child streams itself while the handle has none of its own
    /// (every stage's, interleaved); `None` once it is all closed.
    fn poll_stderr_line(&mut self, _cx: &mut Context<'_>) -> Poll<Option<String>> {
        Poll::Ready(None)
    }

    /// Like `poll_stderr_line`, the lines that are ready as one batch.
    fn poll_stderr_batch(&mut self, _cx: &mut Context<'_>) -> Poll<Option<LineBatch>> {
        Poll::Ready(None)
    }

    /// Puts that stderr back to background draining.
    fn resume_stderr(&mut self) {}

    /// The child's pseudo-terminal, when it runs on one.
    #[cfg(feature = "pty")]
    fn pty(&self) -> Option<&sys::pty::Control> {
        None
    }
}

/// The tree a profile samples.
#[cfg(feature = "stats")]
pub(crate) enum Sampled {
    /// One run's slot.
    Slot(Arc<Slot>),
    /// A whole container (a pipeline's stages).
    Container(Arc<crate::sys::Container>),
    /// No process at all (a script).
    Nothing,
}

/// A real child process in its container slot.
pub(crate) struct OsProcess {
    pub(crate) child: OsChild,
    pub(crate) slot: Arc<Slot>,
    /// The program, for errors.
    pub(crate) program: String,
    /// The terminal, while the run holds it; given back at the exit.
    pub(crate) foreground: Option<crate::sys::Foreground>,
    /// Its pseudo-terminal, when it runs on one.
    #[cfg(feature = "pty")]
    pub(crate) pty: Option<sys::pty::Control>,
}

impl fmt::Debug for OsProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.child.fmt(f)
    }
}

impl ChildWait for OsProcess {
    fn wait(&mut self) -> WaitFuture<'_> {
        Box::pin(async move {
            let status = (self.child.wait().await)
                .map_err(|e| Error::io(&self.program, crate::error::Operation::Wait, e))?;
            self.foreground = None;
            Ok(ChildExit::own(sys::exit_parts(&status, Some(&self.slot))))
        })
    }

    #[cfg(feature = "stats")]
    fn sampled(&self) -> Sampled {
        Sampled::Slot(Arc::clone(&self.slot))
    }

    fn kill(&self) -> Result<()> {
        self.slot
            .kill()
            .map_err(|e| Error::io(&self.program, crate::error::Operation::Kill, e))
    }

    fn ask_to_stop(&self) -> Result<()> {
        self.slot
            .ask_to_stop()
            .map_err(|e| Error::io(&self.program, crate::error::Operation::Stop, e))
    }

    fn wait_gone(&self, limit: Duration) -> GoneFuture<'_> {
        Box::pin(self.slot.wait_empty(limit))
    }

    #[cfg(feature = "pty")]
    fn pty(&self) -> Option<&sys::pty::Control> {
        self.pty.as_ref()
    }
}

/// A run's tree, as the watchdog stops it.
impl Stop for Arc<Slot> {
    fn halt(&self) {
        let _ = self.as_ref().kill();
    }

    fn terminate(&self) -> bool {
        self.ask_to_stop().is_ok()
    }
}
