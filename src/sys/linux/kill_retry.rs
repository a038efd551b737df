//! Kills that failed where nobody can report them (a dropped handle, a
//! watchdog, a dropped group) are retried on a background thread until they
//! succeed or the cgroup is gone: a kill is never forgotten.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::cgroup::KillSwitch;

/// Retries start fast and slow down to this, for as long as it takes.
const MAX_PAUSE: Duration = Duration::from_millis(100);

static PENDING: Mutex<Vec<Arc<KillSwitch>>> = Mutex::new(Vec::new());
static ADDED: Condvar = Condvar::new();
static RUNNING: AtomicBool = AtomicBool::new(false);

/// Kills now; on failure hands the kill to the retry thread and returns the
/// error (the kill still happens, later).
pub(crate) fn kill_or_retry(switch: &Arc<KillSwitch>) -> std::io::Result<()> {
    switch.kill().inspect_err(|_| retry(Arc::clone(switch)))
}

/// Queues a failed kill for retrying.
pub(crate) fn retry(switch: Arc<KillSwitch>) {
    lock().push(switch);
    ADDED.notify_one();
    if !RUNNING.swap(true, Ordering::AcqRel) {
        let started = std::thread::Builder::new()
            .name("processkit-killer".into())
            .spawn(run);
        if started.is_err() {
            // No thread now: the kill stays queued and the next failure (or
            // the next kill handed here) tries to start one again.
            RUNNING.store(false, Ordering::Release);
            lock().retain(|s| s.kill().is_err());
        }
    }
}

fn run() {
    let mut pause = Duration::from_millis(1);
    let mut pending = lock();
    loop {
        while pending.is_empty() {
            pause = Duration::from_millis(1);
            pending = ADDED.wait(pending).unwrap_or_else(|e| e.into_inner());
        }
        pending.retain(|s| s.kill().is_err());
        if pending.is_empty() {
            continue;
        }
        drop(pending);
        std::thread::sleep(pause);
        pause = (pause * 2).min(MAX_PAUSE);
        pending = lock();
    }
}

fn lock() -> std::sync::MutexGuard<'static, Vec<Arc<KillSwitch>>> {
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}
