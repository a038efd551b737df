//! The child's side of the clone spawner: what runs between clone and exec,
//! on its own stack in the parent's address space. Raw syscalls only: nothing
//! here allocates, locks, or touches libc state shared with other threads.

use std::ffi::{c_char, c_int, c_void};
use std::os::fd::RawFd;
use std::ptr;

use crate::sys::spawn::setup::{SetupView, Step, check, errno};

/// What the child reads (through the shared address space) and writes back.
#[repr(C)]
pub(super) struct Shared<'a> {
    pub(super) setup: SetupView<'a>,
    /// The paths to try, null-terminated.
    pub(super) candidates: *const *const c_char,
    pub(super) argv: *const *const c_char,
    pub(super) envp: *const *const c_char,
    /// `/bin/sh`, a free slot for the script's path, then `argv[1..]`: how a
    /// file the kernel cannot execute (no `#!`) is run, as `execvp` does.
    pub(super) script_argv: *mut *const c_char,
    pub(super) stdio: [RawFd; 3],
    /// The kernel placed the child in its cgroup at birth.
    pub(super) born_in_cgroup: bool,
    pub(super) failed_step: Step,
    pub(super) errno: c_int,
}

/// The child: runs on its own stack in our address space, until exec.
pub(super) extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Shared` the parent passed to clone; the parent is
    // suspended (CLONE_VFORK) so nothing else touches it meanwhile.
    let shared = unsafe { &mut *arg.cast::<Shared<'_>>() };
    let Err((step, errno)) = prepare_and_exec(shared);
    shared.failed_step = step;
    shared.errno = errno;
    // SAFETY: _exit ends the child without running any of our destructors.
    unsafe { libc::_exit(127) }
}

/// Only returns on failure. Every call below is a plain syscall: nothing
/// allocates, locks, or touches thread-shared libc state. The setup shared
/// with the std spawner (`ChildSetup::apply`) runs between the signal reset
/// and the unblocking.
fn prepare_and_exec(shared: &Shared<'_>) -> Result<std::convert::Infallible, (Step, c_int)> {
    for (target, &fd) in shared.stdio.iter().enumerate() {
        wire(fd, target as RawFd).map_err(|e| (Step::Stdio, e))?;
    }
    reset_signals();
    shared.setup.apply(shared.born_in_cgroup)?;
    unblock_all_signals();
    Err((Step::Exec, exec(shared)))
}

/// Tries every candidate path like glibc's `execvp`: a file the kernel
/// cannot execute (`ENOEXEC`: no `#!`) is run by `/bin/sh`; keep searching
/// past missing files, remember a permission error, stop at any other failure.
fn exec(shared: &Shared<'_>) -> c_int {
    let mut denied = false;
    let mut last = libc::ENOENT;
    for index in 0.. {
        // SAFETY: `candidates` is a null-terminated array the parent keeps
        // alive while suspended.
        let path = unsafe { *shared.candidates.add(index) };
        if path.is_null() {
            break;
        }
        // SAFETY: path, argv and envp are NUL-terminated and live in the
        // parent's suspended frame.
        unsafe { libc::execve(path, shared.argv, shared.envp) };
        last = errno();
        if last == libc::ENOEXEC {
            // SAFETY: `script_argv` has a free slot at index 1 and stays
            // NUL-terminated; the parent is suspended and does not read it.
            unsafe {
                *shared.script_argv.add(1) = path;
                libc::execve(c"/bin/sh".as_ptr(), shared.script_argv, shared.envp);
            }
            last = errno();
        }
        match last {
            libc::EACCES => denied = true,
            libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
            _ => return last,
        }
    }
    if denied { libc::EACCES } else { last }
}

/// Puts `fd` at `target` (0, 1 or 2) without close-on-exec; `-1` leaves it.
fn wire(fd: RawFd, target: RawFd) -> Result<(), c_int> {
    if fd < 0 {
        return Ok(());
    }
    if fd == target {
        // SAFETY: clearing FD_CLOEXEC on an open descriptor.
        return check(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) });
    }
    // SAFETY: dup2 on two descriptor numbers; the target is replaced atomically.
    check(unsafe { libc::dup2(fd, target) })
}

/// Handlers installed by this process must not run in the exec'd program's
/// place: reset every handled signal (and SIGPIPE, which Rust ignores) to
/// the default, as std does for its children. glibc refuses to touch its own
/// signals (SIGCANCEL, SIGSETXID): those are reset with the raw syscall, so
/// no glibc handler can run on the child's side of our address space.
fn reset_signals() {
    for signal in 1..=libc::SIGRTMAX() {
        // SAFETY: sigaction with a zeroed struct and a valid signal number;
        // it only fails for signals that cannot be changed.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, ptr::null(), &mut old) != 0 {
                reset_raw(signal);
                continue;
            }
            let handled = old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN;
            if handled || signal == libc::SIGPIPE {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &default, ptr::null_mut());
            }
        }
    }
}

/// The kernel's signal set size (`_NSIG / 8`).
const KERNEL_SIGSET_SIZE: usize = if cfg!(any(target_arch = "mips", target_arch = "mips64")) {
    16
} else {
    8
};

/// Sets `signal` to SIG_DFL with `rt_sigaction` itself. An all-zero kernel
/// `struct sigaction` is SIG_DFL, no flags, empty mask on every layout; 32
/// bytes cover the largest one.
fn reset_raw(signal: c_int) {
    let default = [0u64; 4];
    // SAFETY: rt_sigaction reads a kernel sigaction from `default` and
    // writes nothing (no old action asked); a refused signal just fails.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            signal,
            default.as_ptr(),
            ptr::null_mut::<c_void>(),
            KERNEL_SIGSET_SIZE,
        );
    }
}

fn unblock_all_signals() {
    // SAFETY: an empty set on the stack; sigprocmask only changes our mask.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, ptr::null_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The raw handler of `signal` (the first word of the kernel's struct on
    /// the architectures tested here).
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn raw_handler(signal: c_int) -> u64 {
        let mut old = [0u64; 4];
        // SAFETY: rt_sigaction only writes the old action into `old`.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                signal,
                ptr::null::<c_void>(),
                old.as_mut_ptr(),
                KERNEL_SIGSET_SIZE,
            );
        }
        old[0]
    }

    #[test]
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn glibc_internal_signals_are_reset_before_exec() {
        extern "C" fn handler(_: c_int) {}
        // SAFETY: the forked child makes raw syscalls only and leaves with
        // _exit; the parent reaps it by pid.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", io_error());
        if pid == 0 {
            let mut code = 0;
            for signal in [32, 33] {
                // A non-default handler, installed past glibc's refusal (never delivered).
                let act = [handler as extern "C" fn(c_int) as usize as u64, 0, 0, 0];
                // SAFETY: rt_sigaction reads `act`; no old action is asked for.
                unsafe {
                    libc::syscall(
                        libc::SYS_rt_sigaction,
                        signal,
                        act.as_ptr(),
                        ptr::null_mut::<c_void>(),
                        KERNEL_SIGSET_SIZE,
                    );
                }
                if raw_handler(signal) == 0 {
                    code = 2; // the set-up did not take
                }
            }
            reset_signals();
            for signal in [32, 33] {
                if code == 0 && raw_handler(signal) != 0 {
                    code = 1;
                }
            }
            // SAFETY: ends the forked child without running destructors.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: reaping our own child by pid.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status), "status {status:#x}");
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "1: a handler on signal 32/33 survived reset_signals; 2: set-up failed"
        );
    }

    fn io_error() -> std::io::Error {
        std::io::Error::last_os_error()
    }
}
