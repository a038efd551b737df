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
