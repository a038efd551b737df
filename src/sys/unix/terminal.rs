//! `Command::foreground`: hands our controlling terminal to a run's process
//! group while it runs (`tcsetpgrp`), and takes it back when the guard goes.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::signal::{group_signal, own_pgid};

/// The terminal, given to a run's group; dropping it gives it back to ours.
#[derive(Debug)]
pub(crate) struct Foreground {
    tty: OwnedFd,
    ours: libc::pid_t,
}

impl Foreground {
    /// Gives our controlling terminal to `pid`'s process group, when we have
    /// one and are its foreground group, and `pid` leads another group.
    /// `None` when there is nothing to give (no terminal, we are in the
    /// background, or the child shares our group and so the terminal).
    pub(crate) fn give(pid: u32) -> Option<Foreground> {
        let pid = libc::pid_t::try_from(pid).ok()?;
        // SAFETY: getpgid takes an integer.
        let pgid = unsafe { libc::getpgid(pid) };
        let ours = own_pgid();
        if pgid <= 1 || pgid == ours {
            return None;
        }
        // SAFETY: open with a static path and flags.
        let fd = unsafe { libc::open(c"/dev/tty".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` was just opened and is owned by nobody else.
        let tty = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: tcgetpgrp on our open terminal descriptor.
        if unsafe { libc::tcgetpgrp(tty.as_raw_fd()) } != ours {
            return None;
        }
        if !hand_over(&tty, pgid) {
            return None;
        }
        // A child that touched the terminal before it was its own was stopped
        // by SIGTTIN or SIGTTOU: let it go on now that it may.
        group_signal(pgid, libc::SIGCONT);
        Some(Foreground { tty, ours })
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        hand_over(&self.tty, self.ours);
    }
}

/// `tcsetpgrp` with SIGTTOU blocked in this thread: a background group that
/// sets the terminal's group is otherwise stopped for it.
fn hand_over(tty: &OwnedFd, pgid: libc::pid_t) -> bool {
    // SAFETY: plain sigset manipulation on stack values; the old mask is
    // restored before returning.
    unsafe {
        let mut block: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut block);
        libc::sigaddset(&mut block, libc::SIGTTOU);
        libc::pthread_sigmask(libc::SIG_BLOCK, &block, &mut old);
        let done = libc::tcsetpgrp(tty.as_raw_fd(), pgid) == 0;
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        done
    }
}
