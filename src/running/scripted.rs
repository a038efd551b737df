//! Scripted runs: a `RunningProcess` with no OS child behind it, for test
//! doubles. A feeder task writes canned stdout through an in-memory pipe into
//! the same pumps and line reader a real child's output goes through.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use super::arbiter::Arbiter;
use super::pump::Capture;
use super::{RunningProcess, StdoutState, Waiter};
use crate::command::Command;
use crate::error::{Error, Result};

/// Buffer of the in-memory stdout pipe; like a real pipe, a writer blocks
/// when nobody reads.
const PIPE_CAPACITY: usize = 64 * 1024;

/// The signal number a contained tree is killed with (SIGKILL on Unix).
const KILLED_BY: i32 = 9;

/// How a scripted run ends once its stdout is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScriptedEnd {
    /// Exits with this code.
    Code(i32),
    /// Is ended by this signal.
    Signal(i32),
    /// Hits its timeout: the run reports `timed_out`.
    TimedOut,
}

/// Everything a scripted run produces.
#[derive(Debug, Clone)]
pub(crate) struct Script {
    /// stdout chunks, each written after its delay.
    pub(crate) stdout: Vec<(Duration, Vec<u8>)>,
    /// stderr, available as soon as the run starts.
    pub(crate) stderr: Vec<u8>,
    /// Time between the last stdout chunk and the exit.
    pub(crate) exit_delay: Duration,
    /// How the run ends.
    pub(crate) end: ScriptedEnd,
}

/// Starts a scripted run of `cmd`. The command's timeout and cancellation
/// token apply as they would to a real child: the script stops, stdout
/// closes and the run reports the verdict.
pub(crate) fn start_scripted(cmd: &Command, mut script: Script) -> Result<RunningProcess> {
    let program = cmd.display_name();
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(Error::Unsupported {
            operation: "scripted run",
            reason: "it must be started inside a tokio runtime".to_owned(),
        });
    }
    #[cfg(feature = "cancellation")]
    if cmd.cancel.as_ref().is_some_and(|t| t.is_cancelled()) {
        return Err(Error::Cancelled { program });
    }
    let started = Instant::now();
    let arbiter = Arc::new(Arbiter::default());
    let stderr = std::mem::take(&mut script.stderr);
    let (reader, writer) = tokio::io::duplex(PIPE_CAPACITY);
    let feeder = tokio::spawn(feed(cmd, script, writer, Arc::clone(&arbiter)));
    let exit = Box::pin(async move { feeder.await.unwrap_or((None, Some(KILLED_BY))) });

    let stdout = match &cmd.stdout_handler {
        Some(handler) => {
            StdoutState::Capturing(Capture::start(Vec::new(), reader, Some(handler.clone())))
        }
        None => StdoutState::Pipe(Box::new(reader)),
    };
    let stderr = match &cmd.stderr_handler {
        Some(handler) => Capture::start(
            Vec::new(),
            std::io::Cursor::new(stderr),
            Some(handler.clone()),
        ),
        None => Capture::ready(stderr),
    };
    Ok(RunningProcess {
        program,
        child: Waiter::Scripted(exit),
        pid: None,
        slot: None,
        container: None,
        started,
        timeout: cmd.timeout,
        arbiter,
        watchdog: None,
        stdout,
        stderr: Some(stderr),
        stdin: None,
        exit: None,
    })
}

/// Plays the script against the command's deadline and token; returns the
/// exit as `(code, signal)`. Dropping `writer` on return closes stdout.
fn feed(
    cmd: &Command,
    script: Script,
    mut writer: tokio::io::DuplexStream,
    arbiter: Arc<Arbiter>,
) -> impl Future<Output = (Option<i32>, Option<i32>)> + Send + 'static {
    let deadline = cmd.timeout.map(|t| tokio::time::Instant::now() + t);
    #[cfg(feature = "cancellation")]
    let token = cmd.cancel.clone();
    async move {
        let play = async {
            for (delay, chunk) in &script.stdout {
                if !delay.is_zero() {
                    tokio::time::sleep(*delay).await;
                }
                // A reader that went away (e.g. `first_line` found its line)
                // is not an error for the script: the rest is simply unread.
                if writer.write_all(chunk).await.is_err() {
                    break;
                }
            }
            let _ = writer.shutdown().await;
            if !script.exit_delay.is_zero() {
                tokio::time::sleep(script.exit_delay).await;
            }
        };
        let expired = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        #[cfg(feature = "cancellation")]
        let cancelled = async {
            match &token {
                Some(token) => token.cancelled().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(feature = "cancellation"))]
        let cancelled = std::future::pending::<()>();
        tokio::select! {
            biased;
            () = cancelled => {
                arbiter.mark_cancelled();
                (None, Some(KILLED_BY))
            }
            () = expired => {
                arbiter.mark_timed_out();
                (None, Some(KILLED_BY))
            }
            () = play => match script.end {
                ScriptedEnd::Code(code) => (Some(code), None),
                ScriptedEnd::Signal(signal) => (None, Some(signal)),
                ScriptedEnd::TimedOut => {
                    arbiter.mark_timed_out();
                    (None, Some(KILLED_BY))
                }
            },
        }
    }
}
