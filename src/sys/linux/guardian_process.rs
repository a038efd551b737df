//! The guardian's life after fork: detach from the owner's session and
//! signals, wait for the owner's end of the socket to close, then kill every
//! tracked process group (through its leader's pidfd, so never a recycled
//! id) and the per-process cgroup root, and remove it. This runs in a forked
//! copy of a multi-threaded process: raw async-signal-safe syscalls only
//! (rustix's are direct syscalls), no allocation.

use std::ffi::{CStr, CString};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use rustix::event::Timespec;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir, SeekFrom};
use rustix::io::Errno;
use rustix::net::RecvFlags;
use rustix::process::{Pid, Resource, Rlimit, Signal};

use super::fd_message;
use super::guardian::pgid_table::{CAPACITY, Entry, Message, PgidTable};
use super::helper_signals;
use super::pidfd::{PIDFD_SIGNAL_PROCESS_GROUP, send_signal};

/// Everything the guardian needs, built by the owner before fork.
pub(crate) struct Plan {
    /// `<cgroup2 mount>/<our cgroup>/processkit-<pid>-<start>`, maybe not created yet.
    pub(crate) cgroup_root: Option<CString>,
}

/// How long the guardian waits for a killed cgroup tree to empty: 10 ms × 1000.
const EMPTY_POLLS: u32 = 1000;
/// Deepest cgroup nesting the guardian walks (the crate nests three levels).
const MAX_DEPTH: u32 = 16;

/// The guardian process's whole life. Never returns.
pub(crate) fn run(plan: &Plan, channel: BorrowedFd<'_>) -> ! {
    detach(channel.as_raw_fd());
    let mut table = PgidTable::new();
    let owner_gone = watch(channel, &mut table);
    if owner_gone {
        for entry in table.as_slice() {
            kill_group(entry);
        }
        if let Some(root) = &plan.cgroup_root {
            tear_down_root(root);
        }
    }
    // SAFETY: _exit ends this process without running the owner's atexit hooks.
    unsafe { libc::_exit(if owner_gone { 0 } else { 1 }) }
}

/// Leaves the owner's session (so terminal signals and job control aimed at
/// the owner's group miss us), resets inherited signal handlers, ignores the
/// terminal signals, and closes every descriptor but the socket.
fn detach(keep: RawFd) {
    let _ = rustix::process::setsid();
    helper_signals::default_every_handler();
    for signal in helper_signals::TERMINAL_SIGNALS {
        helper_signals::set_disposition(signal, libc::SIG_IGN, 0);
    }
    helper_signals::block_only(&[]);
    let _ = rustix::thread::set_name(c"pk-guardian");
    let _ = rustix::process::chdir(c"/");
    // Room for a pidfd per tracked group, as far as the hard limit allows.
    let want = (CAPACITY + 64) as u64;
    let limit = rustix::process::getrlimit(Resource::Nofile);
    if let Some(current) = limit.current
        && current < want
    {
        let raised = Rlimit {
            current: Some(limit.maximum.map_or(want, |max| want.min(max))),
            maximum: limit.maximum,
        };
        let _ = rustix::process::setrlimit(Resource::Nofile, raised);
    }
    close_all_except(keep);
}

fn close_all_except(keep: RawFd) {
    let keep = keep as libc::c_uint;
    // SAFETY: close_range only closes descriptors; ranges exclude `keep`.
    // (rustix's wrapper is `unsafe` too: it ends descriptors others may own.)
    let done = unsafe {
        (keep == 0 || libc::syscall(libc::SYS_close_range, 0, keep - 1, 0) == 0)
            && libc::syscall(libc::SYS_close_range, keep + 1, libc::c_uint::MAX, 0) == 0
    };
    if !done {
        // Kernels before 5.9 lack close_range.
        for fd in 0..65_536 {
            if fd != keep {
                // SAFETY: closing a descriptor number; unused numbers fail harmlessly.
                unsafe { libc::close(fd as RawFd) };
            }
        }
    }
}

