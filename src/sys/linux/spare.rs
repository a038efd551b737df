//! Fresh run cgroups made ahead of time by a background thread, so a
//! contained spawn finds its cgroup (and open descriptors on it) ready
//! instead of waiting for `mkdir`. A spare is never reused: it has held no
//! process, so every counter in it starts at zero.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

use super::cgroup::{Cgroup, CgroupRoot, KillSwitch};

/// How many spares to keep ready: enough for back-to-back runs, few enough
/// that the empty directories left at exit do not matter.
const KEEP: usize = 2;

/// The name prefix of spares (runs made on demand are `r<N>`).
pub(crate) const PREFIX: char = 's';

/// A ready cgroup: its directory (for `CLONE_INTO_CGROUP`) and its kill switch.
pub(crate) struct Spare {
    pub(crate) cg: Cgroup,
    pub(crate) dir: OwnedFd,
    pub(crate) kill: KillSwitch,
}

static READY: Mutex<Vec<Spare>> = Mutex::new(Vec::new());
static WANTED: Condvar = Condvar::new();
/// Counts `take` calls: after a failure the filler waits for the next one.
static DEMAND: AtomicU64 = AtomicU64::new(0);
/// Whether the filler thread runs.
static FILLER: AtomicBool = AtomicBool::new(false);

/// A ready cgroup below `root` with its descriptors open, if one is waiting;
/// the background thread then makes the next one.
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
    // Oldest first, so every spare that was ever handed out has a lower
    // number than the ones still waiting (tests rely on this to tell them apart).
    let spare = {
        let mut ready = lock(&READY);
        DEMAND.fetch_add(1, Ordering::AcqRel);
        (!ready.is_empty()).then(|| ready.remove(0))
    };
    WANTED.notify_one();
    spare
}

/// Keeps `KEEP` spares ready. After a failure (out of descriptors, say) it
/// waits for the next `take` and tries again: spawns meanwhile make their
/// cgroup themselves, and report any error doing so.
fn fill(root: &'static CgroupRoot) {
    let mut ready = lock(&READY);
    let mut failed_at = None;
    loop {
        while ready.len() >= KEEP || failed_at == Some(DEMAND.load(Ordering::Acquire)) {
            ready = WANTED.wait(ready).unwrap_or_else(|e| e.into_inner());
        }
        drop(ready);
        let made = make(root);
        ready = lock(&READY);
        match made {
            Some(spare) => {
                failed_at = None;
                ready.push(spare);
            }
            None => failed_at = Some(DEMAND.load(Ordering::Acquire)),
        }
    }
}

fn make(root: &'static CgroupRoot) -> Option<Spare> {
    let cg = root.create_child(PREFIX).ok()?;
    let opened = cg
        .dir_fd()
        .and_then(|dir| Ok((dir, KillSwitch::open(&cg)?)));
    match opened {
        Ok((dir, kill)) => Some(Spare { cg, dir, kill }),
        Err(_) => {
            let _ = std::fs::remove_dir(cg.path());
            None
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
