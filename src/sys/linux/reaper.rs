//! A background thread that removes killed cgroups once the kernel reports
//! them empty, so `Drop` never blocks on teardown.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::cgroup::remove_tree;

/// How long a killed cgroup may take to empty before we stop retrying.
const GIVE_UP_AFTER: Duration = Duration::from_secs(30);

static QUEUE: OnceLock<Mutex<Sender<PathBuf>>> = OnceLock::new();

/// Removes `dir` (and everything below it) once it is empty, on the reaper
/// thread: the caller never waits for `rmdir` and its kernel lock.
pub(crate) fn remove_when_empty(dir: PathBuf) {
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("processkit-reaper".into())
            .spawn(move || run(rx));
        drop(spawned);
        Mutex::new(tx)
    });
    if let Ok(tx) = queue.lock()
        && let Err(unsent) = tx.send(dir)
    {
        // No reaper thread could be started: try once, right here.
        let _ = remove_tree(&unsent.0);
    }
}

fn run(rx: Receiver<PathBuf>) {
    let mut pending: Vec<(PathBuf, Instant)> = Vec::new();
    loop {
        let next = if pending.is_empty() {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            rx.recv_timeout(Duration::from_millis(2))
        };
        match next {
            Ok(dir) => pending.push((dir, Instant::now() + GIVE_UP_AFTER)),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        pending.retain(|(dir, give_up)| remove_tree(dir).is_err() && now < *give_up);
    }
}
