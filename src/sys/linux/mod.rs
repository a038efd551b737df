//! Linux containment: a cgroup v2 per group (and per ad-hoc run), below one
//! per-process root; the process-group fallback lives in `sys::unix`.

pub(crate) mod cgroup;
pub(crate) mod clone_spawn;
pub(crate) mod events;
pub(crate) mod fast_spawn;
pub(crate) mod guardian;
mod guardian_process;
#[cfg(feature = "limits")]
pub(crate) mod limits;
pub(crate) mod pidfd;
pub(crate) mod pidfd_child;
pub(crate) mod pipe;
#[cfg(feature = "stats")]
pub(crate) mod procfs;
pub(crate) mod reaper;
pub(crate) mod spawner;
pub(crate) mod sweep;
#[cfg(feature = "stats")]
pub(crate) mod usage;

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Mutex;

use cgroup::Cgroup;

use super::unix::spawn::PreExec;
use crate::command::OsOptions;

/// A cgroup holding one group's (or one run's) whole tree.
#[derive(Debug)]
pub(crate) struct CgroupContainer {
    cg: Cgroup,
    single_run: bool,
    #[cfg_attr(not(feature = "process-control"), allow(dead_code))]
    adopted: Mutex<Option<Cgroup>>,
}

impl CgroupContainer {
    /// Whether cgroup containment is available, or why not.
    pub(crate) fn available() -> Result<(), &'static str> {
        cgroup::root().map(|_| ())
    }

    /// A new cgroup below the per-process root. A `single_run` container is
    /// joined directly by its one run; a group gets one nested cgroup per run.
    pub(crate) fn new(single_run: bool) -> io::Result<CgroupContainer> {
        let root = cgroup::root().map_err(io::Error::other)?;
        #[cfg(feature = "stats")]
        usage::enable_accounting(&root.path);
        let cg = root.create_child(if single_run { 'r' } else { 'g' })?;
        Ok(CgroupContainer {
            cg,
            single_run,
            adopted: Mutex::new(None),
        })
    }

    pub(crate) fn cgroup(&self) -> &Cgroup {
        &self.cg
    }

    pub(crate) fn slot(&self) -> io::Result<CgroupSlot> {
        if self.single_run {
            let cg = Cgroup::at(self.cg.path().to_owned());
            let procs = cg.procs_fd()?;
            return Ok(CgroupSlot {
                cg,
                nested: false,
                procs: Some(procs),
            });
        }
        let root = cgroup::root().map_err(io::Error::other)?;
        let cg = self.cg.create_nested(&root.next_name('r'))?;
        let procs = cg.procs_fd()?;
        Ok(CgroupSlot {
            cg,
            nested: true,
            procs: Some(procs),
        })
    }

    /// Moves `pid` into the group (into a nested `adopted` cgroup, so the group
    /// itself keeps no processes of its own).
    #[cfg_attr(not(feature = "process-control"), allow(dead_code))]
    pub(crate) fn adopt(&self, pid: u32) -> io::Result<()> {
        if self.single_run {
            return self.cg.add_pid(pid);
        }
        let mut adopted = self.adopted.lock().unwrap_or_else(|e| e.into_inner());
        if adopted.is_none() {
            *adopted = Some(self.cg.create_nested("adopted")?);
        }
        adopted.as_ref().map_or(Ok(()), |cg| cg.add_pid(pid))
    }
}

impl Drop for CgroupContainer {
    fn drop(&mut self) {
        let _ = self.cg.kill();
        reaper::remove_when_empty(self.cg.path().to_owned());
    }
}

/// Where one run lives: its own nested cgroup, or the single-run container.
#[derive(Debug)]
pub(crate) struct CgroupSlot {
    cg: Cgroup,
    nested: bool,
    procs: Option<OwnedFd>,
}

impl CgroupSlot {
    pub(crate) fn prepare(&self, cmd: &mut tokio::process::Command, os: &OsOptions) {
        let fd = self.procs.as_ref().map(AsRawFd::as_raw_fd);
        PreExec::new(fd, os).install(cmd);
    }

    /// The open `cgroup.procs` a child writes to join, until one has.
    pub(crate) fn procs_fd(&self) -> Option<std::os::fd::RawFd> {
        self.procs.as_ref().map(AsRawFd::as_raw_fd)
    }

    pub(crate) fn attach(&mut self) {
        // The child has joined (or failed to spawn); the descriptor is no longer needed.
        self.procs = None;
    }

    pub(crate) fn cgroup(&self) -> &Cgroup {
        &self.cg
    }
}

impl Drop for CgroupSlot {
    fn drop(&mut self) {
        if self.nested {
            reaper::remove_when_empty(self.cg.path().to_owned());
        }
    }
}