/// Applies the owner's messages until its end closes. Returns whether the
/// owner is gone (end-of-file) rather than the socket failing.
fn watch(channel: BorrowedFd<'_>, table: &mut PgidTable) -> bool {
    let mut message: Message = [0; 12];
    loop {
        let mut pidfd = [None];
        match fd_message::receive(channel, &mut message, &mut pidfd, RecvFlags::empty()) {
            Ok(12) => {
                let [pidfd] = pidfd;
                table.apply(message, pidfd, group_alive, &mut drop);
            }
            // End-of-file, or a short message that is not ours (its
            // descriptor, if any, closes here).
            Ok(0) => return true,
            Ok(_) => {}
            Err(Errno::INTR | Errno::NOMEM | Errno::NOBUFS) => nap(),
            Err(Errno::CONNRESET) => return true,
            // Blind now: exit without touching what a live owner may still own.
            Err(_) => return false,
        }
    }
}

/// The pidfd a table entry holds.
fn entry_pidfd(entry: &Entry) -> Option<BorrowedFd<'_>> {
    entry.pidfd.as_ref().map(AsFd::as_fd)
}

fn pidfd_signal(pidfd: BorrowedFd<'_>, signal: i32, flags: libc::c_uint) -> Result<(), Errno> {
    send_signal(pidfd, signal, flags)
        .map_err(|e| Errno::from_raw_os_error(e.raw_os_error().unwrap_or(0)))
}

/// Kills one tracked group, unless its id may now be someone else's.
fn kill_group(entry: &Entry) {
    if let Some(pidfd) = entry_pidfd(entry) {
        // Exact: the kernel follows the leader's pid object (Linux 6.9+).
        if let Ok(()) | Err(Errno::SRCH) =
            pidfd_signal(pidfd, libc::SIGKILL, PIDFD_SIGNAL_PROCESS_GROUP)
        {
            return;
        }
        // Older kernels: while the leader lives or is a zombie, its id is
        // still its group's. Once reaped, a process with that pid is someone else.
        if pidfd_signal(pidfd, 0, 0).is_err() && process_exists(entry.pgid) {
            return;
        }
    } else if entry.start != 0
        && let Some(start) = start_time_of(entry.pgid)
        && start != entry.start
    {
        return; // the leader's pid now names a younger process
    }
    // The table refuses pgids 0 and 1.
    if let Some(pgid) = pid(entry.pgid) {
        let _ = rustix::process::kill_process_group(pgid, Signal::KILL);
    }
}

/// Whether a tracked group still has members (to make room in a full table).
fn group_alive(entry: &Entry) -> bool {
    if let Some(pidfd) = entry_pidfd(entry) {
        match pidfd_signal(pidfd, 0, PIDFD_SIGNAL_PROCESS_GROUP) {
            Ok(()) => return true,
            Err(Errno::SRCH) => return false,
            Err(_) => {}
        }
    }
    pid(entry.pgid).is_some_and(|pgid| rustix::process::test_kill_process_group(pgid).is_ok())
}

fn process_exists(pid_number: libc::pid_t) -> bool {
    pid(pid_number).is_some_and(|p| {
        matches!(
            rustix::process::test_kill_process(p),
            Ok(()) | Err(Errno::PERM)
        )
    })
}

/// `pid` as a rustix `Pid` when it names one process or group (never 0, 1
/// or a negative broadcast).
fn pid(pid: libc::pid_t) -> Option<Pid> {
    if pid > 1 { Pid::from_raw(pid) } else { None }
}

