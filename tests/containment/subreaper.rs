//! The subreaper on real processes: `setsid` grandchildren and double-forked
//! daemons gone after every ending, the shim as parent and reaper, exact exit
//! statuses, the default choice (owner death, zombies, control: `control`).
// Subreapers, /proc and `setsid` are Linux's.
#![cfg(target_os = "linux")]

mod control;
mod reuse;
mod start;

use crate::common;
use crate::groupctl_support::{on_this_host, skip};

use std::path::Path;
use std::time::Duration;

use common::privileges::Proc;
use common::{Cleanup, TempDir, eventually, eventually_async, pids_with_token, read_pids, token};
use processkit::{
    Command, JobRunner, Mechanism, ProcessGroup, ProcessGroupOptions, ProcessRunnerExt,
};

/// How long a tree may take to form or to vanish before a test gives up.
pub const LIMIT: Duration = Duration::from_secs(10);

/// The mechanisms that must hold a tree whose members leave their session:
/// the subreaper always (every Linux has it), cgroup v2 where the host has one.
pub fn whole_tree() -> Vec<Mechanism> {
    let mut mechanisms = Vec::new();
    if on_this_host(Mechanism::CgroupV2) {
        mechanisms.push(Mechanism::CgroupV2);
    }
    mechanisms.push(Mechanism::Subreaper);
    mechanisms
}

/// A group on `mechanism`; never silently another one.
pub fn group_on(mechanism: Mechanism) -> ProcessGroup {
    let options = ProcessGroupOptions::default()
        .mechanism(mechanism)
        .shutdown_grace(Duration::from_millis(300));
    let group = ProcessGroup::with_options(options)
        .unwrap_or_else(|e| panic!("a {mechanism} group on this host: {e}"));
    assert_eq!(group.mechanism(), mechanism);
    group
}

/// `pid`'s parent, from /proc/<pid>/stat.
pub fn ppid(pid: u32) -> Option<u32> {
    Proc::of(pid)?.stat_field(4)?.parse().ok()
}

/// `pid`'s state letter (`S`, `T`, `Z`, …).
pub fn state(pid: u32) -> Option<String> {
    Proc::of(pid)?.stat_field(3)
}

/// Whether `pid` is a processkit shim (its comm is `pk-shim`).
pub fn is_shim(pid: u32) -> bool {
    comm(pid).is_some_and(|c| c == "pk-shim")
}

fn comm(pid: u32) -> Option<String> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(comm.trim().to_owned())
}

/// Whether `shim` was started for `owner`: forked by it, or by its zygote
/// (`pk-zygote`, the small copy of the owner that forks shims).
pub fn shim_of(shim: u32, owner: u32) -> bool {
    let Some(parent) = ppid(shim) else {
        return false;
    };
    parent == owner
        || (comm(parent).is_some_and(|c| c == "pk-zygote") && ppid(parent) == Some(owner))
}

/// Whether `p` still has a /proc entry, zombie or not: gone means reaped too.
pub fn exists(p: &Proc) -> bool {
    Proc::of(p.pid) == Some(*p)
}

/// How a tree escapes its process group.
#[derive(Debug, Clone, Copy)]
pub enum Escape {
    /// The child starts a grandchild in a new session (`setsid`) that has a
    /// `sleep` of its own, and waits for it.
    SetsidGrandchild,
    /// The child double-forks a daemon, `(setsid sh -c "sleep 1000 &" &)`,
    /// whose parents exit at once, then sleeps itself.
    DoubleForkDaemon,
    /// The child double-forks the daemon and exits as soon as the daemon's
    /// pid is written: the run's own process is gone before teardown.
    ParentExits,
}

const ESCAPES: [Escape; 3] = [
    Escape::SetsidGrandchild,
    Escape::DoubleForkDaemon,
    Escape::ParentExits,
];

/// `sh -c SCRIPT TOKEN PIDFILE GO`: `escape`'s tree, whose members write
/// their pids to `dir/pids`; a `ParentExits` child exits once `dir/go` exists.
pub fn escape_command(escape: Escape, token: &str, dir: &Path) -> Command {
    let script = match escape {
        Escape::SetsidGrandchild => {
            r#"setsid sh -c 'sleep 1000 & echo $! >> "$1"; echo $$ >> "$1"; wait' "$0" "$1" &
            echo $$ >> "$1"; wait"#
        }
        Escape::DoubleForkDaemon => {
            r#"(setsid sh -c 'sleep 1000 & echo $! >> "$1"' "$0" "$1" &)
            sleep 1000 & echo $! >> "$1"; echo $$ >> "$1"; wait"#
        }
        Escape::ParentExits => {
            r#"(setsid sh -c 'sleep 1000 & echo $! >> "$1"' "$0" "$1" &)
            while [ ! -e "$2" ]; do sleep 0.01; done"#
        }
    };
    Command::new("sh")
        .args(["-c", script, token])
        .arg(dir.join("pids"))
        .arg(dir.join("go"))
}

