//! POSIX process-group containers: each run leads its own group; the
//! container tracks every leader and tears down with `killpg`.

use std::sync::{Arc, Mutex};

use super::signal::{group_alive, kill_group, kill_pid, pid_alive};
use super::spawn::PreExec;
use crate::command::OsOptions;

/// The leaders (pgids) of every run started in one group, plus adopted pids.
#[derive(Debug, Default)]
pub(crate) struct PgroupContainer {
    leaders: Mutex<Vec<i32>>,
    adopted: Mutex<Vec<u32>>,
}

impl PgroupContainer {
    pub(crate) fn slot(self: &Arc<Self>) -> PgroupSlot {
        PgroupSlot {
            container: Arc::clone(self),
            pgid: 0,
        }
    }

    /// Sends `sig` to every tracked group and adopted process.
    pub(crate) fn signal_all(&self, sig: i32) {
        let mut leaders = lock(&self.leaders);
        for &pgid in leaders.iter() {
            kill_group(pgid, sig);
        }
        // Forget groups that have fully exited, so a recycled pgid is not hit later.
        leaders.retain(|&pgid| {
            let alive = group_alive(pgid);
            if !alive {
                super::super::guardian_forget_pgid(pgid);
            }
            alive
        });
        for &pid in lock(&self.adopted).iter() {
            kill_pid(pid, sig);
        }
    }

    /// Live tracked leaders and adopted pids.
    #[cfg_attr(not(feature = "process-control"), allow(dead_code))]
    pub(crate) fn members(&self) -> Vec<u32> {
        let mut out: Vec<u32> = lock(&self.leaders)
            .iter()
            .map(|&p| p as u32)
            .filter(|&p| pid_alive(p))
            .collect();
        out.extend(
            lock(&self.adopted)
                .iter()
                .copied()
                .filter(|&p| pid_alive(p)),
        );
        out
    }

    /// Whether any tracked group still has a process in it.
    pub(crate) fn is_populated(&self) -> bool {
        lock(&self.leaders).iter().any(|&g| group_alive(g))
            || lock(&self.adopted).iter().any(|&p| pid_alive(p))
    }

    /// Tracks an existing process; it is signalled by pid (its own descendants
    /// are not reachable through a process group we do not own).
    #[cfg_attr(not(feature = "process-control"), allow(dead_code))]
    pub(crate) fn adopt(&self, pid: u32) {
        lock(&self.adopted).push(pid);
    }

    /// Every tracked pgid (for the guardian).
    #[cfg_attr(not(feature = "stats"), allow(dead_code))]
    pub(crate) fn pgids(&self) -> Vec<i32> {
        lock(&self.leaders).clone()
    }

    /// Every adopted pid, alive or not.
    #[cfg(feature = "stats")]
    pub(crate) fn adopted_pids(&self) -> Vec<u32> {
        lock(&self.adopted).clone()
    }
}

impl Drop for PgroupContainer {
    fn drop(&mut self) {
        // The owning `Container` has already sent SIGKILL to every group, so
        // the guardian no longer needs them (and must not hit a reused pgid).
        for &pgid in lock(&self.leaders).iter() {
            super::super::guardian_forget_pgid(pgid);
        }
    }
}

/// One run's process group.
#[derive(Debug)]
pub(crate) struct PgroupSlot {
    container: Arc<PgroupContainer>,
    pgid: i32,
}

impl PgroupSlot {
    pub(crate) fn prepare(&self, cmd: &mut tokio::process::Command, os: &OsOptions) {
        // A session leader is also a new group leader; setsid would fail on one
        // that setpgid already made a leader.
        if !os.setsid {
            cmd.process_group(0);
        }
        PreExec::new(None, os).install(cmd);
    }

    pub(crate) fn attach(&mut self, pid: u32) {
        self.pgid = pid as i32;
        lock(&self.container.leaders).push(self.pgid);
        super::super::guardian_track_pgid(self.pgid);
    }

    pub(crate) fn signal(&self, sig: i32) {
        kill_group(self.pgid, sig);
    }

    /// This run's process group id (0 before the child started).
    #[cfg(feature = "stats")]
    pub(crate) fn pgid(&self) -> i32 {
        self.pgid
    }
}

impl Drop for PgroupSlot {
    fn drop(&mut self) {
        // A finished run whose group is empty: its pgid may be reused from now
        // on, so neither the container nor the guardian may keep it.
        if self.pgid > 1 && !group_alive(self.pgid) {
            lock(&self.container.leaders).retain(|&p| p != self.pgid);
            super::super::guardian_forget_pgid(self.pgid);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A new, empty process-group container (this mechanism always exists).
pub(crate) fn new_container() -> Arc<PgroupContainer> {
    Arc::new(PgroupContainer::default())
}
