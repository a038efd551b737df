//! Support for `reliability_cgroup`: re-executing the test binary in a role,
//! a cgroup of its own for namespace tests, reading a child's `KEY value`
//! lines, and running out of descriptors.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use processkit::{Mechanism, ProcessGroup};

use crate::common::{eventually, token};

/// Set in a re-executed copy: which part it plays.
pub const ROLE: &str = "PK_RELIABILITY_CGROUP_ROLE";

pub fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

/// A copy of this binary running only `test` as `role`.
pub fn reexec(test: &str, role: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::current_exe().expect("own path"));
    cmd.args([
        "--exact",
        &crate::common::test_named(test),
        "--nocapture",
        "--test-threads=1",
    ])
    .env(ROLE, role);
    cmd
}

/// Runs `body` on a fresh multi-thread runtime.
pub fn block_on<F: std::future::Future>(body: F) -> F::Output {
    tokio::runtime::Runtime::new().unwrap().block_on(body)
}

/// Whether cgroup v2 containment works for this (root) test process.
pub fn cgroup_v2_here() -> bool {
    if std::env::var("PROCESSKIT_MECHANISM").is_ok_and(|m| m.contains("process")) {
        eprintln!("SKIP: PROCESSKIT_MECHANISM forces the process-group mechanism");
        return false;
    }
    match ProcessGroup::new() {
        Ok(g) if g.mechanism() == Mechanism::CgroupV2 => true,
        other => {
            eprintln!("SKIP: no writable cgroup v2 here: {other:?}");
            false
        }
    }
}

pub fn cgroup2_mount() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
    })
}

/// A cgroup of its own that both programs of a namespace test move into, so
/// their sweeps see only each other (never another test's roots). Killed and
/// removed on drop.
pub struct SharedParent(pub PathBuf);

impl SharedParent {
    pub fn new() -> Option<SharedParent> {
        let dir = cgroup2_mount()?.join(token("rc-parent").trim_end_matches('.'));
        std::fs::create_dir(&dir).ok()?;
        Some(SharedParent(dir))
    }
}

impl Drop for SharedParent {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0.join("cgroup.kill"), "1");
        eventually(Duration::from_secs(10), || remove_tree(&self.0));
    }
}

pub fn remove_tree(dir: &Path) -> bool {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    std::fs::remove_dir(dir).is_ok() || !dir.exists()
}

/// Moves this process into the cgroup named by `PK_PARENT`, if set.
pub fn join_parent() {
    if let Ok(parent) = std::env::var("PK_PARENT") {
        std::fs::write(Path::new(&parent).join("cgroup.procs"), "0").expect("join the parent");
    }
}

/// Reads `KEY value` lines from a child until `key` shows up.
pub fn value(lines: &mut impl Iterator<Item = String>, key: &str) -> String {
    // The harness may print `test name ... ` in front of the child's first line.
    let marker = format!("{key} ");
    for line in lines.by_ref() {
        if let Some((_, v)) = line.split_once(&marker) {
            return v.to_owned();
        }
    }
    panic!("the child ended before saying {key}");
}

/// Kills the child (by its handle) on drop.
pub struct Owned(pub Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lowers the descriptor limit to 64 and opens `/dev/null` until none is
/// left; dropping the returned files gives them back.
pub fn exhaust_descriptors() -> Vec<std::fs::File> {
    let limit = libc::rlimit {
        rlim_cur: 64,
        rlim_max: 4096,
    };
    // SAFETY: setrlimit reads the struct we pass.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let mut held = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => held.push(f),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => return held,
            Err(e) => panic!("unexpected error while exhausting descriptors: {e}"),
        }
    }
}