/// How many pids `escape`'s tree writes.
pub fn size_of(escape: Escape) -> usize {
    match escape {
        Escape::SetsidGrandchild | Escape::DoubleForkDaemon => 3,
        Escape::ParentExits => 1,
    }
}

/// One escaping tree in a scratch directory; whatever is left of it (by
/// token or pidfile) is killed on drop.
pub struct EscapingTree {
    pub escape: Escape,
    pub token: String,
    // Fields drop in order: the cleanup reads the pidfile before the
    // directory goes.
    _cleanup: Cleanup,
    dir: TempDir,
}

impl EscapingTree {
    pub fn new(escape: Escape) -> EscapingTree {
        let dir = TempDir::new("subreaper");
        let token = token("escape");
        EscapingTree {
            escape,
            _cleanup: Cleanup::token(&token).pidfile(dir.join("pids")),
            token,
            dir,
        }
    }

    pub fn command(&self) -> Command {
        escape_command(self.escape, &self.token, &self.dir)
    }

    /// Lets a `ParentExits` child exit (harmless for the other shapes).
    pub fn release(&self) {
        std::fs::write(self.dir.join("go"), "").expect("write go");
    }

    /// Every member, once all have written their pids (panics after `LIMIT`).
    pub async fn started(&self) -> Vec<Proc> {
        let pidfile = self.dir.join("pids");
        let want = size_of(self.escape);
        let complete = eventually_async(LIMIT, || read_pids(&pidfile).len() >= want).await;
        assert!(
            complete,
            "{:?} did not start: {:?}",
            self.escape,
            read_pids(&pidfile)
        );
        let members: Vec<Proc> = read_pids(&pidfile)
            .into_iter()
            .filter_map(Proc::of)
            .collect();
        assert_eq!(
            members.len(),
            want,
            "{:?} members alive: {members:?}",
            self.escape
        );
        members
    }

    /// Asserts that `members` are gone, reaped as well as killed, and that
    /// nothing carries the token any more.
    pub fn assert_gone(&self, members: &[Proc], after: &str) {
        let gone = eventually(LIMIT, || {
            members.iter().all(|p| !exists(p)) && pids_with_token(&self.token).is_empty()
        });
        let left: Vec<(u32, Option<String>)> = members
            .iter()
            .filter(|p| exists(p))
            .map(|p| (p.pid, state(p.pid)))
            .collect();
        let tokens = pids_with_token(&self.token);
        assert!(
            gone,
            "{:?} left {left:?} {tokens:?} after {after}",
            self.escape
        );
    }
}

#[tokio::test]
async fn escaped_trees_are_gone_after_the_handle_is_dropped() {
    for mechanism in whole_tree() {
        for escape in ESCAPES {
            let tree = EscapingTree::new(escape);
            let mut run = JobRunner::with_mechanism(mechanism)
                .start(&tree.command())
                .await
                .unwrap();
            assert_eq!(run.mechanism(), Some(mechanism));
            let members = tree.started().await;
            if let Escape::ParentExits = escape {
                tree.release();
                assert_eq!(run.wait().await.unwrap(), Some(0));
                // The daemon outlives its parents until the container ends.
                tokio::time::sleep(Duration::from_millis(100)).await;
                assert!(
                    members.iter().all(Proc::is_alive),
                    "{mechanism}: {members:?}"
                );
            }
            drop(run);
            tree.assert_gone(&members, &format!("drop under {mechanism}"));
        }
    }
}

#[tokio::test]
async fn escaped_trees_are_gone_after_a_timeout() {
    for mechanism in whole_tree() {
        for escape in ESCAPES {
            let tree = EscapingTree::new(escape);
            let cmd = tree.command().timeout(Duration::from_millis(1500));
            let runner = JobRunner::with_mechanism(mechanism);
            let verb = runner.output_string(&cmd);
            tokio::pin!(verb);
            let members = tokio::select! {
                members = tree.started() => members,
                early = &mut verb => panic!("{mechanism} {escape:?} ended early: {early:?}"),
            };
            tree.release();
            let result = verb.await.unwrap();
            match escape {
                // The run's own process exits before its deadline: the verb's
                // end is the teardown of what it left behind.
                Escape::ParentExits => assert_eq!(result.code(), Some(0), "{result:?}"),
                _ => assert!(result.timed_out(), "{mechanism} {escape:?}: {result:?}"),
            }
            tree.assert_gone(&members, &format!("a timeout under {mechanism}"));
        }
    }
}

