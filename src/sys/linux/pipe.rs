//! Pipe tuning: a larger kernel buffer on the pipes we drain, so a fast
//! writer fills more per wake-up and the reader makes fewer, larger reads,
//! where that costs no other program of our user its pipe buffers.

use std::os::fd::AsFd;
use std::sync::OnceLock;

/// The pipe size we ask for: 1 MiB, the default `/proc/sys/fs/pipe-max-size`.
pub(crate) const PIPE_SIZE: libc::c_int = 1 << 20;

/// Grows the pipe behind `fd` to [`PIPE_SIZE`], only where that is harmless.
/// The kernel charges pipe buffers to the user; past
/// `/proc/sys/fs/pipe-user-pages-soft` (64 MiB by default: 64 such pipes) an
/// unprivileged user's every new pipe, in any program, gets 8 KiB. So without
/// `CAP_SYS_RESOURCE`/`CAP_SYS_ADMIN` (which lift that limit), pipes keep the
/// default size unless the soft limit is off. Best effort.
pub(crate) fn enlarge(fd: impl AsFd) {
    if !enlarging_is_harmless() {
        return;
    }
    // Fails without side effects on a bad request.
    let _ = rustix::pipe::fcntl_setpipe_size(fd, PIPE_SIZE as usize);
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
    use rustix::thread::CapabilitySet;
    rustix::thread::capabilities(None).is_ok_and(|caps| {
        caps.effective
            .intersects(CapabilitySet::SYS_ADMIN | CapabilitySet::SYS_RESOURCE)
    })
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
        let (read, _write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        let before = rustix::pipe::fcntl_getpipe_size(&read).unwrap() as libc::c_int;
        enlarge(&read);
        let after = rustix::pipe::fcntl_getpipe_size(&read).unwrap() as libc::c_int;
        assert!(before < PIPE_SIZE, "default pipe already {before} bytes");
        assert_eq!(after, PIPE_SIZE);
    }
}
