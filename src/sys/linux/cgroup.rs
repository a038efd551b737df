//! cgroup v2 directories: finding the cgroup2 mount, and the kill / freeze /
//! membership operations on the cgroups created below the per-process root
//! (made in `cgroup_root`).

use std::fs;
use std::io::{self, ErrorKind, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

pub(crate) use super::cgroup_root::{CgroupRoot, RootError, existing_root, root, root_name};

/// Mount point of the cgroup2 filesystem from a `/proc/self/mountinfo` text.
pub(crate) fn find_cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        left.split_whitespace()
            .nth(4)
            .map(|p| PathBuf::from(unescape_mount_path(p)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mount_path(raw: &str) -> String {
    raw.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// The `0::<path>` entry of a `/proc/<pid>/cgroup` text.
pub(crate) fn own_cgroup(proc_cgroup: &str) -> Option<String> {
    proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_owned)
}

/// Field 22 of `/proc/<pid>/stat`: start time in clock ticks since boot.
pub(crate) fn start_time(pid: u32) -> io::Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_start_time(&stat).ok_or_else(|| io::Error::other("malformed /proc/<pid>/stat"))
}

fn parse_start_time(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

pub(crate) fn open_procs(dir: &Path) -> io::Result<OwnedFd> {
    let file = fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(dir.join("cgroup.procs"))?;
    Ok(OwnedFd::from(file))
}

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

    /// Sends `signal` to every member, pinning each with a pidfd so a pid
    /// recycled between listing and signalling is never hit.
    pub(crate) fn signal(&self, signal: i32) -> io::Result<()> {
        self.assert_owned()?;
        for pid in self.pids()? {
            super::pidfd::signal_pid(pid, signal)?;
        }
        Ok(())
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

/// Whether a cgroup file failed because its cgroup was just removed (a
/// finished run's cgroup goes away on the reaper thread at any moment):
/// `ENOENT` once it is gone, `ENODEV` while the kernel is removing it.
fn vanished(error: &io::Error) -> bool {
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

fn write_file(path: &Path, value: &str) -> io::Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all(value.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_hybrid_and_pure_mounts() {
        let hybrid = "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            find_cgroup2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let pure =
            "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            find_cgroup2_mount(pure),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        assert_eq!(
            find_cgroup2_mount("32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"),
            None
        );
    }

    #[test]
    fn reads_own_cgroup_and_start_time() {
        assert_eq!(
            own_cgroup("1:cpu:/\n0::/user.slice/a.scope\n").as_deref(),
            Some("/user.slice/a.scope")
        );
        let stat = "42 (a (weird) name) S 1 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 98765 0 0";
        assert_eq!(parse_start_time(stat), Some(98765));
    }

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

    /// Teardown never targets the root itself (harmless probe: signal 0).
    #[test]
    fn the_root_itself_is_refused() {
        let Ok(root) = root() else {
            eprintln!("SKIP: no writable cgroup2 here");
            return;
        };
        let err = Cgroup::at(root.path.clone()).signal(0).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        assert!(Cgroup::at(root.path.join("..")).signal(0).is_err());
        let below = root.create_child('t').unwrap();
        assert!(below.signal(0).is_ok());
        remove_tree(below.path()).unwrap();
    }
}
