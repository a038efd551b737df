//! The zygote's life after fork: a small copy of its owner that keeps spare
//! shims forked ahead, so a spawn costs neither a fork of the owner (whose
//! memory may have grown to gigabytes since) nor one of the zygote; a spare
//! serves runs until one is touched. Syscalls only, no allocation.

use std::ffi::c_char;
use std::os::fd::{AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::ptr;

use rustix::io::Errno;
use rustix::net::RecvFlags;
use rustix::process::{Pid, PidfdFlags};

use super::request::{self, MAX_POINTERS, MAX_REQUEST};
use super::shim;
use crate::sys::linux::readable::wait_readable;
use crate::sys::linux::{fd_message, helper_signals};
use crate::sys::spawn::linux::{LaunchFailure, LaunchPlan, Launched, Stack, launch};
use crate::sys::spawn::setup::Step;

/// Memory the zygote works in, made by the owner before fork.
pub(super) struct Scratch {
    /// One request (8-byte aligned: `u64` words).
    pub(super) message: Vec<u64>,
    /// The pointer arrays a request decodes into.
    pub(super) pointers: Vec<*const c_char>,
    /// The stack each shim clones its program on.
    pub(super) stack: Stack,
}

impl Scratch {
    pub(super) fn new() -> std::io::Result<Scratch> {
        Ok(Scratch {
            message: vec![0; MAX_REQUEST.div_ceil(8) + 1],
            pointers: vec![ptr::null(); MAX_POINTERS],
            stack: Stack::new()?,
        })
    }
}

/// The descriptors of one request: the shim's socket, the program's stdout
/// and stderr, and its stdin when it has one.
const FDS: usize = 4;

/// The zygote's whole life: keep `SPARES` spare shims forked and ready
/// (signals taken, subreapers already), waiting for requests on the shared
/// socket; once one takes a request and has started its program, fork its
/// replacement. No fork is on a spawn's path. Never returns.
pub(super) fn run(scratch: &mut Scratch, channel: RawFd) -> ! {
    detach(channel);
    let Ok((taken, notify)) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC) else {
        exit(1);
    };
    // Each slot: empty, or a spare (its pidfd, when one could be opened).
    let mut slots: [Option<Option<OwnedFd>>; SPARES] = [None, None];
    loop {
        for (index, slot) in slots.iter_mut().enumerate() {
            if slot.is_some() {
                continue;
            }
            // SAFETY: the child runs only `spare`, which makes
            // async-signal-safe syscalls on this process's memory and never
            // returns.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                drop(taken);
                spare(scratch, channel, notify, index as u8);
            }
            if pid < 0 {
                // Out of processes for now: requests wait in the socket.
                nap();
                break;
            }
            let pidfd = Pid::from_raw(pid)
                .and_then(|p| rustix::process::pidfd_open(p, PidfdFlags::empty()).ok());
            *slot = Some(pidfd);
        }
        let watched = |slot: &Option<Option<OwnedFd>>| match slot {
            Some(Some(pidfd)) => pidfd.as_raw_fd(),
            _ => -1,
        };
        // EINTR: wait again.
        let Some([taken_ready, spares_ended @ ..]) = wait_readable(
            [taken.as_raw_fd(), watched(&slots[0]), watched(&slots[1])],
            -1,
        ) else {
            continue;
        };
        // The pipe first: a spare says it was taken before it can end.
        if taken_ready {
            let mut bytes = [0u8; 16];
            if let Ok(n) = rustix::io::read(&taken, &mut bytes) {
                for &byte in &bytes[..n] {
                    match byte {
                        OWNER_GONE => exit(0),
                        index => {
                            if let Some(slot) = slots.get_mut(usize::from(index)) {
                                *slot = None;
                            }
                        }
                    }
                }
            }
        }
        // A spare that ended without taking a request (killed).
        for (slot, ended) in slots.iter_mut().zip(spares_ended) {
            if ended {
                *slot = None;
            }
        }
    }
}

/// How many spare shims wait at once: two starts can be on their way.
const SPARES: usize = 2;

/// What a spare writes to the zygote: its slot (it took a request), or that
/// the owner is gone.
const OWNER_GONE: u8 = b'e';

