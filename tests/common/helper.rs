//! This test binary as a portable helper program: no shell and no fixture, so
//! the same process trees run on Unix and on Windows (Wine included). Started
//! with `--exact ENTRY` and `PK_HELPER_DIR` set, the entry test becomes one
//! member of a chain of sleeping processes that each publish their pid.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use processkit::Command;

use super::{Cleanup, TempDir, eventually, pids_with_token, test_named, token};

const DIR: &str = "PK_HELPER_DIR";
const DEPTH: &str = "PK_HELPER_DEPTH";
const DETACH: &str = "PK_HELPER_DETACH";

/// The first line of the entry test: in a helper process this acts as one
/// member of the tree and never returns; in a test run it returns at once.
pub fn act_as_tree_member() {
    let Some(dir) = std::env::var_os(DIR) else {
        return;
    };
    let depth: usize = std::env::var(DEPTH)
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(1);
    let mut below = None;
    if depth > 1 {
        // The same argv (entry test and token), one level less.
        let exe = std::env::current_exe().expect("current_exe");
        let detach = std::env::var_os(DETACH).is_some();
        let mut next = detached_or_not(exe, detach);
        next.args(std::env::args_os().skip(1))
            .env(DEPTH, (depth - 1).to_string())
            .env_remove(DETACH);
        below = Some(next.spawn().expect("start the next member"));
    }
    let pid = std::process::id();
    let tmp = PathBuf::from(&dir).join(format!("{pid}.tmp"));
    std::fs::write(&tmp, pid.to_string()).expect("write pid");
    std::fs::rename(&tmp, PathBuf::from(&dir).join(format!("{pid}.pid"))).expect("publish pid");
    std::thread::sleep(Duration::from_secs(600));
    drop(below);
    std::process::exit(0);
}

/// `exe`, started in a new session (`setsid`) when `detach` is set: it leaves
/// its parent's process group, which only a cgroup still contains.
#[cfg(unix)]
fn detached_or_not(exe: PathBuf, detach: bool) -> std::process::Command {
    if detach {
        let mut cmd = std::process::Command::new("setsid");
        cmd.arg(exe);
        cmd
    } else {
        std::process::Command::new(exe)
    }
}

/// `exe`, detached from its parent's console and in a new console process
/// group when `detach` is set: a Job Object still holds it.
#[cfg(windows)]
fn detached_or_not(exe: PathBuf, detach: bool) -> std::process::Command {
    use std::os::windows::process::CommandExt;
    const DETACHED_PROCESS: u32 = 0x0000_0008;
    const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
    let mut cmd = std::process::Command::new(exe);
    if detach {
        cmd.creation_flags(DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP);
    }
    cmd
}

/// A chain of `depth` copies of this test binary (1 = just the child), each
/// sleeping; every member's pid is published, so a test can prove them gone.
/// Survivors are killed on drop.
pub struct HelperTree {
    pub depth: usize,
    pub token: String,
    detach: bool,
    dir: TempDir,
    _cleanup: Cleanup,
}

impl HelperTree {
    pub fn new(label: &str, depth: usize) -> HelperTree {
        let token = token(label);
        HelperTree {
            depth,
            _cleanup: Cleanup::token(&token),
            token,
            detach: false,
            dir: TempDir::new(label),
        }
    }

    /// The child starts the grandchild detached (see `detached_or_not`).
    pub fn detached(mut self) -> HelperTree {
        self.detach = true;
        self
    }

    /// The command that builds the tree; `entry` is the test that calls
    /// [`act_as_tree_member`] first. The token rides along as a libtest filter
    /// that matches nothing, so /proc scans find the tree by argv too.
    pub fn command(&self, entry: &str) -> Command {
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = Command::new(exe)
            .args([
                "--exact",
                &test_named(entry),
                "--nocapture",
                "--test-threads=1",
            ])
            .arg(&self.token)
            .env(DIR, self.dir.path())
            .env(DEPTH, self.depth.to_string());
        if self.detach {
            cmd = cmd.env(DETACH, "1");
        }
        cmd
    }

