//! The pre-exec step that runs in the child between fork and exec: join the
//! cgroup, start a session, drop privileges, arm the parent-death signal.
//! Only async-signal-safe calls happen here.

use std::io;
use std::os::fd::RawFd;

use crate::command::OsOptions;

/// Everything the child must do before exec, captured by value before fork.
#[derive(Debug, Clone)]
pub(crate) struct PreExec {
    /// `cgroup.procs` of the cgroup to join, opened close-on-exec by the parent.
    pub(crate) join_cgroup: Option<RawFd>,
    pub(crate) setsid: bool,
    /// `Some` when privileges change: the supplementary groups to set (maybe empty).
    pub(crate) groups: Option<Vec<libc::gid_t>>,
    pub(crate) gid: Option<libc::gid_t>,
    pub(crate) uid: Option<libc::uid_t>,
    /// The parent's pid, when the child must die with it.
    pub(crate) parent_death: Option<libc::pid_t>,
}

impl PreExec {
    pub(crate) fn new(join_cgroup: Option<RawFd>, os: &OsOptions) -> PreExec {
        let drops_privileges = os.uid.is_some() || os.gid.is_some() || os.groups.is_some();
        PreExec {
            join_cgroup,
            setsid: os.setsid,
            groups: drops_privileges.then(|| os.groups.clone().unwrap_or_default()),
            gid: os.gid,
            uid: os.uid,
            // SAFETY: getpid(2) takes no arguments and cannot fail.
            parent_death: os.kill_on_parent_death.then(|| unsafe { libc::getpid() }),
        }
    }

    /// Whether a hook is needed at all (without one, std may use posix_spawn).
    pub(crate) fn is_needed(&self) -> bool {
        self.join_cgroup.is_some()
            || self.setsid
            || self.groups.is_some()
            || self.parent_death.is_some()
    }

    /// Installs the hook on `cmd`.
    pub(crate) fn install(self, cmd: &mut tokio::process::Command) {
        if !self.is_needed() {
            return;
        }
        // SAFETY: `run` performs only async-signal-safe syscalls (write, setsid,
        // setgroups, setgid, setuid, prctl, getppid, kill) on data captured
        // before fork, and allocates nothing.
        unsafe {
            cmd.pre_exec(move || self.run());
        }
    }

    fn run(&self) -> io::Result<()> {
        if let Some(fd) = self.join_cgroup {
            // Writing "0" to cgroup.procs moves the calling process.
            // SAFETY: fd is an open descriptor owned by the parent's slot; the
            // buffer is a static one-byte string.
            if unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } != 1 {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: setsid(2) takes no arguments.
        if self.setsid && unsafe { libc::setsid() } < 0 {
            return Err(io::Error::last_os_error());
        }
        if let Some(groups) = &self.groups {
            // SAFETY: the pointer and length describe a Vec that lives in self.
            if unsafe { libc::setgroups(groups.len() as _, groups.as_ptr()) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: setgid/setuid take plain integers. Group first: after setuid
        // we would no longer be allowed to change it.
        if let Some(gid) = self.gid
            && unsafe { libc::setgid(gid) } != 0
        {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above.
        if let Some(uid) = self.uid
            && unsafe { libc::setuid(uid) } != 0
        {
            return Err(io::Error::last_os_error());
        }
        if let Some(parent) = self.parent_death {
            arm_parent_death(parent)?;
        }
        Ok(())
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn arm_parent_death(parent: libc::pid_t) -> io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG, SIGKILL) takes integers only.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // The parent may have died before the signal was armed: check again.
    // SAFETY: getppid/getpid/kill take integers only.
    unsafe {
        if libc::getppid() != parent {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
    Ok(())
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn arm_parent_death(_parent: libc::pid_t) -> io::Result<()> {
    // No equivalent on macOS/BSD: documented no-op.
    Ok(())
}
