//! Background threads that finish teardown so `Drop` never blocks: one removes
//! killed cgroups once the kernel reports them empty, one reaps orphaned
//! children through their pidfds, whatever runtime (if any) is still alive.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use super::cgroup::remove_tree;
use super::pidfd_child::try_reap;

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
    // SAFETY: eventfd takes an initial count and flags; it returns a new
    // descriptor or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by eventfd and is owned by nothing else.
    let wake = Arc::new(unsafe { OwnedFd::from_raw_fd(fd) });
    let thread_wake = Arc::clone(&wake);
    std::thread::Builder::new()
        .name("processkit-pidfd-reaper".into())
        .spawn(move || reap_orphans(&thread_wake))?;
    Ok(wake)
}

fn wake_up(wake: &OwnedFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64 to our eventfd; a full counter
    // (EAGAIN) still leaves it readable, which is all the reaper needs.
    unsafe { libc::write(wake.as_raw_fd(), (&raw const one).cast(), 8) };
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
        let mut polled: Vec<libc::pollfd> = std::iter::once(wake)
            .chain(&waiting)
            .map(|fd| libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: the pointer and length describe `polled`, which outlives
        // the call; every descriptor in it stays open meanwhile.
        let ready = unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, -1) };
        if ready < 0 {
            // EINTR, or ENOMEM with this many pidfds: look again shortly.
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut count = [0u8; 8];
        // SAFETY: reads at most 8 bytes into `count`; EAGAIN when not woken.
        unsafe { libc::read(wake.as_raw_fd(), count.as_mut_ptr().cast(), 8) };
    }
}
