//! The `ProcessRunner` seam: one trait that real spawners and test doubles
//! implement; `ProcessRunnerExt` (in `verbs`) gives every runner all the verbs.

#[cfg(feature = "record")]
mod cassette;
mod job;
#[cfg(feature = "mock")]
mod mock;
#[cfg(feature = "record")]
mod record_replay;
mod recording;
mod script;
mod scripted;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use job::JobRunner;
#[cfg(feature = "mock")]
pub use mock::MockRunner;
#[cfg(feature = "record")]
pub use record_replay::RecordReplayRunner;
pub use recording::{Invocation, RecordingRunner};
pub use scripted::{Match, Reply, ScriptedRunner};

use crate::command::Command;
use crate::error::Result;
use crate::finish;
use crate::group::ProcessGroup;
use crate::result::ProcessResult;
use crate::running::RunningProcess;

/// A boxed, `Send` future: what [`ProcessRunner`] methods return, so the
/// trait can be used as `dyn ProcessRunner`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something that can run a [`Command`]: the real spawners ([`JobRunner`],
/// [`ProcessGroup`]) and the test doubles ([`ScriptedRunner`],
/// [`RecordingRunner`], and with their features `RecordReplayRunner` and
/// `MockRunner`).
///
/// Write code that runs processes against this trait, generically or as
/// `&dyn ProcessRunner`, and tests can swap the spawner for a double:
///
/// ```
/// use processkit::{Command, ProcessRunner, ProcessRunnerExt, Reply, Result, ScriptedRunner};
///
/// async fn kernel(runner: &dyn ProcessRunner) -> Result<String> {
///     runner.run(&Command::new("uname").arg("-s")).await
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<()> {
/// let fake = ScriptedRunner::new().exact("uname", ["-s"], Reply::success("Plan9\n"));
/// assert_eq!(kernel(&fake).await?, "Plan9");
/// # Ok(()) }
/// ```
///
/// Implement [`start`](ProcessRunner::start); override
/// [`output_bytes`](ProcessRunner::output_bytes) when results can be produced
/// without a live process. Every other verb comes from
/// [`ProcessRunnerExt`](crate::ProcessRunnerExt).
pub trait ProcessRunner: Send + Sync {
    /// Starts `cmd` and returns the live handle.
    fn start<'a>(&'a self, cmd: &'a Command) -> BoxFuture<'a, Result<RunningProcess>>;

    /// Runs `cmd` to completion and returns the full outcome as bytes. The
    /// default honours the command's [`retry`](Command::retry) policy, each
    /// attempt a fresh [`start`](ProcessRunner::start).
    fn output_bytes<'a>(
        &'a self,
        cmd: &'a Command,
    ) -> BoxFuture<'a, Result<ProcessResult<Vec<u8>>>> {
        Box::pin(with_retries(cmd, move || async move {
            finish::output_bytes(self.start(cmd).await?).await
        }))
    }
}

/// `cmd`'s retry policy around `attempt`, each attempt a complete run.
async fn with_retries<F, Fut>(cmd: &Command, attempt: F) -> Result<ProcessResult<Vec<u8>>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<ProcessResult<Vec<u8>>>>,
{
    let program = cmd.display_name();
    crate::policy::with_retries(
        cmd.retry.as_ref(),
        &cmd.cancel,
        &program,
        attempt,
        ProcessResult::failure,
    )
    .await
}

impl ProcessRunner for ProcessGroup {
    fn start<'a>(&'a self, cmd: &'a Command) -> BoxFuture<'a, Result<RunningProcess>> {
        Box::pin(ProcessGroup::start(self, cmd))
    }

    fn output_bytes<'a>(
        &'a self,
        cmd: &'a Command,
    ) -> BoxFuture<'a, Result<ProcessResult<Vec<u8>>>> {
        Box::pin(with_retries(cmd, move || self.start_and_finish(cmd)))
    }
}

/// A reference or smart pointer to a runner is that runner.
macro_rules! forward_runner {
    ($($pointer:ty),*) => {$(
        impl<R: ProcessRunner + ?Sized> ProcessRunner for $pointer {
            fn start<'a>(&'a self, cmd: &'a Command) -> BoxFuture<'a, Result<RunningProcess>> {
                (**self).start(cmd)
            }
            fn output_bytes<'a>(
                &'a self,
                cmd: &'a Command,
            ) -> BoxFuture<'a, Result<ProcessResult<Vec<u8>>>> {
                (**self).output_bytes(cmd)
            }
        }
    )*};
}

forward_runner!(&R, Box<R>, Arc<R>);
