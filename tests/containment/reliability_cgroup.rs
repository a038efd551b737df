//! Fault tests of the cgroup layer, each in a re-executed copy of this test
//! binary so a failure can only hurt that copy: a second program in another
//! pid or time namespace, descriptor exhaustion at teardown and at first use,
//! and adopting the caller through one of its thread ids or an ancestor.
#![cfg(target_os = "linux")]
// Some imports serve only the tests of optional features.
#![cfg_attr(
    not(all(feature = "stats", feature = "process-control")),
    allow(unused_imports)
)]

use crate::common;
mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::Duration;

use common::{Cleanup, eventually, is_alive, pids_with_token, token};
use processkit::{Command, Mechanism, ProcessGroup};
use support::*;

// ---- a second program in another namespace ----

const NS_TEST: &str = "namespace_roles";

/// The roles of the namespace tests: an owner holding a tree, a second
/// program that makes its own root (and so sweeps).
#[test]
fn namespace_roles() {
    match role().as_deref() {
        Some("owner") => owner(),
        Some("second") => second(),
        _ => {}
    }
}

fn owner() {
    join_parent();
    block_on(async {
        let group = ProcessGroup::new().expect("group");
        let tag = std::env::var("PK_TOKEN").unwrap();
        let run = group
            .start(&Command::new("sh").args(["-c", "while :; do sleep 1; done", &tag]))
            .await
            .expect("start");
        let pid = run.id().unwrap();
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        println!("MECH {}", group.mechanism());
        let v2 = cgroup.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
        println!("CGROUP {v2}");
        std::io::stdout().flush().unwrap();
        // Until the test closes our stdin (or kills us).
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        drop((run, group));
    });
}

fn second() {
    join_parent();
    block_on(async {
        let group = ProcessGroup::new().expect("group");
        let out = group
            .start(&Command::new("true"))
            .await
            .expect("start")
            .wait()
            .await
            .expect("wait");
        println!("SECOND {} {out:?}", group.mechanism());
    });
}

/// An owner started through `prefix` (e.g. `unshare --time ...`), in `parent`.
fn start_owner(prefix: &[&str], parent: &SharedParent, tag: &str, guardian: bool) -> Owned {
    let exe = std::env::current_exe().unwrap();
    let mut cmd =
        std::process::Command::new(prefix.first().copied().unwrap_or(exe.to_str().unwrap()));
    if !prefix.is_empty() {
        cmd.args(&prefix[1..]).arg(&exe);
    }
    cmd.args([
        "--exact",
        &crate::common::test_named(NS_TEST),
        "--nocapture",
        "--test-threads=1",
    ])
    .env(ROLE, "owner")
    .env("PK_PARENT", &parent.0)
    .env("PK_TOKEN", tag)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped());
    if !guardian {
        cmd.env("PROCESSKIT_GUARDIAN", "off");
    }
    Owned(cmd.spawn().expect("start the owner"))
}

