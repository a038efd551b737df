//! A shim's life after fork: a child subreaper in a process group of its
//! own launches the program, reports its pid and exit, reaps every orphan
//! that lands on it, and kills the whole tree once the owner's end of the
//! socket closes or is shut down; a zygote's shim whose tree ended untouched
//! waits, idle, for another run. This runs in a forked copy of a
//! multi-threaded process: syscalls only, no allocation, no lock.

use std::ffi::c_int;
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::ptr;

use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};
use rustix::net::{RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

use super::wire::{self, EXITED, Failure, Message, STARTED};
use crate::sys::linux::readable::wait_readable;
use crate::sys::linux::{fd_message, helper_signals};
use crate::sys::spawn::linux::{LaunchFailure, Launched};

/// Signals that ask the shim to kill its tree and exit (it reads every
/// signal from its signalfd, these included, instead of dying of them).
const STOP_SIGNALS: [c_int; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT];

/// A shim ready for its program: made before the request arrives when the
/// zygote keeps a spare shim waiting, so none of it is on the spawn's path.
pub(super) struct Prelude {
    signals: RawFd,
    me: libc::pid_t,
    /// Our own pidfd, for the owner: we may not be its child.
    own: Option<OwnedFd>,
    /// Why `PR_SET_CHILD_SUBREAPER` failed, if it did.
    refused: Option<c_int>,
}

/// Takes the signals, leaves the owner's process group (terminal signals
/// and killpg aimed at the owner miss the shim, whose death would free the
/// tree) and becomes a child subreaper. `handlers_reset`: a zygote already
/// put every handler back to the default.
pub(super) fn prelude(handlers_reset: bool) -> Prelude {
    let signals = take_signals(handlers_reset);
    let _ = rustix::thread::set_name(c"pk-spare");
    let me = rustix::process::getpid();
    let own = rustix::process::pidfd_open(me, rustix::process::PidfdFlags::empty()).ok();
    // SAFETY: setpgid and prctl take integers only.
    let subreaper = unsafe {
        libc::setpgid(0, 0);
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    };
    Prelude {
        signals,
        me: me.as_raw_nonzero().get(),
        own,
        refused: (subreaper != 0).then(errno),
    }
}

/// The shim's whole life: `launch` starts the program (given the shim's
/// pid, its parent-death parent). Never returns: a shim forked by its owner
/// serves one run.
pub(super) fn run(
    channel: RawFd,
    launch: impl FnOnce(libc::pid_t) -> Result<Launched, LaunchFailure>,
) -> ! {
    serve(prelude(false), channel, launch, None, false);
    exit()
}

/// What a shim keeps between runs: its signalfd and pid.
#[derive(Clone, Copy)]
pub(super) struct Idle {
    signals: RawFd,
    me: libc::pid_t,
}

/// The shim's first run, once its request is here. `zygote` is told (one
/// byte) once the program has started: the zygote forks the next spare
/// then, not while this launch still needs the CPU. Returns only if
/// `reusable` and the run's tree ended by itself, untouched (`Idle`): the
/// shim then waits for another request (`next_request`); else it exits.
pub(super) fn serve(
    prelude: Prelude,
    channel: RawFd,
    launch: impl FnOnce(libc::pid_t) -> Result<Launched, LaunchFailure>,
    zygote: Option<(OwnedFd, u8)>,
    reusable: bool,
) -> Idle {
    let _ = rustix::thread::set_name(c"pk-shim");
    let Prelude {
        signals,
        me,
        own,
        refused,
    } = prelude;
    if let Some(errno) = refused {
        // SAFETY: the socket's descriptor stays open until this process exits.
        let channel = unsafe { BorrowedFd::borrow_raw(channel) };
        send_plain(channel, &wire::failed(Failure::Subreaper(errno)));
        exit();
    }
    let idle = Idle { signals, me };
    serve_again(idle, channel, launch, own, zygote, reusable);
    idle
}

/// One run of the shim: launch, report, watch. Returns once its tree ended
/// untouched if `reusable`; exits otherwise.
pub(super) fn serve_again(
    idle: Idle,
    channel: RawFd,
    launch: impl FnOnce(libc::pid_t) -> Result<Launched, LaunchFailure>,
    own: Option<OwnedFd>,
    zygote: Option<(OwnedFd, u8)>,
    reusable: bool,
) {
    // SAFETY: the socket's descriptor stays open until this process exits.
    let channel = unsafe { BorrowedFd::borrow_raw(channel) };
    let Idle { signals, me } = idle;
    // The program's parent is this shim: its parent-death signal follows us.
    let launched = match launch(me) {
        Ok(launched) => launched,
        Err(failure) => {
            send_plain(channel, &wire::failed(Failure::Launch(failure)));
            exit();
        }
    };
    // The program has exec'd: every other descriptor (its pipe ends above
    // all, whose last writer must be the program) closes now. A reusable
    // shim keeps 0-2 (the zygote's /dev/null) taken, so the next request's
    // descriptors arrive above them, as the first one's did.
    let own_fd = own.as_ref().map_or(-1, AsRawFd::as_raw_fd);
    let zygote_fd = zygote.as_ref().map_or(-1, |(fd, _)| fd.as_raw_fd());
    let low = |fd: RawFd| if reusable { fd } else { -1 };
    let mut keep = [
        channel.as_raw_fd(),
        signals,
        launched.pidfd.as_raw_fd(),
        own_fd,
        zygote_fd,
        low(0),
        low(1),
        low(2),
    ];
    close_all_except(&mut keep);
    let pid = launched.pid as i32;
    let message = wire::encode(STARTED, pid, me);
    let own_pidfd = own.as_ref().map(AsFd::as_fd);
    send(channel, &message, launched.pidfd.as_fd(), own_pidfd);
    drop(launched.pidfd);
    drop(own);
    if let Some((fd, byte)) = zygote {
        let _ = rustix::io::write(&fd, &[byte]);
    }
    watch(channel, signals, pid, reusable);
}

/// How long an idle shim waits for another run before it exits by itself
/// (its owner lets it go after 2 s; this bounds one nobody took back).
const IDLE_FOR_MS: c_int = 10_000;

/// Waits, idle, for the owner's next request on `channel` (into `message`,
/// its descriptors into `fds`); returns its length. Exits at end-of-file,
/// on a stop signal, on anything but a request, or after `IDLE_FOR_MS`.
pub(super) fn next_request<const N: usize>(
    idle: Idle,
    channel: RawFd,
    message: &mut [u8],
    fds: &mut [Option<OwnedFd>; N],
) -> usize {
    // SAFETY: the socket's descriptor stays open until this process exits.
    let channel = unsafe { BorrowedFd::borrow_raw(channel) };
    loop {
        // EINTR: wait again.
        let Some([request, signal]) =
            wait_readable([channel.as_raw_fd(), idle.signals], IDLE_FOR_MS)
        else {
            continue;
        };
        if !request && !signal {
            exit(); // idle for too long
        }
        if signal && drain_signals(idle.signals) {
            exit();
        }
        if !request {
            continue;
        }
        match fd_message::receive(channel, message, fds, RecvFlags::DONTWAIT) {
            Ok(n) if n >= super::request::MIN_REQUEST => return n,
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {}
            // End-of-file, the owner's "retire", or a broken socket.
            _ => exit(),
        }
    }
}

/// Reaps and reports until the tree is empty, or tears it down when told.
/// A `reusable` shim whose program ended with nothing left below it, and
/// whose owner never said "retire", says so with its exit report and
/// returns instead of exiting.
fn watch(channel: BorrowedFd<'_>, signals: RawFd, program: i32, reusable: bool) {
    let mut program = Some(program);
    let mut reusable = reusable;
    let mut idle = false;
    loop {
        // Without a signalfd (none could be made) children are looked for
        // every 100 ms instead.
        let timeout = if signals < 0 { 100 } else { -1 };
        // EINTR: wait again.
        let Some([message, signal]) = wait_readable([channel.as_raw_fd(), signals], timeout) else {
            continue;
        };
        let mut stop = signal && drain_signals(signals);
        // A message read before the exit report can only be "retire" (or
        // end-of-file): a request comes only after an idle report.
        if message {
            match told(channel) {
                Told::Stop => stop = true,
                Told::Retire => reusable = false,
                Told::Nothing => {}
            }
        }
        let children_left = reap(channel, &mut program, reusable && !stop, &mut idle);
        if stop {
            tear_down(channel, &mut program);
        }
        if program.is_none() && !children_left {
            if idle {
                return;
            }
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
        if !reap(channel, program, false, &mut false) {
            exit();
        }
    }
}

/// Reaps every exited child without blocking; the program's end is
/// reported once no more can be reaped, saying whether the tree is empty
/// then (the shim goes idle, if `may_idle`). Returns whether children remain.
fn reap(
    channel: BorrowedFd<'_>,
    program: &mut Option<i32>,
    may_idle: bool,
    idle: &mut bool,
) -> bool {
    let mut ended = None;
    let left = loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into a local integer.
        let reaped = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG | libc::__WALL) };
        match reaped {
            0 => break true,
            r if r > 0 && *program == Some(r) => {
                *program = None;
                ended = Some(status);
            }
            r if r > 0 => {}
            _ if errno() == libc::EINTR => {}
            _ => break errno() != libc::ECHILD,
        }
    };
    if let Some(status) = ended {
        *idle = may_idle && !left;
        send_plain(channel, &wire::encode(EXITED, status, i32::from(*idle)));
    }
    left
}

