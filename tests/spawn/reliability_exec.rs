//! What a child gets at exec, the same under both spawners (the vfork-style
//! clone by default, std/tokio under `PROCESSKIT_SPAWNER=std`): the working
//! directory entered as the new user, the user's primary group, a file
//! without `#!` run by `/bin/sh`, and pipes that leave the user's budget alone.
//! Each test runs here, then once more in this binary re-executed with
//! `PROCESSKIT_SPAWNER=std`.
#![cfg(target_os = "linux")]

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Stdio;

use common::{KillPidOnDrop, TempDir, pids_with_token, token};
use processkit::{Command, Error};

/// Set in the re-executed copy that runs a test under the std spawner.
const STD_COPY: &str = "PK_RELIABILITY_EXEC_STD";
/// Names the helper a re-executed copy runs instead of a test.
const HELPER: &str = "PK_RELIABILITY_EXEC_HELPER";

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:").map(|v| v.trim().to_owned()))
        })
        .is_some_and(|uids| uids.split_whitespace().next() == Some("0"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs `body` with the default spawner, then re-runs the test `name` in a
/// copy of this binary with `PROCESSKIT_SPAWNER=std`, which must pass too.
fn under_both_spawners<F, Fut>(name: &str, body: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    runtime().block_on(body());
    if std::env::var_os(STD_COPY).is_some() {
        return;
    }
    let out = run_copy(
        std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                &crate::common::test_named(name),
                "--nocapture",
                "--test-threads=1",
            ])
            .env(STD_COPY, "1")
            .env("PROCESSKIT_SPAWNER", "std"),
    );
    assert!(
        out.status.success() && out.stdout.contains("1 passed"),
        "under PROCESSKIT_SPAWNER=std:\n{}\n{}",
        out.stdout,
        out.stderr
    );
}

