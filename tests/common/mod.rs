//! Shared test support: process trees whose every pid is known, /proc scans
//! for unique argv tokens, and guards that kill leftovers even when a test fails.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use processkit::Command;

/// A token unique to this test process and call, to find our processes in /proc.
pub fn token(label: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("pk-test-{label}-{}-{n}", std::process::id())
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        let dir = std::env::temp_dir().join(token(label));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Pids of live (non-zombie) processes whose argv contains `token`.
pub fn pids_with_token(token: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if cmdline
            .split(|&b| b == 0)
            .any(|arg| arg == token.as_bytes())
            && is_alive(pid)
        {
            out.push(pid);
        }
    }
    out
}

/// Whether `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}

/// Polls `cond` every 10 ms until it holds or `limit` passes.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Kills (by pid) every process carrying the token or listed in the pidfile,
/// so a failing test leaves nothing behind.
pub struct Cleanup {
    pub token: String,
    pub pidfile: Option<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let mut pids = pids_with_token(&self.token);
        if let Some(file) = &self.pidfile {
            pids.extend(read_pids(file));
        }
        for pid in pids
            .into_iter()
            .filter(|&p| is_alive(p) && p != std::process::id())
        {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
        }
    }
}

/// Every pid in a pidfile.
pub fn read_pids(file: &Path) -> Vec<u32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// A process tree `depth` levels deep (1 = just the child), built by
/// `tests/fixtures/tree.sh`; each level also runs a `sleep`.
pub struct Tree {
    pub token: String,
    pub pidfile: PathBuf,
    pub depth: usize,
    pub cleanup: Cleanup,
    _dir: TempDir,
}

impl Tree {
    pub fn new(label: &str, depth: usize) -> Tree {
        let dir = TempDir::new(label);
        let token = token(label);
        let pidfile = dir.path().join("pids");
        let cleanup = Cleanup {
            token: token.clone(),
            pidfile: Some(pidfile.clone()),
        };
        Tree {
            token,
            pidfile,
            depth,
            cleanup,
            _dir: dir,
        }
    }

    /// The command that builds the tree.
    pub fn command(&self) -> Command {
        Command::new("sh")
            .arg(fixture("tree.sh"))
            .arg(self.depth.to_string())
            .arg(&self.token)
            .arg(&self.pidfile)
    }

    /// Every pid of the tree, once all levels have started (panics after 10 s).
    pub fn wait_started(&self) -> Vec<u32> {
        let want = 2 * self.depth;
        assert!(
            eventually(Duration::from_secs(10), || read_pids(&self.pidfile).len()
                >= want),
            "tree {} did not start: {:?}",
            self.token,
            read_pids(&self.pidfile)
        );
        read_pids(&self.pidfile)
    }

    /// Async version of [`wait_started`], for use inside `select!`.
    pub async fn started(&self) -> Vec<u32> {
        let want = 2 * self.depth;
        let deadline = Instant::now() + Duration::from_secs(10);
        while read_pids(&self.pidfile).len() < want {
            assert!(
                Instant::now() < deadline,
                "tree {} did not start",
                self.token
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        read_pids(&self.pidfile)
    }

    /// Asserts that every process of the tree is gone (bounded poll).
    pub fn assert_gone(&self) {
        let pids = read_pids(&self.pidfile);
        assert!(!pids.is_empty(), "tree {} recorded no pids", self.token);
        let gone = eventually(Duration::from_secs(5), || {
            pids.iter().all(|&p| !is_alive(p)) && pids_with_token(&self.token).is_empty()
        });
        let alive: Vec<u32> = pids.iter().copied().filter(|&p| is_alive(p)).collect();
        assert!(gone, "tree {} left survivors: {alive:?}", self.token);
    }
}

/// Path of a file in `tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}