/// Field 22 of `/proc/<pid>/stat`, read into stack buffers.
fn start_time_of(pid: libc::pid_t) -> Option<u64> {
    let mut path = [0u8; 32];
    let mut at = 0;
    for &b in b"/proc/" {
        path[at] = b;
        at += 1;
    }
    let mut digits = [0u8; 12];
    let mut count = 0;
    let mut rest = pid.unsigned_abs();
    loop {
        digits[count] = b'0' + (rest % 10) as u8;
        count += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    while count > 0 {
        count -= 1;
        path[at] = digits[count];
        at += 1;
    }
    for &b in b"/stat" {
        path[at] = b;
        at += 1;
    }
    // The array was zeroed and is longer than what was written.
    let path = CStr::from_bytes_until_nul(&path).ok()?;
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    let mut text = [0u8; 1024];
    let n = rustix::io::read(&fd, &mut text).unwrap_or(0);
    parse_start_time(&text[..n])
}
fn parse_start_time(stat: &[u8]) -> Option<u64> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let field = stat[close + 1..]
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty())
        .nth(19)?;
    let mut value: u64 = 0;
    for &b in field {
        if !b.is_ascii_digit() {
            break;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(value)
}

/// `cgroup.kill` on the root, wait until the kernel reports it empty, then
/// remove it depth-first. Kernels without `cgroup.kill` (before 5.14) get a
/// freeze, a SIGKILL per member, and a thaw.
fn tear_down_root(root: &CStr) {
    tear_down(root, KillBy::KillFile);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum KillBy {
    /// One `cgroup.kill` write, falling back to `Members` where it is missing.
    KillFile,
    /// Freeze, SIGKILL every pid in every `cgroup.procs`, thaw.
    Members,
}

fn tear_down(root: &CStr, kill_by: KillBy) {
    let Ok(dir) = rustix::fs::open(root, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()) else {
        return; // never created, or already removed
    };
    kill_and_empty(dir.as_fd(), kill_by);
    drop(dir);
    let _ = rustix::fs::rmdir(root);
}

/// Kills everything in the tree at `dir`, waits for it to empty, and
/// removes every cgroup below it.
fn kill_and_empty(dir: BorrowedFd<'_>, kill_by: KillBy) {
    if kill_by == KillBy::Members || !write_at(dir, c"cgroup.kill", b"1") {
        write_at(dir, c"cgroup.freeze", b"1");
        for_each_cgroup(dir, 0, &mut kill_members);
        write_at(dir, c"cgroup.freeze", b"0");
    }
    for _ in 0..EMPTY_POLLS {
        if !is_populated(dir) {
            break;
        }
        nap();
    }
    remove_below(dir, 0);
}

fn is_populated(dir: BorrowedFd<'_>) -> bool {
    let mut text = [0u8; 256];
    let n = read_at(dir, c"cgroup.events", &mut text);
    text[..n].windows(11).any(|w| w == b"populated 1")
}

/// Sends SIGKILL to every pid listed in this cgroup's `cgroup.procs`.
fn kill_members(dir: BorrowedFd<'_>) {
    let Ok(fd) = rustix::fs::openat(dir, c"cgroup.procs", OFlags::RDONLY, Mode::empty()) else {
        return;
    };
    let mut chunk = [0u8; 512];
    let mut pid: libc::pid_t = 0;
    while let Ok(n @ 1..) = rustix::io::read(&fd, &mut chunk) {
        for &byte in &chunk[..n] {
            if byte.is_ascii_digit() {
                pid = pid
                    .saturating_mul(10)
                    .saturating_add(libc::pid_t::from(byte - b'0'));
            } else {
                kill_pid(pid);
                pid = 0;
            }
        }
    }
    kill_pid(pid);
}

fn kill_pid(pid_number: libc::pid_t) {
    if let Some(pid) = pid(pid_number) {
        let _ = rustix::process::kill_process(pid, Signal::KILL);
    }
}

/// Calls `visit` on `dir` and every cgroup below it.
fn for_each_cgroup(dir: BorrowedFd<'_>, depth: u32, visit: &mut impl FnMut(BorrowedFd<'_>)) {
    visit(dir);
    if depth < MAX_DEPTH {
        for_each_subdir(dir, &mut |sub, _name| {
            for_each_cgroup(sub, depth + 1, visit)
        });
    }
}

/// Removes every cgroup below `dir`, deepest first.
fn remove_below(dir: BorrowedFd<'_>, depth: u32) {
    if depth >= MAX_DEPTH {
        return;
    }
    for_each_subdir(dir, &mut |sub, name| {
        remove_below(sub, depth + 1);
        let _ = rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR);
    });
}

