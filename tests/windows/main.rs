//! Windows Job Object containment, run for real (under Wine in CI): the
//! no-orphan matrix over a child (`cmd.exe`) and a grandchild it starts,
//! capture, stdin, `create_no_window`, the POSIX-only options; graceful stops
//! (console break, `WM_CLOSE`) in `polite`; runs on a ConPTY pseudo console
//! in `conpty`.
#![cfg(windows)]

#[cfg(feature = "pty")]
mod conpty;
mod escape_hatches;
mod polite;
mod spawn_options;

use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use processkit::{Command, Error, Mechanism, ProcessGroup, Stdin, Stdio};
use windows_sys::Win32::Foundation::WAIT_TIMEOUT;
use windows_sys::Win32::System::Threading::{
    OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_SYNCHRONIZE, PROCESS_TERMINATE,
    TerminateProcess, WaitForSingleObject,
};

/// Set in a child's environment: the helper writes its pid there and sleeps.
const HELPER_ENV: &str = "PROCESSKIT_WINDOWS_TEST_PIDFILE";
const GENEROUS: Duration = Duration::from_secs(30);

/// Not a test of its own: when this binary is started as a grandchild with
/// `HELPER_ENV` set, it records its pid and sleeps until it is killed.
#[test]
fn helper_grandchild_entry_point() {
    let Some(path) = std::env::var_os(HELPER_ENV) else {
        return;
    };
    let tmp = PathBuf::from(&path).with_extension("tmp");
    std::fs::write(&tmp, std::process::id().to_string()).expect("write pid");
    std::fs::rename(&tmp, &path).expect("publish pid");
    std::thread::sleep(Duration::from_secs(600));
}

/// Set in an owner's environment: the owner starts a grandchild through
/// processkit (pid to the given file) and waits to be killed.
const OWNER_ENV: &str = "PROCESSKIT_WINDOWS_TEST_OWNER_PIDFILE";

/// Not a test of its own: the owner process for
/// `an_owner_killed_abruptly_takes_its_tree_along`.
#[test]
fn helper_owner_entry_point() {
    let Some(path) = std::env::var_os(OWNER_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let pidfile = PidFile(PathBuf::from(path));
        let run = cmd_with_grandchild(&pidfile).start().await.expect("start");
        std::mem::forget(pidfile); // the test reads and removes it
        tokio::time::sleep(Duration::from_secs(600)).await;
        drop(run);
    });
}

/// A process we watch through a handle opened while it is alive (so a
/// recycled pid cannot fool us). Terminated on drop if a test failed.
struct Watched {
    handle: OwnedHandle,
    pid: u32,
}

impl Watched {
    fn open(pid: u32) -> Watched {
        let access = PROCESS_SYNCHRONIZE | PROCESS_TERMINATE | PROCESS_QUERY_LIMITED_INFORMATION;
        // SAFETY: OpenProcess takes plain integers; the result is checked.
        let raw = unsafe { OpenProcess(access, 0, pid) };
        assert!(
            !raw.is_null(),
            "could not open pid {pid}: it is already gone"
        );
        // SAFETY: `raw` is a fresh handle that nothing else owns.
        let handle = unsafe { OwnedHandle::from_raw_handle(raw) };
        Watched { handle, pid }
    }

    fn is_alive(&self) -> bool {
        // SAFETY: the handle is valid and has SYNCHRONIZE access.
        unsafe { WaitForSingleObject(self.handle.as_raw_handle(), 0) == WAIT_TIMEOUT }
    }

