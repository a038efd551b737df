//! Waiting for a child through its pidfd: the descriptor becomes readable when
//! the child exits, `waitid(P_PIDFD)` reaps it. A handle dropped before the
//! exit hands the pidfd to the reaper thread, so no zombie is left behind.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::OnceLock;

use tokio::io::unix::AsyncFd;

/// A child started by the clone spawner, owned through its pidfd.
#[derive(Debug)]
pub(crate) struct PidfdChild {
    pid: u32,
    /// `None` once reaped.
    pidfd: Option<Pidfd>,
}

/// The pidfd, registered with a runtime's reactor only while someone waits:
/// the handle may outlive that runtime and be waited on from another.
#[derive(Debug)]
enum Pidfd {
    Plain(OwnedFd),
    Registered(AsyncFd<OwnedFd>),
}

impl Pidfd {
    fn fd(&self) -> &OwnedFd {
        match self {
            Pidfd::Plain(fd) => fd,
            Pidfd::Registered(fd) => fd.get_ref(),
        }
    }

    fn into_fd(self) -> OwnedFd {
        match self {
            Pidfd::Plain(fd) => fd,
            Pidfd::Registered(fd) => fd.into_inner(),
        }
    }
}

impl PidfdChild {
    pub(crate) fn new(pid: u32, pidfd: OwnedFd) -> PidfdChild {
        PidfdChild {
            pid,
            pidfd: Some(Pidfd::Plain(pidfd)),
        }
    }

    pub(crate) fn id(&self) -> u32 {
        self.pid
    }

    /// Waits for the exit and reaps the child, on whichever runtime polls
    /// this. Cancel-safe.
    pub(crate) async fn wait(&mut self) -> io::Result<ExitStatus> {
        let mut moved = false;
        loop {
            let Some(pidfd) = &mut self.pidfd else {
                return Err(io::Error::other("the child was already reaped"));
            };
            if let Some(status) = try_reap(pidfd.fd())? {
                self.pidfd = None;
                return Ok(status);
            }
            if let Pidfd::Registered(fd) = pidfd {
                match fd.readable().await {
                    Ok(mut ready) => {
                        ready.clear_ready();
                        continue;
                    }
                    // The runtime it was registered with is shutting down:
                    // register again with the one polling us, once.
                    Err(e) if moved => return Err(e),
                    Err(_) => moved = true,
                }
            }
            let Some(plain) = self.pidfd.take().map(Pidfd::into_fd) else {
                continue;
            };
            // Deprecated for raw descriptors that may close early; an `OwnedFd`
            // moved in stays open as long as the `AsyncFd`. Its replacement
            // needs tokio 1.54. A runtime without an IO driver panics here
            // (the spawn checked the runtime it ran on, not this one).
            #[allow(deprecated)]
            let registered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                AsyncFd::try_with_interest(plain, tokio::io::Interest::READABLE)
            }));
            match registered {
                Ok(Ok(fd)) => self.pidfd = Some(Pidfd::Registered(fd)),
                Ok(Err(refused)) => {
                    // A runtime shutting down refuses; keep the pidfd.
                    let (plain, error) = refused.into_parts();
                    self.pidfd = Some(Pidfd::Plain(plain));
                    return Err(error);
                }
                Err(_) => {
                    // The pidfd went down with the panic. The child is not
                    // reaped, so its pid is still its own: pin it again.
                    self.pidfd = Some(Pidfd::Plain(reopen(self.pid)?));
                    return Err(crate::sys::spawn::no_io_driver());
                }
            }
        }
    }
}

impl Drop for PidfdChild {
    fn drop(&mut self) {
        if let Some(pidfd) = self.pidfd.take() {
            // Its tree is usually being killed right now; the reaper thread
            // reaps it whatever runtime is (or is not) still running.
            super::reaper::reap_orphan(pidfd.into_fd());
        }
    }
}

/// A new pidfd on our own unreaped child (its pid cannot be recycled yet).
fn reopen(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
    Ok(rustix::process::pidfd_open(
        pid,
        rustix::process::PidfdFlags::empty(),
    )?)
}

/// Whether this kernel can wait on pidfds (5.4+): `waitid(P_PIDFD)` on a
/// descriptor number that is not open answers `EBADF` there and `EINVAL` on
/// older kernels, where a pidfd is not pollable either. (A negative number
/// would be `EINVAL` everywhere.)
pub(crate) fn supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        // SAFETY: waitid with an invalid descriptor only reports an error.
        let r = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PIDFD,
                i32::MAX as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG,
            )
        };
        r != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EBADF)
    })
}

/// Reaps the child if it has exited.
pub(crate) fn try_reap(pidfd: &OwnedFd) -> io::Result<Option<ExitStatus>> {
    use rustix::process::{WaitId, WaitIdOptions};
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG;
    let info = match rustix::process::waitid(WaitId::PidFd(pidfd.as_fd()), options) {
        Ok(Some(info)) => info,
        // Still running.
        Ok(None) | Err(rustix::io::Errno::INTR) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let status = info
        .exit_status()
        .or(info.terminating_signal())
        .unwrap_or(0);
    Ok(Some(wait_status(info.raw_code(), status)))
}

/// Rebuilds the `wait(2)` status word std's `ExitStatus` is made from.
fn wait_status(code: i32, status: i32) -> ExitStatus {
    let raw = match code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_DUMPED => (status & 0x7f) | 0x80,
        _ => status & 0x7f,
    };
    ExitStatus::from_raw(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_matches_the_kernel_version() {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut numbers = release.split(|c: char| !c.is_ascii_digit());
        let major: u32 = numbers.next().and_then(|n| n.parse().ok()).unwrap();
        let minor: u32 = numbers.next().and_then(|n| n.parse().ok()).unwrap();
        assert_eq!(supported(), (major, minor) >= (5, 4), "kernel {release}");
    }

    #[test]
    fn wait_status_words_read_back_as_std_sees_them() {
        let exited = wait_status(libc::CLD_EXITED, 3);
        assert_eq!((exited.code(), exited.signal()), (Some(3), None));
        let killed = wait_status(libc::CLD_KILLED, libc::SIGKILL);
        assert_eq!(
            (killed.code(), killed.signal()),
            (None, Some(libc::SIGKILL))
        );
        let dumped = wait_status(libc::CLD_DUMPED, libc::SIGABRT);
        assert_eq!(dumped.signal(), Some(libc::SIGABRT));
        assert!(dumped.core_dumped());
    }
}
