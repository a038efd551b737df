//! Signalling through pidfds, so a recycled pid is never hit: cgroup members
//! here, and the one raw `pidfd_send_signal` every caller shares.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::{fs, io};

use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags};

use crate::sys::unix::signal::kill_pid;

/// `pidfd_send_signal` flag (Linux 6.9): signal the pidfd's process group.
pub(crate) const PIDFD_SIGNAL_PROCESS_GROUP: libc::c_uint = 1 << 2;

/// Opens a pidfd for `pid`, confirms the process is still a member of one of
/// our cgroups, then signals through the pidfd. Falls back to `kill` only on
/// kernels without pidfds (before 5.3). A process already gone is no error;
/// any other failure to pin it (e.g. out of descriptors) is, because a plain
/// `kill` might hit a recycled pid.
pub(crate) fn signal_pid(pid: u32, sig: i32) -> io::Result<()> {
    let Ok(raw_pid) = libc::pid_t::try_from(pid) else {
        return Ok(());
    };
    let Some(target) = Pid::from_raw(raw_pid).filter(|_| raw_pid > 1) else {
        return Ok(());
    };
    let fd = match rustix::process::pidfd_open(target, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOSYS) => {
            kill_pid(pid, sig);
            return Ok(());
        }
        Err(Errno::SRCH) => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    // The pidfd pins the process: if the pid was recycled before we opened it,
    // the new process is not one of ours and its cgroup says so.
    if is_ours(pid) {
        let _ = send_signal(fd.as_fd(), sig, 0);
    }
    Ok(())
}

/// `pidfd_send_signal(pidfd, sig, NULL, flags)`. Raw because rustix's wrapper
/// takes neither flags (the process-group one) nor signal 0 nor unnamed signals.
/// Async-signal-safe: the guardian calls it after fork.
pub(crate) fn send_signal(pidfd: BorrowedFd<'_>, sig: i32, flags: libc::c_uint) -> io::Result<()> {
    // SAFETY: a live pidfd (borrowed), a null siginfo (allowed), plain flags;
    // the syscall touches no memory of ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            flags,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn is_ours(pid: u32) -> bool {
    let Some(root) = super::cgroup::existing_root() else {
        return false;
    };
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return false;
    };
    let Some(rel) = super::cgroup::own_cgroup(&text) else {
        return false;
    };
    let name = root.path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    !name.is_empty() && rel.split('/').any(|part| part == name)
}

#[cfg(test)]
mod tests {
    use std::os::fd::OwnedFd;

    use super::*;

    const INNER: &str = "PK_PIDFD_EMFILE_INNER";

    /// Out of descriptors, a pid cannot be pinned: it must not be signalled
    /// by number either (it may be a recycled pid, here: not ours at all).
    /// Runs in a re-executed copy of this binary, which it starves of fds.
    #[test]
    fn out_of_descriptors_a_pid_is_not_signalled_unpinned() {
        if std::env::var_os(INNER).is_none() {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "sys::linux::pidfd::tests::out_of_descriptors_a_pid_is_not_signalled_unpinned",
                ])
                .args(["--nocapture", "--test-threads=1"])
                .env(INNER, "1")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success() && text.contains("1 passed"), "{text}");
            return;
        }
        // A process that is not in any of our cgroups.
        let mut bystander = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        // This process is a throwaway copy of the test binary.
        let low = rustix::process::Rlimit {
            current: Some(256),
            maximum: Some(256),
        };
        rustix::process::setrlimit(rustix::process::Resource::Nofile, low).unwrap();
        let mut filler: Vec<OwnedFd> = Vec::new();
        while let Ok(file) = std::fs::File::open("/dev/null") {
            filler.push(file.into());
        }
        let result = signal_pid(bystander.id(), libc::SIGKILL);
        drop(filler);
        let survived = bystander.try_wait().unwrap().is_none();
        let _ = bystander.kill();
        let _ = bystander.wait();
        let outcome = format!("{result:?}");
        assert!(
            survived,
            "a pid we could not pin was killed anyway ({outcome})"
        );
        assert!(outcome.contains("Err"), "{outcome}");
    }
}
