//! Linux containment: a cgroup v2 per group (and per ad-hoc run), below one
//! per-process root; the process-group fallback lives in `sys::unix`.

#[cfg(feature = "process-control")]
pub(crate) mod ancestry;
pub(crate) mod backend;
pub(crate) mod cgroup;
pub(crate) mod events;
mod fd_message;
pub(crate) mod guardian;
mod guardian_process;
pub(crate) mod helper_signals;
mod kill_retry;
#[cfg(feature = "limits")]
pub(crate) mod limits;
pub(crate) mod orphans;
pub(crate) mod own_children;
pub(crate) mod pidfd;
pub(crate) mod pidfd_child;
pub(crate) mod pipe;
pub(crate) mod procfs;
mod readable;
pub(crate) mod reaper;
mod run_end;
mod spare;
pub(crate) mod subreaper;
#[cfg(feature = "stats")]
pub(crate) mod usage;

use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use cgroup::{Baseline, Cgroup, KillSwitch};
use run_end::RunEnd;

/// A cgroup holding one group's (or one run's) whole tree.
#[derive(Debug)]
pub(crate) struct CgroupContainer {
    cg: Cgroup,
    /// `cgroup.kill`, open from the start so teardown needs no new descriptor.
    kill: Arc<KillSwitch>,
    single_run: bool,
    /// The spare's directory, opened ahead of time for the single run's slot.
    ready_dir: Mutex<Option<Arc<OwnedFd>>>,
    /// How the tree ended, shared with a single run's slot: once it is over
    /// (killed, or emptied on its own) nothing can enter it, so Drop need
    /// not kill; a single run's cgroup is removed or reused through it.
    end: Arc<RunEnd>,
    #[cfg_attr(not(feature = "process-control"), allow(dead_code))]
    adopted: Mutex<Option<Cgroup>>,
    /// The runs whose graceful stop is not SIGTERM: cgroup path → signal.
    stops: Mutex<Vec<(std::path::PathBuf, i32)>>,
}

impl CgroupContainer {
    /// Whether cgroup containment is available, or why not (for good, or for now).
    pub(crate) fn available() -> Result<(), cgroup::RootError> {
        cgroup::root().map(|_| ())
    }

    /// A new cgroup below the per-process root. A `single_run` container is
    /// joined directly by its one run; a group gets one nested cgroup per run.
    pub(crate) fn new(single_run: bool) -> io::Result<CgroupContainer> {
        let root = cgroup::root()?;
        #[cfg(feature = "stats")]
        usage::enable_accounting(&root.path);
        let (cg, ready_dir, kill, end) = match single_run.then(|| spare::take(root)).flatten() {
            Some(spare) => {
                let dir = Arc::new(spare.dir);
                let kill = Arc::new(spare.kill);
                let held = (Some(Arc::clone(&dir)), Arc::clone(&kill));
                let end = RunEnd::single(
                    spare.cg.clone(),
                    Some(spare.events),
                    Some(spare.cpu_stat),
                    spare.baseline,
                    held,
                );
                (spare.cg, Some(dir), kill, end)
            }
            None => {
                let cg = root.create_child(if single_run { spare::PREFIX } else { 'g' })?;
                match KillSwitch::open(&cg) {
                    Ok(kill) => {
                        let kill = Arc::new(kill);
                        let end = if single_run {
                            let events = cg.open_events().ok();
                            let held = (None, Arc::clone(&kill));
                            RunEnd::single(cg.clone(), events, None, Baseline::default(), held)
                        } else {
                            Arc::default()
                        };
                        (cg, None, kill, end)
                    }
                    Err(e) => {
                        let _ = std::fs::remove_dir(cg.path());
                        return Err(e);
                    }
                }
            }
        };
        Ok(CgroupContainer {
            cg,
            kill,
            single_run,
            ready_dir: Mutex::new(ready_dir),
            end,
            adopted: Mutex::new(None),
            stops: Mutex::default(),
        })
    }