    /// Polls (bounded) until the process has exited.
    async fn assert_gone(&self, what: &str) {
        let deadline = Instant::now() + GENEROUS;
        while self.is_alive() {
            assert!(
                Instant::now() < deadline,
                "{what} (pid {}) is still running",
                self.pid
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if self.is_alive() {
            // SAFETY: the handle is valid and has PROCESS_TERMINATE access.
            unsafe { TerminateProcess(self.handle.as_raw_handle(), 99) };
        }
    }
}

/// A unique pidfile path in the temp directory, removed on drop.
struct PidFile(PathBuf);

impl PidFile {
    fn new(tag: &str) -> PidFile {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("processkit-{tag}-{}-{n}.pid", std::process::id());
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_file(&path);
        PidFile(path)
    }

    /// Waits (bounded) for the grandchild to publish its pid, then watches it.
    async fn grandchild(&self) -> Watched {
        let deadline = Instant::now() + GENEROUS;
        loop {
            let text = std::fs::read_to_string(&self.0).unwrap_or_default();
            if let Ok(pid) = text.trim().parse() {
                return Watched::open(pid);
            }
            assert!(Instant::now() < deadline, "the grandchild never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Awaits `fut`, failing the test if it does not finish within a generous
/// bound (a run whose tree was not killed would wait for the helper's sleep).
async fn bounded<F: std::future::Future>(fut: F) -> F::Output {
    tokio::time::timeout(GENEROUS, fut)
        .await
        .expect("the run did not end: its tree was not killed")
}

/// libtest arguments that make this test binary run just `entry_point`.
fn helper_args(entry_point: &str) -> [&str; 4] {
    [entry_point, "--exact", "--nocapture", "--test-threads=1"]
}

/// `cmd /c <this test binary>`: cmd.exe is the child, the helper the grandchild.
fn cmd_with_grandchild(pidfile: &PidFile) -> Command {
    let exe = std::env::current_exe().expect("test binary path");
    Command::new("cmd")
        .arg("/c")
        .arg(exe)
        .args(helper_args("helper_grandchild_entry_point"))
        .env(HELPER_ENV, &pidfile.0)
}

/// This test binary started directly (no processkit) as `entry_point`, with
/// `pidfile` in the env var `env` the helper reads.
fn start_helper(entry_point: &str, env: &str, pidfile: &PidFile) -> std::process::Child {
    let exe = std::env::current_exe().expect("test binary path");
    std::process::Command::new(exe)
        .args(helper_args(entry_point))
        .env(env, &pidfile.0)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {entry_point}: {e}"))
}

#[tokio::test]
async fn dropping_the_handle_kills_child_and_grandchild() {
    let pidfile = PidFile::new("drop");
    let run = cmd_with_grandchild(&pidfile).start().await.unwrap();
    assert_eq!(run.mechanism(), Some(Mechanism::JobObject));
    let child = Watched::open(run.id().expect("pid"));
    let grandchild = pidfile.grandchild().await;
    drop(run);
    child.assert_gone("the child").await;
    grandchild.assert_gone("the grandchild").await;
}

#[tokio::test]
async fn an_owner_killed_abruptly_takes_its_tree_along() {
    let pidfile = PidFile::new("owner");
    // Started without processkit, so only the owner's own job holds the tree.
    let mut owner_child = start_helper("helper_owner_entry_point", OWNER_ENV, &pidfile);
    let owner = Watched::open(owner_child.id());
    let grandchild = pidfile.grandchild().await;
    // TerminateProcess runs no destructors: only the kernel closing the
    // owner's job handle (kill-on-close) can end the grandchild now.
    drop(owner);
    grandchild.assert_gone("the dead owner's grandchild").await;
    let _ = owner_child.wait();
}

#[tokio::test]
async fn a_timeout_kills_child_and_grandchild() {
    let pidfile = PidFile::new("timeout");
    let cmd = cmd_with_grandchild(&pidfile).timeout(Duration::from_secs(5));
    let run = tokio::spawn(async move { cmd.output_string().await });
    let grandchild = pidfile.grandchild().await;
    let result = bounded(run).await.unwrap().unwrap();
    assert!(result.timed_out());
    assert_eq!(result.code(), None);
    grandchild.assert_gone("the grandchild").await;
}

#[tokio::test]
async fn dropping_the_future_kills_child_and_grandchild() {
    let pidfile = PidFile::new("future");
    let cmd = cmd_with_grandchild(&pidfile);
    let run = tokio::spawn(async move { cmd.output_string().await });
    let grandchild = pidfile.grandchild().await;
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());
    grandchild.assert_gone("the grandchild").await;
}

#[tokio::test]
async fn dropping_a_group_kills_every_run_and_grandchild() {
    let (first, second) = (PidFile::new("group-a"), PidFile::new("group-b"));
    let group = ProcessGroup::new().unwrap();
    assert_eq!(group.mechanism(), Mechanism::JobObject);
    let a = group.start(&cmd_with_grandchild(&first)).await.unwrap();
    let b = group.start(&cmd_with_grandchild(&second)).await.unwrap();
    let children = [
        Watched::open(a.id().unwrap()),
        Watched::open(b.id().unwrap()),
    ];
    let grandchildren = [first.grandchild().await, second.grandchild().await];
    // The handles do not own the group: dropping them kills nothing.
    drop((a, b));
    assert!(grandchildren.iter().all(Watched::is_alive));
    drop(group);
    for w in children.iter().chain(&grandchildren) {
        w.assert_gone("a group member").await;
    }
}

#[tokio::test]
async fn shutdown_kills_every_run_and_grandchild() {
    let pidfile = PidFile::new("shutdown");
    let group = ProcessGroup::new().unwrap();
    let run = group.start(&cmd_with_grandchild(&pidfile)).await.unwrap();
    let child = Watched::open(run.id().unwrap());
    let grandchild = pidfile.grandchild().await;
    group.shutdown().await.unwrap();
    child.assert_gone("the child").await;
    grandchild.assert_gone("the grandchild").await;
}

#[tokio::test]
async fn killing_one_run_of_a_group_spares_its_sibling() {
    let (first, second) = (PidFile::new("kill-a"), PidFile::new("kill-b"));
    let group = ProcessGroup::new().unwrap();
    let mut a = group.start(&cmd_with_grandchild(&first)).await.unwrap();
    let _b = group.start(&cmd_with_grandchild(&second)).await.unwrap();
    let (ga, gb) = (first.grandchild().await, second.grandchild().await);
    a.kill().unwrap();
    ga.assert_gone("the killed run's grandchild").await;
    assert!(
        gb.is_alive(),
        "the sibling's grandchild died with the other run"
    );
    group.terminate_all().unwrap();
    gb.assert_gone("the sibling's grandchild").await;
}

#[tokio::test]
async fn terminated_runs_report_killed_with_no_code() {
    let pidfile = PidFile::new("terminate");
    let group = ProcessGroup::new().unwrap();
    let mut run = group.start(&cmd_with_grandchild(&pidfile)).await.unwrap();
    let _grandchild = pidfile.grandchild().await;
    group.terminate_all().unwrap();
    // The job forces an exit code (1; Wine reports 0) that is not the
    // child's: a killed run has none, as on Unix.
    assert_eq!(bounded(run.wait()).await.unwrap(), None);
}

#[tokio::test]
async fn a_killed_run_reports_no_code_and_its_probe_errors() {
    let pidfile = PidFile::new("kill-code");
    let group = ProcessGroup::new().unwrap();
    let mut run = group.start(&cmd_with_grandchild(&pidfile)).await.unwrap();
    let _grandchild = pidfile.grandchild().await;
    run.kill().unwrap();
    assert_eq!(bounded(run.wait()).await.unwrap(), None);

    // A verb whose run is killed under it errors instead of answering with
    // the job's forced code (probe() would have said `false`, or `true` on Wine).
    let probed = PidFile::new("kill-probe");
    let cmd = cmd_with_grandchild(&probed);
    let runner = ProcessGroup::new().unwrap();
    let probe = async { processkit::ProcessRunnerExt::probe(&runner, &cmd).await };
    let kill = async {
        let _grandchild = probed.grandchild().await;
        runner.terminate_all().unwrap();
    };
    let (answer, ()) = bounded(async { tokio::join!(probe, kill) }).await;
    assert!(
        matches!(answer, Err(Error::Killed { .. })),
        "a killed probe answered {answer:?}"
    );
}

#[tokio::test]
async fn a_run_that_exited_before_its_job_was_terminated_keeps_its_code() {
    let group = ProcessGroup::new().unwrap();
    let mut run = group
        .start(&Command::new("cmd").args(["/c", "exit 3"]))
        .await
        .unwrap();
    let pid = run.id().expect("a pid before the wait");
    let child = Watched::open(pid);
    child.assert_gone("`cmd /c exit 3`").await;
    group.terminate_all().unwrap();
    assert_eq!(bounded(run.wait()).await.unwrap(), Some(3));
}

#[tokio::test]
async fn stdout_and_stderr_are_captured() {
    let out = Command::new("cmd")
        .args(["/c", "echo to-out& echo to-err 1>&2"])
        .output_string()
        .await
        .unwrap();
    assert_eq!(out.code(), Some(0));
    assert_eq!(out.stdout().trim(), "to-out");
    assert_eq!(out.stderr().trim(), "to-err");
    let exit = Command::new("cmd").args(["/c", "exit 3"]).exit_code().await;
    assert_eq!(exit.unwrap(), 3);
}

#[tokio::test]
async fn stdout_and_stderr_go_where_they_are_sent() {
    // One pipe for both streams: the ThreadReader behind a merged pipe.
    let merged = Command::new("cmd")
        .args(["/c", "echo to-out& echo to-err 1>&2"])
        .stderr_to_stdout()
        .output_string()
        .await
        .unwrap();
    let lines: Vec<&str> = merged.stdout().lines().map(str::trim).collect();
    assert_eq!(lines, ["to-out", "to-err"]);
    assert!(merged.stderr().is_empty());
    // Null and a file: handles the child writes to directly.
    let dir = std::env::temp_dir().join(format!("pk-stdio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("out.txt");
    let file = std::fs::File::create(&path).unwrap();
    let routed = Command::new("cmd")
        .args(["/c", "echo to-file& echo to-null 1>&2"])
        .stdout(Stdio::file(file))
        .stderr(Stdio::null())
        .output_string()
        .await
        .unwrap();
    assert!(routed.stdout().is_empty() && routed.stderr().is_empty());
    let written = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(written.trim(), "to-file");
}

#[tokio::test]
async fn run_returns_trimmed_stdout() {
    let text = Command::new("cmd")
        .args(["/c", "echo hello"])
        .run()
        .await
        .unwrap();
    assert_eq!(text, "hello");
}

#[tokio::test]
async fn stdin_is_fed_to_the_child() {
    let out = Command::new("find")
        .arg("an")
        .stdin(Stdin::from_string("banana\napple\nmango\n"))
        .output_string()
        .await
        .unwrap();
    let lines: Vec<&str> = out.stdout().lines().map(str::trim).collect();
    assert_eq!(lines, ["banana", "mango"]);
}

/// `find` exits 0 when a line matched and 1 when none did, so the exit code
/// shows which lines reached it through the interactive writer.
async fn find_an_in(lines: &[&str]) -> Option<i32> {
    let mut run = Command::new("find")
        .arg("an")
        .keep_stdin_open()
        .start()
        .await
        .unwrap();
    let mut stdin = run.standard_input().expect("stdin kept open");
    for line in lines {
        stdin.write_line(line).await.unwrap();
    }
    stdin.finish().await.unwrap();
    run.wait().await.unwrap()
}

#[tokio::test]
async fn interactive_stdin_reaches_the_child() {
    assert_eq!(find_an_in(&["apple", "banana"]).await, Some(0));
    assert_eq!(find_an_in(&["apple", "cherry"]).await, Some(1));
}

#[tokio::test]
async fn create_no_window_composes_with_the_job() {
    let pidfile = PidFile::new("no-window");
    let run = cmd_with_grandchild(&pidfile)
        .create_no_window()
        .start()
        .await
        .unwrap();
    let child = Watched::open(run.id().unwrap());
    let grandchild = pidfile.grandchild().await;
    drop(run);
    child.assert_gone("the child").await;
    grandchild.assert_gone("the grandchild").await;
    let text = Command::new("cmd")
        .args(["/c", "echo windowless"])
        .create_no_window()
        .run()
        .await
        .unwrap();
    assert_eq!(text, "windowless");
}

#[tokio::test]
async fn posix_only_options_are_unsupported_and_spawn_nothing() {
    for cmd in [
        Command::new("cmd").args(["/c", "echo x"]).uid(1000),
        Command::new("cmd").args(["/c", "echo x"]).gid(1000),
        Command::new("cmd").args(["/c", "echo x"]).setsid(),
    ] {
        let err = cmd.output_string().await.unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn other_mechanisms_are_unsupported_on_windows() {
    use processkit::ProcessGroupOptions;
    let err = ProcessGroup::with_options(
        ProcessGroupOptions::default().mechanism(Mechanism::ProcessGroup),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
}

#[cfg(feature = "process-control")]
#[tokio::test]
async fn members_list_the_whole_tree() {
    let pidfile = PidFile::new("members");
    let group = ProcessGroup::new().unwrap();
    let run = group.start(&cmd_with_grandchild(&pidfile)).await.unwrap();
    let child = Watched::open(run.id().unwrap());
    let grandchild = pidfile.grandchild().await;
    let members = group.members().unwrap();
    assert!(members.contains(&child.pid), "{members:?} lacks cmd.exe");
    assert!(
        members.contains(&grandchild.pid),
        "{members:?} lacks the grandchild"
    );
    group.terminate_all().unwrap();
    grandchild.assert_gone("the grandchild").await;
    let deadline = Instant::now() + GENEROUS;
    while !group.members().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "members never emptied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(feature = "stats")]
#[tokio::test]
async fn stats_come_from_job_accounting() {
    let pidfile = PidFile::new("stats");
    let group = ProcessGroup::new().unwrap();
    let _run = group.start(&cmd_with_grandchild(&pidfile)).await.unwrap();
    let _grandchild = pidfile.grandchild().await;
    let stats = group.stats().unwrap();
    assert!(stats.active_process_count >= 2, "{stats:?}");
    assert!(stats.total_processes.unwrap() >= 2, "{stats:?}");
    assert!(stats.cpu_time.is_some(), "{stats:?}");
    group.terminate_all().unwrap();
}

#[cfg(feature = "process-control")]
#[tokio::test]
async fn only_the_kill_signal_is_deliverable() {
    use processkit::Signal;
    let pidfile = PidFile::new("signal");
    let group = ProcessGroup::new().unwrap();
    let _run = group.start(&cmd_with_grandchild(&pidfile)).await.unwrap();
    let grandchild = pidfile.grandchild().await;
    for signal in [Signal::Term, Signal::Hup, Signal::Int] {
        let err = group.signal(signal).unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    }
    assert!(grandchild.is_alive(), "an unsupported signal still killed");
    group.signal(Signal::Kill).unwrap();
    grandchild.assert_gone("the grandchild").await;
}

#[cfg(feature = "process-control")]
#[tokio::test]
async fn a_suspended_group_resumes_and_still_tears_down() {
    let pidfile = PidFile::new("suspend");
    let group = ProcessGroup::new().unwrap();
    let _run = group.start(&cmd_with_grandchild(&pidfile)).await.unwrap();
    let grandchild = pidfile.grandchild().await;
    group.suspend().unwrap();
    group.resume().unwrap();
    group.suspend().unwrap();
    assert!(grandchild.is_alive());
    drop(group);
    grandchild.assert_gone("the suspended grandchild").await;
}

#[cfg(feature = "process-control")]
#[tokio::test]
async fn an_adopted_process_dies_with_the_group() {
    let pidfile = PidFile::new("adopt");
    let mut outsider_child = start_helper("helper_grandchild_entry_point", HELPER_ENV, &pidfile);
    let outsider = Watched::open(outsider_child.id());
    let _published = pidfile.grandchild().await;
    let group = ProcessGroup::new().unwrap();
    group.adopt(outsider.pid).unwrap();
    assert!(group.members().unwrap().contains(&outsider.pid));
    drop(group);
    outsider.assert_gone("the adopted process").await;
    let _ = outsider_child.wait();
}

#[cfg(feature = "limits")]
#[tokio::test]
async fn memory_and_process_limits_are_accepted_by_the_job() {
    use processkit::{ProcessGroupOptions, ProcessRunnerExt};
    let group = ProcessGroup::with_options(
        ProcessGroupOptions::default()
            .memory_max(512 * 1024 * 1024)
            .max_processes(64),
    )
    .unwrap();
    assert_eq!(group.mechanism(), Mechanism::JobObject);
    let cmd = Command::new("cmd").args(["/c", "echo capped"]);
    assert_eq!(group.run(&cmd).await.unwrap(), "capped");
}

#[cfg(feature = "process-control")]
#[tokio::test]
async fn adopting_a_missing_pid_is_not_found() {
    let group = ProcessGroup::new().unwrap();
    // Windows pids are multiples of four, so this one never exists.
    let err = group.adopt(0xFFFF_FFF1).unwrap_err();
    let Error::Io { source, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(source.kind(), std::io::ErrorKind::NotFound, "{err:?}");
}

#[tokio::test]
async fn a_pipeline_joins_windows_programs_through_native_pipes() {
    let out = Command::new("cmd")
        .args(["/c", "echo banana& echo apple& echo mango"])
        .pipe(Command::new("find").arg("an"))
        .output_string()
        .await
        .unwrap();
    assert_eq!(out.code(), Some(0));
    let lines: Vec<&str> = out.stdout().lines().map(str::trim).collect();
    assert_eq!(lines, ["banana", "mango"]);
}

#[tokio::test]
async fn a_pipeline_timeout_kills_every_stage_and_grandchild() {
    let pidfile = PidFile::new("pipeline");
    let chain = cmd_with_grandchild(&pidfile)
        .pipe(Command::new("find").arg("never-printed"))
        .timeout(Duration::from_secs(5));
    let run = tokio::spawn(async move { chain.output_string().await });
    let grandchild = pidfile.grandchild().await;
    let result = bounded(run).await.unwrap().unwrap();
    assert!(result.timed_out());
    grandchild.assert_gone("the first stage's grandchild").await;
}
