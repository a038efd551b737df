//! Waiting for a child through its pidfd: the descriptor becomes readable when
//! the child exits, `waitid(P_PIDFD)` reaps it. A handle dropped before the
//! exit leaves the reaping to a background task, so no zombie is left behind.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::OnceLock;

use tokio::io::unix::AsyncFd;

/// A child started by the fast spawner, owned through its pidfd.
#[derive(Debug)]
pub(crate) struct PidfdChild {
    pid: u32,
    /// `None` once reaped.
    pidfd: Option<AsyncFd<OwnedFd>>,
}

impl PidfdChild {
    /// Registers `pidfd` with the current tokio runtime's reactor.
    pub(crate) fn new(pid: u32, pidfd: OwnedFd) -> io::Result<PidfdChild> {
        // Deprecated for raw descriptors that may close early; an `OwnedFd`
        // moved in stays open as long as the `AsyncFd`. Its replacement needs tokio 1.54.
        #[allow(deprecated)]
        let pidfd = AsyncFd::with_interest(pidfd, tokio::io::Interest::READABLE)?;
        Ok(PidfdChild {
            pid,
            pidfd: Some(pidfd),
        })
    }

    pub(crate) fn id(&self) -> u32 {
        self.pid
    }

    /// Waits for the exit and reaps the child. Cancel-safe.
    pub(crate) async fn wait(&mut self) -> io::Result<ExitStatus> {
        let Some(pidfd) = &self.pidfd else {
            return Err(io::Error::other("the child was already reaped"));
        };
        let status = wait_exit(pidfd).await?;
        self.pidfd = None;
        Ok(status)
    }
}

impl Drop for PidfdChild {
    fn drop(&mut self) {
        let Some(pidfd) = self.pidfd.take() else {
            return;
        };
        if matches!(try_reap(pidfd.get_ref()), Ok(Some(_))) {
            return;
        }
        // Still running (its tree is usually being killed right now): reap it
        // in the background. If the runtime is gone, the kernel reparents the
        // zombie to init once this process exits.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = wait_exit(&pidfd).await;
            });
        }
    }
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

async fn wait_exit(pidfd: &AsyncFd<OwnedFd>) -> io::Result<ExitStatus> {
    loop {
        if let Some(status) = try_reap(pidfd.get_ref())? {
            return Ok(status);
        }
        let mut ready = pidfd.readable().await?;
        ready.clear_ready();
    }
}

/// Reaps the child if it has exited.
fn try_reap(pidfd: &OwnedFd) -> io::Result<Option<ExitStatus>> {
    // SAFETY: waitid fills the zeroed siginfo for our own pidfd; WNOHANG
    // returns at once with si_pid 0 while the child runs.
    let info = unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let flags = libc::WEXITED | libc::WNOHANG;
        if libc::waitid(
            libc::P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            &mut info,
            flags,
        ) != 0
        {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                return Ok(None);
            }
            return Err(error);
        }
        info
    };
    // SAFETY: waitid filled a SIGCHLD siginfo (or left it zeroed).
    let (pid, code, status) = unsafe { (info.si_pid(), info.si_code, info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    Ok(Some(wait_status(code, status)))
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
