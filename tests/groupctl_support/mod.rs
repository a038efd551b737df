//! Helpers for the group-control, stats and limits tests: unique argv tokens,
//! finding real processes through /proc, and guards that kill by pid on drop.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A token unique to this test process and call, to put in a child's argv.
pub fn token(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("pkgc-{tag}-{}-{n}", std::process::id())
}

/// Every live (non-zombie) pid whose command line contains `token`.
pub fn pids_with(token: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || !is_running(pid) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(token) {
            out.push(pid);
        }
    }
    out
}

/// Whether `pid` exists and is not a zombie.
pub fn is_running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, r)| r.split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}

/// Polls `cond` every 20 ms for up to `limit`; true once it holds.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Async form of [`wait_until`].
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills (SIGKILL, by pid) every process carrying `token` when dropped, so a
/// failing test leaves nothing behind.
pub struct TokenGuard(pub String);

impl Drop for TokenGuard {
    fn drop(&mut self) {
        for pid in pids_with(&self.0) {
            kill(pid, "KILL");
        }
    }
}

/// Sends a signal by pid (never 0, 1 or ourselves).
pub fn kill(pid: u32, signal: &str) {
    if pid > 1 && pid != std::process::id() {
        let _ = std::process::Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(token(tag));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Lines in a file (0 when it does not exist yet).
pub fn line_count(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// Whether our own cgroup v2 offers every controller limits need.
pub fn host_delegates_limits() -> bool {
    let membership = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let Some(own) = membership.lines().find_map(|l| l.strip_prefix("0::")) else {
        return false;
    };
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let Some(mount) = mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2").then(|| left.split_whitespace().nth(4))?
    }) else {
        return false;
    };
    let dir = std::path::Path::new(mount).join(own.trim_start_matches('/'));
    let controllers = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    ["memory", "pids", "cpu"]
        .iter()
        .all(|c| controllers.split_whitespace().any(|x| x == *c))
}

/// Prints a SKIP line straight to stderr, past the test harness's capture,
/// so a skipped proof is visible in every run.
pub fn skip(reason: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIP: {reason}");
}

/// Prints a measurement straight to stderr, past the harness's capture.
pub fn note(line: &str) {
    use std::io::Write;
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let at = START.get_or_init(Instant::now).elapsed();
    let _ = writeln!(std::io::stderr(), "NOTE [{:.1}s]: {line}", at.as_secs_f64());
}
