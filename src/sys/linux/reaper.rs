//! Background threads that finish teardown so `Drop` never blocks: one removes
//! killed cgroups once the kernel reports them empty, one reaps orphaned
//! children through their pidfds, whatever runtime (if any) is still alive.

use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use rustix::event::{EventfdFlags, PollFd, PollFlags};

use super::cgroup::{Cgroup, remove_tree};
use super::pidfd_child::try_reap;

/// How long a killed cgroup may take to empty before we stop retrying.
const GIVE_UP_AFTER: Duration = Duration::from_secs(30);

static QUEUE: OnceLock<Mutex<Sender<Removal>>> = OnceLock::new();

/// A cgroup to remove once it is empty.
struct Removal {
    dir: PathBuf,
    /// Its tree was killed: whatever still joins it is doomed too.
    killed: bool,
}

/// Removes `dir` (and everything below it) once it is empty, on the reaper
/// thread: the caller never waits for `rmdir` and its kernel lock. Its
/// processes, if any, are left to end on their own (a group still owns them).
pub(crate) fn remove_when_empty(dir: PathBuf) {
    queue(Removal { dir, killed: false });
}

/// Removes `dir`, whose tree was killed, once it is empty. A process can
/// still join after that kill (a cancelled start's child writing itself into
/// `cgroup.procs` just before it execs), so a cgroup that will not go is
/// killed again each time: everything in it is ours and doomed.
pub(crate) fn remove_killed(dir: PathBuf) {
    queue(Removal { dir, killed: true });
}

fn queue(removal: Removal) {
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("processkit-reaper".into())
            .spawn(move || run(rx));
        drop(spawned);
        Mutex::new(tx)
    });
    if let Ok(tx) = queue.lock()
        && let Err(unsent) = tx.send(removal)
    {
        // No reaper thread could be started: try once, right here.
        let _ = try_remove(&unsent.0);
    }
}

fn run(rx: Receiver<Removal>) {
    let mut pending: Vec<(Removal, Instant)> = Vec::new();
    loop {
        let next = if pending.is_empty() {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            rx.recv_timeout(Duration::from_millis(2))
        };
        match next {
            Ok(removal) => pending.push((removal, Instant::now() + GIVE_UP_AFTER)),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        pending.retain(|(removal, give_up)| !try_remove(removal) && now < *give_up);
    }
}

/// One try at removing; `true` once the cgroup is gone.
fn try_remove(removal: &Removal) -> bool {
    if remove_tree(&removal.dir).is_ok() {
        return true;
    }
    if removal.killed {
        let _ = Cgroup::at(removal.dir.clone()).kill();
    }
    false
}

/// Children nobody waits for any more, and the eventfd that wakes their reaper.
struct Orphans {
    incoming: Vec<OwnedFd>,
    /// `Some` once the reaper thread runs.
    wake: Option<Arc<OwnedFd>>,
}

static ORPHANS: Mutex<Orphans> = Mutex::new(Orphans {
    incoming: Vec::new(),
    wake: None,
});

/// Reaps the child behind `pidfd` once it exits, on a process-wide thread
/// that needs no tokio runtime. Used for handles dropped before the exit and
/// for children whose start was abandoned after the clone.
pub(crate) fn reap_orphan(pidfd: OwnedFd) {
    if !matches!(try_reap(&pidfd), Ok(None)) {
        return; // reaped now, or not ours to reap
    }
    let mut orphans = ORPHANS.lock().unwrap_or_else(PoisonError::into_inner);
    orphans.incoming.push(pidfd);
    if orphans.wake.is_none() {
        // Without a thread (none could start yet) the orphans wait here for
        // the next try; this process's exit hands them to init in any case.
        orphans.wake = start_orphan_reaper().ok();
    }
    if let Some(wake) = &orphans.wake {
        wake_up(wake);
    }
}

fn start_orphan_reaper() -> io::Result<Arc<OwnedFd>> {
    let flags = EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK;
    let wake = Arc::new(rustix::event::eventfd(0, flags)?);
    let thread_wake = Arc::clone(&wake);
    std::thread::Builder::new()
        .name("processkit-pidfd-reaper".into())
        .spawn(move || reap_orphans(&thread_wake))?;
    Ok(wake)
}

fn wake_up(wake: &OwnedFd) {
    // A full counter (EAGAIN) still leaves the eventfd readable, which is
    // all the reaper needs.
    let _ = rustix::io::write(wake, &1u64.to_ne_bytes());
}

fn reap_orphans(wake: &OwnedFd) {
    let mut waiting: Vec<OwnedFd> = Vec::new();
    loop {
        waiting.append(
            &mut ORPHANS
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .incoming,
        );
        // A pidfd turns readable when its process exits; ECHILD means someone
        // else reaped it. Either way it is done with.
        waiting.retain(|pidfd| matches!(try_reap(pidfd), Ok(None)));
        let mut polled: Vec<PollFd<'_>> = std::iter::once(wake)
            .chain(&waiting)
            .map(|fd| PollFd::new(fd, PollFlags::IN))
            .collect();
        if rustix::event::poll(&mut polled, None).is_err() {
            // EINTR, or ENOMEM with this many pidfds: look again shortly.
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(polled);
        // EAGAIN when not woken.
        let _ = rustix::io::read(wake, &mut [0u8; 8]);
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;
    use std::time::{Duration, Instant};

    use super::{remove_killed, remove_when_empty};
    use crate::sys::linux::cgroup::root;

    /// Whether `done` turns true within a generous bound.
    fn within(mut done: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// A process that joins a cgroup after its teardown's kill is killed by
    /// the removal, not left running until the program ends.
    #[test]
    fn a_process_joining_after_the_kill_is_killed_by_the_removal() {
        let Ok(root) = root() else {
            eprintln!("SKIP: no writable cgroup2 here");
            return;
        };
        let cg = root.create_child('t').expect("a cgroup below our root");
        cg.kill().expect("the teardown's kill (of an empty cgroup)");
        let mut late = Command::new("sleep").arg("30").spawn().expect("sleep");
        let joined = cg.add_pid(late.id());
        let killed = joined.is_ok() && {
            remove_killed(cg.path().to_owned());
            within(|| late.try_wait().ok().flatten().is_some())
        };
        // Never leave it behind, whatever happened above.
        let _ = late.kill();
        let _ = late.wait();
        joined.expect("the late process joins the killed cgroup");
        assert!(killed, "the late joiner outlived the removal");
        assert!(
            within(|| !cg.path().exists()),
            "the cgroup was never removed"
        );
    }

    /// A cgroup whose run its group still owns is removed only once that run
    /// ends on its own: the removal never kills it.
    #[test]
    fn a_removal_without_a_kill_leaves_the_run_alone() {
        let Ok(root) = root() else {
            eprintln!("SKIP: no writable cgroup2 here");
            return;
        };
        let cg = root.create_child('t').expect("a cgroup below our root");
        let mut owned = Command::new("sleep").arg("30").spawn().expect("sleep");
        let joined = cg.add_pid(owned.id());
        if joined.is_ok() {
            remove_when_empty(cg.path().to_owned());
            std::thread::sleep(Duration::from_millis(200));
        }
        let alive = owned.try_wait().ok().flatten().is_none();
        let _ = owned.kill();
        let _ = owned.wait();
        joined.expect("the process joins the cgroup");
        assert!(alive, "the removal killed a run it does not own");
        assert!(
            within(|| !cg.path().exists()),
            "the cgroup was never removed"
        );
    }
}
