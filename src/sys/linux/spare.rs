//! Run cgroups ready before a spawn needs one, so it never waits for `mkdir`:
//! fresh ones made ahead by a background thread, and emptied ones whose run
//! ended without a kill, checked where they are handed back and handed out
//! again.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::cgroup::{Baseline, Cgroup, CgroupRoot, KillSwitch};
use super::reaper;

/// How many fresh spares to keep ready: enough for back-to-back runs, few
/// enough that the empty directories left at exit do not matter.
const KEEP: usize = 2;

/// How many emptied cgroups to keep for reuse (enough for a burst of
/// concurrent runs; the rest are removed). Each holds four descriptors.
const REUSE_MAX: usize = 64;

/// An emptied cgroup nobody took for this long is removed: the pool shrinks
/// back once a burst of runs is over.
const IDLE: Duration = Duration::from_secs(2);

/// The name prefix of every single run's cgroup, made ahead or on demand:
/// any of them may be pooled (runs inside a group are `g<N>/r<M>`).
pub(crate) const PREFIX: char = 's';

/// A ready cgroup: its directory (for `CLONE_INTO_CGROUP`), its kill
/// switch, its `cgroup.events` and `cpu.stat`, and what it had counted before.
pub(crate) struct Spare {
    pub(crate) cg: Cgroup,
    pub(crate) dir: OwnedFd,
    pub(crate) kill: KillSwitch,
    pub(crate) events: File,
    pub(crate) cpu_stat: File,
    pub(crate) baseline: Baseline,
    /// When it was last handed back (a fresh one: made).
    since: Instant,
}

struct Pool {
    fresh: Vec<Spare>,
    reusable: Vec<Spare>,
    /// The filler sleeps with a timeout, to remove reusable cgroups left
    /// idle: a cgroup handed back need not wake it.
    trimming: bool,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    fresh: Vec::new(),
    reusable: Vec::new(),
    trimming: false,
});
static WANTED: Condvar = Condvar::new();
/// Counts `take` calls: after a failure the filler waits for the next one.
static DEMAND: AtomicU64 = AtomicU64::new(0);
/// Whether the filler thread runs.
static FILLER: AtomicBool = AtomicBool::new(false);

/// A ready cgroup below `root` with its descriptors open, if one is waiting
/// (a reused one first); the background thread then makes the next one.
pub(crate) fn take(root: &'static CgroupRoot) -> Option<Spare> {
    if !FILLER.swap(true, Ordering::AcqRel) {
        let started = std::thread::Builder::new()
            .name("processkit-cgroups".into())
            .spawn(move || fill(root));
        if started.is_err() {
            // Retried by the next take; the caller makes its own cgroup.
            FILLER.store(false, Ordering::Release);
            return None;
        }
    }
    let (spare, reused) = {
        let mut pool = lock(&POOL);
        DEMAND.fetch_add(1, Ordering::AcqRel);
        // Fresh ones oldest first, so every fresh spare that was ever handed
        // out has a lower number than the ones still waiting.
        let fresh = |pool: &mut Pool| (!pool.fresh.is_empty()).then(|| pool.fresh.remove(0));
        match pool.reusable.pop() {
            Some(spare) => (Some(spare), true),
            None => (fresh(&mut pool), false),
        }
    };
    // A reused cgroup leaves the fresh ones as they were: nothing to make.
    if !reused {
        WANTED.notify_one();
    }
    spare
}

/// A single run's cgroup that emptied without a kill, with the descriptors
/// its run held (those nobody else holds any more).
pub(crate) struct Returned {
    pub(crate) cg: Cgroup,
    pub(crate) events: File,
    pub(crate) dir: Option<OwnedFd>,
    pub(crate) kill: Option<KillSwitch>,
    pub(crate) cpu_stat: Option<File>,
}

/// Takes back the cgroup of a single run that emptied without a kill and
/// keeps it for reuse, or has it removed. Checked here, by the run's last
/// owner (one `pread` of `cpu.stat` where the descriptors are still open):
/// waking the filler for every run cost more, on the critical path and in
/// the CPU it took from the next run.
pub(crate) fn give_back(returned: Returned) {
    let full = lock(&POOL).reusable.len() >= REUSE_MAX;
    if full || !FILLER.load(Ordering::Acquire) {
        reaper::remove_killed(returned.cg.path().to_owned());
        return;
    }
    let path = returned.cg.path().to_owned();
    let Some(spare) = reusable(returned) else {
        reaper::remove_killed(path);
        return;
    };
    let mut pool = lock(&POOL);
    pool.reusable.push(spare);
    if !pool.trimming {
        WANTED.notify_one();
    }
}

/// Keeps `KEEP` fresh spares ready and removes reusable ones left idle.
/// After a failure to make one (out of descriptors, say) it waits for the
/// next `take`: spawns meanwhile make their cgroup themselves, and report any
/// error doing so.
fn fill(root: &'static CgroupRoot) {
    let mut pool = lock(&POOL);
    let mut failed_at = None;
    loop {
        while pool.fresh.len() >= KEEP || failed_at == Some(DEMAND.load(Ordering::Acquire)) {
            pool.reusable.retain(|spare| {
                let keep = spare.since.elapsed() < IDLE;
                if !keep {
                    reaper::remove_killed(spare.cg.path().to_owned());
                }
                keep
            });
            pool.trimming = !pool.reusable.is_empty();
            pool = if pool.trimming {
                WANTED
                    .wait_timeout(pool, IDLE / 2)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            } else {
                WANTED.wait(pool).unwrap_or_else(|e| e.into_inner())
            };
        }
        drop(pool);
        let made = make(root);
        pool = lock(&POOL);
        match made {
            Some(spare) => {
                failed_at = None;
                pool.fresh.push(spare);
            }
            None => failed_at = Some(DEMAND.load(Ordering::Acquire)),
        }
    }
}

/// An emptied cgroup as a spare, if it can serve another run honestly.
/// What its run no longer holds is opened again, through its directory.
fn reusable(returned: Returned) -> Option<Spare> {
    let Returned {
        cg,
        events,
        dir,
        kill,
        cpu_stat,
    } = returned;
    let dir = match dir {
        Some(dir) => dir,
        None => cg.dir_fd().ok()?,
    };
    let cpu_stat = match cpu_stat {
        Some(file) => file,
        None => Cgroup::open_cpu_stat(dir.as_fd()).ok()?,
    };
    let baseline = Baseline::of_emptied(&cg, dir.as_fd(), &cpu_stat).ok()??;
    let kill = match kill {
        Some(kill) => kill,
        None => KillSwitch::open_in(&cg, dir.as_fd()).ok()?,
    };
    Some(Spare {
        cg,
        dir,
        kill,
        events,
        cpu_stat,
        baseline,
        since: Instant::now(),
    })
}

fn make(root: &'static CgroupRoot) -> Option<Spare> {
    let cg = root.create_child(PREFIX).ok()?;
    let opened = cg.dir_fd().and_then(|dir| {
        let kill = KillSwitch::open_in(&cg, dir.as_fd())?;
        let cpu_stat = Cgroup::open_cpu_stat(dir.as_fd())?;
        Ok((dir, kill, cg.open_events()?, cpu_stat))
    });
    match opened {
        Ok((dir, kill, events, cpu_stat)) => Some(Spare {
            cg,
            dir,
            kill,
            events,
            cpu_stat,
            baseline: Baseline::default(),
            since: Instant::now(),
        }),
        Err(_) => {
            let _ = std::fs::remove_dir(cg.path());
            None
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
