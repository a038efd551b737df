//! POSIX process-group containers: each run leads its own group; the
//! container tracks every leader (see `leader` for how a recycled id is never
//! hit) and adopted process, and tears down by signalling each group.

use std::sync::{Arc, Mutex};

use super::leader::{Adopted, Leader, Reach, any_live_member};

/// One run's group as the container and the guardian know it.
#[derive(Debug)]
struct Group {
    leader: Leader,
    /// What a graceful stop sends this group first.
    stop: i32,
    /// The guardian's ticket for this group (0 when it was not told; Linux
    /// is the only platform with a guardian process).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    guardian: u64,
}

#[derive(Debug, Default)]
struct Groups {
    list: Vec<Arc<Group>>,
    /// The list length that triggers the next sweep of vanished groups, so a
    /// long-lived container does not grow with every finished run.
    sweep_at: usize,
}

/// The groups of every run started in one container, plus adopted processes.
#[derive(Debug, Default)]
pub(crate) struct PgroupContainer {
    groups: Mutex<Groups>,
    adopted: Mutex<Vec<Adopted>>,
}

impl PgroupContainer {
    pub(crate) fn slot(self: &Arc<Self>, stop: i32) -> PgroupSlot {
        PgroupSlot {
            container: Arc::clone(self),
            group: None,
            stop,
        }
    }

    /// Sends every tracked group its own stop signal, and adopted
    /// processes SIGTERM.
    pub(crate) fn ask_all_to_stop(&self) {
        lock(&self.groups)
            .list
            .retain(|g| keep(g, g.leader.signal(g.stop)));
        lock(&self.adopted).retain(|a| a.signal(libc::SIGTERM) == Reach::Sent);
    }

    /// Sends `sig` to every tracked group and adopted process, and forgets
    /// those that are gone (their ids may be reused from now on).
    pub(crate) fn signal_all(&self, sig: i32) {
        lock(&self.groups)
            .list
            .retain(|g| keep(g, g.leader.signal(sig)));
        lock(&self.adopted).retain(|a| a.signal(sig) == Reach::Sent);
    }

    /// Stops (SIGSTOP) or continues (SIGCONT) every tracked group.
    pub(crate) fn set_stopped(&self, stopped: bool) {
        self.signal_all(if stopped {
            libc::SIGSTOP
        } else {
            libc::SIGCONT
        });
    }

    /// Running tracked leaders and adopted processes.
    #[cfg_attr(not(feature = "process-control"), allow(dead_code))]
    pub(crate) fn members(&self) -> Vec<u32> {
        let mut out: Vec<u32> = lock(&self.groups)
            .list
            .iter()
            .filter(|g| g.leader.leader_running())
            .map(|g| g.leader.pgid() as u32)
            .collect();
        out.extend(
            lock(&self.adopted)
                .iter()
                .filter(|a| a.running())
                .map(Adopted::pid),
        );
        out
    }

    /// Whether a process that is not a zombie is still contained: a group
    /// whose members have all exited is empty even before we reap its leader.
    pub(crate) fn is_populated(&self) -> bool {
        let mut groups = lock(&self.groups);
        groups.list.retain(|g| keep(g, g.leader.signal(0)));
        any_live_member(groups.list.iter().map(|g| &g.leader))
            || lock(&self.adopted).iter().any(Adopted::running)
    }

    /// Tracks an existing process; it is signalled by pid (its own descendants
    /// are not reachable through a process group we do not own).
    #[cfg_attr(not(feature = "process-control"), allow(dead_code))]
    pub(crate) fn adopt(&self, pid: u32) {
        lock(&self.adopted).push(Adopted::new(pid));
    }

    /// Every tracked pgid.
    #[cfg_attr(not(any(target_os = "linux", feature = "stats")), allow(dead_code))]
    pub(crate) fn pgids(&self) -> Vec<i32> {
        lock(&self.groups)
            .list
            .iter()
            .map(|g| g.leader.pgid())
            .collect()
    }

