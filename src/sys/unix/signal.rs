//! Guarded signal delivery: never pid/pgid 0 or 1, never our own process group.

use rustix::io::Errno;
use rustix::process::{self as rx, Pid};

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
    send(Target::Process, pid, sig).is_ok()
}

/// Sends `sig` to process group `pgid`, which the caller has proven is still
/// the one it created. Refuses pgid 0 and 1 and our own group; `Gone` when
/// the group has no member left.
pub(crate) fn group_signal(pgid: i32, sig: i32) -> Reach {
    if pgid <= 1 || pgid == own_pgid() {
        return Reach::Gone;
    }
    match send(Target::Group, pgid, sig) {
        Err(Errno::SRCH) => Reach::Gone,
        _ => Reach::Sent,
    }
}

/// Whether any process is still in group `pgid` (a zombie counts).
#[cfg(all(feature = "stats", not(target_os = "linux")))]
pub(crate) fn group_alive(pgid: i32) -> bool {
    pgid > 1 && send(Target::Group, pgid, 0).is_ok()
}

/// Whether process `pid` still exists (a zombie counts).
pub(crate) fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    pid > 0 && send(Target::Process, pid, 0).is_ok()
}

/// Whether any process has pid `pid`, including one we may not signal.
pub(crate) fn process_exists(pid: i32) -> bool {
    pid > 0 && matches!(send(Target::Process, pid, 0), Ok(()) | Err(Errno::PERM))
}

fn own_pid() -> i32 {
    std::process::id() as i32
}

/// This process's group: 0 when it lies outside our pid namespace, which
/// rustix's `getpgrp` (a non-zero `Pid`) cannot represent.
pub(crate) fn own_pgid() -> i32 {
    // SAFETY: getpgrp(2) takes no arguments and cannot fail.
    unsafe { libc::getpgrp() }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Process,
    Group,
}

/// `kill(2)` on process `id` > 0 or group `id` > 1 (never a broadcast);
/// signal 0 only checks for existence and permission.
fn send(target: Target, id: i32, sig: i32) -> rustix::io::Result<()> {
    let floor = if target == Target::Group { 2 } else { 1 };
    let Some(pid) = (id >= floor).then(|| Pid::from_raw(id)).flatten() else {
        return Err(Errno::SRCH);
    };
    match (target, sig, rx::Signal::from_named_raw(sig)) {
        (Target::Process, 0, _) => rx::test_kill_process(pid),
        (Target::Group, 0, _) => rx::test_kill_process_group(pid),
        (Target::Process, _, Some(named)) => rx::kill_process(pid, named),
        (Target::Group, _, Some(named)) => rx::kill_process_group(pid, named),
        (_, _, None) => send_unnamed(target, pid, sig),
    }
}

/// Real-time and unknown signal numbers, which rustix only builds through an
/// `unsafe` constructor: passed to the kernel as they are, which rejects
/// invalid ones with `EINVAL`.
fn send_unnamed(target: Target, pid: Pid, sig: i32) -> rustix::io::Result<()> {
    let id = match target {
        Target::Process => pid.as_raw_pid(),
        Target::Group => -pid.as_raw_pid(),
    };
    // SAFETY: kill(2) on one process (id > 0) or one group (id < -1, as
    // `send` refuses group 1); no memory is passed.
    if unsafe { libc::kill(id, sig) } == 0 {
        Ok(())
    } else {
        Err(Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::INVAL))
    }
}
