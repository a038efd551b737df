//! Idle shims, owner side: the sockets of zygote shims whose tree was empty
//! when their run's handles were dropped. The next spawn sends its request
//! to one of them instead of having the zygote fork a shim.

use std::os::fd::OwnedFd;
use std::sync::Mutex;

/// At most this many idle shims wait (one descriptor here each); a shim
/// dropped beyond it sees its socket close and exits.
const CAPACITY: usize = 16;

static IDLE: Mutex<Vec<OwnedFd>> = Mutex::new(Vec::new());

/// Keeps an idle shim's socket for the next spawn.
pub(super) fn put(channel: OwnedFd) {
    let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
    if idle.len() < CAPACITY {
        idle.push(channel);
    }
}

/// The most recently idled shim's socket, if any.
pub(super) fn take() -> Option<OwnedFd> {
    IDLE.lock().unwrap_or_else(|e| e.into_inner()).pop()
}