    /// Every adopted pid, alive or not.
    #[cfg_attr(not(any(target_os = "linux", feature = "stats")), allow(dead_code))]
    pub(crate) fn adopted_pids(&self) -> Vec<u32> {
        lock(&self.adopted).iter().map(Adopted::pid).collect()
    }

    fn add(&self, group: Arc<Group>) {
        let mut groups = lock(&self.groups);
        if groups.list.len() >= groups.sweep_at {
            groups.list.retain(|g| keep(g, g.leader.signal(0)));
            groups.sweep_at = groups.list.len() * 2 + 16;
        }
        groups.list.push(group);
    }

    fn remove(&self, group: &Arc<Group>) {
        lock(&self.groups).list.retain(|g| !Arc::ptr_eq(g, group));
    }
}

impl Drop for PgroupContainer {
    fn drop(&mut self) {
        // The owning container has already sent SIGKILL to every group, so
        // the guardian no longer needs them.
        for group in &lock(&self.groups).list {
            guardian_forget(group);
        }
    }
}

/// Whether to keep tracking `group` after a delivery; tells the guardian to
/// forget it otherwise.
fn keep(group: &Group, reach: Reach) -> bool {
    if reach == Reach::Gone {
        guardian_forget(group);
    }
    reach == Reach::Sent
}

/// One run's process group.
#[derive(Debug)]
pub(crate) struct PgroupSlot {
    container: Arc<PgroupContainer>,
    group: Option<Arc<Group>>,
    stop: i32,
}

impl PgroupSlot {
    /// Records our just-started child `pid` (not reaped yet) as this run's leader.
    pub(crate) fn attach(&mut self, pid: u32) {
        let leader = Leader::new(pid);
        let guardian = guardian_track(&leader);
        let group = Arc::new(Group {
            leader,
            guardian,
            stop: self.stop,
        });
        self.container.add(Arc::clone(&group));
        self.group = Some(group);
    }

    pub(crate) fn signal(&self, sig: i32) {
        if let Some(group) = &self.group {
            group.leader.signal(sig);
        }
    }

    /// The stop signal to the run's group; a `suspended` group is continued
    /// after it, so it wakes to find the signal pending.
    pub(crate) fn ask_to_stop(&self, suspended: bool) {
        self.signal(self.stop);
        if suspended {
            self.signal(libc::SIGCONT);
        }
    }

    /// Whether a process of the run's group (not a zombie) is still there.
    pub(crate) fn is_populated(&self) -> bool {
        self.group
            .as_ref()
            .is_some_and(|g| any_live_member(std::iter::once(&g.leader)))
    }

    /// This run's process group id (0 before the child started).
    #[cfg(feature = "stats")]
    pub(crate) fn pgid(&self) -> i32 {
        self.group.as_ref().map_or(0, |g| g.leader.pgid())
    }
}

impl Drop for PgroupSlot {
    fn drop(&mut self) {
        // A finished run whose group is gone: its id may be reused from now
        // on, so neither the container nor the guardian may keep it.
        if let Some(group) = &self.group
            && !group.leader.exists()
        {
            self.container.remove(group);
            guardian_forget(group);
        }
    }
}

fn guardian_track(leader: &Leader) -> u64 {
    #[cfg(target_os = "linux")]
    return crate::sys::linux::guardian::track(leader.pgid(), leader.pidfd());
    #[cfg(not(target_os = "linux"))]
    {
        let _ = leader;
        0
    }
}

fn guardian_forget(group: &Group) {
    #[cfg(target_os = "linux")]
    crate::sys::linux::guardian::forget(group.leader.pgid(), group.guardian);
    let _ = group;
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A new, empty process-group container (this mechanism always exists).
pub(crate) fn new_container() -> Arc<PgroupContainer> {
    Arc::new(PgroupContainer::default())
}