/// Calls `visit(subdir, name)` for each subdirectory of `dir`, reading the
/// entries with getdents64 into a stack buffer.
fn for_each_subdir(dir: BorrowedFd<'_>, visit: &mut dyn FnMut(BorrowedFd<'_>, &CStr)) {
    let mut buf = [MaybeUninit::uninit(); 2048];
    let _ = rustix::fs::seek(dir, SeekFrom::Start(0));
    let mut entries = RawDir::new(dir, &mut buf);
    while let Some(Ok(entry)) = entries.next() {
        let name = entry.file_name();
        if entry.file_type() != FileType::Directory || name == c"." || name == c".." {
            continue;
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        if let Ok(sub) = rustix::fs::openat(dir, name, flags, Mode::empty()) {
            visit(sub.as_fd(), name);
        }
    }
}

fn write_at(dir: BorrowedFd<'_>, file: &CStr, value: &[u8]) -> bool {
    let Ok(fd) = rustix::fs::openat(dir, file, OFlags::WRONLY, Mode::empty()) else {
        return false;
    };
    rustix::io::write(&fd, value).is_ok_and(|n| n == value.len())
}

fn read_at(dir: BorrowedFd<'_>, file: &CStr, into: &mut [u8]) -> usize {
    let Ok(fd) = rustix::fs::openat(dir, file, OFlags::RDONLY, Mode::empty()) else {
        return 0;
    };
    rustix::io::read(&fd, into).unwrap_or(0)
}

fn nap() {
    let pause = Timespec {
        tv_sec: 0,
        tv_nsec: 10_000_000,
    };
    let _ = rustix::thread::nanosleep(&pause);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::linux::cgroup;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn reads_a_start_time_as_the_owner_does() {
        let pid = std::process::id();
        assert_eq!(
            start_time_of(pid as i32),
            cgroup::start_time(pid).ok(),
            "field 22 of our own stat"
        );
        assert_eq!(parse_start_time(b"1 (a) b) S 1 2 3"), None);
    }

    /// The path kernels before 5.14 take: no `cgroup.kill`, so every member of
    /// every nested cgroup is killed one by one before the tree is removed.
    #[test]
    fn teardown_without_cgroup_kill_kills_every_member_and_removes_the_tree() {
        let Ok(root) = cgroup::root() else {
            eprintln!("skipped: no writable cgroup2 here");
            return;
        };
        let top = root.create_child('t').expect("cgroup");
        let nested = top.create_nested("inner").expect("nested cgroup");
        let mut sleepers: Vec<std::process::Child> = (0..2)
            .map(|_| {
                std::process::Command::new("sleep")
                    .arg("1000")
                    .spawn()
                    .unwrap()
            })
            .collect();
        top.add_pid(sleepers[0].id()).unwrap();
        nested.add_pid(sleepers[1].id()).unwrap();

        let path = CString::new(top.path().as_os_str().as_bytes()).unwrap();
        tear_down(&path, KillBy::Members);

        for sleeper in &mut sleepers {
            let mut status = None;
            for _ in 0..500 {
                status = sleeper.try_wait().unwrap();
                if status.is_some() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let _ = sleeper.kill();
            let signal = status.and_then(|s| std::os::unix::process::ExitStatusExt::signal(&s));
            assert_eq!(signal, Some(libc::SIGKILL), "{status:?}");
        }
        assert!(!top.path().exists(), "the tree was removed");
    }
}
