//! Guarded signal delivery: never pid/pgid 0 or 1, never our own process group.

use super::leader::Reach;
use crate::signal::Signal;

/// The raw number of `signal` on this platform.
pub(crate) fn number(signal: Signal) -> i32 {
    match signal {
        Signal::Hup => libc::SIGHUP,
        Signal::Int => libc::SIGINT,
        Signal::Quit => libc::SIGQUIT,
        Signal::Kill => libc::SIGKILL,
        Signal::Term => libc::SIGTERM,
        Signal::Usr1 => libc::SIGUSR1,
        Signal::Usr2 => libc::SIGUSR2,
        Signal::Other(n) => n,
    }
}

/// Sends `sig` to one process we started. Refuses pids that would broadcast
/// (0, -1) or hit init, and our own pid.
pub(crate) fn kill_pid(pid: u32, sig: i32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 1 || pid == own_pid() {
        return false;
    }
    // SAFETY: kill(2) with a positive pid only affects that process; no memory is passed.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// Sends `sig` to process group `pgid`, which the caller has proven is still
/// the one it created. Refuses pgid 0 and 1 and our own group; `Gone` when
/// the group has no member left.
pub(crate) fn group_signal(pgid: i32, sig: i32) -> Reach {
    if pgid <= 1 || pgid == own_pgid() {
        return Reach::Gone;
    }
    // SAFETY: killpg(2) with a positive pgid only signals that group; no memory is passed.
    if unsafe { libc::killpg(pgid, sig) } == 0 {
        return Reach::Sent;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::ESRCH) => Reach::Gone,
        _ => Reach::Sent,
    }
}

/// Whether any process is still in group `pgid` (a zombie counts).
#[cfg(all(feature = "stats", not(target_os = "linux")))]
pub(crate) fn group_alive(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    pgid > 1 && unsafe { libc::killpg(pgid, 0) == 0 }
}

/// Whether process `pid` still exists (a zombie counts).
pub(crate) fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks for existence and permission.
    pid > 0 && unsafe { libc::kill(pid, 0) == 0 }
}

/// Whether any process has pid `pid`, including one we may not signal.
pub(crate) fn process_exists(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

fn own_pid() -> i32 {
    std::process::id() as i32
}

/// This process's group.
pub(crate) fn own_pgid() -> i32 {
    // SAFETY: getpgrp(2) takes no arguments and cannot fail.
    unsafe { libc::getpgrp() }
}
