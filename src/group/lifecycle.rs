//! A group's life: creation (with its options), starting runs in it, and
//! teardown (`terminate_all`, `shutdown`, drop).

use std::sync::Arc;
use std::time::Duration;

use super::{ProcessGroup, ProcessGroupOptions};
use crate::command::Command;
use crate::error::{Error, Result};
use crate::mechanism::Mechanism;
use crate::result::ProcessResult;
use crate::running::{Placement, RunningProcess, spawn, spawn_and_finish};
use crate::sys::Container;
use crate::trace::trace_event;

/// How long `shutdown` waits after SIGTERM before it kills.
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl ProcessGroupOptions {
    /// Requests a specific mechanism instead of the best available one, e.g.
    /// `Mechanism::ProcessGroup` to use the POSIX fallback on a cgroup host.
    /// A mechanism this host lacks is an [`Error::Unsupported`].
    ///
    /// The `PROCESSKIT_MECHANISM` environment variable (`process-group` or
    /// `cgroup-v2`) sets the same preference for every container.
    pub fn mechanism(mut self, mechanism: Mechanism) -> Self {
        self.mechanism = Some(mechanism);
        self
    }

    /// How long [`ProcessGroup::shutdown`] waits between SIGTERM and SIGKILL (default 5 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = Some(grace);
        self
    }
}

impl ProcessGroup {
    /// A group on the best mechanism this host offers.
    pub fn new() -> Result<ProcessGroup> {
        ProcessGroup::with_options(ProcessGroupOptions::default())
    }

    /// A group with explicit options (mechanism, grace, limits).
    pub fn with_options(options: ProcessGroupOptions) -> Result<ProcessGroup> {
        let container = Container::new(options.mechanism, false)?;
        #[cfg(feature = "limits")]
        crate::limits::apply(&container, &options.limits)?;
        Ok(ProcessGroup {
            container: Arc::new(container),
            shutdown_grace: options.shutdown_grace.unwrap_or(DEFAULT_SHUTDOWN_GRACE),
        })
    }

    /// Starts `cmd` inside this group. Dropping the returned handle does not
    /// kill the child; the group does when it is dropped or shut down. The
    /// command's timeout and cancellation kill only this child's own tree.
    pub async fn start(&self, cmd: &Command) -> Result<RunningProcess> {
        spawn(cmd, Placement::Shared(Arc::clone(&self.container))).await
    }

    /// Runs `cmd` inside this group to its full outcome (the verbs' path).
    pub(crate) async fn start_and_finish(&self, cmd: &Command) -> Result<ProcessResult<Vec<u8>>> {
        spawn_and_finish(cmd, Placement::Shared(Arc::clone(&self.container))).await
    }

    /// The mechanism that contains this group.
    pub fn mechanism(&self) -> Mechanism {
        self.container.mechanism()
    }

    /// Hard-kills every process in the group, now.
    pub fn terminate_all(&self) -> Result<()> {
        self.container
            .kill_all()
            .map_err(|e| Error::group_io(crate::error::Operation::Terminate, e))
    }

    /// Graceful teardown: every run's tree gets its
    /// [`stop_signal`](crate::Command::stop_signal) (default SIGTERM), the
    /// group waits up to the shutdown grace for it to exit, then kills what
    /// is left; returns once the group is empty. [`stop`](ProcessGroup::stop)
    /// does the same with a grace of your choice and says how it went.
    pub async fn shutdown(&self) -> Result<()> {
        self.stop(self.shutdown_grace).await.map(drop)
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        trace_event!(debug, "teardown", group = %"dropped", mechanism = %self.container.mechanism());
        self.container.kill_all_or_retry();
    }
}
