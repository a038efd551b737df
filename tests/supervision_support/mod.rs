//! Helpers for the supervision, retry and cancellation tests: find our own
//! processes by a unique argv token, prove them gone, and kill leftovers by
//! pid when a test fails. Never signals anything it did not start.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A token unique to this test process and call, to put in a child's argv.
pub fn unique_token(label: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "pk-{label}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Live (non-zombie) processes whose command line contains `token`.
pub fn pids_with(token: &str) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if !String::from_utf8_lossy(&cmdline).contains(token) {
            continue;
        }
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(true);
        if !zombie {
            found.push(pid);
        }
    }
    found
}

/// Polls (bounded, generous) until at least `count` processes carry `token`.
pub async fn wait_for_count(token: &str, count: usize) -> Vec<u32> {
    for _ in 0..1000 {
        let pids = pids_with(token);
        if pids.len() >= count {
            return pids;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never saw {count} processes carrying {token}");
}

/// Polls (bounded, generous) until exactly `count` processes carry `token`
/// and the set stays the same for a while: a shell's fork carries its argv
/// until it execs, so counts overshoot briefly while a tree is forming.
pub async fn wait_for_settled(token: &str, count: usize) -> Vec<u32> {
    let mut last = Vec::new();
    let mut stable = 0;
    for _ in 0..2000 {
        let mut pids = pids_with(token);
        pids.sort();
        if pids.len() == count && pids == last {
            stable += 1;
            if stable >= 10 {
                return pids;
            }
        } else {
            stable = 0;
        }
        last = pids;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never saw {count} settled processes carrying {token}");
}

/// Polls (bounded, generous) until no process carries `token`; true if so.
pub async fn wait_gone(token: &str) -> bool {
    for _ in 0..1000 {
        if pids_with(token).is_empty() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// Kills, on drop, every process still carrying its token: a failing test
/// leaves nothing behind.
pub struct Reaper(pub Vec<String>);

impl Reaper {
    pub fn new(tokens: &[&str]) -> Reaper {
        Reaper(tokens.iter().map(|t| t.to_string()).collect())
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        for token in &self.0 {
            for pid in pids_with(token) {
                if pid > 1 {
                    let _ = std::process::Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                }
            }
        }
    }
}

/// A shell script whose child and grandchild both carry `token` and sleep.
pub fn tree_script(token: &str) -> String {
    format!("sh -c 'sleep 1000; : {token}' & sleep 1000; : {token}")
}

/// A fresh scratch directory under the target dir's temp area.
pub fn scratch_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_token(label));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// The number of lines in `path` (0 when missing).
pub fn line_count(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}
