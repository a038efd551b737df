//! How a run's cgroup ends: emptied by the run itself (nothing to kill, so a
//! single run's cgroup goes back to the pool for reuse), or killed (removed
//! once empty, never reused: a cgroup once killed may kill what is born in it).

use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use super::cgroup::{Baseline, Cgroup, KillSwitch, populated};
use super::{reaper, spare};

const RUNNING: u8 = 0;
/// The run's tree emptied without a kill.
const CLEAN: u8 = 1;
const KILLED: u8 = 2;

/// Shared by a run's container and slot: the last to let go removes or
/// recycles a single run's cgroup.
#[derive(Debug)]
pub(crate) struct RunEnd {
    state: AtomicU8,
    /// Limits, an adoption or a freeze touched the cgroup: never reuse it.
    tainted: AtomicBool,
    /// A single run's own cgroup and its open `cgroup.events`; `None` for a
    /// group or a nested run (their owners remove those).
    own: Option<(Cgroup, Option<File>)>,
    baseline: Baseline,
    /// The single run's open directory and kill switch, handed back with
    /// the cgroup so a reuse need not open them again.
    held: Option<Held>,
    /// The single run's open `cpu.stat` (when it came from the pool), for
    /// the reuse's baseline.
    cpu_stat: Option<File>,
}

/// A single run's directory (when it came from the pool) and kill switch.
pub(crate) type Held = (Option<Arc<OwnedFd>>, Arc<KillSwitch>);

impl RunEnd {
    /// For a single run's own cgroup.
    pub(crate) fn single(
        cg: Cgroup,
        events: Option<File>,
        cpu_stat: Option<File>,
        baseline: Baseline,
        held: Held,
    ) -> Arc<RunEnd> {
        Arc::new(RunEnd {
            state: AtomicU8::new(RUNNING),
            tainted: AtomicBool::new(false),
            own: Some((cg, events)),
            baseline,
            held: Some(held),
            cpu_stat,
        })
    }

    /// Whether the run is over: ended clean or killed.
    pub(crate) fn is_over(&self) -> bool {
        self.state.load(Ordering::Acquire) != RUNNING
    }

    pub(crate) fn killed(&self) -> bool {
        self.state.load(Ordering::Acquire) == KILLED
    }

    /// Called before every kill: a cgroup that was ever killed is never reused.
    pub(crate) fn mark_killed(&self) {
        self.state.store(KILLED, Ordering::Release);
    }

    pub(crate) fn taint(&self) {
        self.tainted.store(true, Ordering::Release);
    }

    /// What the cgroup had counted before this run.
    pub(crate) fn baseline(&self) -> &Baseline {
        &self.baseline
    }

    /// After the run's child was reaped: `true` when `cgroup.events` says
    /// nothing of the run is left (then nothing can join it any more, and no
    /// kill is needed).
    pub(crate) fn ended_clean(&self) -> bool {
        let Some((_, Some(events))) = &self.own else {
            return false;
        };
        if !matches!(populated(events), Ok(false)) {
            return false;
        }
        // A lost race against a kill is not clean; one against another check is.
        let exchanged =
            self.state
                .compare_exchange(RUNNING, CLEAN, Ordering::AcqRel, Ordering::Acquire);
        matches!(exchanged, Ok(_) | Err(CLEAN))
    }
}

impl Default for RunEnd {
    fn default() -> RunEnd {
        RunEnd {
            state: AtomicU8::new(RUNNING),
            tainted: AtomicBool::new(false),
            own: None,
            baseline: Baseline::default(),
            held: None,
            cpu_stat: None,
        }
    }
}

impl Drop for RunEnd {
    fn drop(&mut self) {
        let Some((cg, events)) = self.own.take() else {
            return;
        };
        let clean = *self.state.get_mut() == CLEAN && !*self.tainted.get_mut();
        match events {
            Some(events) if clean => {
                // Whoever else still holds one (a stop in flight) keeps it;
                // the pool then opens its own.
                let (dir, kill) = self.held.take().unzip();
                let dir = dir.flatten().and_then(|dir| Arc::try_unwrap(dir).ok());
                let kill = kill.and_then(|kill| Arc::try_unwrap(kill).ok());
                spare::give_back(spare::Returned {
                    cg,
                    events,
                    dir,
                    kill,
                    cpu_stat: self.cpu_stat.take(),
                });
            }
            _ => reaper::remove_killed(cg.path().to_owned()),
        }
    }
}