#[tokio::test]
async fn escaped_trees_are_gone_after_shutdown() {
    for mechanism in whole_tree() {
        let group = group_on(mechanism);
        let trees: Vec<EscapingTree> = ESCAPES.into_iter().map(EscapingTree::new).collect();
        let mut members = Vec::new();
        for tree in &trees {
            let mut run = group.start(&tree.command()).await.unwrap();
            members.push(tree.started().await);
            if let Escape::ParentExits = tree.escape {
                tree.release();
                assert_eq!(run.wait().await.unwrap(), Some(0));
            }
            // The group, not the handle, owns a group's runs.
            drop(run);
        }
        group.shutdown().await.unwrap();
        for (tree, members) in trees.iter().zip(&members) {
            tree.assert_gone(members, &format!("shutdown under {mechanism}"));
        }
    }
}

/// The program's parent is its run's shim, a child of this process, and the
/// shim adopts the daemon whose parents exited; teardown ends both.
#[tokio::test]
async fn the_shim_parents_the_program_and_adopts_its_orphans() {
    let tree = EscapingTree::new(Escape::ParentExits);
    let mut run = JobRunner::with_mechanism(Mechanism::Subreaper)
        .start(&tree.command())
        .await
        .unwrap();
    let program = run.id().expect("running");
    let daemon = tree.started().await;
    let me = std::process::id();
    let shim = ppid(program).expect("the program's parent");
    assert!(
        is_shim(shim),
        "the program's parent {shim} is not a pk-shim"
    );
    assert_ne!(shim, me, "the program is not our child");
    assert!(
        shim_of(shim, me),
        "the shim is ours (or our zygote's) child"
    );
    let shim = Proc::of(shim).expect("shim alive");
    let adopted = eventually_async(LIMIT, || ppid(daemon[0].pid) == Some(shim.pid)).await;
    assert!(
        adopted,
        "the daemon's parent is {:?}, not the shim {} (we are {me})",
        ppid(daemon[0].pid),
        shim.pid,
    );

    tree.release();
    assert_eq!(run.wait().await.unwrap(), Some(0));
    // With its program gone the shim stays, holding the daemon.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(daemon[0].is_alive() && shim.is_alive());
    assert_eq!(ppid(daemon[0].pid), Some(shim.pid));

    drop(run);
    tree.assert_gone(&daemon, "drop");
    let shim_gone = eventually(LIMIT, || !exists(&shim));
    assert!(shim_gone, "the shim stayed: state {:?}", state(shim.pid));
}

/// The run's own child's exit code or signal, as every mechanism reports it:
/// the shim in between must not blur it.
#[tokio::test]
async fn exit_codes_and_signals_are_reported_exactly() {
    let mut mechanisms = whole_tree();
    mechanisms.push(Mechanism::ProcessGroup);
    for mechanism in mechanisms {
        let runner = JobRunner::with_mechanism(mechanism);
        let three = runner.output_string(&common::sh("exit 3")).await.unwrap();
        assert_eq!(
            (three.code(), three.signal(), three.timed_out()),
            (Some(3), None, false),
            "{mechanism}: {three:?}"
        );
        let term = common::sh("kill -TERM $$");
        let termed = runner.output_string(&term).await.unwrap();
        assert_eq!(
            (termed.code(), termed.signal(), termed.timed_out()),
            (None, Some(15), false),
            "{mechanism}: {termed:?}"
        );
        let mut run = runner.start(&common::sh("kill -KILL $$")).await.unwrap();
        let status = run.wait_status().await.unwrap();
        assert_eq!(
            (status.code(), status.signal()),
            (None, Some(9)),
            "{mechanism}: {status:?}"
        );
        let mut run = runner.start(&common::sh("exit 3")).await.unwrap();
        assert_eq!(run.wait().await.unwrap(), Some(3), "{mechanism}");
    }
}

/// The unprivileged and in-container lanes: no writable cgroup, so the
/// default is the subreaper, which holds the whole tree.
#[tokio::test]
async fn default_mechanism_is_subreaper_without_a_writable_cgroup() {
    let asked = std::env::var("PROCESSKIT_MECHANISM").unwrap_or_default();
    if !asked.is_empty() {
        skip(&format!(
            "PROCESSKIT_MECHANISM={asked} overrides the default"
        ));
        return;
    }
    let Some(reason) = processkit::fallback_reason() else {
        skip("this host has a writable cgroup v2: the default is cgroup-v2");
        return;
    };
    let group = ProcessGroup::new().expect("a default group");
    assert_eq!(
        group.mechanism(),
        Mechanism::Subreaper,
        "without a cgroup: {reason}"
    );
    assert!(group.mechanism().contains_whole_tree());
    let run = Command::new("true").start().await.unwrap();
    assert_eq!(run.mechanism(), Some(Mechanism::Subreaper), "{reason}");
}

