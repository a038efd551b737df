//! The per-process cgroup root `processkit-<pid>-<start>-<nonce>`: made on first
//! use below the cgroup this process lives in, and locked (`flock`) for the
//! life of the process, so a sweeper in any pid or time namespace sees it is alive.

use std::fs;
use std::hash::{BuildHasher, RandomState};
use std::io::{self, ErrorKind};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::files::{open_dir, open_procs, try_lock};
use super::mount::{find_cgroup2_mount, own_cgroup, start_time};

/// The cgroup this process owns; everything it starts lives below it.
#[derive(Debug)]
pub(crate) struct CgroupRoot {
    pub(crate) path: PathBuf,
    next_id: AtomicU64,
    /// The root's directory, `flock`ed exclusively until this process ends
    /// (`None` only where the filesystem has no locks: then no one can take
    /// it either, and a sweeper leaves the root alone).
    _alive: Option<OwnedFd>,
}

/// Why there is no per-process root.
#[derive(Debug)]
pub(crate) enum RootError {
    /// No writable cgroup v2 here, for good (cached for the process).
    Missing(&'static str),
    /// A passing failure (out of descriptors or memory): the next call retries.
    Transient(io::Error),
}

impl std::fmt::Display for RootError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RootError::Missing(why) => f.write_str(why),
            RootError::Transient(e) => write!(f, "{e}"),
        }
    }
}

impl From<RootError> for io::Error {
    fn from(e: RootError) -> io::Error {
        match e {
            RootError::Missing(why) => io::Error::other(why),
            RootError::Transient(e) => e,
        }
    }
}

static ROOT: OnceLock<CgroupRoot> = OnceLock::new();
static MISSING: OnceLock<String> = OnceLock::new();
/// Serializes attempts, so two first uses never make two roots.
static CREATING: Mutex<()> = Mutex::new(());

/// The per-process root, created on first use. Only a definitive answer is
/// cached: a transient error is returned to this caller and the next one retries.
pub(crate) fn root() -> Result<&'static CgroupRoot, RootError> {
    if let Some(root) = ROOT.get() {
        return Ok(root);
    }
    let _creating = CREATING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(root) = ROOT.get() {
        return Ok(root);
    }
    if let Some(why) = MISSING.get() {
        return Err(RootError::Missing(why));
    }
    match create_root() {
        Ok(root) => Ok(ROOT.get_or_init(|| root)),
        Err(Failure::Missing(why)) => Err(RootError::Missing(MISSING.get_or_init(|| why))),
        Err(Failure::Transient(e)) => Err(RootError::Transient(e)),
    }
}

/// The per-process root only if it was already created (never creates it).
pub(crate) fn existing_root() -> Option<&'static CgroupRoot> {
    ROOT.get()
}

enum Failure {
    Missing(String),
    Transient(io::Error),
}

/// Errors that say nothing about the host, only about this moment.
pub(crate) fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EMFILE
                | libc::ENFILE
                | libc::ENOMEM
                | libc::EAGAIN
                | libc::EINTR
                | libc::ENOBUFS
                | libc::ENOLCK
        )
    )
}

/// Sorts an error into "retry later" or "no cgroup here", with context.
fn failure(context: impl FnOnce() -> String) -> impl FnOnce(io::Error) -> Failure {
    move |e| {
        if is_transient(&e) {
            Failure::Transient(e)
        } else {
            Failure::Missing(format!("{}: {e}", context()))
        }
    }
}

fn create_root() -> Result<CgroupRoot, Failure> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")
        .map_err(failure(|| "cannot read /proc/self/mountinfo".into()))?;
    let mount = find_cgroup2_mount(&mountinfo)
        .ok_or_else(|| Failure::Missing("no cgroup2 filesystem is mounted".into()))?;
    let membership = fs::read_to_string("/proc/self/cgroup")
        .map_err(failure(|| "cannot read /proc/self/cgroup".into()))?;
    let own = own_cgroup(&membership)
        .ok_or_else(|| Failure::Missing("this process has no cgroup v2 membership".into()))?;
    let parent = mount.join(own.trim_start_matches('/'));
    let pid = std::process::id();
    let start = start_time(pid).map_err(failure(|| "cannot read /proc/self/stat".into()))?;
    let path = parent.join(root_name(pid, start));
    super::sweep::remove_stale_roots(&parent);
    // A sweeper elsewhere may take our fresh root for a dead one in the moment
    // between mkdir and flock, and remove it: then make it again.
    for _ in 0..3 {
        match fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(failure(|| {
                    format!("cannot create a cgroup in {}", parent.display())
                })(e));
            }
        }
        let alive = match lock_alive(&path) {
            Ok(alive) => alive,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => {
                let _ = fs::remove_dir(&path);
                return Err(failure(|| format!("cannot lock cgroup {}", path.display()))(e));
            }
        };
        // A cgroup we cannot join is no container: prove cgroup.procs is writable.
        match open_procs(&path) {
            Ok(_) => {
                return Ok(CgroupRoot {
                    path,
                    next_id: AtomicU64::new(1),
                    _alive: alive,
                });
            }
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => {
                let _ = fs::remove_dir(&path);
                return Err(failure(|| {
                    format!("cgroup {} is not joinable", path.display())
                })(e));
            }
        }
    }
    Err(Failure::Transient(io::Error::new(
        ErrorKind::Interrupted,
        "the per-process cgroup root kept being removed while it was made",
    )))
}

/// Opens `dir` and takes its exclusive `flock`, waiting (bounded) while a
/// sweeper holds it. `None` where the filesystem has no locks.
fn lock_alive(dir: &Path) -> io::Result<Option<OwnedFd>> {
    let fd = open_dir(dir)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match try_lock(&fd) {
            Ok(true) => return Ok(Some(fd)),
            Ok(false) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(false) => return Err(io::Error::from_raw_os_error(libc::EWOULDBLOCK)),
            Err(e) if is_transient(&e) => return Err(e),
            Err(_) => return Ok(None),
        }
    }
}

/// `processkit-<pid>-<starttime>-<nonce>`: pid and start time for people,
/// the per-process random nonce so two owners in different pid namespaces
/// never share a name. Liveness is the lock, never these numbers.
pub(crate) fn root_name(pid: u32, start_time: u64) -> String {
    static NONCE: OnceLock<u32> = OnceLock::new();
    // RandomState is seeded from the OS's random source once per process.
    let nonce = *NONCE.get_or_init(|| RandomState::new().hash_one(pid) as u32);
    format!("processkit-{pid}-{start_time}-{nonce:08x}")
}

impl CgroupRoot {
    /// A fresh unique name for a nested cgroup.
    pub(crate) fn next_name(&self, prefix: char) -> String {
        format!("{prefix}{}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_a_stable_nonce_and_transients_are_told_apart() {
        let a = root_name(12, 345);
        assert!(a.starts_with("processkit-12-345-"), "{a}");
        assert_eq!(a, root_name(12, 345));
        assert!(is_transient(&io::Error::from_raw_os_error(libc::EMFILE)));
        assert!(is_transient(&io::Error::from_raw_os_error(libc::ENOMEM)));
        assert!(!is_transient(&io::Error::from_raw_os_error(libc::EACCES)));
        assert!(!is_transient(&io::Error::from_raw_os_error(libc::EROFS)));
    }
}
