//! Pipe tuning: a larger kernel buffer on the pipes we drain, so a fast
//! writer fills more per wake-up and the reader makes fewer, larger reads,
//! where that costs no other program of our user its pipe buffers.

use std::os::fd::RawFd;
use std::sync::OnceLock;

/// The pipe size we ask for: 1 MiB, the default `/proc/sys/fs/pipe-max-size`.
pub(crate) const PIPE_SIZE: libc::c_int = 1 << 20;

/// Grows the pipe behind `fd` to [`PIPE_SIZE`], only where that is harmless.
/// The kernel charges pipe buffers to the user; past
/// `/proc/sys/fs/pipe-user-pages-soft` (64 MiB by default: 64 such pipes) an
/// unprivileged user's every new pipe, in any program, gets 8 KiB. So without
/// `CAP_SYS_RESOURCE`/`CAP_SYS_ADMIN` (which lift that limit), pipes keep the
/// default size unless the soft limit is off. Best effort.
pub(crate) fn enlarge(fd: RawFd) {
    if !enlarging_is_harmless() {
        return;
    }
    // SAFETY: fcntl(F_SETPIPE_SZ) takes an integer argument and only fails
    // (EBADF, EINVAL, EPERM, EBUSY) without side effects on a bad request.
    unsafe {
        libc::fcntl(fd, libc::F_SETPIPE_SZ, PIPE_SIZE);
    }
}

/// Whether growing our pipes cannot starve other pipes of our user.
fn enlarging_is_harmless() -> bool {
    static NO_SOFT_LIMIT: OnceLock<bool> = OnceLock::new();
    let no_soft_limit = *NO_SOFT_LIMIT.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/fs/pipe-user-pages-soft")
            .is_ok_and(|pages| pages.trim() == "0")
    });
    // Capabilities can be dropped at any time: asked on every call.
    no_soft_limit || exempt_from_pipe_limits()
}

/// Whether this thread holds CAP_SYS_RESOURCE or CAP_SYS_ADMIN in its
/// effective set, as the kernel's pipe accounting checks.
fn exempt_from_pipe_limits() -> bool {
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_SYS_RESOURCE: u32 = 24;
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget fills the two-element data array of version 3.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    rc == 0 && data[0].effective & (1 << CAP_SYS_ADMIN | 1 << CAP_SYS_RESOURCE) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drained_pipe_grows_to_a_mebibyte_when_privileged() {
        if !enlarging_is_harmless() {
            eprintln!("SKIP: unprivileged with a pipe-user-pages-soft limit");
            return;
        }
        let mut fds = [0 as RawFd; 2];
        // SAFETY: pipe2 writes two descriptors into a two-element array.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: fds[0] is the pipe's read end, open until closed below.
        let before = unsafe { libc::fcntl(fds[0], libc::F_GETPIPE_SZ) };
        enlarge(fds[0]);
        // SAFETY: as above.
        let after = unsafe { libc::fcntl(fds[0], libc::F_GETPIPE_SZ) };
        // SAFETY: both descriptors are ours and closed once.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        assert!(before < PIPE_SIZE, "default pipe already {before} bytes");
        assert_eq!(after, PIPE_SIZE);
    }
}
