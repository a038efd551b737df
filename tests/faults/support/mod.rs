//! What the fault tests need beyond `tests/common`: running a scenario in a
//! re-executed copy of the test binary (optionally under `prlimit` or in a
//! private pid namespace and a cgroup of its own), a line protocol between the
//! two, fd exhaustion, and /proc counts of fds and zombie children.
#![allow(dead_code)]

mod scenarios;
pub use scenarios::*;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use processkit::Command;

use crate::common::privileges::{Proc, own_cgroup_dir, remove_cgroup_tree};

// A scenario is a re-executed test binary acting as one named helper; it
// reports `PK <key> <value>` lines like every helper in `tests/common`.
pub use crate::common::privileges::{
    HELPER_ENV as SCENARIO_ENV, acting_as as is_scenario, report as tell,
};

/// Prints past the harness's capture.
pub fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// How the scenario process is wrapped.
#[derive(Default)]
pub struct Wrap {
    /// `prlimit --nofile=N:N`.
    pub nofile: Option<u64>,
    /// A private pid namespace with its own /proc (`unshare --pid --fork --mount-proc`).
    pub pid_ns: bool,
    /// Keeps the pid namespace alive this many seconds after the scenario
    /// exits, so what its guardian does after the owner's death can be seen.
    pub linger_secs: u32,
    /// Moves the scenario into this cgroup2 directory before it starts.
    pub cgroup: Option<PathBuf>,
}

/// A re-executed copy of this test binary running one scenario; SIGKILLed on drop.
pub struct Scenario {
    child: Child,
    lines: mpsc::Receiver<String>,
    pub pid: u32,
}

impl Scenario {
    /// Runs test `test` (which must call its scenario body when
    /// `is_scenario(test)`) in a new process.
    pub fn start(test: &str, env: &[(&str, &str)], wrap: &Wrap) -> Scenario {
        let exe = std::env::current_exe().expect("current_exe");
        let mut argv: Vec<String> = Vec::new();
        if let Some(dir) = &wrap.cgroup {
            // sh moves itself, then execs: everything below is born in `dir`.
            argv.extend(
                [
                    "sh",
                    "-c",
                    r#"echo $$ > "$0/cgroup.procs" && shift && exec "$@""#,
                ]
                .map(String::from),
            );
            argv.push(dir.to_string_lossy().into_owned());
            argv.push("--".into());
        }
        if let Some(n) = wrap.nofile {
            argv.extend([
                "prlimit".to_owned(),
                format!("--nofile={n}:{n}"),
                "--".into(),
            ]);
        }
        if wrap.pid_ns {
            // sh stays pid 1 of the namespace and reaps orphans; the scenario is pid 2.
            argv.extend(
                [
                    "unshare",
                    "--pid",
                    "--fork",
                    "--mount-proc",
                    "sh",
                    "-c",
                    r#""$0" "$@"; rc=$?; sleep "$PK_LINGER"; exit $rc"#,
                ]
                .map(String::from),
            );
        }
        argv.push(exe.to_string_lossy().into_owned());
        argv.extend([test, "--exact", "--nocapture", "--test-threads=1"].map(String::from));
        let mut cmd = std::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .env(SCENARIO_ENV, test)
            .env("PK_LINGER", wrap.linger_secs.to_string())
            .env_remove("RUST_TEST_THREADS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start the scenario process");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let pid = child.id();
        Scenario { child, lines, pid }
    }

    /// The value of the next `PK <key> ...` line; `None` when the scenario
    /// ended (or said nothing for `limit`). `SKIP` lines are passed on.
    pub fn next(&self, key: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        let prefix = format!("PK {key} ");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).ok()?;
            if line.contains("SKIP:") {
                say(&line);
            }
            // libtest may print "test name ... " on the same line first.
            if let Some(at) = line.find(&prefix) {
                return Some(line[at + prefix.len()..].to_owned());
            }
        }
    }

    /// Waits for the scenario to end; panics unless it passed. Returns its
    /// stdout (after what `next` consumed).
    pub fn passed(mut self, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "{what}: the scenario hung");
            std::thread::sleep(Duration::from_millis(20));
        };
        let rest: Vec<String> = self.lines.try_iter().collect();
        let rest = rest.join("\n");
        for line in rest.lines().filter(|l| l.contains("SKIP:")) {
            say(line);
        }
        assert!(
            status.success(),
            "{what}: the scenario failed ({status}):\n{rest}"
        );
        rest
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Opens /dev/null until the fd table is full; dropping the result frees them.
pub fn exhaust_fds() -> Vec<File> {
    let mut held = Vec::new();
    exhaust_more(&mut held);
    held
}