/// A spare shim: ready before its request arrives, then a shim for good,
/// serving one run after another while each ends untouched.
fn spare(scratch: &mut Scratch, channel: RawFd, notify: OwnedFd, slot: u8) -> ! {
    let prelude = shim::prelude(true);
    // SAFETY: the socket stays open until the request is taken.
    let requests = unsafe { BorrowedFd::borrow_raw(channel) };
    let Scratch {
        message,
        pointers,
        stack,
    } = scratch;
    let bytes = message.len() * 8;
    // SAFETY: the vector's `u64`s are plain bytes to write into.
    let message =
        unsafe { std::slice::from_raw_parts_mut(message.as_mut_ptr().cast::<u8>(), bytes) };
    let mut fds: [Option<OwnedFd>; FDS] = [None, None, None, None];
    let received = loop {
        // A short or oversized request is dropped below: its shim socket
        // closes, which the owner reads as a failure.
        match fd_message::receive(requests, message, &mut fds, RecvFlags::empty()) {
            Ok(0) | Err(Errno::CONNRESET) => {
                let _ = rustix::io::write(&notify, &[OWNER_GONE]);
                exit(0);
            }
            Ok(n) => break n,
            Err(Errno::INTR | Errno::NOMEM | Errno::NOBUFS) => nap(),
            Err(_) => {
                let _ = rustix::io::write(&notify, &[OWNER_GONE]);
                exit(1);
            }
        }
    };
    // SAFETY: closing our copy of the request socket, which we no longer
    // use: the next spare reads the requests.
    unsafe { libc::close(channel) };
    let [Some(shim_end), Some(stdout), Some(stderr), stdin] = fds else {
        exit(0); // not a request of ours: its descriptors close with us
    };
    let channel = shim_end.as_raw_fd();
    let stdio = raw_stdio(stdin, stdout, stderr);
    // The signals ignored for the last run (none yet: all are at default).
    let mut ignored = 0;
    let idle = shim::serve(
        prelude,
        channel,
        |me| {
            launch_request(
                pointers,
                stack,
                &message[..received],
                stdio,
                me,
                &mut ignored,
            )
        },
        Some((notify, slot)),
        true,
    );
    loop {
        // Another run: its stdout, stderr and stdin when it has one.
        let mut fds: [Option<OwnedFd>; 3] = [None, None, None];
        let received = shim::next_request(idle, channel, message, &mut fds);
        let [Some(stdout), Some(stderr), stdin] = fds else {
            exit(0);
        };
        let stdio = raw_stdio(stdin, stdout, stderr);
        let request = &message[..received];
        let run = |me| launch_request(pointers, stack, request, stdio, me, &mut ignored);
        shim::serve_again(idle, channel, run, None, None, true);
    }
}

/// A run's stdio as raw descriptors: the shim closes them once the program
/// has started (`close_all_except`), so nothing may close them again.
fn raw_stdio(stdin: Option<OwnedFd>, stdout: OwnedFd, stderr: OwnedFd) -> [RawFd; 3] {
    [
        stdin.map_or(-1, IntoRawFd::into_raw_fd),
        stdout.into_raw_fd(),
        stderr.into_raw_fd(),
    ]
}

/// Decodes a request and launches its program (given the shim's pid).
fn launch_request(
    pointers: &mut [*const c_char],
    stack: &Stack,
    message: &[u8],
    stdio: [RawFd; 3],
    me: libc::pid_t,
    ignored: &mut u64,
) -> Result<Launched, LaunchFailure> {
    let Some(decoded) = request::decode(message, pointers, me) else {
        return Err(LaunchFailure::Clone(libc::EINVAL));
    };
    *ignored = shim::ignore_like_owner(decoded.ignored, *ignored);
    if let Some(dir) = decoded.owner_cwd {
        // SAFETY: chdir reads a NUL-terminated string in the message.
        if unsafe { libc::chdir(dir.as_ptr()) } != 0 {
            return Err(LaunchFailure::Child(Step::Chdir, errno()));
        }
    }
    launch(&LaunchPlan {
        argv: decoded.argv,
        envp: decoded.envp,
        candidates: decoded.candidates,
        script_argv: decoded.script_argv,
        stdio,
        setup: decoded.setup,
        stack,
    })
}

fn nap() {
    let pause = libc::timespec {
        tv_sec: 0,
        tv_nsec: 10_000_000,
    };
    // SAFETY: nanosleep reads a timespec on this stack.
    unsafe { libc::nanosleep(&pause, ptr::null_mut()) };
}

/// Out of the owner's process group and its signal handlers: terminal
/// signals aimed at the owner miss the zygote; shims are reaped by the
/// kernel (SIGCHLD ignored); every descriptor but the socket closes.
fn detach(keep: RawFd) {
    helper_signals::default_every_handler();
    // Shims are reaped by the kernel; nothing is ignored (shims and
    // programs would inherit it): terminal signals are blocked instead.
    helper_signals::set_disposition(libc::SIGCHLD, libc::SIG_DFL, libc::SA_NOCLDWAIT);
    helper_signals::block_only(&helper_signals::TERMINAL_SIGNALS);
    // SAFETY: setpgid takes integers only.
    unsafe { libc::setpgid(0, 0) };
    let _ = rustix::thread::set_name(c"pk-zygote");
    let _ = rustix::process::chdir(c"/");
    shim::close_all_except(&mut [keep]);
    // Descriptors 0-2 stay taken, so a request's descriptors arrive above
    // them and wiring the program's stdio never overwrites one of its sources.
    for _ in 0..3 {
        // SAFETY: open reads a NUL-terminated literal; the descriptor is kept.
        unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
    }
}

fn errno() -> libc::c_int {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn exit(code: i32) -> ! {
    // SAFETY: _exit ends this process without running the owner's atexit hooks.
    unsafe { libc::_exit(code) }
}