    /// The same tree as a caller-built tokio command (for the raw
    /// `ProcessGroup::spawn`), with its stdio discarded.
    pub fn tokio_command(&self, entry: &str) -> tokio::process::Command {
        let built = self.command(entry);
        let mut cmd = tokio::process::Command::new(built.get_program());
        cmd.args(built.get_args())
            .env(DIR, self.dir.path())
            .env(DEPTH, self.depth.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if self.detach {
            cmd.env(DETACH, "1");
        }
        cmd
    }

    /// The environment a member needs, for a process that starts one
    /// itself (with [`test_named`] of the entry and the token as arguments).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (DIR, self.dir.path().display().to_string()),
            (DEPTH, self.depth.to_string()),
        ]
    }

    /// The pids published so far.
    pub fn pids(&self) -> Vec<u32> {
        std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".pid")?.parse().ok())
            .collect()
    }

    /// Every member's pid, once all have started (panics after a generous bound).
    pub async fn started(&self) -> Vec<u32> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.pids().len() < self.depth {
            assert!(
                Instant::now() < deadline,
                "tree {} did not start: {:?}",
                self.token,
                self.pids()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.pids()
    }

    /// The members still alive.
    pub fn survivors(&self) -> Vec<u32> {
        self.pids().into_iter().filter(|&p| alive(p)).collect()
    }

    /// Asserts that every member is gone (bounded poll); where there is a
    /// /proc, a member that had no time to publish its pid must be gone too.
    pub fn assert_gone(&self) {
        assert!(
            !self.pids().is_empty(),
            "tree {} published no pids",
            self.token
        );
        let gone = eventually(Duration::from_secs(10), || {
            self.survivors().is_empty() && pids_with_token(&self.token).is_empty()
        });
        assert!(
            gone,
            "tree {} left survivors: {:?}",
            self.token,
            self.survivors()
        );
    }
}

impl Drop for HelperTree {
    fn drop(&mut self) {
        self.survivors().into_iter().for_each(kill);
    }
}

#[cfg(unix)]
fn alive(pid: u32) -> bool {
    super::is_alive(pid)
}

#[cfg(unix)]
fn kill(pid: u32) {
    super::kill_pid(pid);
}

/// Whether `pid` names a running process (a handle that cannot be opened
/// means it is gone).
#[cfg(windows)]
fn alive(pid: u32) -> bool {
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::Foundation::WAIT_TIMEOUT;
    use windows_sys::Win32::System::Threading::WaitForSingleObject;
    // SAFETY: the handle is valid and was opened with SYNCHRONIZE access.
    open(pid).is_some_and(|h| unsafe { WaitForSingleObject(h.as_raw_handle(), 0) } == WAIT_TIMEOUT)
}

#[cfg(windows)]
fn kill(pid: u32) {
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::System::Threading::TerminateProcess;
    if let Some(h) = open(pid) {
        // SAFETY: the handle is valid and was opened with PROCESS_TERMINATE access.
        unsafe { TerminateProcess(h.as_raw_handle(), 99) };
    }
}

#[cfg(windows)]
fn open(pid: u32) -> Option<std::os::windows::io::OwnedHandle> {
    use std::os::windows::io::FromRawHandle;
    use windows_sys::Win32::System::Threading::{
        OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_SYNCHRONIZE, PROCESS_TERMINATE,
    };
    let access = PROCESS_SYNCHRONIZE | PROCESS_TERMINATE | PROCESS_QUERY_LIMITED_INFORMATION;
    // SAFETY: OpenProcess takes plain integers; the result is checked.
    let raw = unsafe { OpenProcess(access, 0, pid) };
    // SAFETY: `raw` is a fresh handle that nothing else owns.
    (!raw.is_null()).then(|| unsafe { std::os::windows::io::OwnedHandle::from_raw_handle(raw) })
}
