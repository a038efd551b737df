//! A shim's life after fork: a child subreaper in a process group of its
//! own launches the program, reports its pid and exit, reaps every orphan
//! that lands on it, and kills the whole tree once the owner's end of the
//! socket closes or is shut down. This runs in a forked copy of a
//! multi-threaded process: syscalls only, no allocation, no lock.

use std::ffi::c_int;
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::ptr;

use rustix::fs::{Mode, OFlags};
use rustix::net::{RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

use super::wire::{self, EXITED, Failure, Message, STARTED};
use crate::sys::spawn::SpawnSpec;
use crate::sys::spawn::linux::Prepared;

/// Signals the shim reads from its signalfd instead of dying of them.
const READ_SIGNALS: [c_int; 5] = [
    libc::SIGCHLD,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
];

/// The shim's whole life. Never returns.
pub(super) fn run(spec: &mut SpawnSpec, prepared: &mut Prepared, channel: RawFd) -> ! {
    // SAFETY: the socket's descriptor stays open until this process exits.
    let channel = unsafe { BorrowedFd::borrow_raw(channel) };
    let signals = take_signals();
    let _ = rustix::thread::set_name(c"pk-shim");
    // Out of the owner's group: terminal signals and killpg aimed at the
    // owner miss the shim, whose death would free the tree.
    // SAFETY: setpgid and prctl take integers only.
    let subreaper = unsafe {
        libc::setpgid(0, 0);
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    };
    if subreaper != 0 {
        send(channel, &wire::failed(Failure::Subreaper(errno())), None);
        exit();
    }
    // The program's parent is this shim: its parent-death signal follows us.
    if let Some(parent) = spec.setup.parent_death.as_mut() {
        // SAFETY: getpid takes no arguments.
        *parent = unsafe { libc::getpid() };
    }
    let launched = match prepared.launch(spec) {
        Ok(launched) => launched,
        Err(failure) => {
            send(channel, &wire::failed(Failure::Launch(failure)), None);
            exit();
        }
    };
    // The program has exec'd: every other descriptor (its pipe ends above
    // all, whose last writer must be the program) closes now.
    let mut keep = [channel.as_raw_fd(), signals, launched.pidfd.as_raw_fd()];
    close_all_except(&mut keep);
    let pid = launched.pid as i32;
    send(
        channel,
        &wire::encode(STARTED, pid, 0),
        Some(launched.pidfd.as_fd()),
    );
    drop(launched.pidfd);
    watch(channel, signals, pid)
}

/// Reaps and reports until the tree is empty, or tears it down when told.
fn watch(channel: BorrowedFd<'_>, signals: RawFd, program: i32) -> ! {
    let mut program = Some(program);
    loop {
        let mut fds = [
            libc::pollfd {
                fd: channel.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: signals,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // Without a signalfd (none could be made) children are looked for
        // every 100 ms instead.
        let timeout = if signals < 0 { 100 } else { -1 };
        // SAFETY: `fds` is an array of two pollfd structures on this stack.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout) } < 0 {
            continue; // EINTR
        }
        let mut stop = fds[1].revents != 0 && drain_signals(signals);
        let children_left = reap(channel, &mut program);
        if fds[0].revents != 0 {
            stop |= told_to_stop(channel);
        }
        if stop {
            tear_down(channel, &mut program);
        }
        if program.is_none() && !children_left {
            exit();
        }
    }
}

/// Kills the tree layer by layer: every child of ours dies, its orphans
/// land on us (we are their subreaper) and die in the next round, until
/// nothing is left. Only our own unreaped children are signalled, whose
/// pids nobody else can recycle.
fn tear_down(channel: BorrowedFd<'_>, program: &mut Option<i32>) -> ! {
    loop {
        for_each_child(|pid| {
            // SAFETY: kill takes integers only; `pid` is our unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        });
        let mut status = 0;
        // SAFETY: waitpid writes the status into a local integer.
        let reaped = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
        if reaped < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            exit(); // ECHILD: the tree is gone
        }
        report(channel, program, reaped, status);
        if !reap(channel, program) {
            exit();
        }
    }
}

/// Reaps every exited child without blocking, reporting the program's end.
/// Returns whether children remain.
fn reap(channel: BorrowedFd<'_>, program: &mut Option<i32>) -> bool {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into a local integer.
        let reaped = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG | libc::__WALL) };
        match reaped {
            0 => return true,
            r if r > 0 => report(channel, program, r, status),
            _ if errno() == libc::EINTR => {}
            _ => return errno() != libc::ECHILD,
        }
    }
}

fn report(channel: BorrowedFd<'_>, program: &mut Option<i32>, reaped: i32, status: c_int) {
    if *program == Some(reaped) {
        *program = None;
        send(channel, &wire::encode(EXITED, status, 0), None);
    }
}