    /// Sends each run's tree its own stop signal, and everything else in
    /// the tree (adopted processes) SIGTERM.
    pub(crate) fn ask_all_to_stop(&self) -> io::Result<()> {
        let stops = lock(&self.stops).clone();
        let stop_of = |cg: &Cgroup| {
            stops
                .iter()
                .find(|(path, _)| path == cg.path())
                .map_or(libc::SIGTERM, |&(_, sig)| sig)
        };
        if self.single_run {
            return signal_members(&self.cg, stop_of(&self.cg));
        }
        // One run that cannot be signalled does not spare the others.
        let mut first_error = None;
        for run in self.cg.children()? {
            if let Err(e) = signal_members(&run, stop_of(&run)) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Freezes or thaws the whole tree. A thaw also thaws the runs that a
    /// graceful stop froze one by one (to wake one run of a frozen group).
    pub(crate) fn set_frozen(&self, frozen: bool) -> io::Result<()> {
        self.end.taint();
        self.cg.set_frozen(frozen)?;
        if !frozen && !self.single_run {
            for run in self.cg.children()? {
                if run.freeze_set() {
                    run.set_frozen(false)?;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn cgroup(&self) -> &Cgroup {
        &self.cg
    }

    /// What the cgroup had counted before this container's run (a reused one).
    #[cfg_attr(not(feature = "stats"), allow(dead_code))]
    pub(crate) fn baseline(&self) -> &Baseline {
        self.end.baseline()
    }

    /// Limits were written to the cgroup: it is never reused.
    #[cfg_attr(not(feature = "limits"), allow(dead_code))]
    pub(crate) fn taint(&self) {
        self.end.taint();
    }

    /// Sends `signal` to every process in the tree.
    pub(crate) fn signal(&self, signal: i32) -> io::Result<()> {
        signal_members(&self.cg, signal)
    }

    /// Kills the whole tree now, through the descriptor opened up front.
    pub(crate) fn kill(&self) -> io::Result<()> {
        self.end.mark_killed();
        self.kill.kill()
    }

    /// Kills the whole tree; a failure is retried in the background until it
    /// succeeds (for teardown that has nobody to report to).
    pub(crate) fn kill_or_retry(&self) -> io::Result<()> {
        self.end.mark_killed();
        kill_retry::kill_or_retry(&self.kill)
    }

    pub(crate) fn slot(&self, stop: i32) -> io::Result<CgroupSlot> {
        let (cg, nested) = if self.single_run {
            (Cgroup::at(self.cg.path().to_owned()), false)
        } else {
            let root = cgroup::root()?;
            (self.cg.create_nested(&root.next_name('r'))?, true)
        };
        let opened = self.open_slot(&cg, nested);
        if opened.is_err() && nested {
            let _ = std::fs::remove_dir(cg.path());
        }
        let (dir, kill) = opened?;
        if stop != libc::SIGTERM {
            let mut stops = lock(&self.stops);
            // Runs whose cgroup is gone no longer need an entry.
            if stops.len() >= 16 && stops.len().is_power_of_two() {
                stops.retain(|(path, _)| path.exists());
            }
            stops.push((cg.path().to_owned(), stop));
        }
        Ok(CgroupSlot {
            cg,
            nested,
            stop,
            dir: Some(dir),
            attached: false,
            kill,
            // A single run's slot is the whole container: they share its end.
            end: if nested {
                Arc::default()
            } else {
                Arc::clone(&self.end)
            },
        })
    }

    /// The directory and kill switch of a new slot: a single run's are the
    /// container's own (opened ahead of time by the spare thread).
    fn open_slot(&self, cg: &Cgroup, nested: bool) -> io::Result<(Arc<OwnedFd>, Arc<KillSwitch>)> {
        if !nested {
            let ready = self
                .ready_dir
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            let dir = match ready {
                Some(dir) => dir,
                None => Arc::new(cg.dir_fd()?),
            };
            return Ok((dir, Arc::clone(&self.kill)));
        }
        let dir = Arc::new(cg.dir_fd()?);
        Ok((dir, Arc::new(KillSwitch::open(cg)?)))
    }

    /// Moves `pid` into the group (into a nested `adopted` cgroup, so the group
    /// itself keeps no processes of its own).
    #[cfg_attr(not(feature = "process-control"), allow(dead_code))]
    pub(crate) fn adopt(&self, pid: u32) -> io::Result<()> {
        self.end.taint();
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
        if !self.end.is_over() {
            let _ = self.kill_or_retry();
        }
        // A single run's cgroup goes once its slot is gone too (`RunEnd`).
        if !self.single_run {
            reaper::remove_killed(self.cg.path().to_owned());
        }
    }
}

/// Where one run lives: its own nested cgroup, or the single-run container.
#[derive(Debug)]
pub(crate) struct CgroupSlot {
    cg: Cgroup,
    nested: bool,
    /// What a graceful stop sends the run's tree first.
    stop: i32,
    /// The cgroup's directory, until a spawn takes it.
    dir: Option<Arc<OwnedFd>>,
    /// The child was spawned into the cgroup (so once it is empty, nothing
    /// of the run is left and nothing can join it any more).
    attached: bool,
    /// `cgroup.kill`, open from the start: a timeout or a dropped handle
    /// kills even when the process has no descriptor left.
    kill: Arc<KillSwitch>,
    /// Over once this slot's cgroup was killed or emptied on its own; no run
    /// spawns into a used slot, so later kills are no-ops. A cancelled
    /// start's child that still joins after the kill is killed when the
    /// cgroup is removed (`reaper::remove_killed`).
    end: Arc<RunEnd>,
}

impl CgroupSlot {
    /// The open cgroup directory a child is to join (born there by
    /// `clone3`, or writing to its `cgroup.procs`): the spawn takes it, so it
    /// stays open for as long as the spawn may use it. Opened again if taken.
    pub(crate) fn take_dir(&mut self) -> io::Result<Arc<OwnedFd>> {
        match self.dir.take() {
            Some(dir) => Ok(dir),
            None => Ok(Arc::new(self.cg.dir_fd()?)),
        }
    }

    pub(crate) fn attach(&mut self) {
        // The child has joined; the directory is no longer needed.
        self.dir = None;
        self.attached = true;
    }

    /// What the cgroup had counted before this run (a reused one).
    #[cfg_attr(not(feature = "stats"), allow(dead_code))]
    pub(crate) fn baseline(&self) -> &Baseline {
        self.end.baseline()
    }

    #[cfg_attr(not(feature = "stats"), allow(dead_code))]
    pub(crate) fn cgroup(&self) -> &Cgroup {
        &self.cg
    }

    /// The stop signal to every process of the run's tree. In a
    /// `suspended` group only this run is thawed: its siblings are frozen
    /// one by one, then the group is thawed (a resume of the group thaws
    /// them all again).
    pub(crate) fn ask_to_stop(&self, suspended: bool) -> io::Result<()> {
        signal_members(&self.cg, self.stop)?;
        if suspended && self.nested {
            let group = Cgroup::at(
                self.cg
                    .path()
                    .parent()
                    .map(ToOwned::to_owned)
                    .unwrap_or_default(),
            );
            for sibling in group.children()? {
                if sibling.path() != self.cg.path() {
                    sibling.set_frozen(true)?;
                }
            }
            group.set_frozen(false)?;
        }
        Ok(())
    }

    /// Kills this run's tree (for a single-run container: the whole
    /// container), once: a finisher, a watchdog and Drop may all ask. A
    /// single run whose tree already emptied on its own needs no kill (and
    /// its cgroup can then be reused). A kill that fails is retried in the
    /// background until it succeeds.
    pub(crate) fn kill(&self) -> io::Result<()> {
        if self.end.is_over() || (self.attached && self.end.ended_clean()) {
            return Ok(());
        }
        self.end.mark_killed();
        kill_retry::kill_or_retry(&self.kill)
    }
}

impl Drop for CgroupSlot {
    fn drop(&mut self) {
        if !self.nested {
            return;
        }
        // A run its group still owns is left to the group's teardown.
        if self.end.killed() {
            reaper::remove_killed(self.cg.path().to_owned());
        } else {
            reaper::remove_when_empty(self.cg.path().to_owned());
        }
    }
}

/// Sends `signal` to every member of `cg`, pinning each with a pidfd so a pid
/// recycled between listing and signalling is never hit.
fn signal_members(cg: &Cgroup, signal: i32) -> io::Result<()> {
    for pid in cg.owned_pids()? {
        pidfd::signal_pid(pid, signal)?;
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
