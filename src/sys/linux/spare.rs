//! Fresh run cgroups made ahead of time by a background thread, so a
//! contained spawn finds its cgroup (and an open descriptor on it) ready
//! instead of waiting for `mkdir`. A spare is never reused: it has held no
//! process, so every counter in it starts at zero.

use std::os::fd::OwnedFd;
use std::sync::{Condvar, Mutex, OnceLock};

use super::cgroup::{Cgroup, CgroupRoot};

/// How many spares to keep ready: enough for back-to-back runs, few enough
/// that the empty directories left at exit do not matter.
const KEEP: usize = 2;

/// The name prefix of spares (runs made on demand are `r<N>`).
pub(crate) const PREFIX: char = 's';

static READY: Mutex<Vec<(Cgroup, OwnedFd)>> = Mutex::new(Vec::new());
static WANTED: Condvar = Condvar::new();
/// Whether the filler thread runs.
static FILLER: OnceLock<bool> = OnceLock::new();

/// A ready cgroup below `root` with its directory open, if one is waiting;
/// the background thread then makes the next one.
pub(crate) fn take(root: &'static CgroupRoot) -> Option<(Cgroup, OwnedFd)> {
    let running = *FILLER.get_or_init(|| {
        std::thread::Builder::new()
            .name("processkit-cgroups".into())
            .spawn(move || fill(root))
            .is_ok()
    });
    if !running {
        return None;
    }
    // Oldest first, so every spare that was ever handed out has a lower
    // number than the ones still waiting (tests rely on this to tell them apart).
    let spare = {
        let mut ready = lock(&READY);
        (!ready.is_empty()).then(|| ready.remove(0))
    };
    WANTED.notify_one();
    spare
}

/// Keeps `KEEP` spares ready. Stops at the first failure: spawns then make
/// their cgroup themselves, and report any error doing so.
fn fill(root: &'static CgroupRoot) {
    let mut ready = lock(&READY);
    loop {
        while ready.len() >= KEEP {
            ready = WANTED.wait(ready).unwrap_or_else(|e| e.into_inner());
        }
        drop(ready);
        let Ok(cg) = root.create_child(PREFIX) else {
            return;
        };
        let Ok(dir) = cg.dir_fd() else {
            let _ = std::fs::remove_dir(cg.path());
            return;
        };
        ready = lock(&READY);
        ready.push((cg, dir));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
