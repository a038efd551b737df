//! `which` and `Command::resolve_program` find what the spawn runs: the
//! command's own `PATH`, executable regular files only (a directory or a
//! file without execute permission is skipped, as `execvp` skips them), the
//! working directory for relative paths. Windows' `PATHEXT` is covered in
//! tests/windows.
#![cfg(unix)]

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::TempDir;
use processkit::{Command, Error, which};

/// A shell script at `dir/name` that prints `says`, with `mode`.
fn script(dir: &Path, name: &str, says: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\necho {says}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn path_of(dirs: &[&Path]) -> String {
    let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    dirs.join(":")
}

#[tokio::test]
async fn a_custom_path_is_searched_in_order() {
    let (a, b) = (TempDir::new("lookup-a"), TempDir::new("lookup-b"));
    script(&b, "pk-tool", "from-b", 0o755);
    let first = script(&a, "pk-tool", "from-a", 0o755);
    let cmd = Command::new("pk-tool").env("PATH", path_of(&[&a, &b]));
    assert_eq!(cmd.resolve_program(), Some(first));
    assert_eq!(cmd.run().await.unwrap(), "from-a");
    // Our own PATH does not hold it.
    assert_eq!(which("pk-tool"), None);
}

#[tokio::test]
async fn a_file_without_execute_permission_is_skipped() {
    let (a, b) = (TempDir::new("lookup-noexec"), TempDir::new("lookup-exec"));
    script(&a, "pk-tool", "not-executable", 0o644);
    let runs = script(&b, "pk-tool", "executable", 0o755);
    let cmd = Command::new("pk-tool").env("PATH", path_of(&[&a, &b]));
    assert_eq!(cmd.resolve_program(), Some(runs));
    assert_eq!(cmd.run().await.unwrap(), "executable");

    let only = Command::new("pk-tool").env("PATH", path_of(&[&a]));
    assert_eq!(only.resolve_program(), None);
    let err = only.run().await.unwrap_err();
    assert!(matches!(err, Error::Spawn { .. }), "{err:?}");
}

#[tokio::test]
async fn a_directory_named_like_the_program_is_skipped() {
    let (a, b) = (TempDir::new("lookup-dir"), TempDir::new("lookup-file"));
    std::fs::create_dir(a.join("pk-tool")).unwrap();
    std::fs::set_permissions(a.join("pk-tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let runs = script(&b, "pk-tool", "the-file", 0o755);
    let cmd = Command::new("pk-tool").env("PATH", path_of(&[&a, &b]));
    assert_eq!(cmd.resolve_program(), Some(runs));
    assert_eq!(cmd.run().await.unwrap(), "the-file");
}

#[test]
fn which_follows_our_own_path() {
    let sh = which("sh").expect("sh is on PATH");
    assert!(sh.is_absolute() && sh.ends_with("sh"), "{sh:?}");
    assert_eq!(which("processkit-no-such-program-here"), None);
    assert_eq!(which(""), None);
}

#[test]
fn a_path_is_taken_as_is_and_a_relative_one_from_the_working_directory() {
    let dir = TempDir::new("lookup-relative");
    let tool = script(&dir, "pk-tool", "hi", 0o755);
    assert_eq!(which(&tool), Some(tool.clone()));
    let relative = Command::new("./pk-tool").current_dir(&dir);
    assert_eq!(relative.resolve_program(), Some(dir.join("./pk-tool")));
    // No file there: a path is never searched on PATH.
    assert_eq!(Command::new("./sh").resolve_program(), None);
}

#[test]
fn an_empty_path_entry_is_the_working_directory() {
    let dir = TempDir::new("lookup-empty-entry");
    script(&dir, "pk-tool", "hi", 0o755);
    let cmd = Command::new("pk-tool")
        .env("PATH", ":/nonexistent")
        .current_dir(&dir);
    assert_eq!(cmd.resolve_program(), Some(dir.join("pk-tool")));
}

#[test]
fn without_path_the_default_list_is_searched() {
    let found = Command::new("sh").env_clear().resolve_program().unwrap();
    assert!(
        found == Path::new("/bin/sh") || found == Path::new("/usr/bin/sh"),
        "{found:?}"
    );
}
