//! The guardian's life after fork: detach from the owner's session and
//! signals, wait for the owner's end of the socket to close, then kill every
//! tracked process group (through its leader's pidfd, so never a recycled
//! id) and the per-process cgroup root, and remove it. This runs in a forked
//! copy of a multi-threaded process: raw async-signal-safe syscalls only, no
//! allocation.

use std::ffi::{CStr, CString};
use std::os::fd::RawFd;

use crate::sys::unix::pgid_table::{CAPACITY, Entry, Message, PgidTable};

/// Everything the guardian needs, built by the owner before fork.
pub(crate) struct Plan {
    /// `<cgroup2 mount>/<our cgroup>/processkit-<pid>-<start>`, maybe not created yet.
    pub(crate) cgroup_root: Option<CString>,
}

/// How long the guardian waits for a killed cgroup tree to empty: 10 ms × 1000.
const EMPTY_POLLS: u32 = 1000;
/// Deepest cgroup nesting the guardian walks (the crate nests three levels).
const MAX_DEPTH: u32 = 16;
/// `pidfd_send_signal` flag (Linux 6.9): signal the pidfd's process group.
const PIDFD_SIGNAL_PROCESS_GROUP: libc::c_uint = 1 << 2;

/// The guardian process's whole life. Never returns.
pub(crate) fn run(plan: &Plan, channel: RawFd) -> ! {
    detach(channel);
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
    // SAFETY: only async-signal-safe syscalls (for the whole block), on
    // zeroed structures that live on this stack.
    unsafe {
        libc::setsid();
        let mut action: libc::sigaction = std::mem::zeroed();
        libc::sigemptyset(&mut action.sa_mask);
        action.sa_sigaction = libc::SIG_DFL;
        // Handlers copied from the owner would run the owner's code here.
        for signal in 1..65 {
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
        action.sa_sigaction = libc::SIG_IGN;
        let terminal = [
            libc::SIGINT,
            libc::SIGQUIT,
            libc::SIGHUP,
            libc::SIGTSTP,
            libc::SIGTTIN,
            libc::SIGTTOU,
            libc::SIGPIPE,
        ];
        for signal in terminal {
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_NAME, c"pk-guardian".as_ptr());
        libc::chdir(c"/".as_ptr());
        // Room for a pidfd per tracked group, as far as the hard limit allows.
        let mut limit: libc::rlimit = std::mem::zeroed();
        let want = (CAPACITY + 64) as libc::rlim_t;
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < want {
            limit.rlim_cur = want.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    close_all_except(keep);
}

fn close_all_except(keep: RawFd) {
    let keep = keep as libc::c_uint;
    // SAFETY: close_range only closes descriptors; ranges exclude `keep`.
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
fn watch(channel: RawFd, table: &mut PgidTable) -> bool {
    let mut message: Message = [0; 12];
    loop {
        let (n, pidfd) = receive(channel, &mut message);
        let error = errno();
        match n {
            12 => table.apply(message, pidfd, group_alive, &mut close_fd),
            n if n >= 0 => {
                // End-of-file, or a short message that is not ours.
                close_fd(pidfd);
                if n == 0 {
                    return true;
                }
            }
            _ => match error {
                libc::EINTR | libc::ENOMEM | libc::ENOBUFS => nap(),
                libc::ECONNRESET => return true,
                // Blind now: exit without touching what a live owner may still own.
                _ => return false,
            },
        }
    }
}

/// One message and the descriptor that came with it (-1 if none).
fn receive(channel: RawFd, message: &mut Message) -> (isize, RawFd) {
    let mut iov = libc::iovec {
        iov_base: message.as_mut_ptr().cast(),
        iov_len: message.len(),
    };
    // u64 elements keep the control buffer aligned for a cmsghdr.
    let mut control = [0u64; 8];
    let mut pidfd = -1;
    // SAFETY: a zeroed msghdr pointing at `iov` and `control` on this stack;
    // the kernel writes at most their lengths, and the control headers are
    // walked with the CMSG macros inside the length it reported.
    let n = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        let n = libc::recvmsg(channel, &mut msg, libc::MSG_CMSG_CLOEXEC);
        if n >= 0 {
            let mut header = libc::CMSG_FIRSTHDR(&msg);
            while !header.is_null() {
                if (*header).cmsg_level == libc::SOL_SOCKET
                    && (*header).cmsg_type == libc::SCM_RIGHTS
                {
                    let bytes = (*header).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                    let data = libc::CMSG_DATA(header).cast::<RawFd>();
                    for i in 0..bytes / std::mem::size_of::<RawFd>() {
                        let fd = std::ptr::read_unaligned(data.add(i));
                        if pidfd < 0 {
                            pidfd = fd;
                        } else {
                            libc::close(fd);
                        }
                    }
                }
                header = libc::CMSG_NXTHDR(&msg, header);
            }
        }
        n
    };
    (n, pidfd)
}

fn close_fd(fd: RawFd) {
    if fd >= 0 {
        // SAFETY: closing a descriptor this process received and owns.
        unsafe { libc::close(fd) };
    }
}

fn pidfd_signal(pidfd: RawFd, signal: i32, flags: libc::c_uint) -> bool {
    // SAFETY: pidfd_send_signal on a descriptor we own, with a null siginfo.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            flags,
        ) == 0
    }
}

/// Kills one tracked group, unless its id may now be someone else's.
fn kill_group(entry: &Entry) {
    if entry.pidfd >= 0 {
        // Exact: the kernel follows the leader's pid object (Linux 6.9+).
        if pidfd_signal(entry.pidfd, libc::SIGKILL, PIDFD_SIGNAL_PROCESS_GROUP)
            || errno() == libc::ESRCH
        {
            return;
        }
        // Older kernels: while the leader lives or is a zombie, its id is
        // still its group's. Once reaped, a process with that pid is someone else.
        if !pidfd_signal(entry.pidfd, 0, 0) && process_exists(entry.pgid) {
            return;
        }
    } else if entry.start != 0
        && let Some(start) = start_time_of(entry.pgid)
        && start != entry.start
    {
        return; // the leader's pid now names a younger process
    }
    // SAFETY: killpg with a pgid > 1 (the table refuses 0 and 1).
    unsafe { libc::killpg(entry.pgid, libc::SIGKILL) };
}

/// Whether a tracked group still has members (to make room in a full table).
fn group_alive(entry: &Entry) -> bool {
    if entry.pidfd >= 0 {
        if pidfd_signal(entry.pidfd, 0, PIDFD_SIGNAL_PROCESS_GROUP) {
            return true;
        }
        if errno() == libc::ESRCH {
            return false;
        }
    }
    // SAFETY: signal 0 only checks whether the group has members.
    unsafe { libc::killpg(entry.pgid, 0) == 0 }
}

fn process_exists(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    unsafe { libc::kill(pid, 0) == 0 || errno() == libc::EPERM }
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
    let mut text = [0u8; 1024];
    // SAFETY: a NUL-terminated path on our stack (the array was zeroed and
    // is longer than what was written); read into a stack buffer; close.
    let n = unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return None;
        }
        let n = libc::read(fd, text.as_mut_ptr().cast(), text.len());
        libc::close(fd);
        n
    };
    parse_start_time(&text[..n.max(0) as usize])
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
    // SAFETY: opening a directory by a NUL-terminated path.
    let dir = unsafe { libc::open(root.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
    if dir < 0 {
        return; // never created, or already removed
    }
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
    // SAFETY: closing our descriptor, then removing the emptied root by path.
    unsafe {
        libc::close(dir);
        libc::rmdir(root.as_ptr());
    }
}

fn is_populated(dir: RawFd) -> bool {
    let mut text = [0u8; 256];
    let n = read_at(dir, c"cgroup.events", &mut text);
    text[..n].windows(11).any(|w| w == b"populated 1")
}

/// Sends SIGKILL to every pid listed in this cgroup's `cgroup.procs`.
fn kill_members(dir: RawFd) {
    // SAFETY: opening a file relative to a directory descriptor we own.
    let fd = unsafe { libc::openat(dir, c"cgroup.procs".as_ptr(), libc::O_RDONLY) };
    if fd < 0 {
        return;
    }
    let mut chunk = [0u8; 512];
    let mut pid: libc::pid_t = 0;
    loop {
        // SAFETY: reads into a stack buffer of the given length.
        let n = unsafe { libc::read(fd, chunk.as_mut_ptr().cast(), chunk.len()) };
        if n <= 0 {
            break;
        }
        for &byte in &chunk[..n as usize] {
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
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(fd) };
}

fn kill_pid(pid: libc::pid_t) {
    if pid > 1 {
        // SAFETY: kill with a positive pid signals that one process.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Calls `visit` on `dir` and every cgroup below it.
fn for_each_cgroup(dir: RawFd, depth: u32, visit: &mut impl FnMut(RawFd)) {
    visit(dir);
    if depth < MAX_DEPTH {
        for_each_subdir(dir, &mut |sub, _name| {
            for_each_cgroup(sub, depth + 1, visit)
        });
    }
}

/// Removes every cgroup below `dir`, deepest first.
fn remove_below(dir: RawFd, depth: u32) {
    if depth >= MAX_DEPTH {
        return;
    }
    for_each_subdir(dir, &mut |sub, name| {
        remove_below(sub, depth + 1);
        // SAFETY: removing a directory entry relative to a descriptor we own.
        unsafe { libc::unlinkat(dir, name.as_ptr(), libc::AT_REMOVEDIR) };
    });
}

/// Calls `visit(subdir_fd, name)` for each subdirectory of `dir`, reading the
/// entries with getdents64 into a stack buffer.
fn for_each_subdir(dir: RawFd, visit: &mut dyn FnMut(RawFd, &CStr)) {
    // u64 elements keep the buffer aligned for linux_dirent64.
    let mut buf = [0u64; 256];
    let len = std::mem::size_of_val(&buf);
    // SAFETY: rewinds a directory descriptor we own.
    unsafe { libc::lseek(dir, 0, libc::SEEK_SET) };
    loop {
        // SAFETY: getdents64 fills at most `len` bytes of our buffer.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, dir, buf.as_mut_ptr(), len) };
        if n <= 0 {
            return;
        }
        let bytes = buf.as_ptr().cast::<u8>();
        let mut at = 0usize;
        while at + 19 < n as usize {
            // SAFETY: the kernel wrote whole records: d_reclen (u16) at offset
            // 16, d_type at 18, a NUL-terminated d_name from 19, all inside `n`.
            let (reclen, kind, name) = unsafe {
                let reclen = std::ptr::read_unaligned(bytes.add(at + 16).cast::<u16>());
                let kind = *bytes.add(at + 18);
                (
                    reclen as usize,
                    kind,
                    CStr::from_ptr(bytes.add(at + 19).cast()),
                )
            };
            if reclen == 0 {
                return;
            }
            at += reclen;
            if kind != libc::DT_DIR || name == c"." || name == c".." {
                continue;
            }
            // SAFETY: opening a subdirectory relative to a descriptor we own.
            let sub = unsafe {
                libc::openat(
                    dir,
                    name.as_ptr(),
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
                )
            };
            if sub >= 0 {
                visit(sub, name);
                // SAFETY: closing the descriptor opened just above.
                unsafe { libc::close(sub) };
            }
        }
    }
}

fn write_at(dir: RawFd, file: &CStr, value: &[u8]) -> bool {
    // SAFETY: open relative to our directory, write from a borrowed slice, close.
    unsafe {
        let fd = libc::openat(dir, file.as_ptr(), libc::O_WRONLY);
        if fd < 0 {
            return false;
        }
        let ok = libc::write(fd, value.as_ptr().cast(), value.len()) == value.len() as isize;
        libc::close(fd);
        ok
    }
}

fn read_at(dir: RawFd, file: &CStr, into: &mut [u8]) -> usize {
    // SAFETY: open relative to our directory, read into a borrowed slice, close.
    unsafe {
        let fd = libc::openat(dir, file.as_ptr(), libc::O_RDONLY);
        if fd < 0 {
            return 0;
        }
        let n = libc::read(fd, into.as_mut_ptr().cast(), into.len());
        libc::close(fd);
        n.max(0) as usize
    }
}

fn nap() {
    let pause = libc::timespec {
        tv_sec: 0,
        tv_nsec: 10_000_000,
    };
    // SAFETY: nanosleep reads the timespec on our stack; the remainder is unused.
    unsafe { libc::nanosleep(&pause, std::ptr::null_mut()) };
}

fn errno() -> i32 {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
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