/// Fills the fd table again after a verb, adding to `held`. processkit's
/// background threads run beside the caller: the one that makes cgroups
/// ahead may take a descriptor a failed verb freed, fail halfway and close
/// it after we looked. So this keeps taking until every one of them is
/// asleep, holding nothing half made.
pub fn exhaust_more(held: &mut Vec<File>) {
    take_free_fds(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Looking at our threads needs two descriptors of our own.
        held.truncate(held.len().saturating_sub(2));
        let asleep = helper_threads_asleep();
        take_free_fds(held);
        if asleep || Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn take_free_fds(held: &mut Vec<File>) {
    loop {
        match File::open("/dev/null") {
            Ok(f) => held.push(f),
            Err(e) if e.raw_os_error() == Some(24) => return, // EMFILE
            Err(e) => panic!("exhausting fds: unexpected {e}"),
        }
        assert!(held.len() < 1 << 20, "RLIMIT_NOFILE is not low");
    }
}

/// Whether every `processkit-*` thread of ours is sleeping (state S), so
/// none is between opening and closing a descriptor.
fn helper_threads_asleep() -> bool {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return false;
    };
    tasks.filter_map(Result::ok).all(|task| {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            return false;
        };
        // "tid (comm) S ...": comm may hold spaces and parentheses.
        let Some((head, tail)) = stat.rsplit_once(") ") else {
            return false;
        };
        !head.contains("(processkit-") || tail.starts_with('S')
    })
}

/// Our open fd count (needs one free fd itself).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// What each open descriptor points at, for a failure's message.
pub fn fd_targets() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut targets: Vec<String> = dir
        .filter_map(|e| {
            let e = e.ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some(format!(
                "{}->{}",
                e.file_name().to_string_lossy(),
                target.display()
            ))
        })
        .collect();
    targets.sort();
    targets
}

/// (pid, state, ppid) of every process in /proc.
pub fn processes() -> Vec<(u32, char, u32)> {
    crate::common::all_pids()
        .into_iter()
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let rest = &stat[stat.rfind(')')? + 2..];
            let mut fields = rest.split_whitespace();
            let state = fields.next()?.chars().next()?;
            Some((pid, state, fields.next()?.parse().ok()?))
        })
        .collect()
}

/// Our children that are zombies.
pub fn zombie_children() -> Vec<u32> {
    let me = std::process::id();
    processes()
        .into_iter()
        .filter(|&(_, state, ppid)| state == 'Z' && ppid == me)
        .map(|(pid, _, _)| pid)
        .collect()
}

/// A fresh cgroup2 directory next to our own, removed (with anything left in
/// it) on drop: a scenario in another pid namespace sweeps only in there.
pub struct OwnCgroup(pub PathBuf);

impl OwnCgroup {
    pub fn new(label: &str) -> Option<OwnCgroup> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = own_cgroup_dir()?.join(format!("pk-faults-{label}-{}-{n}", std::process::id()));
        std::fs::create_dir(&dir).ok()?;
        Some(OwnCgroup(dir))
    }
}

impl Drop for OwnCgroup {
    fn drop(&mut self) {
        remove_cgroup_tree(&self.0);
    }
}

/// Whether `unshare --pid` works here (root, and the tool exists).
pub fn pid_namespaces_work() -> bool {
    std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn prlimit_works() -> bool {
    std::process::Command::new("prlimit")
        .args(["--nofile=64:64", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

/// A current-thread runtime with IO and time.
pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// How long teardown may take before a survivor counts as leaked.
pub const LIMIT: Duration = Duration::from_secs(5);
/// How long a scenario holds its fds exhausted while the test looks.
pub const HOLD: Duration = Duration::from_secs(10);
/// Marks (in the environment, inherited by a whole tree) what a scenario starts.
pub const MARK: &str = "PK_FAULT_MARK";
/// Hands the mark to the scenario process, which must not carry `MARK` itself.
pub const MARK_VALUE: &str = "PK_FAULT_MARK_VALUE";

pub fn mark() -> String {
    std::env::var(MARK_VALUE).expect("the scenario's mark")
}

/// `sh -c script` carrying the scenario's mark.
pub fn sh(script: &str) -> Command {
    crate::common::sh_as(script, "pk-fault").env(MARK, mark())
}

/// Live processes whose environment carries `MARK=mark`.
pub fn marked(mark: &str) -> Vec<u32> {
    let needle = format!("{MARK}={mark}");
    processes()
        .into_iter()
        .filter(|&(_, state, _)| state != 'Z' && state != 'X')
        .filter(|&(pid, _, _)| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == needle.as_bytes()))
        })
        .map(|(pid, _, _)| pid)
        .collect()
}

/// `pid: argv` of each pid, for failure messages.
pub fn describe(pids: Vec<u32>) -> Vec<String> {
    pids.into_iter()
        .map(|pid| {
            let argv = crate::common::argv_of(pid).unwrap_or_default();
            format!("{pid}: {}", argv.trim())
        })
        .collect()
}

/// Kills whatever carries `mark` on drop, so a failing test leaves nothing.
pub struct KillMarked(pub String);

impl Drop for KillMarked {
    fn drop(&mut self) {
        for pid in marked(&self.0) {
            if let Some(p) = Proc::of(pid) {
                p.kill();
            }
        }
    }
}

pub fn new_mark(label: &str) -> (String, KillMarked) {
    let mark = crate::common::token(label);
    (mark.clone(), KillMarked(mark))
}
