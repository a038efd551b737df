//! `ProcessGroup::stop`: a graceful stop of the whole group that reports
//! what happened — how many processes were asked, how many left within the
//! grace, how many had to be killed, and how long it took.

use std::time::{Duration, Instant};

use super::ProcessGroup;
use crate::error::{Error, Operation, Result};
use crate::trace::trace_event;

/// What a [`ProcessGroup::stop`] did.
///
/// Counts are processes of the group's tree: under the cgroup, subreaper and
/// Job Object mechanisms every process; under the process-group mechanism on
/// Linux every member of every run's group (read from `/proc`), and on macOS
/// and the BSDs the live groups and adopted processes, which is all that can
/// be counted there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StopReport {
    /// Processes in the group when the stop signals were sent.
    pub signalled: usize,
    /// Of those, how many exited within the grace.
    pub exited: usize,
    /// Processes still there when the grace ended, and so killed (processes
    /// started during the grace count here too).
    pub killed: usize,
    /// From the stop signals to an empty group.
    pub elapsed: Duration,
}

impl StopReport {
    /// Whether every process left on its own, within the grace.
    pub fn all_exited(&self) -> bool {
        self.killed == 0
    }
}

impl ProcessGroup {
    /// Stops the whole group politely and says how it went: a suspended
    /// tree is thawed, every run's tree gets its command's
    /// [`stop_signal`](crate::Command::stop_signal) (default SIGTERM;
    /// adopted processes get SIGTERM), the group waits up to `grace` for
    /// every process to exit, then kills what is left and waits for the
    /// group to be empty. On Windows every run gets `CTRL_BREAK_EVENT` and
    /// its windows `WM_CLOSE`. The group stays usable afterwards.
    ///
    /// ```no_run
    /// # async fn demo() -> processkit::Result<()> {
    /// use processkit::{Command, ProcessGroup};
    /// use std::time::Duration;
    /// let group = ProcessGroup::new()?;
    /// group.start(&Command::new("worker")).await?;
    /// let report = group.stop(Duration::from_secs(5)).await?;
    /// println!("{} exited, {} killed in {:?}", report.exited, report.killed, report.elapsed);
    /// # Ok(()) }
    /// ```
    pub async fn stop(&self, grace: Duration) -> Result<StopReport> {
        trace_event!(debug, "teardown", group = %"stop", mechanism = %self.container.mechanism());
        let began = Instant::now();
        let signalled = self.container.process_count();
        let asked = self.container.ask_all_to_stop().is_ok();
        // Nothing polite reached the tree (a Windows group): no grace to wait.
        let emptied = asked && self.container.wait_empty(grace).await;
        let killed = if emptied {
            0
        } else {
            let left = self.container.process_count();
            self.container
                .kill_all()
                .map_err(|e| Error::group_io(Operation::Terminate, e))?;
            self.container.wait_empty(Duration::from_secs(5)).await;
            left
        };
        let report = StopReport {
            signalled,
            exited: signalled.saturating_sub(killed),
            killed,
            elapsed: began.elapsed(),
        };
        trace_event!(
            info,
            "group_stop",
            signalled = %report.signalled,
            exited = %report.exited,
            killed = %report.killed,
            elapsed = ?report.elapsed,
        );
        Ok(report)
    }
}
