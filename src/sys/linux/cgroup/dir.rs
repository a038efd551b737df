//! One cgroup below the per-process root: create, join, kill, freeze, list
//! members, read and write its interface files, each refused on any cgroup
//! that is not strictly below our root.

use std::fs;
use std::io::{self, ErrorKind, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use super::files::{vanished, write_file};
use super::root::{CgroupRoot, existing_root};

/// One cgroup directory created by this process, strictly below its root.
#[derive(Debug, Clone)]
pub(crate) struct Cgroup {
    path: PathBuf,
}

impl Cgroup {
    pub(crate) fn create(path: PathBuf) -> io::Result<Cgroup> {
        fs::create_dir(&path)?;
        Ok(Cgroup { path })
    }

    /// A handle on an existing cgroup directory (does not create it).
    pub(crate) fn at(path: PathBuf) -> Cgroup {
        Cgroup { path }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// A nested cgroup (one per run in a shared group).
    pub(crate) fn create_nested(&self, name: &str) -> io::Result<Cgroup> {
        Cgroup::create(self.path.join(name))
    }

    /// The cgroup's directory, open for `clone3(CLONE_INTO_CGROUP)`.
    pub(crate) fn dir_fd(&self) -> io::Result<OwnedFd> {
        let dir = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(&self.path)?;
        Ok(OwnedFd::from(dir))
    }

    /// `cgroup.events`, open for reading (whether the cgroup is populated).
    pub(crate) fn open_events(&self) -> io::Result<fs::File> {
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(self.path.join("cgroup.events"))
    }

    /// Reads one interface file through the cgroup's open directory (no
    /// walk of the whole path) into `buf`, with one read: the short files
    /// the pool checks on every reuse fit. Returns the text read.
    pub(crate) fn read_in<'b>(
        dir: BorrowedFd<'_>,
        file: &str,
        buf: &'b mut [u8],
    ) -> io::Result<&'b [u8]> {
        let file = open_in(dir, file, rustix::fs::OFlags::RDONLY)?;
        let n = rustix::io::read(&file, &mut *buf)?;
        Ok(&buf[..n])
    }

    /// `cpu.stat`, opened through the cgroup's open directory and kept open,
    /// so a reuse reads the counters with one `pread` instead of an open.
    pub(crate) fn open_cpu_stat(dir: BorrowedFd<'_>) -> io::Result<fs::File> {
        Ok(open_in(dir, "cpu.stat", rustix::fs::OFlags::RDONLY)?.into())
    }

    /// Moves an existing process into this cgroup.
    #[cfg_attr(not(feature = "process-control"), allow(dead_code))]
    pub(crate) fn add_pid(&self, pid: u32) -> io::Result<()> {
        write_file(&self.path.join("cgroup.procs"), &pid.to_string())
    }

    /// Kills every process in this cgroup and below, in one kernel operation
    /// where `cgroup.kill` exists (5.14+), else freeze, SIGKILL each, thaw.
    pub(crate) fn kill(&self) -> io::Result<()> {
        self.assert_owned()?;
        match write_file(&self.path.join("cgroup.kill"), "1") {
            Err(e) if e.kind() == ErrorKind::NotFound && self.path.exists() => self.kill_each(),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn kill_each(&self) -> io::Result<()> {
        let _ = self.set_frozen(true);
        for pid in self.pids()? {
            crate::sys::unix::signal::kill_pid(pid, libc::SIGKILL);
        }
        self.set_frozen(false)
    }

    /// Every live pid in this cgroup and below, for a caller about to signal
    /// them; refused on a cgroup that is not ours.
    pub(crate) fn owned_pids(&self) -> io::Result<Vec<u32>> {
        self.assert_owned()?;
        self.pids()
    }

    /// Writes `cgroup.freeze` and waits (bounded) until the kernel reports the
    /// new state in `cgroup.events`.
    pub(crate) fn set_frozen(&self, frozen: bool) -> io::Result<()> {
        self.assert_owned()?;
        write_file(
            &self.path.join("cgroup.freeze"),
            if frozen { "1" } else { "0" },
        )?;
        let want = if frozen { "frozen 1" } else { "frozen 0" };
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if self.events()?.lines().any(|l| l == want) || !self.is_populated()? {
                return Ok(());
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        Err(io::Error::new(
            ErrorKind::TimedOut,
            "cgroup did not reach the requested freeze state",
        ))
    }

    /// The cgroups directly below this one.
    pub(crate) fn children(&self) -> io::Result<Vec<Cgroup>> {
        let entries = match fs::read_dir(&self.path) {
            Ok(entries) => entries,
            Err(e) if vanished(&e) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| Cgroup::at(e.path()))
            .collect())
    }

    /// Whether this cgroup's own `cgroup.freeze` is set (not an ancestor's).
    pub(crate) fn freeze_set(&self) -> bool {
        fs::read_to_string(self.path.join("cgroup.freeze")).is_ok_and(|v| v.trim() == "1")
    }

    fn events(&self) -> io::Result<String> {
        fs::read_to_string(self.path.join("cgroup.events"))
    }

    /// Whether any process is still in this cgroup or below.
    pub(crate) fn is_populated(&self) -> io::Result<bool> {
        match self.events() {
            Ok(text) => Ok(text.lines().any(|l| l == "populated 1")),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every live pid in this cgroup and its descendants.
    pub(crate) fn pids(&self) -> io::Result<Vec<u32>> {
        let mut out = Vec::new();
        collect_pids(&self.path, &mut out)?;
        Ok(out)
    }

    /// Reads one interface file of this cgroup (e.g. `memory.current`).
    #[cfg_attr(not(feature = "stats"), allow(dead_code))]
    pub(crate) fn read(&self, file: &str) -> io::Result<String> {
        fs::read_to_string(self.path.join(file))
    }

    /// Writes one interface file of this cgroup (e.g. `memory.max`).
    #[cfg_attr(not(feature = "limits"), allow(dead_code))]
    pub(crate) fn write(&self, file: &str, value: &str) -> io::Result<()> {
        write_file(&self.path.join(file), value)
    }

    /// Refuses to act on any cgroup that is not strictly below our own root:
    /// teardown must never reach the cgroup this process lives in.
    fn assert_owned(&self) -> io::Result<()> {
        match existing_root() {
            Some(root) if strictly_below(&self.path, &root.path) => Ok(()),
            _ => Err(io::Error::new(
                ErrorKind::PermissionDenied,
                "refusing to act on a foreign cgroup",
            )),
        }
    }
}

impl CgroupRoot {
    /// Creates a fresh child cgroup of the root (`g<N>` for groups, `s<N>` for single runs).
    pub(crate) fn create_child(&self, prefix: char) -> io::Result<Cgroup> {
        Cgroup::create(self.path.join(self.next_name(prefix)))
    }
}

/// Whether `path` names a cgroup strictly below `root` (never `root` itself,
/// never a path that climbs back out through `..`).
fn strictly_below(path: &Path, root: &Path) -> bool {
    path.strip_prefix(root).is_ok_and(|rest| {
        rest.components().next().is_some()
            && rest.components().all(|c| matches!(c, Component::Normal(_)))
    })
}

/// A cgroup's `cgroup.kill`, opened when the cgroup is made: a kill then
/// needs no new descriptor, so it works even when the process has run out.
#[derive(Debug)]
pub(crate) struct KillSwitch {
    cg: Cgroup,
    /// `None` on kernels before 5.14 (no `cgroup.kill`): kill member by member.
    file: Option<fs::File>,
}

impl KillSwitch {
    /// `open`, through the cgroup's open directory `dir`.
    pub(crate) fn open_in(cg: &Cgroup, dir: BorrowedFd<'_>) -> io::Result<KillSwitch> {
        cg.assert_owned()?;
        let file = match open_in(dir, "cgroup.kill", rustix::fs::OFlags::WRONLY) {
            Ok(file) => Some(fs::File::from(file)),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok(KillSwitch {
            cg: cg.clone(),
            file,
        })
    }

    pub(crate) fn open(cg: &Cgroup) -> io::Result<KillSwitch> {
        cg.assert_owned()?;
        let file = match fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(cg.path.join("cgroup.kill"))
        {
            Ok(file) => Some(file),
            Err(e) if e.kind() == ErrorKind::NotFound && cg.path.exists() => None,
            Err(e) => return Err(e),
        };
        Ok(KillSwitch {
            cg: cg.clone(),
            file,
        })
    }

    /// Kills every process in the cgroup and below; a removed cgroup holds
    /// nothing, so that is success too.
    pub(crate) fn kill(&self) -> io::Result<()> {
        self.cg.assert_owned()?;
        let Some(file) = &self.file else {
            return self.cg.kill();
        };
        loop {
            match (&*file).write(b"1") {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if vanished(&e) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}

/// `file` of the cgroup whose directory is open at `dir`.
fn open_in(dir: BorrowedFd<'_>, file: &str, mode: rustix::fs::OFlags) -> io::Result<OwnedFd> {
    let flags = mode | rustix::fs::OFlags::CLOEXEC;
    Ok(rustix::fs::openat(
        dir.as_fd(),
        file,
        flags,
        rustix::fs::Mode::empty(),
    )?)
}

/// Whether an open `cgroup.events` says the cgroup holds a process: one
/// `pread`, for the checks on the spawn path.
pub(crate) fn populated(events: &fs::File) -> io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let mut text = [0u8; 64];
    let n = events.read_at(&mut text, 0)?;
    Ok(text[..n]
        .split(|&b| b == b'\n')
        .any(|l| l == b"populated 1"))
}

fn collect_pids(dir: &Path, out: &mut Vec<u32>) -> io::Result<()> {
    let procs = match fs::read_to_string(dir.join("cgroup.procs")) {
        Ok(p) => p,
        Err(e) if vanished(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    out.extend(procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if vanished(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_pids(&entry.path(), out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::root::root;
    use super::*;

    #[test]
    fn only_cgroups_strictly_below_the_root_are_ours() {
        let root = Path::new("/cg/processkit-1-2-ab");
        assert!(strictly_below(&root.join("g1"), root));
        assert!(strictly_below(&root.join("g1/r2"), root));
        assert!(!strictly_below(root, root));
        assert!(!strictly_below(&root.join(".."), root));
        assert!(!strictly_below(&root.join("g1/../.."), root));
        assert!(!strictly_below(Path::new("/cg"), root));
        assert!(!strictly_below(Path::new("/cg/processkit-1-2-abc"), root));
    }

    /// Teardown never targets the root itself.
    #[test]
    fn the_root_itself_is_refused() {
        let Ok(root) = root() else {
            eprintln!("SKIP: no writable cgroup2 here");
            return;
        };
        let err = Cgroup::at(root.path.clone()).owned_pids().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        assert!(Cgroup::at(root.path.join("..")).owned_pids().is_err());
        let below = root.create_child('t').unwrap();
        assert!(below.owned_pids().is_ok());
        super::super::files::remove_tree(below.path()).unwrap();
    }
}