struct CopyOutput {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs a re-executed copy, killed by pid if this test fails while it runs.
fn run_copy(cmd: &mut std::process::Command) -> CopyOutput {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("re-execute the test binary");
    let _guard = KillPidOnDrop(Some(child.id()));
    let out = child.wait_with_output().expect("wait for the copy");
    CopyOutput {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A scratch directory others may enter (TempDir's parent may be private).
fn open_dir(label: &str) -> TempDir {
    let dir = TempDir::new(label);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

#[test]
fn a_private_working_directory_is_entered_as_the_new_user() {
    if !is_root() {
        eprintln!("SKIP: dropping privileges needs root");
        return;
    }
    under_both_spawners(
        "a_private_working_directory_is_entered_as_the_new_user",
        || async {
            // An open directory with a readable secret, below a 0700 one:
            // only a process already inside can read it.
            let dir = TempDir::new("private-cwd");
            let inner = dir.join("inner");
            std::fs::create_dir(&inner).unwrap();
            std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::write(inner.join("secret.txt"), "the secret\n").unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
            let mark = token("private-cwd");
            let result = Command::new("sh")
                .args(["-c", "cat secret.txt", &mark])
                .uid(65534)
                .gid(65534)
                .current_dir(&inner)
                .output_string()
                .await;
            match result {
                Err(Error::Spawn { source, .. }) => assert_eq!(
                    source.kind(),
                    std::io::ErrorKind::PermissionDenied,
                    "{source}"
                ),
                other => panic!("uid 65534 entered a 0700 root directory: {other:?}"),
            }
            assert_eq!(pids_with_token(&mark), Vec::<u32>::new(), "left running");

            // A directory the user may enter still works.
            let open = open_dir("open-cwd");
            let out = Command::new("pwd")
                .uid(65534)
                .gid(65534)
                .current_dir(open.path())
                .output_string()
                .await
                .expect("an open directory is entered");
            assert_eq!(out.stdout().trim(), open.path().to_str().unwrap());
        },
    );
}

#[test]
fn a_uid_alone_runs_in_the_users_primary_group_without_supplementary_groups() {
    if !is_root() {
        eprintln!("SKIP: dropping privileges needs root");
        return;
    }
    under_both_spawners(
        "a_uid_alone_runs_in_the_users_primary_group_without_supplementary_groups",
        || async {
            // nobody: uid 65534, primary group 65534 (nogroup) on Debian.
            let out = Command::new("sh")
                .args(["-c", "id -u; id -g; id -G"])
                .uid(65534)
                .output_string()
                .await
                .expect("uid 65534 runs");
            assert_eq!(
                out.stdout().lines().collect::<Vec<_>>(),
                ["65534", "65534", "65534"],
                "uid, gid, groups"
            );
        },
    );
}

#[test]
fn a_uid_without_a_user_entry_needs_an_explicit_gid() {
    if !is_root() {
        eprintln!("SKIP: dropping privileges needs root");
        return;
    }
    const NO_USER: u32 = 54_321;
    let known = std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(':').nth(2) == Some(&NO_USER.to_string()));
    if known {
        eprintln!("SKIP: uid {NO_USER} exists here");
        return;
    }
    under_both_spawners(
        "a_uid_without_a_user_entry_needs_an_explicit_gid",
        || async {
            let mark = token("no-user");
            let result = Command::new("sh")
                .args(["-c", "id -g", &mark])
                .uid(NO_USER)
                .output_string()
                .await;
            match result {
                Err(Error::Spawn { source, .. }) => {
                    assert_eq!(source.kind(), std::io::ErrorKind::InvalidInput, "{source}")
                }
                other => panic!("a uid without a user entry ran: {other:?}"),
            }
            assert_eq!(pids_with_token(&mark), Vec::<u32>::new(), "left running");
            let out = Command::new("sh")
                .args(["-c", "id -u; id -g; id -G"])
                .uid(NO_USER)
                .gid(NO_USER)
                .output_string()
                .await
                .expect("with an explicit gid it runs");
            let want = NO_USER.to_string();
            assert_eq!(out.stdout().lines().collect::<Vec<_>>(), [&want; 3]);
        },
    );
}

#[test]
fn a_file_without_a_shebang_is_run_by_sh_under_both_spawners() {
    under_both_spawners(
        "a_file_without_a_shebang_is_run_by_sh_under_both_spawners",
        || async {
            let dir = open_dir("noshebang");
            let script = dir.join("plain-script");
            std::fs::write(&script, "echo \"ran by sh: $0 $1\"\n").unwrap();
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
            let out = Command::new(&script)
                .arg("one")
                .output_string()
                .await
                .expect("a file without #! runs");
            assert_eq!(
                out.stdout().trim(),
                format!("ran by sh: {} one", script.display())
            );
            // Found on PATH, the same.
            let out = Command::new("plain-script")
                .env("PATH", dir.path())
                .output_string()
                .await
                .expect("found on PATH, it runs");
            assert!(out.stdout().starts_with("ran by sh: "), "{out:?}");
        },
    );
}

/// How many children the unprivileged helper keeps running at once.
const CHILDREN: usize = 70;

#[test]
fn many_children_of_an_unprivileged_user_leave_its_new_pipes_full_size() {
    if std::env::var_os(HELPER).is_some_and(|h| h == "pipes") {
        return hold_children_and_measure_a_fresh_pipe();
    }
    if !is_root() {
        eprintln!("SKIP: needs root to run the helper as another user");
        return;
    }
    let soft = std::fs::read_to_string("/proc/sys/fs/pipe-user-pages-soft").unwrap_or_default();
    if soft.trim() == "0" || soft.trim().is_empty() {
        eprintln!("SKIP: no pipe-user-pages-soft limit here");
        return;
    }
    for spawner in ["clone", "std"] {
        let exe = std::env::current_exe().expect("test binary");
        let mut cmd = std::process::Command::new(exe);
        cmd.args([
            "--exact",
            &crate::common::test_named(
                "many_children_of_an_unprivileged_user_leave_its_new_pipes_full_size",
            ),
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER, "pipes")
        .env("PROCESSKIT_SPAWNER", spawner)
        .current_dir("/")
        .uid(65534)
        .gid(65534);
        let out = run_copy(&mut cmd);
        assert!(
            out.status.success(),
            "{spawner}:\n{}\n{}",
            out.stdout,
            out.stderr
        );
        let size: usize = out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("fresh pipe bytes: "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{spawner}: no size reported:\n{}", out.stdout));
        assert_eq!(
            size, 65536,
            "{spawner}: with {CHILDREN} children running, a new pipe of the user holds {size} bytes"
        );
    }
}

/// Runs as uid 65534: keeps many captured children running, then reports how
/// much a fresh pipe of this user holds.
fn hold_children_and_measure_a_fresh_pipe() {
    runtime().block_on(async {
        let mark = token("pipes");
        let mut running = Vec::new();
        for _ in 0..CHILDREN {
            let run = Command::new("sh")
                .args(["-c", "exec sleep 60", &mark])
                .start()
                .await
                .expect("start a child");
            running.push(run);
        }
        let (reader, writer) = std::io::pipe().expect("a fresh pipe");
        let writer =
            tokio::net::unix::pipe::Sender::from_owned_fd(writer.into()).expect("non-blocking");
        writer.writable().await.expect("an empty pipe is writable");
        let chunk = [0u8; 4096];
        let mut held = 0;
        loop {
            match writer.try_write(&chunk) {
                Ok(n) => held += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("write: {e}"),
            }
        }
        drop(reader);
        println!("\nfresh pipe bytes: {held}");
        for mut run in running {
            let _ = run.kill();
            let _ = run.wait().await;
        }
        assert_eq!(pids_with_token(&mark), Vec::<u32>::new(), "left running");
    });
}