fn report(channel: BorrowedFd<'_>, program: &mut Option<i32>, reaped: i32, status: c_int) {
    if *program == Some(reaped) {
        *program = None;
        send_plain(channel, &wire::encode(EXITED, status, 0));
    }
}

/// What the owner said on the socket during a run.
enum Told {
    /// End-of-file (its end closed or shut down), or the socket failed:
    /// blind, the shim tears down rather than hold a tree nobody owns.
    Stop,
    /// The run was signalled: the shim exits once its tree is empty.
    Retire,
    Nothing,
}

fn told(channel: BorrowedFd<'_>) -> Told {
    let mut message: Message = [0; 12];
    match rustix::net::recv(channel, &mut message, RecvFlags::DONTWAIT) {
        Ok((0, _)) => Told::Stop,
        Ok(_) => Told::Retire,
        Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => Told::Nothing,
        Err(_) => Told::Stop,
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
        stop |= STOP_SIGNALS.contains(&(info.ssi_signo as c_int));
    }
}

/// Resets the owner's handlers (they would run the owner's code here),
/// blocks every signal, and reads them all from a non-blocking signalfd. Returns its descriptor (-1 if none could be made:
/// the shim then notices children and stop requests on the socket only).
fn take_signals(handlers_reset: bool) -> RawFd {
    if handlers_reset {
        // The zygote's SIGCHLD has SA_NOCLDWAIT: we reap our own.
        helper_signals::set_disposition(libc::SIGCHLD, libc::SIG_DFL, 0);
    } else {
        helper_signals::default_every_handler();
    }
    // Nothing is ignored (the program would inherit that): every signal is
    // blocked and read instead, job control and SIGPIPE included (only
    // SIGKILL and SIGSTOP cannot be): a member that signals its shim must
    // not free the tree.
    // SAFETY: sigfillset, sigprocmask and signalfd are async-signal-safe
    // syscalls on a set on this stack.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, ptr::null_mut());
        libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK)
    }
}

