//! Scripted runs: a `RunningProcess` over a script instead of an OS child,
//! for the test doubles. A feeder task writes canned stdout through an
//! in-memory pipe into the same output machinery a real child's goes through.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;

use crate::command::Command;
use crate::error::{Error, Result};
use crate::policy::{Activity, Arbiter, Idle, Stop, Watch};
use crate::running::{Capture, ChildExit, ChildWait, RunningProcess, WaitFuture};

/// Buffer of the in-memory stdout pipe; like a real pipe, a writer blocks
/// when nobody reads.
const PIPE_CAPACITY: usize = 64 * 1024;

/// The exit a killed run reports, as a real killed child reports it here.
const KILLED: (Option<i32>, Option<i32>) = (None, crate::sys::KILLED_SIGNAL);

/// How a scripted run ends once its stdout is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScriptedEnd {
    /// Exits with this code.
    Code(i32),
    /// Is ended by this signal.
    Signal(i32),
    /// Hits its timeout: the run reports `timed_out`.
    TimedOut,
    /// Is killed without an exit code or a signal number (a replayed
    /// Windows run whose job was terminated).
    Killed,
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
    cmd.cancel.check(&program)?;
    let started = Instant::now();
    let arbiter = Arc::new(Arbiter::default());
    let stderr = std::mem::take(&mut script.stderr);
    let (reader, writer) = tokio::io::duplex(PIPE_CAPACITY);
    let feeder = tokio::spawn(feed(cmd, script, writer, Arc::clone(&arbiter)));
    let exit = ScriptedExit { feeder };

    let stdout = match &cmd.stdout_handler {
        Some(handler) => Capture::start(Vec::new(), reader, Some(handler.clone())),
        None => Capture::idle(Box::new(reader)),
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
        child: Box::new(exit),
        pid: None,
        container: None,
        started,
        timeout: cmd.timeout,
        idle_timeout: cmd.idle_timeout,
        arbiter,
        watchdog: None,
        stdout,
        stderr: Some(stderr),
        stdin: None,
        exit: None,
        finished_off: false,
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
    let activity = Activity::new();
    let watch = Watch {
        // A deadline too far away to represent is no deadline.
        deadline: cmd
            .timeout
            .and_then(|t| tokio::time::Instant::now().checked_add(t)),
        // A script has nothing to stop politely.
        grace: None,
        idle: cmd.idle_timeout.map(|limit| Idle {
            limit,
            activity: Arc::clone(&activity),
        }),
        cancel: cmd.cancel.clone(),
        cancel_grace: None,
        program: cmd.display_name(),
        pid: None,
    };
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
                activity.stamp();
            }
            let _ = writer.shutdown().await;
            if !script.exit_delay.is_zero() {
                tokio::time::sleep(script.exit_delay).await;
            }
        };
        // The watchdog acting ends the script: `play` is dropped unfinished.
        let stopped = watch.enforce(&EndsTheScript, &arbiter, std::future::pending());
        tokio::select! {
            biased;
            () = stopped => KILLED,
            () = play => match script.end {
                ScriptedEnd::Code(code) => (Some(code), None),
                ScriptedEnd::Signal(signal) => (None, Some(signal)),
                ScriptedEnd::TimedOut => {
                    arbiter.mark_timed_out();
                    KILLED
                }
                ScriptedEnd::Killed => (None, None),
            },
        }
    }
}

/// The watchdog's target for a script: returning from the watchdog is what
/// stops it, so there is nothing more to do.
struct EndsTheScript;

impl Stop for EndsTheScript {
    fn halt(&self) {}
}

/// The exit of a scripted run: its feeder task's answer. Killing the run
/// aborts the feeder, which closes stdout and ends the run as killed; so
/// does dropping it, so a dropped run's script stops playing.
struct ScriptedExit {
    feeder: JoinHandle<(Option<i32>, Option<i32>)>,
}

impl std::fmt::Debug for ScriptedExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scripted")
    }
}

impl ChildWait for ScriptedExit {
    fn wait(&mut self) -> WaitFuture<'_> {
        Box::pin(async move {
            // An aborted (or panicked) feeder is a killed run.
            let joined = Pin::new(&mut self.feeder).await;
            Ok(ChildExit::own(joined.unwrap_or(KILLED)))
        })
    }

    /// Ends the script now; harmless once it has ended.
    fn kill(&self) -> Result<()> {
        self.feeder.abort();
        Ok(())
    }

    fn keeps_own_time(&self) -> bool {
        true
    }
}

impl Drop for ScriptedExit {
    fn drop(&mut self) {
        self.feeder.abort();
    }
}
