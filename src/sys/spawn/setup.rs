//! The pre-exec step that runs in the child between fork and exec: join the
//! cgroup, start a session, drop privileges, enter the working directory as
//! the new user, arm the parent-death signal. Only async-signal-safe calls
//! happen there; user-database lookups happen in the parent.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;

use crate::command::OsOptions;

/// Everything the child must do before exec, captured by value before fork.
#[derive(Debug, Clone)]
pub(crate) struct PreExec {
    /// `cgroup.procs` of the cgroup to join, opened close-on-exec by the parent.
    pub(crate) join_cgroup: Option<RawFd>,
    pub(crate) setsid: bool,
    /// `Some` when privileges change: the supplementary groups to set (maybe empty).
    pub(crate) groups: Option<Vec<libc::gid_t>>,
    /// With only a user id: that user's primary group, looked up here.
    pub(crate) gid: Option<libc::gid_t>,
    pub(crate) uid: Option<libc::uid_t>,
    /// The parent's pid, when the child must die with it.
    pub(crate) parent_death: Option<libc::pid_t>,
    /// When privileges drop: the working directory (absolute), entered again
    /// as the new user, since std enters it before our hook runs.
    cwd: Option<CString>,
    /// The parent could not prepare the spawn: the hook fails with this errno.
    refuse: Option<i32>,
}

impl PreExec {
    pub(crate) fn new(join_cgroup: Option<RawFd>, os: &OsOptions) -> PreExec {
        let drops_privileges = os.uid.is_some() || os.gid.is_some() || os.groups.is_some();
        let (gid, refuse) = match (os.uid, os.gid) {
            (Some(uid), None) => match primary_gid(uid) {
                Ok(gid) => (Some(gid), None),
                Err(e) => (None, Some(e.raw_os_error().unwrap_or(libc::EINVAL))),
            },
            (_, gid) => (gid, None),
        };
        PreExec {
            join_cgroup,
            setsid: os.setsid,
            groups: drops_privileges.then(|| os.groups.clone().unwrap_or_default()),
            gid,
            uid: os.uid,
            // SAFETY: getpid(2) takes no arguments and cannot fail.
            parent_death: os.kill_on_parent_death.then(|| unsafe { libc::getpid() }),
            cwd: None,
            refuse,
        }
    }

    /// Whether a hook is needed at all (without one, std may use posix_spawn).
    /// On Linux always: std then execs with `execvp`, which runs a file the
    /// kernel cannot execute (no `#!`) with `/bin/sh`, like the clone spawner;
    /// glibc's `posix_spawn` would fail with `ENOEXEC` instead.
    pub(crate) fn is_needed(&self) -> bool {
        cfg!(any(target_os = "linux", target_os = "android"))
            || self.join_cgroup.is_some()
            || self.setsid
            || self.groups.is_some()
            || self.parent_death.is_some()
            || self.refuse.is_some()
    }

    /// Installs the hook on `cmd`.
    pub(crate) fn install(mut self, cmd: &mut tokio::process::Command) {
        if self.groups.is_some()
            && let Some(dir) = cmd.as_std().get_current_dir()
        {
            match std::path::absolute(dir)
                .ok()
                .and_then(|d| CString::new(d.as_os_str().as_bytes()).ok())
            {
                Some(dir) => self.cwd = Some(dir),
                None => self.refuse = self.refuse.or(Some(libc::ENOENT)),
            }
        }
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
        if let Some(errno) = self.refuse {
            return Err(io::Error::from_raw_os_error(errno));
        }
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
        // SAFETY: `dir` is a NUL-terminated string owned by self.
        if let Some(dir) = &self.cwd
            && unsafe { libc::chdir(dir.as_ptr()) } != 0
        {
            return Err(io::Error::last_os_error());
        }
        if let Some(parent) = self.parent_death {
            arm_parent_death(parent)?;
        }
        Ok(())
    }
}

/// The primary group of `uid` from the user database (NSS), for a child
/// given a user id without a group id. Called in the parent, never between
/// fork and exec. A uid without an entry is an `InvalidInput` error.
pub(crate) fn primary_gid(uid: libc::uid_t) -> io::Result<libc::gid_t> {
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        // SAFETY: a zeroed passwd for getpwuid_r to fill; every pointer in it
        // points into `buf`, which outlives its use here.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: all pointers are valid for the sizes given.
        let rc =
            unsafe { libc::getpwuid_r(uid, &mut entry, buf.as_mut_ptr(), buf.len(), &mut found) };
        match rc {
            0 if !found.is_null() => return Ok(entry.pw_gid),
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            libc::EINTR => {}
            // "Not found" is 0 with no result in glibc; other libcs use these.
            0 | libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "uid {uid} has no entry in the user database, so it has no \
                         primary group: set gid() explicitly"
                    ),
                ));
            }
            e => return Err(io::Error::from_raw_os_error(e)),
        }
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