/// Runs the second program through `prefix`, in `parent`; its report line.
fn run_second(prefix: &[&str], parent: &SharedParent) -> String {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(prefix[0])
        .args(&prefix[1..])
        .arg(&exe)
        .args([
            "--exact",
            &crate::common::test_named(NS_TEST),
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, "second")
        .env("PK_PARENT", &parent.0)
        .output()
        .expect("run the second program");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "second program failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = text.lines().map(str::to_owned);
    format!("SECOND {}", value(&mut lines, "SECOND"))
}

/// Whether `unshare` with these flags works here (root, kernel support).
fn unshare_works(flags: &[&str]) -> bool {
    std::process::Command::new("unshare")
        .args(flags)
        .arg("true")
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The owner runs under `owner_prefix`, the second program under
/// `second_prefix`; the owner's tree and root must survive the second's sweep.
fn live_owner_survives(owner_prefix: &[&str], second_prefix: &[&str]) {
    let Some(parent) = SharedParent::new() else {
        eprintln!("SKIP: cannot make a cgroup for the test (not root?)");
        return;
    };
    let tag = token("rc-owner");
    let _cleanup = Cleanup::token(&tag);
    let mut owner = start_owner(owner_prefix, &parent, &tag, true);
    let mut lines = BufReader::new(owner.0.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    assert_eq!(value(&mut lines, "MECH"), "cgroup-v2");
    let cgroup = value(&mut lines, "CGROUP");
    let root_name = cgroup
        .split('/')
        .find(|c| c.starts_with("processkit-"))
        .unwrap();
    let root = parent.0.join(root_name);
    // The owner printed its lines after its start returned; allow /proc a
    // moment all the same, so a slow machine does not fail the precondition.
    eventually(Duration::from_secs(10), || {
        !pids_with_token(&tag).is_empty()
    });
    let tree = pids_with_token(&tag);
    assert!(
        !tree.is_empty() && root.is_dir(),
        "the owner's tree is up: tree {tree:?}, root {} exists: {}, cgroup {cgroup}",
        root.display(),
        root.is_dir()
    );

    let report = run_second(second_prefix, &parent);
    assert!(report.starts_with("SECOND cgroup-v2"), "{report}");

    let alive: Vec<u32> = tree.iter().copied().filter(|&p| is_alive(p)).collect();
    assert_eq!(alive, tree, "the live owner's tree was killed by the sweep");
    assert!(
        root.is_dir(),
        "the live owner's root {} was removed",
        root.display()
    );
    drop(owner.0.stdin.take());
    let _ = owner.0.wait();
}

#[test]
fn a_second_program_in_another_pid_namespace_leaves_a_live_owner_alone() {
    if role().is_some() || !cgroup_v2_here() {
        return;
    }
    let pidns = ["unshare", "--pid", "--fork", "--mount-proc"];
    if !unshare_works(&pidns) {
        eprintln!("SKIP: cannot unshare a pid namespace here");
        return;
    }
    live_owner_survives(&[], &pidns);
}

#[test]
fn a_second_program_leaves_an_owner_in_another_time_namespace_alone() {
    if role().is_some() || !cgroup_v2_here() {
        return;
    }
    let timens = ["unshare", "--time", "--boottime", "86400", "--fork"];
    if !unshare_works(&timens) {
        eprintln!("SKIP: this kernel or unshare has no time namespaces");
        return;
    }
    live_owner_survives(&timens, &["env"]);
}

#[test]
fn a_dead_owners_root_is_swept_from_another_pid_namespace() {
    if role().is_some() || !cgroup_v2_here() {
        return;
    }
    let pidns = ["unshare", "--pid", "--fork", "--mount-proc"];
    if !unshare_works(&pidns) {
        eprintln!("SKIP: cannot unshare a pid namespace here");
        return;
    }
    let Some(parent) = SharedParent::new() else {
        eprintln!("SKIP: cannot make a cgroup for the test (not root?)");
        return;
    };
    let tag = token("rc-dead");
    let _cleanup = Cleanup::token(&tag);
    // No guardian: the tree outlives its SIGKILLed owner until a sweep.
    let mut owner = start_owner(&[], &parent, &tag, false);
    let mut lines = BufReader::new(owner.0.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    let cgroup = value(&mut lines, "CGROUP");
    let root_name = cgroup
        .split('/')
        .find(|c| c.starts_with("processkit-"))
        .unwrap();
    let root = parent.0.join(root_name);
    owner.0.kill().unwrap();
    owner.0.wait().unwrap();
    let tree = pids_with_token(&tag);
    assert!(
        !tree.is_empty(),
        "the orphaned tree is still up before the sweep"
    );

    run_second(&pidns, &parent);
    assert!(
        eventually(Duration::from_secs(10), || tree
            .iter()
            .all(|&p| !is_alive(p))),
        "the dead owner's tree was not swept"
    );
    assert!(
        eventually(Duration::from_secs(10), || !root.exists()),
        "the dead owner's root {} was not removed",
        root.display()
    );
}

// ---- out of descriptors ----

/// Runs this test's child as `role` with `tag`; its `KEY value` lines, read
/// while it stays out of descriptors, and a guard that ends it.
fn out_of_descriptors(test: &str, role: &str, tag: &str) -> (Owned, impl Iterator<Item = String>) {
    let mut child = Owned(
        reexec(test, role)
            .env("PK_TAG", tag)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("re-run this test"),
    );
    let lines = BufReader::new(child.0.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    (child, lines)
}

#[test]
fn out_of_descriptors_a_dropped_handle_still_kills_its_tree() {
    const TEST: &str = "out_of_descriptors_a_dropped_handle_still_kills_its_tree";
    match role().as_deref() {
        Some("nofile-drop") => return dropped_out_of_descriptors(),
        Some(_) => return,
        None => {}
    }
    let tag = token("rc-dropped");
    let _cleanup = Cleanup::token(&tag);
    let (mut child, mut lines) = out_of_descriptors(TEST, "nofile-drop", &tag);
    let mechanism = value(&mut lines, "MECH");
    let pid: u32 = value(&mut lines, "DROPPED").parse().unwrap();
    // The child is still out of descriptors while we look.
    let gone = eventually(Duration::from_secs(5), || !is_alive(pid));
    drop(child.0.stdin.take());
    let _ = child.0.wait();
    assert!(
        gone,
        "{mechanism}: a handle dropped while out of descriptors left its child alive"
    );
}

fn dropped_out_of_descriptors() {
    block_on(async {
        let tag = std::env::var("PK_TAG").unwrap();
        let dropped = Command::new("sh")
            .args(["-c", "while :; do sleep 1; done", &tag])
            .start()
            .await
            .expect("start");
        let pid = dropped.id().unwrap();
        let forced = std::env::var("PROCESSKIT_MECHANISM").unwrap_or_default();
        println!(
            "MECH {forced} (fallback: {:?})",
            processkit::fallback_reason()
        );
        let held = exhaust_descriptors();
        drop(dropped);
        println!("DROPPED {pid}");
        std::io::stdout().flush().unwrap();
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        drop(held);
    });
}

#[test]
fn out_of_descriptors_a_timeout_still_ends_the_run() {
    const TEST: &str = "out_of_descriptors_a_timeout_still_ends_the_run";
    match role().as_deref() {
        Some("nofile-timeout") => return timeout_out_of_descriptors(),
        Some(_) => return,
        None => {}
    }
    let tag = token("rc-timed");
    let _cleanup = Cleanup::token(&tag);
    let (mut child, mut lines) = out_of_descriptors(TEST, "nofile-timeout", &tag);
    let mechanism = value(&mut lines, "MECH");
    let timeout = value(&mut lines, "TIMEOUT");
    if timeout.starts_with("inconclusive") {
        eprintln!("SKIP: {timeout}");
        return;
    }
    let tree_gone = eventually(Duration::from_secs(5), || pids_with_token(&tag).is_empty());
    drop(child.0.stdin.take());
    let _ = child.0.wait();
    assert!(
        timeout.starts_with("ended"),
        "{mechanism}: a timed-out run kept running while out of descriptors: {timeout}"
    );
    assert!(
        tree_gone,
        "{mechanism}: the timed-out run's tree is still up"
    );
}

fn timeout_out_of_descriptors() {
    const LIMIT: Duration = Duration::from_secs(2);
    block_on(async {
        // A captured run whose grandchild holds its stdout: it ends only when
        // the whole tree is killed.
        let tag = std::env::var("PK_TAG").unwrap();
        let timed = Command::new("sh")
            .args(["-c", r#"sh -c 'sleep 1000; : "$0"' "$0" & wait"#, &tag])
            .timeout(LIMIT);
        let started = std::time::Instant::now();
        let timed = tokio::spawn(async move { timed.output_string().await });
        let up = common::eventually_async(LIMIT, || pids_with_token(&tag).len() >= 2).await;
        let forced = std::env::var("PROCESSKIT_MECHANISM").unwrap_or_default();
        println!(
            "MECH {forced} (fallback: {:?})",
            processkit::fallback_reason()
        );
        let held = exhaust_descriptors();
        if !up || started.elapsed() >= LIMIT {
            // Too slow (a loaded machine): the timeout fired before we ran out.
            println!("TIMEOUT inconclusive: out of descriptors only after the deadline");
        } else {
            match tokio::time::timeout(Duration::from_secs(10), timed).await {
                Ok(result) => println!("TIMEOUT ended: {result:?}"),
                Err(_) => println!("TIMEOUT still running 10 s after its deadline"),
            }
        }
        std::io::stdout().flush().unwrap();
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        drop(held);
    });
}

// ---- a passing error at first use ----

#[test]
fn one_emfile_at_first_use_does_not_downgrade_later_groups() {
    const TEST: &str = "one_emfile_at_first_use_does_not_downgrade_later_groups";
    if role().as_deref() == Some("first-emfile") {
        return first_use_out_of_descriptors();
    }
    if role().is_some() || !cgroup_v2_here() {
        return;
    }
    let out = reexec(TEST, "first-emfile")
        .output()
        .expect("re-run this test");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = text.lines().map(str::to_owned);
    let first = value(&mut lines, "FIRST");
    assert!(
        first.starts_with("error"),
        "an EMFILE at first use must be that call's error, not a silent fallback: {first}"
    );
    let later = value(&mut lines, "LATER");
    assert_eq!(later, "cgroup-v2", "a later group was downgraded: {text}");
    let run = value(&mut lines, "RUN");
    assert!(
        run.contains("/processkit-"),
        "a later run is not contained: {run}"
    );
    let spare = value(&mut lines, "SPARE");
    assert_eq!(spare, "yes", "the spare-cgroup thread gave up: {text}");
}

fn first_use_out_of_descriptors() {
    block_on(async {
        let held = exhaust_descriptors();
        let first = ProcessGroup::new();
        drop(held);
        match first {
            Ok(g) => println!("FIRST ok {}", g.mechanism()),
            Err(e) => println!("FIRST error {e}"),
        }
        println!("LATER {}", ProcessGroup::new().expect("group").mechanism());
        let cat = || Command::new("cat").arg("/proc/self/cgroup");
        let v2 = |text: &str| {
            let line = text.lines().find_map(|l| l.strip_prefix("0::"));
            line.unwrap_or("").to_owned()
        };
        let out = cat().output_string().await.expect("run");
        println!("RUN {}", v2(out.stdout()));
        // Out of descriptors again: the spare thread fails to make a spare...
        let held = exhaust_descriptors();
        for _ in 0..4 {
            let _ = cat().output_string().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(held);
        // ...and still makes them once descriptors are back (spares are `s<N>`).
        let mut spare = false;
        for _ in 0..50 {
            let out = cat().output_string().await.expect("run");
            let leaf = v2(out.stdout()).rsplit('/').next().unwrap_or("").to_owned();
            if leaf.starts_with('s') {
                spare = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!("SPARE {}", if spare { "yes" } else { "no" });
    });
}

// ---- adopting the caller ----

#[cfg(feature = "process-control")]
fn adopt_child(mechanism: Mechanism) {
    use processkit::ProcessGroupOptions;
    let group = ProcessGroup::with_options(ProcessGroupOptions::default().mechanism(mechanism))
        .expect("group");
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let _ = rx.recv();
    });
    let me = std::process::id();
    let tid: u32 = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .find(|&t| t != me)
        .expect("a second thread");
    let targets = [
        ("THREAD", tid),
        ("PARENT", std::os::unix::process::parent_id()),
    ];
    for (what, pid) in targets {
        match group.adopt(pid) {
            Ok(()) => println!("{what} adopted"),
            Err(processkit::Error::Io { source, .. }) => {
                println!("{what} refused {:?}: {source}", source.kind())
            }
            Err(e) => println!("{what} other error: {e}"),
        }
    }
    if let processkit::GuardianStatus::Running { pid } = processkit::guardian_status() {
        match group.adopt(pid) {
            Ok(()) => println!("GUARDIAN adopted"),
            Err(e) => println!("GUARDIAN refused: {e}"),
        }
    }
    group.terminate_all().expect("terminate_all");
    std::thread::sleep(Duration::from_millis(200));
    println!("SURVIVED");
    let _ = tx.send(());
    thread.join().unwrap();
}

#[cfg(feature = "process-control")]
#[test]
fn adopting_a_thread_or_an_ancestor_of_the_caller_is_refused_and_the_caller_survives() {
    const TEST: &str =
        "adopting_a_thread_or_an_ancestor_of_the_caller_is_refused_and_the_caller_survives";
    match role().as_deref() {
        Some("adopt") => {
            let name = std::env::var("PK_MECH").unwrap();
            return adopt_child(Mechanism::from_name(&name).unwrap());
        }
        Some(_) => return,
        None => {}
    }
    let mut mechanisms = vec![Mechanism::ProcessGroup];
    if cfg!(target_os = "linux") {
        mechanisms.push(Mechanism::Subreaper);
    }
    if cgroup_v2_here() {
        mechanisms.push(Mechanism::CgroupV2);
    }
    for mechanism in mechanisms {
        // The child's parent is a shell that says whether it survived.
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new("sh")
            .args(["-c", "\"$0\" \"$@\"; echo \"SHELL survived $?\""])
            .arg(&exe)
            .args([
                "--exact",
                &crate::common::test_named(TEST),
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE, "adopt")
            .env("PK_MECH", mechanism.name())
            .output()
            .expect("run the shell");
        let text = String::from_utf8_lossy(&out.stdout);
        let said = |line: &str| text.lines().any(|l| l.contains(line));
        assert!(
            said("SHELL survived 0"),
            "{mechanism}: the caller's parent was killed ({:?}): {text}",
            out.status
        );
        assert!(
            said("SURVIVED"),
            "{mechanism}: the caller was killed: {text}"
        );
        assert!(
            said("THREAD refused InvalidInput"),
            "{mechanism}: a thread id of the caller was not refused: {text}"
        );
        assert!(
            said("PARENT refused InvalidInput"),
            "{mechanism}: the caller's parent was not refused: {text}"
        );
        assert!(
            !said("GUARDIAN adopted"),
            "{mechanism}: the guardian was adopted: {text}"
        );
    }
}
