//! Whole-tree control of a `ProcessGroup` (`process-control` feature):
//! broadcast signals, freeze and thaw, list members, adopt a process.

use std::io;

use super::ProcessGroup;
use crate::error::{Error, Operation, Result};
use crate::signal::Signal;

impl ProcessGroup {
    /// Delivers `signal` to every member of the tree: every process under a
    /// cgroup (each pinned by a pidfd, so a recycled pid is never hit), every
    /// tracked process group under the POSIX fallback. [`Signal::Kill`] is
    /// [`terminate_all`](Self::terminate_all).
    ///
    /// ```no_run
    /// # async fn demo() -> processkit::Result<()> {
    /// use processkit::{Command, ProcessGroup, Signal};
    /// let group = ProcessGroup::new()?;
    /// let _server = group.start(&Command::new("my-server")).await?;
    /// group.signal(Signal::Hup)?; // e.g. reload configuration
    /// # Ok(()) }
    /// ```
    pub fn signal(&self, signal: Signal) -> Result<()> {
        self.container.signal(signal)
    }

    /// Freezes the whole tree: one `cgroup.freeze` write under cgroups
    /// (returns once the kernel reports the tree frozen), SIGSTOP to every
    /// tracked group under the POSIX fallback. Suspending a suspended group is
    /// harmless. A suspended group still tears down at once on drop,
    /// [`terminate_all`](Self::terminate_all) and [`shutdown`](Self::shutdown);
    /// [`start`](Self::start) is refused (an [`Error::Io`] of kind
    /// `ResourceBusy`) until [`resume`](Self::resume).
    pub fn suspend(&self) -> Result<()> {
        self.container
            .set_frozen(true)
            .map_err(|e| control_error(Operation::Suspend, e))
    }

    /// Lets a suspended tree run again (cgroup thaw, or SIGCONT). Resuming a
    /// running group is harmless.
    pub fn resume(&self) -> Result<()> {
        self.container
            .set_frozen(false)
            .map_err(|e| control_error(Operation::Resume, e))
    }

    /// The live pids in the group: the whole tree under cgroups (children and
    /// every descendant); under the POSIX fallback only the tracked group
    /// leaders (one per run) and adopted processes, because a process group
    /// cannot be listed without scanning every process on the host.
    pub fn members(&self) -> Result<Vec<u32>> {
        let mut pids = self
            .container
            .members()
            .map_err(|e| control_error(Operation::ListMembers, e))?;
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// Moves an existing process into the group, so it is signalled, frozen
    /// and killed with it. Under cgroups its later children are contained
    /// too; under the POSIX fallback it keeps its own process group and only
    /// the process itself is tracked.
    ///
    /// A thread id stands for the whole process it belongs to (moving one
    /// thread moves them all). Refuses pid 0, pid 1, this process (or any of
    /// its threads), its ancestors, its guardian and pids that do not exist,
    /// with an [`Error::Io`] of kind `InvalidInput` or `NotFound`: each would
    /// put the caller's own life in the group's hands.
    pub fn adopt(&self, pid: u32) -> Result<()> {
        if pid <= 1 || pid == std::process::id() {
            return Err(control_error(
                Operation::Adopt,
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("pid {pid} cannot be adopted (0, 1 and this process are refused)"),
                ),
            ));
        }
        if !crate::sys::process_exists(pid) {
            return Err(control_error(
                Operation::Adopt,
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no process with pid {pid}"),
                ),
            ));
        }
        let pid = crate::sys::adoptable(pid).map_err(|e| control_error(Operation::Adopt, e))?;
        self.container
            .adopt(pid)
            .map_err(|e| control_error(Operation::Adopt, e))
    }
}

fn control_error(operation: Operation, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::Unsupported {
        return Error::Unsupported {
            operation: operation.as_str(),
            reason: e.to_string(),
        };
    }
    Error::group_io(operation, e)
}
