//! `RunningProcess::stop`: the graceful stop of one run's tree — the stop
//! signal, a bounded wait for the whole tree to exit, then a kill of what
//! is left.

use std::time::Duration;

use super::RunningProcess;
use crate::error::Result;
use crate::exit_status::ExitStatus;
use crate::trace::trace_event;

impl RunningProcess {
    /// Stops the run politely: sends its [`stop_signal`](crate::Command::stop_signal)
    /// (default SIGTERM) to the run's whole tree, waits up to `grace` for
    /// every process of it to exit, then kills whatever is left. Returns how
    /// the run ended: a child that handled the signal reports its own exit
    /// code; one killed after the grace reports SIGKILL (Unix) or no code
    /// (Windows).
    ///
    /// Only this run's tree is stopped (not its siblings in a shared
    /// group); a pipeline stops every stage, each with its own stop
    /// signal; a run suspended with its group is thawed first, so it can
    /// act on the signal. Output keeps being drained meanwhile. On Windows
    /// the polite request is `CTRL_BREAK_EVENT` to a console child and
    /// `WM_CLOSE` to a windowed one (see `docs/timeouts-and-cancellation.md`).
    /// Calling it on a run that already exited returns its status and kills
    /// nothing that might not be ours.
    ///
    /// ```no_run
    /// # async fn demo() -> processkit::Result<()> {
    /// use processkit::{Command, Signal};
    /// use std::time::Duration;
    /// let mut server = Command::new("my-server").stop_signal(Signal::Int).start().await?;
    /// // … later:
    /// let status = server.stop(Duration::from_secs(10)).await?;
    /// println!("server {status}");
    /// # Ok(()) }
    /// ```
    pub async fn stop(&mut self, grace: Duration) -> Result<ExitStatus> {
        if self.exit.is_none() {
            trace_event!(
                info,
                "stop",
                program = %self.program,
                pid = ?self.pid,
                grace = ?grace,
            );
            // Nothing polite reached the tree: no grace to wait, the kill
            // below ends the run.
            let asked = self.child.ask_to_stop().is_ok();
            let grace = if asked { grace } else { Duration::ZERO };
            let deadline = tokio::time::Instant::now().checked_add(grace);
            let tree_gone = async {
                if self.wait_exit().await.is_ok() {
                    // The direct child is gone; what it started gets the rest.
                    let left = deadline.map_or(grace, |d| {
                        d.saturating_duration_since(tokio::time::Instant::now())
                    });
                    self.child.wait_gone(left).await;
                }
            };
            match deadline {
                Some(deadline) => drop(tokio::time::timeout_at(deadline, tree_gone).await),
                None => tree_gone.await,
            }
        }
        let _ = self.kill();
        self.wait_status().await
    }
}
