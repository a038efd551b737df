//! File operations on cgroup directories shared by the root, the sweep and the
//! per-cgroup operations: open, lock, write, remove a tree.

use std::fs;
use std::io::{self, ErrorKind, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// `cgroup.procs` of `dir`, opened for writing and close-on-exec.
pub(crate) fn open_procs(dir: &Path) -> io::Result<OwnedFd> {
    let file = fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(dir.join("cgroup.procs"))?;
    Ok(OwnedFd::from(file))
}

/// A cgroup directory, open read-only and close-on-exec.
pub(crate) fn open_dir(dir: &Path) -> io::Result<OwnedFd> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)?;
    Ok(OwnedFd::from(file))
}

/// A non-blocking exclusive `flock`: `Ok(false)` while someone else holds it.
pub(crate) fn try_lock(fd: &OwnedFd) -> io::Result<bool> {
    loop {
        // SAFETY: flock on a descriptor we own; it touches no memory.
        if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}

/// Writes `value` to an existing interface file.
pub(crate) fn write_file(path: &Path, value: &str) -> io::Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all(value.as_bytes())
}

/// Whether a cgroup file failed because its cgroup was just removed (a
/// finished run's cgroup goes away on the reaper thread at any moment):
/// `ENOENT` once it is gone, `ENODEV` while the kernel is removing it.
pub(crate) fn vanished(error: &io::Error) -> bool {
    error.kind() == ErrorKind::NotFound || error.raw_os_error() == Some(libc::ENODEV)
}

/// Removes `dir` and every cgroup below it, deepest first. Fails with `EBUSY`
/// while any of them still holds a process.
pub(crate) fn remove_tree(dir: &Path) -> io::Result<()> {
    // Most cgroups we remove are leaves: one rmdir, no directory listing.
    match fs::remove_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_tree(&entry.path())?;
        }
    }
    match fs::remove_dir(dir) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}
