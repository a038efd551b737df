//! Idle shims, ready for another run: a shim whose run ended untouched
//! (nothing signalled, stopped or killed, nothing left below it) comes
//! back here instead of exiting, so the next start needs no new shim.

use std::os::fd::OwnedFd;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};

/// At most this many idle shims wait at once (one socket and one pidfd each).
const MAX_IDLE: usize = 64;
/// An idle shim not taken within this long is let go (closing our end of
/// its socket, which it reads as end-of-file, ends it).
pub(super) const KEEP: Duration = Duration::from_secs(2);

/// One idle shim: our end of its socket and its pidfd.
#[derive(Debug)]
pub(super) struct IdleShim {
    pub(super) pid: u32,
    pub(super) pidfd: OwnedFd,
    pub(super) channel: OwnedFd,
    /// When it reported its tree empty.
    pub(super) since: Instant,
}

impl IdleShim {
    fn usable(&self) -> bool {
        self.since.elapsed() < KEEP && alive(&self.pidfd)
    }
}

/// Whether the process behind `pidfd` runs (its pidfd is not readable yet).
pub(super) fn alive(pidfd: &OwnedFd) -> bool {
    let mut poll = [PollFd::new(pidfd, PollFlags::IN)];
    let now = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    !matches!(rustix::event::poll(&mut poll, Some(&now)), Ok(1..))
}

struct Pool {
    idle: Vec<IdleShim>,
    /// The thread that lets old shims go is running.
    trimming: bool,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    idle: Vec::new(),
    trimming: false,
});

fn pool() -> std::sync::MutexGuard<'static, Pool> {
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Keeps `shim` for the next run (or lets it go, if the pool is full).
pub(super) fn give_back(shim: IdleShim) {
    if !shim.usable() {
        return;
    }
    let mut pool = pool();
    if pool.idle.len() >= MAX_IDLE {
        return; // dropped: it exits
    }
    pool.idle.push(shim);
    if !pool.trimming {
        let started = std::thread::Builder::new()
            .name("processkit-shims".into())
            .spawn(trim);
        // Without the thread, idle shims still end by themselves.
        pool.trimming = started.is_ok();
    }
}

/// The most recently idle shim that is still usable.
pub(super) fn take() -> Option<IdleShim> {
    let mut pool = pool();
    while let Some(shim) = pool.idle.pop() {
        if shim.usable() {
            return Some(shim);
        }
    }
    None
}

/// Lets go of shims idle for `KEEP`, until none is left.
fn trim() {
    loop {
        std::thread::sleep(KEEP / 4);
        let stale = {
            let mut pool = pool();
            let (fresh, stale) = std::mem::take(&mut pool.idle)
                .into_iter()
                .partition(IdleShim::usable);
            pool.idle = fresh;
            if pool.idle.is_empty() {
                pool.trimming = false;
            }
            (stale, pool.trimming)
        };
        // Closed outside the lock.
        let (stale, trimming): (Vec<IdleShim>, bool) = stale;
        drop(stale);
        if !trimming {
            return;
        }
    }
}
