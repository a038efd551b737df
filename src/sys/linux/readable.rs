//! Waiting in a helper process (the zygote, a shim) until one of a few
//! descriptors is readable: one `poll` over an array on the stack, so no
//! allocation, which a forked helper must not need.

use std::os::fd::RawFd;

/// Waits up to `timeout_ms` (`-1`: for ever) until one of `fds` is readable
/// or hung up; a negative descriptor is skipped (never ready). `Some` says
/// which are ready (none when the time ran out); `None` when a signal
/// interrupted the wait, or `poll` failed.
pub(crate) fn wait_readable<const N: usize>(
    fds: [RawFd; N],
    timeout_ms: libc::c_int,
) -> Option<[bool; N]> {
    let mut polled = fds.map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    // SAFETY: `polled` is an array of `N` pollfd structures on this stack,
    // and `N` is the count passed.
    let ready = unsafe { libc::poll(polled.as_mut_ptr(), N as libc::nfds_t, timeout_ms) };
    (ready >= 0).then(|| polled.map(|fd| fd.revents != 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn says_which_descriptor_is_readable_and_skips_negative_ones() {
        let (read, write) = rustix::pipe::pipe().unwrap();
        let (quiet, _quiet_write) = rustix::pipe::pipe().unwrap();
        let fds = [quiet.as_raw_fd(), -1, read.as_raw_fd()];
        assert_eq!(wait_readable(fds, 0), Some([false, false, false]));
        rustix::io::write(&write, b"x").unwrap();
        assert_eq!(wait_readable(fds, 1000), Some([false, false, true]));
        drop(write);
        let mut byte = [0u8; 1];
        rustix::io::read(&read, &mut byte).unwrap();
        // A hung-up pipe counts as readable: its reader learns of the end.
        assert_eq!(wait_readable(fds, 1000), Some([false, false, true]));
    }
}