/// Ignores the signals set in `mask` (bit `n - 1` for signal `n`), as the
/// owner does, so the program inherits them ignored exactly as it would
/// from the owner itself. `was` is the mask set for the last run (0 at
/// first: every disposition is the default): only the changes are made,
/// and a signal the last run ignored goes back to its default. Returns the
/// mask now set.
pub(super) fn ignore_like_owner(mask: u64, was: u64) -> u64 {
    // Ignoring SIGCHLD would have the kernel reap the program for us.
    let mask = mask & !(1 << (libc::SIGCHLD - 1));
    for signal in 1..=64 {
        let bit = 1 << (signal - 1);
        if (mask ^ was) & bit != 0 {
            let handler = if mask & bit != 0 {
                libc::SIG_IGN
            } else {
                libc::SIG_DFL
            };
            helper_signals::set_disposition(signal, handler, 0);
        }
    }
    mask
}

/// The signals this process ignores, as a mask for `ignore_like_owner`.
pub(super) fn ignored_here() -> u64 {
    let mut mask = 0;
    for signal in 1..=libc::SIGRTMAX().min(64) {
        // SAFETY: sigaction only writes the current disposition into `old`.
        let ignored = unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(signal, ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN
        };
        if ignored {
            mask |= 1 << (signal - 1);
        }
    }
    mask
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

/// A message without descriptors.
fn send_plain(channel: BorrowedFd<'_>, message: &Message) {
    let mut control = SendAncillaryBuffer::new(&mut []);
    send_with(channel, message, &mut control);
}

/// The `STARTED` message, with the program's pidfd and ours (if we have one)
/// as `SCM_RIGHTS`.
fn send(
    channel: BorrowedFd<'_>,
    message: &Message,
    program: BorrowedFd<'_>,
    own: Option<BorrowedFd<'_>>,
) {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let both = [program, own.unwrap_or(program)];
    let fds = if own.is_some() { &both[..] } else { &both[..1] };
    control.push(SendAncillaryMessage::ScmRights(fds));
    send_with(channel, message, &mut control);
}

/// Sends one message. A dead owner (EPIPE) hears nothing; the shim goes on
/// to tear down.
fn send_with(
    channel: BorrowedFd<'_>,
    message: &Message,
    control: &mut SendAncillaryBuffer<'_, '_, '_>,
) {
    loop {
        match rustix::net::sendmsg(
            channel,
            &[IoSlice::new(message)],
            control,
            SendFlags::NOSIGNAL,
        ) {
            Err(rustix::io::Errno::INTR) => {}
            _ => return,
        }
    }
}

/// Closes every descriptor but those in `keep` (negative entries ignored).
pub(super) fn close_all_except(keep: &mut [RawFd]) {
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