/// Whether the owner's end has closed or been shut down (or the socket
/// failed: blind, the shim tears down rather than hold a tree nobody owns).
fn told_to_stop(channel: BorrowedFd<'_>) -> bool {
    let mut message: Message = [0; 12];
    match rustix::net::recv(channel, &mut message, RecvFlags::DONTWAIT) {
        Ok((0, _)) => true,
        Ok(_) => false,
        Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => false,
        Err(_) => true,
    }
}

/// Reads pending signals; whether one asks the shim to stop.
fn drain_signals(signals: RawFd) -> bool {
    let mut stop = false;
    loop {
        // SAFETY: all-zero bytes are a valid signalfd_siginfo.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = size_of::<libc::signalfd_siginfo>();
        // SAFETY: `info` is writable for `size` bytes.
        let read = unsafe { libc::read(signals, ptr::from_mut(&mut info).cast(), size) };
        if read != size as isize {
            return stop;
        }
        stop |= info.ssi_signo != libc::SIGCHLD as u32;
    }
}

/// Resets the owner's handlers (they would run the owner's code here),
/// ignores job-control signals, and turns the signals the shim acts on into
/// a non-blocking signalfd. Returns its descriptor (-1 if none could be made:
/// the shim then notices children and stop requests on the socket only).
fn take_signals() -> RawFd {
    // SAFETY: sigaction, sigprocmask and signalfd are async-signal-safe
    // syscalls reading structures zeroed on this stack.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        libc::sigemptyset(&mut action.sa_mask);
        action.sa_sigaction = libc::SIG_DFL;
        for signal in 1..=libc::SIGRTMAX() {
            libc::sigaction(signal, &action, ptr::null_mut());
        }
        action.sa_sigaction = libc::SIG_IGN;
        for signal in [libc::SIGPIPE, libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU] {
            libc::sigaction(signal, &action, ptr::null_mut());
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in READ_SIGNALS {
            libc::sigaddset(&mut set, signal);
        }
        libc::sigprocmask(libc::SIG_SETMASK, &set, ptr::null_mut());
        libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK)
    }
}

/// Calls `f` with the pid of each child of this (single-threaded) process.
fn for_each_child(mut f: impl FnMut(i32)) {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC;
    let Ok(file) = rustix::fs::open(c"/proc/thread-self/children", flags, Mode::empty()) else {
        return;
    };
    let mut buf = [0u8; 512];
    let mut pid: i32 = 0;
    let mut digits = false;
    while let Ok(n @ 1..) = rustix::io::read(&file, &mut buf) {
        for &byte in &buf[..n] {
            if byte.is_ascii_digit() {
                pid = pid
                    .saturating_mul(10)
                    .saturating_add(i32::from(byte - b'0'));
                digits = true;
            } else if digits {
                f(pid);
                (pid, digits) = (0, false);
            }
        }
    }
    if digits {
        f(pid);
    }
}

/// One message, with a descriptor as `SCM_RIGHTS`. A dead owner (EPIPE)
/// hears nothing; the shim goes on to tear down.
fn send(channel: BorrowedFd<'_>, message: &Message, fd: Option<BorrowedFd<'_>>) {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = fd.map(|fd| [fd]);
    if let Some(fds) = &fds {
        control.push(SendAncillaryMessage::ScmRights(fds));
    }
    loop {
        match rustix::net::sendmsg(
            channel,
            &[IoSlice::new(message)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Err(rustix::io::Errno::INTR) => {}
            _ => return,
        }
    }
}

/// Closes every descriptor but those in `keep` (negative entries ignored).
fn close_all_except(keep: &mut [RawFd]) {
    keep.sort_unstable();
    let mut from: libc::c_uint = 0;
    for &fd in keep.iter().filter(|&&fd| fd >= 0) {
        close_range(from, fd as libc::c_uint);
        from = fd as libc::c_uint + 1;
    }
    close_range(from, libc::c_uint::MAX);
}

/// Closes descriptors `from..to` (exclusive), by number if close_range is missing.
fn close_range(from: libc::c_uint, to: libc::c_uint) {
    if from >= to {
        return;
    }
    // SAFETY: close_range only closes descriptors in the given range, none
    // of which the shim still uses.
    if unsafe { libc::syscall(libc::SYS_close_range, from, to - 1, 0) } == 0 {
        return;
    }
    // Kernels before 5.9.
    for fd in from..to.min(65_536) {
        // SAFETY: as above; unused numbers fail harmlessly.
        unsafe { libc::close(fd as RawFd) };
    }
}

fn errno() -> c_int {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn exit() -> ! {
    // SAFETY: _exit ends this process without running the owner's atexit hooks.
    unsafe { libc::_exit(0) }
}
