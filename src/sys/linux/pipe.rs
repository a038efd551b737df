//! Pipe tuning: a larger kernel buffer on the pipes we drain, so a fast
//! writer fills more per wake-up and the reader makes fewer, larger reads.

use std::os::fd::RawFd;

/// The pipe size we ask for: 1 MiB, the default `/proc/sys/fs/pipe-max-size`.
pub(crate) const PIPE_SIZE: libc::c_int = 1 << 20;

/// Grows the pipe behind `fd` to [`PIPE_SIZE`]. Best effort: an unprivileged
/// user past `pipe-user-pages-soft`, or an old kernel, keeps the default size.
pub(crate) fn enlarge(fd: RawFd) {
    // SAFETY: fcntl(F_SETPIPE_SZ) takes an integer argument and only fails
    // (EBADF, EINVAL, EPERM, EBUSY) without side effects on a bad request.
    unsafe {
        libc::fcntl(fd, libc::F_SETPIPE_SZ, PIPE_SIZE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drained_pipe_grows_to_a_mebibyte() {
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
