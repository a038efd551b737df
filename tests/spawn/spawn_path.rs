//! What a child sees at exec, whichever spawner started it (the vfork-style
//! clone by default on Linux, std/tokio under `PROCESSKIT_SPAWNER=std`):
//! signal state, environment, the `PATH` search, and reaping after a drop.
#![cfg(target_os = "linux")]

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{KillPidOnDrop, TempDir, eventually_async};
use processkit::{Command, Error};

/// A hex mask line (`SigIgn:`, `SigBlk:`) of the child's own /proc status.
async fn child_mask(field: &str) -> u64 {
    let out = Command::new("sh")
        .args(["-c", &format!("grep '^{field}:' /proc/self/status")])
        .output_string()
        .await
        .expect("sh runs");
    let hex = out.stdout().trim().rsplit('\t').next().unwrap_or("").trim();
    u64::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("bad mask line {out:?}"))
}

#[tokio::test]
async fn the_child_gets_sigpipe_back_at_its_default() {
    // Rust ignores SIGPIPE in this process; a child must not inherit that.
    let ignored = child_mask("SigIgn").await;
    assert_eq!(
        ignored & (1 << (13 - 1)),
        0,
        "SIGPIPE ignored: {ignored:#x}"
    );
}

#[tokio::test]
async fn the_child_starts_with_no_signal_blocked() {
    assert_eq!(child_mask("SigBlk").await, 0);
}

#[tokio::test]
async fn an_unchanged_environment_is_ours_and_overrides_apply_on_top() {
    let home = std::env::var("HOME").unwrap_or_default();
    let out = Command::new("sh")
        .args(["-c", "printf '%s' \"$HOME\""])
        .output_string()
        .await
        .unwrap();
    assert_eq!(out.stdout(), &home);

    let out = Command::new("sh")
        .args(["-c", "printf '%s|%s' \"$PK_SPAWN_ADDED\" \"${HOME-unset}\""])
        .env("PK_SPAWN_ADDED", "yes")
        .env_remove("HOME")
        .output_string()
        .await
        .unwrap();
    assert_eq!(out.stdout(), "yes|unset");
}

#[tokio::test]
async fn a_cleared_environment_holds_only_what_was_set() {
    let out = Command::new("/bin/sh")
        .args([
            "-c",
            "printf '%s|%s|%s' \"$ONLY\" \"${HOME-unset}\" \"${PATH-unset}\"",
        ])
        .env_clear()
        .env("ONLY", "1")
        .output_string()
        .await
        .unwrap();
    // sh may give itself a default PATH, but it must not have received ours.
    let parts: Vec<&str> = out.stdout().split('|').collect();
    assert_eq!(parts[..2], ["1", "unset"], "{parts:?}");
    let ours = std::env::var("PATH").unwrap_or_default();
    assert!(parts[2] == "unset" || parts[2] != ours, "{parts:?}");
}

#[tokio::test]
async fn the_path_search_skips_non_executables_and_uses_the_childs_path() {
    let first = TempDir::new("spawn-path-a");
    let second = TempDir::new("spawn-path-b");
    let name = "pk-spawn-path-probe";
    // The first match cannot be executed; the search goes on, as execvp does.
    std::fs::write(first.join(name), "#!/bin/sh\necho first\n").unwrap();
    std::fs::set_permissions(first.join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(second.join(name), "#!/bin/sh\necho second\n").unwrap();
    std::fs::set_permissions(second.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}:/usr/bin:/bin", first.display(), second.display());

    let out = Command::new(name)
        .env("PATH", &path)
        .output_string()
        .await
        .unwrap();
    assert_eq!(out.stdout(), "second\n");

    let missing = Command::new("pk-spawn-path-nowhere")
        .env("PATH", &path)
        .output_string()
        .await
        .unwrap_err();
    assert!(matches!(missing, Error::NotFound { .. }), "{missing:?}");
}

#[tokio::test]
async fn only_non_executable_matches_are_a_permission_error() {
    let dir = TempDir::new("spawn-path-denied");
    let name = "pk-spawn-path-denied";
    std::fs::write(dir.join(name), "#!/bin/sh\necho no\n").unwrap();
    std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Command::new(name)
        .env("PATH", dir.path())
        .uid(65534)
        .gid(65534)
        .output_string()
        .await
        .unwrap_err();
    match err {
        Error::Spawn { source, .. } => {
            assert_eq!(
                source.kind(),
                std::io::ErrorKind::PermissionDenied,
                "{source}"
            )
        }
        other => panic!("expected a spawn error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_dropped_handle_leaves_no_zombie() {
    let run = Command::new("sleep").arg("1000").start().await.unwrap();
    let pid = run.id().expect("running");
    let _guard = KillPidOnDrop(Some(pid));
    drop(run);
    // Killed with its tree, then reaped in the background: /proc forgets it.
    let gone = eventually_async(Duration::from_secs(10), || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    })
    .await;
    assert!(gone, "pid {pid} still in /proc (a zombie nobody reaped?)");
}

#[tokio::test]
async fn many_concurrent_spawns_all_report_their_own_exit() {
    let runs = (0..32).map(|i| async move {
        let code = Command::new("sh")
            .args(["-c", &format!("exit {i}")])
            .exit_code()
            .await
            .unwrap();
        (i, code)
    });
    for (i, code) in futures_join(runs).await {
        assert_eq!(code, i);
    }
}

async fn futures_join<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_relative_program_runs_from_the_working_directory() {
    let dir = TempDir::new("spawn-path-relative");
    std::fs::create_dir(dir.join("sub")).unwrap();
    let script = dir.join("sub").join("here.sh");
    std::fs::write(&script, "#!/bin/sh\npwd\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    for program in ["./sub/here.sh", "sub/here.sh"] {
        let out = Command::new(program)
            .current_dir(dir.path())
            .output_string()
            .await
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        let pwd = std::path::PathBuf::from(out.stdout().trim());
        assert_eq!(
            pwd.canonicalize().unwrap(),
            dir.path().canonicalize().unwrap()
        );
    }
}
