//! Signalling cgroup members through pidfds, so a recycled pid is never hit.

use std::{fs, io};

use crate::sys::unix::signal::kill_pid;

/// Opens a pidfd for `pid`, confirms the process is still a member of one of
/// our cgroups, then signals through the pidfd. Falls back to `kill` only on
/// kernels without pidfds (before 5.3). A process already gone is no error;
/// any other failure to pin it (e.g. out of descriptors) is, because a plain
/// `kill` might hit a recycled pid.
pub(crate) fn signal_pid(pid: u32, sig: i32) -> io::Result<()> {
    let Ok(raw_pid) = libc::pid_t::try_from(pid) else {
        return Ok(());
    };
    if raw_pid <= 1 {
        return Ok(());
    }
    // SAFETY: pidfd_open takes a pid and flags; it returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, raw_pid, 0) } as i32;
    if fd < 0 {
        let error = io::Error::last_os_error();
        return match error.raw_os_error() {
            Some(libc::ENOSYS) => {
                kill_pid(pid, sig);
                Ok(())
            }
            Some(libc::ESRCH) => Ok(()),
            _ => Err(error),
        };
    }
    // The pidfd pins the process: if the pid was recycled before we opened it,
    // the new process is not one of ours and its cgroup says so.
    if is_ours(pid) {
        // SAFETY: fd is a pidfd we own; a null siginfo is allowed; flags 0.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd,
                sig,
                std::ptr::null::<u8>(),
                0,
            )
        };
    }
    // SAFETY: fd was returned by pidfd_open above and is closed exactly once.
    unsafe { libc::close(fd) };
    Ok(())
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
        let low = libc::rlimit {
            rlim_cur: 256,
            rlim_max: 256,
        };
        // SAFETY: setrlimit reads the struct above; this process is a
        // throwaway copy of the test binary.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &low) }, 0);
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