/// Helper: ignores SIGHUP (as under `nohup`), then reports the ignored
/// signals (`SigIgn`) of a program started under each mechanism.
#[test]
#[ignore = "helper process for the signal-disposition test"]
fn helper_signal_dispositions() {
    if !common::privileges::acting_as("helper_signal_dispositions") {
        return;
    }
    // SAFETY: this helper process runs nothing else that handles SIGHUP.
    unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let status = |mechanism| {
        let runner = JobRunner::with_mechanism(mechanism);
        let status = runtime
            .block_on(runner.output_string(&Command::new("cat").arg("/proc/self/status")))
            .unwrap()
            .into_stdout();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or("?")
                .trim()
                .to_owned()
        };
        (field("SigIgn:"), field("PPid:"))
    };
    let report = common::privileges::report;
    report("process-group", status(Mechanism::ProcessGroup).0);
    let (ignored, shim) = status(Mechanism::Subreaper);
    report("subreaper", ignored);
    report("subreaper-shim", shim);
    // The next run takes the same shim, idle since: SIGHUP must not stay
    // ignored there once we no longer ignore it.
    // SAFETY: as above.
    unsafe { libc::signal(libc::SIGHUP, libc::SIG_DFL) };
    let (ignored, shim) = status(Mechanism::Subreaper);
    report("reused", ignored);
    report("reused-shim", shim);
}

#[test]
fn a_program_ignores_exactly_what_it_would_under_process_groups() {
    let helper = common::privileges::Helper::start("helper_signal_dispositions", &[]);
    let under_groups = helper.value("process-group");
    let under_shim = helper.value("subreaper");
    let hup = 1u64 << (libc::SIGHUP - 1);
    // Signals 1-31 only: glibc's posix_spawn (the std spawner) leaves its
    // internal signals (32, 33) ignored in the child, the clone spawner does not.
    let classic = |mask: &str| u64::from_str_radix(mask, 16).expect("a SigIgn mask") & 0x7fff_ffff;
    let mask = classic(&under_groups);
    assert_eq!(mask & hup, hup, "the owner's ignored SIGHUP is inherited");
    assert_eq!(
        format!("{:x}", classic(&under_shim)),
        format!("{mask:x}"),
        "SigIgn (1-31) under the shim; raw: {under_shim} vs {under_groups}"
    );
    if reuse::no_reuse_here() {
        return;
    }
    let (first, reused) = (helper.value("subreaper-shim"), helper.value("reused"));
    let again = helper.value("reused-shim");
    assert_eq!(first, again, "the second run did not reuse the shim");
    assert_eq!(
        classic(&reused) & hup,
        0,
        "SIGHUP stayed ignored in a reused shim: {reused}"
    );
}

/// A member that signals its shim with anything but SIGKILL (a stray
/// SIGUSR1, SIGALRM, a SIGSTOP) cannot free the tree: the shim reads every
/// catchable signal, and teardown continues a stopped shim first.
#[tokio::test]
async fn a_member_signalling_its_shim_does_not_free_the_tree() {
    for signal in [libc::SIGUSR1, libc::SIGALRM, libc::SIGSTOP] {
        let tree = EscapingTree::new(Escape::SetsidGrandchild);
        let group = group_on(Mechanism::Subreaper);
        let mut run = group.start(&tree.command()).await.unwrap();
        let members = tree.started().await;
        let program = run.id().expect("a live program has a pid");
        let shim = ppid(program).expect("the program's parent");
        assert!(
            is_shim(shim),
            "the program's parent {shim} is not a pk-shim"
        );
        // What `kill -<signal> $PPID` in the program would do.
        // SAFETY: kill takes integers; `shim` is a live shim checked above.
        unsafe { libc::kill(shim as i32, signal) };
        if signal == libc::SIGSTOP {
            let stopped = eventually(LIMIT, || state(shim).as_deref() == Some("T"));
            assert!(stopped, "the shim did not stop");
        } else {
            std::thread::sleep(Duration::from_millis(100));
            assert!(is_shim(shim), "signal {signal} killed the shim");
        }
        drop(run.kill());
        drop(group);
        tree.assert_gone(&members, &format!("signal {signal} to the shim, then drop"));
    }
}
