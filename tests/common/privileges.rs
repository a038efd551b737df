//! Shared by the privileges and guardian tests, on top of `tests/common`:
//! processes pinned by start time, cgroup-root inspection, and helper processes
//! (this test binary re-executed to run one ignored `helper_*` test).
#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::{TempDir, eventually, signal};

/// How long any condition may take before a test gives up.
pub const LIMIT: Duration = Duration::from_secs(5);

/// Env var naming the helper a re-executed test binary should act as.
pub const HELPER_ENV: &str = "PK_TEST_HELPER";

/// One process, pinned by its start time so a recycled pid is never mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    pub pid: u32,
    start: u64,
}

impl Proc {
    pub fn of(pid: u32) -> Option<Proc> {
        let (_, start) = stat(pid)?;
        Some(Proc { pid, start })
    }

    /// Alive means: the same process still exists and is not a zombie.
    pub fn is_alive(&self) -> bool {
        matches!(stat(self.pid), Some((state, start)) if start == self.start && state != 'Z' && state != 'X')
    }

    /// Field `n` (1-based, as in proc(5)) of /proc/<pid>/stat.
    pub fn stat_field(&self, n: usize) -> Option<String> {
        let text = fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        let rest = &text[text.rfind(')')? + 2..];
        rest.split_whitespace().nth(n - 3).map(str::to_owned)
    }

    pub fn session(&self) -> Option<i32> {
        self.stat_field(6)?.parse().ok()
    }

    pub fn pgid(&self) -> Option<i32> {
        self.stat_field(5)?.parse().ok()
    }

    /// The `0::` line of /proc/<pid>/cgroup.
    pub fn cgroup(&self) -> Option<String> {
        let text = fs::read_to_string(format!("/proc/{}/cgroup", self.pid)).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("0::"))
            .map(str::to_owned)
    }

    pub fn status_line(&self, key: &str) -> Option<String> {
        let text = fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_owned()))
    }

    /// SIGKILL, only if it is still the same process.
    pub fn kill(&self) {
        if self.is_alive() {
            signal(self.pid, "KILL");
        }
    }
}

/// (state, start time) from /proc/<pid>/stat.
fn stat(pid: u32) -> Option<(char, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some((
        fields.first()?.chars().next()?,
        fields.get(19)?.parse().ok()?,
    ))
}

/// Kills every recorded process on drop, so a failing test leaves nothing behind.
#[derive(Default)]
pub struct KillOnDrop(pub Vec<Proc>);

impl KillOnDrop {
    pub fn add(&mut self, p: Proc) -> Proc {
        self.0.push(p);
        p
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for p in &self.0 {
            p.kill();
        }
    }
}

/// Waits (up to `LIMIT`) for a pidfile in `dir` and returns the process it names.
pub fn pid_in(dir: &TempDir, name: &str) -> Proc {
    let path = dir.join(name);
    let mut found = None;
    eventually(LIMIT, || {
        found = fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
            .and_then(Proc::of);
        found.is_some()
    });
    found.unwrap_or_else(|| panic!("no live pid in {}", path.display()))
}

/// The cgroup2 directory this process lives in (where per-process roots go).
pub fn own_cgroup_dir() -> Option<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
    })?;
    let own = Proc::of(std::process::id())?.cgroup()?;
    Some(mount.join(own.trim_start_matches('/')))
}

/// The per-process roots `processkit-<pid>-*` of `pid` next to ours.
pub fn roots_of(pid: u32) -> Vec<PathBuf> {
    let Some(dir) = own_cgroup_dir() else {
        return Vec::new();
    };
    let prefix = format!("processkit-{pid}-");
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

/// Cgroup roots left by an owner that ran without a guardian; removed on drop.
#[derive(Default)]
pub struct LeakedRoots(pub Vec<PathBuf>);

impl Drop for LeakedRoots {
    fn drop(&mut self) {
        for root in &self.0 {
            remove_cgroup_tree(root);
        }
    }
}

/// Kills whatever is left in a leaked cgroup tree and removes it.
pub fn remove_cgroup_tree(dir: &Path) {
    let _ = fs::write(dir.join("cgroup.kill"), "1");
    eventually(LIMIT, || rmdir_tree(dir));
}

fn rmdir_tree(dir: &Path) -> bool {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                rmdir_tree(&e.path());
            }
        }
    }
    fs::remove_dir(dir).is_ok() || !dir.exists()
}

/// A re-executed copy of this test binary acting as one helper. Killed on drop.
pub struct Helper {
    child: Child,
    pub proc: Proc,
    lines: mpsc::Receiver<String>,
}

impl Helper {
    /// Starts the ignored test `name` in a new process with `env` set.
    pub fn start(name: &str, env: &[(&str, &str)]) -> Helper {
        Helper::spawn(name, env, None)
    }

    /// Like [`Helper::start`], running as user and group `id`.
    pub fn start_as(name: &str, env: &[(&str, &str)], id: u32) -> Helper {
        Helper::spawn(name, env, Some(id))
    }

    fn spawn(name: &str, env: &[(&str, &str)], id: Option<u32>) -> Helper {
        use std::os::unix::process::CommandExt;
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = std::process::Command::new(exe);
        if let Some(id) = id {
            cmd.uid(id).gid(id).current_dir("/");
        }
        cmd.args([
            "--exact",
            &crate::common::test_named(name),
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, name)
        .env_remove("PROCESSKIT_GUARDIAN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start helper");
        let proc = Proc::of(child.id()).expect("helper is alive");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Helper { child, proc, lines }
    }

    /// The value of the helper's next `PK <key> <value>` line.
    pub fn value(&self, key: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        let prefix = format!("PK {key} ");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("helper never reported {key}"));
            // libtest may print "test name ... " on the same line first.
            if let Some(at) = line.find(&prefix) {
                return line[at + prefix.len()..].to_owned();
            }
        }
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Inside a helper: whether this process was started to act as `name`.
pub fn acting_as(name: &str) -> bool {
    std::env::var(HELPER_ENV).is_ok_and(|v| v == name)
}

/// Inside a helper: reports one value to the test.
pub fn report(key: &str, value: impl std::fmt::Display) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "PK {key} {value}");
    let _ = out.flush();
}

/// Inside a helper: waits to be killed.
pub fn park() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

pub fn is_root() -> bool {
    Proc::of(std::process::id())
        .and_then(|p| p.status_line("Uid:"))
        .is_some_and(|uids| uids.split_whitespace().next() == Some("0"))
}
