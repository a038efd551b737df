//! Finding our own processes: a unique argv token, /proc scans for it, the
//! is-alive check, and guards that kill by pid (never 0, 1 or ourselves).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use super::read_pids;

/// A token unique to this test process and call, to put in a child's argv.
/// It ends in `.` so that no token is a prefix of another (`-1.` vs `-10.`).
pub fn token(label: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("pk-{label}-{}-{n}.", std::process::id())
}

/// Pids of live (non-zombie) processes, other than us, whose space-joined
/// argv contains `token` (so `sh -c '...; : TOKEN'` counts too).
pub fn pids_with_token(token: &str) -> Vec<u32> {
    let mut pids = pids_with_token_or_zombie(token);
    pids.retain(|&pid| is_alive(pid));
    pids
}

/// Like [`pids_with_token`], but zombies count too: for proving that
/// everything was reaped as well as killed.
pub fn pids_with_token_or_zombie(token: &str) -> Vec<u32> {
    let me = std::process::id();
    all_pids()
        .into_iter()
        .filter(|&pid| pid != me)
        .filter(|&pid| argv_of(pid).is_some_and(|argv| argv.contains(token)))
        .collect()
}

/// Every pid in /proc (empty where there is no /proc).
pub fn all_pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .collect()
}

/// `pid`'s argv joined by spaces (empty for a zombie), or `None` once it is gone.
pub fn argv_of(pid: u32) -> Option<String> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(String::from_utf8_lossy(&cmdline).replace('\0', " "))
}

/// Whether `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}

/// Sends `signal` (a name such as `"STOP"`) to `pid`; never to 0, 1 or us.
pub fn signal(pid: u32, signal: &str) {
    if pid > 1 && pid != std::process::id() {
        let _ = std::process::Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// SIGKILL to `pid` if it is still alive.
pub fn kill_pid(pid: u32) {
    if is_alive(pid) {
        signal(pid, "KILL");
    }
}

/// On drop, kills by pid every process carrying one of its tokens or listed in
/// its pidfile, so a failing test leaves nothing behind.
#[must_use = "the guard kills on drop; bind it to a named variable"]
pub struct Cleanup {
    tokens: Vec<String>,
    pidfile: Option<PathBuf>,
}

impl Cleanup {
    /// Kills what carries `token`.
    pub fn token(token: &str) -> Cleanup {
        Cleanup::tokens(&[token])
    }

    /// Kills what carries any of `tokens`.
    pub fn tokens(tokens: &[&str]) -> Cleanup {
        Cleanup {
            tokens: tokens.iter().map(|t| t.to_string()).collect(),
            pidfile: None,
        }
    }

    /// Also kills every pid written to `file` (one a line).
    pub fn pidfile(mut self, file: impl Into<PathBuf>) -> Cleanup {
        self.pidfile = Some(file.into());
        self
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let mut pids: Vec<u32> = self
            .tokens
            .iter()
            .flat_map(|t| pids_with_token(t))
            .collect();
        if let Some(file) = &self.pidfile {
            pids.extend(read_pids(file));
        }
        pids.into_iter().for_each(kill_pid);
    }
}

/// Kills one pid on drop, if it is still alive.
#[must_use = "the guard kills on drop; bind it to a named variable"]
pub struct KillPidOnDrop(pub Option<u32>);

impl Drop for KillPidOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            kill_pid(pid);
        }
    }
}
