//! `clone3(CLONE_INTO_CGROUP)` for the fast spawner: the child is born in its
//! cgroup, so no migration (and its global lock) happens on the spawn path.
//! The raw syscall needs a few lines of assembly; x86_64 only, else `clone`.

use std::ffi::c_int;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use super::child::Shared;
use super::fds::Stack;

/// The kernel refused clone3 or `CLONE_INTO_CGROUP` once: do not ask again.
static REFUSED: AtomicBool = AtomicBool::new(false);

/// Whether to try clone3 at all.
pub(super) fn usable() -> bool {
    cfg!(target_arch = "x86_64") && !REFUSED.load(Ordering::Relaxed)
}

/// Remembers that this kernel (or a seccomp filter) refuses clone3.
pub(super) fn refused() {
    if !REFUSED.swap(true, Ordering::Relaxed) {
        crate::trace::trace_event!(
            debug,
            "spawner_fallback",
            reason = %"clone3(CLONE_INTO_CGROUP) unavailable; children join their cgroup after clone",
        );
    }
}

/// Whether `error` means "no clone3 / no CLONE_INTO_CGROUP here" (ENOSYS
/// before 5.3 or under seccomp, E2BIG/EINVAL before 5.7).
pub(super) fn is_refusal(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL | libc::EPERM)
    )
}

/// `struct clone_args` of the kernel (the fields up to `cgroup`, 5.7+).
#[cfg(target_arch = "x86_64")]
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

#[cfg(target_arch = "x86_64")]
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Starts the child on `stack`, born in the cgroup open at `cgroup_dir`.
/// Returns its pid; the pidfd lands in `pidfd`.
#[cfg(target_arch = "x86_64")]
pub(super) fn spawn(
    shared: &mut Shared<'_>,
    stack: &Stack,
    cgroup_dir: RawFd,
    pidfd: &mut c_int,
) -> io::Result<libc::pid_t> {
    let (base, size) = stack.region();
    let args = CloneArgs {
        flags: (libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD) as u64 | CLONE_INTO_CGROUP,
        pidfd: std::ptr::from_mut(pidfd) as u64,
        exit_signal: libc::SIGCHLD as u64,
        stack: base as u64,
        stack_size: size as u64,
        cgroup: cgroup_dir as u64,
        ..CloneArgs::default()
    };
    let entry: extern "C" fn(*mut std::ffi::c_void) -> c_int = super::child::child_main;
    let ret: isize;
    // SAFETY: clone3 with CLONE_VM | CLONE_VFORK suspends this thread until the
    // child execs or exits. The kernel starts the child with its stack pointer
    // at the top of `stack`; there it calls `child_main(shared)`, which never
    // returns (it execs or _exits), so the child never runs the code after the
    // syscall on our stack. The parent's path only reads rax. rcx and r11 are
    // clobbered by `syscall`; `shared`, `args` and `stack` outlive the call.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r12",
            "call r13",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 as isize => ret,
            in("rdi") std::ptr::from_ref(&args),
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") std::ptr::from_mut(shared),
            in("r13") entry,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    if ret < 0 {
        return Err(io::Error::from_raw_os_error(-ret as i32));
    }
    Ok(ret as libc::pid_t)
}

/// Without the assembly for this architecture, always refuse (see `usable`).
#[cfg(not(target_arch = "x86_64"))]
pub(super) fn spawn(
    _shared: &mut Shared<'_>,
    _stack: &Stack,
    _cgroup_dir: RawFd,
    _pidfd: &mut c_int,
) -> io::Result<libc::pid_t> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}
