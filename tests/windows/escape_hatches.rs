//! Escape hatches and program lookup on Windows: `ProcessGroup::spawn`,
//! `Command::spawn_detached`, `which`/PATHEXT, batch-file arguments, and
//! the probes Windows has no counterpart for.

use super::*;

/// `cmd /c <this test binary>` as a caller-built tokio command.
fn tokio_cmd_with_grandchild(pidfile: &PidFile) -> tokio::process::Command {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = tokio::process::Command::new("cmd");
    cmd.arg("/c")
        .arg(exe)
        .args(helper_args("helper_grandchild_entry_point"))
        .env(HELPER_ENV, &pidfile.0)
        .stdout(std::process::Stdio::null());
    cmd
}

#[tokio::test]
async fn a_raw_tokio_command_dies_with_its_group() {
    let pidfile = PidFile::new("raw-spawn");
    let group = ProcessGroup::new().unwrap();
    let mut raw = group
        .spawn(&mut tokio_cmd_with_grandchild(&pidfile))
        .unwrap();
    let child = Watched::open(raw.id().unwrap());
    let grandchild = pidfile.grandchild().await;
    drop(group);
    child.assert_gone("the raw child").await;
    grandchild.assert_gone("the raw child's grandchild").await;
    bounded(raw.wait()).await.unwrap();
}

#[tokio::test]
async fn a_raw_command_keeps_the_creation_flags_it_is_given() {
    const CREATE_NO_WINDOW: u32 = 0x0800_0000;
    let pidfile = PidFile::new("raw-flags");
    let group = ProcessGroup::new().unwrap();
    let mut cmd = tokio_cmd_with_grandchild(&pidfile);
    let _raw = group
        .spawn_with_creation_flags(&mut cmd, CREATE_NO_WINDOW)
        .unwrap();
    let grandchild = pidfile.grandchild().await;
    group.terminate_all().unwrap();
    grandchild.assert_gone("the raw child's grandchild").await;
}

/// Set in an owner's environment: it starts a detached helper (pid to the
/// given file) and exits at once.
const DETACH_OWNER_ENV: &str = "PROCESSKIT_WINDOWS_TEST_DETACH_PIDFILE";

/// Not a test of its own: the owner for
/// `a_detached_child_outlives_its_owner`.
#[test]
fn helper_detach_owner_entry_point() {
    let Some(path) = std::env::var_os(DETACH_OWNER_ENV) else {
        return;
    };
    let exe = std::env::current_exe().expect("test binary path");
    let helper_pidfile = PathBuf::from(&path).with_extension("helper");
    // A group of its own, so a job of ours exists when the owner goes.
    let _group = ProcessGroup::new().expect("group");
    let pid = Command::new(exe)
        .args(helper_args("helper_grandchild_entry_point"))
        .env(HELPER_ENV, &helper_pidfile)
        .spawn_detached()
        .expect("spawn_detached");
    std::fs::write(&path, pid.to_string()).expect("write pid");
    std::process::exit(0);
}

#[tokio::test]
async fn a_detached_child_outlives_its_owner() {
    let pidfile = PidFile::new("detach-owner");
    let mut owner = start_helper(
        "escape_hatches::helper_detach_owner_entry_point",
        DETACH_OWNER_ENV,
        &pidfile,
    );
    let status = bounded(async { owner.wait() }).await.unwrap();
    assert!(status.success(), "{status:?}");
    let detached = pidfile.grandchild().await;
    // Its own pidfile, written by the helper once it runs.
    let helper = PidFile(pidfile.0.with_extension("helper"));
    let published = helper.grandchild().await;
    assert_eq!(published.pid, detached.pid);
    assert!(
        detached.is_alive(),
        "the detached child died with its owner"
    );
    // Watched terminates it on drop.
}

/// A scratch directory with `pk-tool.cmd`, which prints its command line's
/// arguments between brackets. It uses them only inside `echo`, whose line
/// cmd.exe parses with the caller's quoting intact: what runs is decided
/// by how the arguments were quoted, not by the script. It unsets
/// `PK_SECRET` first, so the secret can only show up if cmd.exe expanded
/// `%PK_SECRET%` while starting the script.
struct BatchDir(PathBuf);

impl BatchDir {
    fn new(tag: &str) -> BatchDir {
        let dir = std::env::temp_dir().join(format!("processkit-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let script = "@echo off\r\nset PK_SECRET=\r\necho [%*]\r\n";
        std::fs::write(dir.join("pk-tool.cmd"), script).unwrap();
        BatchDir(dir)
    }

    fn path_var(&self) -> std::ffi::OsString {
        let mut path = self.0.clone().into_os_string();
        path.push(";");
        path.push(std::env::var_os("PATH").unwrap_or_default());
        path
    }
}

impl Drop for BatchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn a_bare_name_finds_and_runs_a_cmd_file_through_pathext() {
    let dir = BatchDir::new("pathext");
    let cmd = Command::new("pk-tool")
        .env("PATH", dir.path_var())
        .arg("hello");
    let found = cmd.resolve_program().expect("pk-tool.cmd on PATH");
    assert!(
        found
            .to_string_lossy()
            .to_lowercase()
            .ends_with("pk-tool.cmd"),
        "{found:?}"
    );
    assert_eq!(cmd.run().await.unwrap(), "[hello]");
    let system = processkit::which("cmd").expect("cmd.exe");
    assert!(
        system.to_string_lossy().to_lowercase().ends_with("cmd.exe"),
        "{system:?}"
    );
    assert_eq!(processkit::which("processkit-no-such-program-here"), None);
}

#[tokio::test]
async fn batch_arguments_are_quoted_or_refused_never_injected() {
    let dir = BatchDir::new("batbadbut");
    let marker = dir.0.join("injected.txt");
    let hostile = [
        "\"&type nul > injected.txt".to_owned(),
        "&type nul > injected.txt".to_owned(),
        "a\" & type nul > injected.txt & \"b".to_owned(),
        "|type nul > injected.txt".to_owned(),
        "^& calc.exe".to_owned(),
        "%PK_SECRET%".to_owned(),
        "\\\"".to_owned(),
    ];
    let out = Command::new("pk-tool")
        .env("PATH", dir.path_var())
        .env("PK_SECRET", "leaked")
        .current_dir(&dir.0)
        .args(&hostile)
        .unchecked()
        .output_string()
        .await
        .unwrap();
    assert!(!marker.exists(), "an argument ran a command: {out:?}");
    let stdout = out.stdout();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains("calc.exe"), "{stdout}");
    // `%PK_SECRET%` reached the script unexpanded.
    assert!(!stdout.contains("leaked"), "{stdout}");
    // A line break cannot be quoted for cmd.exe: refused before anything runs.
    for broken in [
        "one\r\ntype nul > injected.txt",
        "two\ntype nul > injected.txt",
    ] {
        let err = Command::new("pk-tool")
            .env("PATH", dir.path_var())
            .current_dir(&dir.0)
            .arg(broken)
            .run()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidCommand { .. }), "{err:?}");
    }
    assert!(!marker.exists());
}

#[tokio::test]
async fn wait_for_socket_is_unsupported_on_windows() {
    let mut run = Command::new("cmd")
        .args(["/c", "ping -n 30 127.0.0.1 > NUL"])
        .start()
        .await
        .unwrap();
    let err = run
        .wait_for_socket("C:\\nowhere.sock", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
}
