//! Graceful stops on Windows: a console child gets `CTRL_BREAK_EVENT` and a
//! windowed one `WM_CLOSE`, before the job is terminated after the grace.
//! Where the platform (Wine) cannot deliver a request, a probe made without
//! processkit says why; the test prints it, checks the fallback (the run is
//! killed) and says it skipped the polite part.
//!
//! The helper children are this test binary re-run in a child mode. Making
//! one handle a console break or own a window needs a few raw Windows calls,
//! which is why this file uses `windows-sys` and `unsafe` (tests only).

use std::ffi::OsString;
use std::os::windows::process::CommandExt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use processkit::{Command, ProcessGroup};
use windows_sys::Win32::Foundation::{BOOL, FALSE, TRUE};
use windows_sys::Win32::System::Console::{
    CTRL_BREAK_EVENT, GenerateConsoleCtrlEvent, SetConsoleCtrlHandler,
};
use windows_sys::Win32::System::Threading::CREATE_NEW_PROCESS_GROUP;
use windows_sys::Win32::UI::WindowsAndMessaging::{
    CW_USEDEFAULT, CreateWindowExW, DispatchMessageW, GetMessageW, IsWindow, MSG,
    WS_OVERLAPPEDWINDOW,
};

use super::{GENEROUS, PidFile, Watched, bounded, helper_args};

/// The grace of a stop whose child should answer: ample, yet well inside
/// `bounded`'s limit where nothing can be delivered and the whole grace
/// is waited.
const GRACE: Duration = Duration::from_secs(10);

/// Set in a console helper's environment: where it publishes its pid once
/// its handler is installed.
const BREAK_ENV: &str = "PROCESSKIT_WINDOWS_TEST_BREAK_PIDFILE";
/// What the console helper does on `CTRL_BREAK_EVENT`: exit with this code,
/// or `ignore` it.
const ANSWER_ENV: &str = "PROCESSKIT_WINDOWS_TEST_BREAK_ANSWER";
/// Set in a window helper's environment: where it publishes its pid once
/// its window exists (or `error: why` if it cannot make one).
const WINDOW_ENV: &str = "PROCESSKIT_WINDOWS_TEST_WINDOW_PIDFILE";
/// The code a console helper exits with when asked to.
const BREAK_EXIT: i32 = 42;
/// The code a window helper exits with once its window was closed.
const CLOSE_EXIT: i32 = 43;

static BREAKS: AtomicU32 = AtomicU32::new(0);

/// The console helper's handler: counts breaks (and swallows them, so the
/// default handler does not end the process); lets every other event through.
unsafe extern "system" fn on_console_event(event: u32) -> BOOL {
    if event == CTRL_BREAK_EVENT {
        BREAKS.fetch_add(1, Ordering::SeqCst);
        return TRUE;
    }
    FALSE
}

fn publish(path: &OsString, text: &str) {
    let path = std::path::PathBuf::from(path);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write pidfile");
    std::fs::rename(&tmp, &path).expect("publish pidfile");
}

/// Not a test of its own: a console child that handles `CTRL_BREAK_EVENT`.
#[test]
fn helper_console_break_entry_point() {
    let Some(path) = std::env::var_os(BREAK_ENV) else {
        return;
    };
    // SAFETY: registers a handler that only touches an atomic counter.
    let ok = unsafe { SetConsoleCtrlHandler(Some(on_console_event), TRUE) };
    if ok == 0 {
        let err = std::io::Error::last_os_error();
        publish(
            &path,
            &format!("error: SetConsoleCtrlHandler failed: {err}"),
        );
        return;
    }
    publish(&path, &std::process::id().to_string());
    let answer = std::env::var(ANSWER_ENV).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline {
        if BREAKS.load(Ordering::SeqCst) > 0
            && let Ok(code) = answer.parse::<i32>()
        {
            std::process::exit(code);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Not a test of its own: a child owning one top-level window, which exits
/// with `CLOSE_EXIT` once that window is closed.
#[test]
fn helper_window_entry_point() {
    let Some(path) = std::env::var_os(WINDOW_ENV) else {
        return;
    };
    let class: Vec<u16> = "STATIC\0".encode_utf16().collect();
    // SAFETY: a system window class and a null parent, menu and instance;
    // the class name outlives the call and a null result is checked. The
    // class's own procedure destroys the window on WM_CLOSE.
    let window = unsafe {
        CreateWindowExW(
            0,
            class.as_ptr(),
            class.as_ptr(),
            WS_OVERLAPPEDWINDOW,
            CW_USEDEFAULT,
            CW_USEDEFAULT,
            CW_USEDEFAULT,
            CW_USEDEFAULT,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null(),
        )
    };
    if window.is_null() {
        let err = std::io::Error::last_os_error();
        publish(&path, &format!("error: CreateWindowExW failed: {err}"));
        return;
    }
    publish(&path, &std::process::id().to_string());
    // SAFETY: MSG is plain data for which all-zero is valid; the loop reads
    // this thread's queue and dispatches to the window it created.
    unsafe {
        let mut msg: MSG = std::mem::zeroed();
        while GetMessageW(&mut msg, std::ptr::null_mut(), 0, 0) > 0 {
            DispatchMessageW(&msg);
            if IsWindow(window) == 0 {
                std::process::exit(CLOSE_EXIT);
            }
        }
    }
}

/// Waits (bounded) for a helper to publish its pid, or why it could not start.
async fn ready(pidfile: &PidFile) -> Result<Watched, String> {
    let deadline = Instant::now() + GENEROUS;
    loop {
        let text = std::fs::read_to_string(&pidfile.0).unwrap_or_default();
        if let Some(why) = text.strip_prefix("error: ") {
            return Err(why.to_string());
        }
        if let Ok(pid) = text.trim().parse() {
            return Ok(Watched::open(pid));
        }
        assert!(Instant::now() < deadline, "the helper never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// This binary as a console helper answering a break with `answer`.
fn console_helper(pidfile: &PidFile, answer: &str) -> Command {
    let exe = std::env::current_exe().expect("test binary path");
    Command::new(exe)
        .args(helper_args("polite::helper_console_break_entry_point"))
        .env(BREAK_ENV, &pidfile.0)
        .env(ANSWER_ENV, answer)
}

/// Whether this platform delivers `CTRL_BREAK_EVENT` to a console child of
/// ours that leads its own process group, tried once without processkit.
fn console_break_delivered() -> &'static Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    // On a thread of its own: the tests calling it are inside a runtime.
    PROBE.get_or_init(|| std::thread::spawn(probe_console_break).join().unwrap())
}

fn probe_console_break() -> Result<(), String> {
    let pidfile = PidFile::new("break-probe");
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = std::process::Command::new(exe)
        .args(helper_args("polite::helper_console_break_entry_point"))
        .env(BREAK_ENV, &pidfile.0)
        .env(ANSWER_ENV, BREAK_EXIT.to_string())
        .creation_flags(CREATE_NEW_PROCESS_GROUP)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the probe child");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answer = runtime.block_on(async {
        let watched = ready(&pidfile).await?;
        // SAFETY: plain integers; failure is reported through the last error.
        if unsafe { GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, watched.pid) } == 0 {
            let err = std::io::Error::last_os_error();
            return Err(format!(
                "GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT) to a child on our console failed: {err}"
            ));
        }
        let deadline = Instant::now() + GENEROUS;
        while watched.is_alive() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if watched.is_alive() {
            return Err("GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT) succeeded, \
                        but the child's handler never ran"
                .into());
        }
        Ok(())
    });
    let _ = child.kill();
    let _ = child.wait();
    answer
}

/// Says loudly that the polite half of `test` was not checked, and why.
fn skipped(test: &str, why: &str) {
    eprintln!("SKIPPED (polite part of {test}): {why}; only the kill after it was checked");
}

#[tokio::test]
async fn stop_ends_a_console_child_that_handles_the_break_with_its_own_code() {
    let pidfile = PidFile::new("break-answer");
    let mut run = console_helper(&pidfile, &BREAK_EXIT.to_string())
        .start()
        .await
        .unwrap();
    let helper = ready(&pidfile).await.unwrap();
    let status = bounded(run.stop(GRACE)).await.unwrap();
    match console_break_delivered() {
        Ok(()) => assert_eq!(status.code(), Some(BREAK_EXIT), "{status:?}"),
        Err(why) => {
            skipped("stop_ends_a_console_child...", why);
            assert_eq!(status.code(), None, "{status:?}");
        }
    }
    helper.assert_gone("the stopped helper").await;
}

#[tokio::test]
async fn stop_kills_a_console_child_that_ignores_the_break_after_the_grace() {
    let pidfile = PidFile::new("break-ignore");
    let mut run = console_helper(&pidfile, "ignore").start().await.unwrap();
    let helper = ready(&pidfile).await.unwrap();
    let grace = Duration::from_secs(2);
    let began = Instant::now();
    let status = bounded(run.stop(grace)).await.unwrap();
    assert_eq!(status.code(), None, "an ignored break ended it: {status:?}");
    helper
        .assert_gone("the helper that ignored the break")
        .await;
    match console_break_delivered() {
        // Delivered, so the stop had a reason to wait the whole grace.
        Ok(()) => assert!(began.elapsed() >= grace, "{:?}", began.elapsed()),
        Err(why) => skipped("stop_kills_a_console_child...", why),
    }
}

#[tokio::test]
async fn a_group_stop_reports_who_exited_and_who_was_killed() {
    let (answers, ignores) = (PidFile::new("group-answer"), PidFile::new("group-ignore"));
    let group = ProcessGroup::new().unwrap();
    let _a = group
        .start(&console_helper(&answers, &BREAK_EXIT.to_string()))
        .await
        .unwrap();
    let _b = group
        .start(&console_helper(&ignores, "ignore"))
        .await
        .unwrap();
    let helpers = [
        ready(&answers).await.unwrap(),
        ready(&ignores).await.unwrap(),
    ];
    let report = bounded(group.stop(Duration::from_secs(3))).await.unwrap();
    assert_eq!(report.signalled, 2, "{report:?}");
    match console_break_delivered() {
        Ok(()) => assert_eq!((report.exited, report.killed), (1, 1), "{report:?}"),
        Err(why) => {
            skipped("a_group_stop_reports...", why);
            assert_eq!((report.exited, report.killed), (0, 2), "{report:?}");
        }
    }
    for helper in &helpers {
        helper.assert_gone("a stopped group's helper").await;
    }
}

#[tokio::test]
async fn stopping_one_run_of_a_group_spares_its_sibling() {
    let (first, second) = (PidFile::new("stop-a"), PidFile::new("stop-b"));
    let group = ProcessGroup::new().unwrap();
    let answer = BREAK_EXIT.to_string();
    let mut a = group.start(&console_helper(&first, &answer)).await.unwrap();
    let _b = group
        .start(&console_helper(&second, &answer))
        .await
        .unwrap();
    let (ha, hb) = (ready(&first).await.unwrap(), ready(&second).await.unwrap());
    let status = bounded(a.stop(GRACE)).await.unwrap();
    ha.assert_gone("the stopped run").await;
    assert!(hb.is_alive(), "the sibling was stopped with the other run");
    match console_break_delivered() {
        Ok(()) => assert_eq!(status.code(), Some(BREAK_EXIT), "{status:?}"),
        Err(why) => skipped("stopping_one_run...", why),
    }
    group.terminate_all().unwrap();
    hb.assert_gone("the sibling").await;
}

#[cfg(feature = "process-control")]
#[tokio::test]
async fn a_suspended_run_is_resumed_to_answer_the_break() {
    let pidfile = PidFile::new("break-suspended");
    let group = ProcessGroup::new().unwrap();
    let mut run = group
        .start(&console_helper(&pidfile, &BREAK_EXIT.to_string()))
        .await
        .unwrap();
    let helper = ready(&pidfile).await.unwrap();
    group.suspend().unwrap();
    let status = bounded(run.stop(GRACE)).await.unwrap();
    match console_break_delivered() {
        Ok(()) => assert_eq!(status.code(), Some(BREAK_EXIT), "{status:?}"),
        Err(why) => skipped("a_suspended_run...", why),
    }
    helper.assert_gone("the suspended helper").await;
}

#[tokio::test]
async fn a_child_without_our_console_is_not_asked_but_killed() {
    record_a_break_to_a_windowless_child().await;
    let pidfile = PidFile::new("break-no-console");
    let mut run = console_helper(&pidfile, &BREAK_EXIT.to_string())
        .create_no_window()
        .start()
        .await
        .unwrap();
    let helper = ready(&pidfile).await.unwrap();
    let status = bounded(run.stop(Duration::from_secs(3))).await.unwrap();
    assert_eq!(status.code(), None, "it was asked after all: {status:?}");
    helper.assert_gone("the windowless helper").await;
}

/// Prints what the console makes of a break for a child on a console of
/// its own (`CREATE_NO_WINDOW`), sent without processkit, which does not
/// send it (see `src/sys/windows/polite.rs`). For the record only.
async fn record_a_break_to_a_windowless_child() {
    use windows_sys::Win32::System::Threading::CREATE_NO_WINDOW;
    let pidfile = PidFile::new("break-windowless-probe");
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = std::process::Command::new(exe)
        .args(helper_args("polite::helper_console_break_entry_point"))
        .env(BREAK_ENV, &pidfile.0)
        .env(ANSWER_ENV, BREAK_EXIT.to_string())
        .creation_flags(CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the probe child");
    let helper = ready(&pidfile).await.unwrap();
    // SAFETY: plain integers; failure is reported through the last error.
    let sent = unsafe { GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, helper.pid) };
    let outcome = if sent == 0 {
        format!("refused: {}", std::io::Error::last_os_error())
    } else {
        let deadline = Instant::now() + Duration::from_secs(3);
        while helper.is_alive() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let code = child.try_wait().ok().flatten().and_then(|s| s.code());
        format!("accepted; the child then exited with {code:?}")
    };
    eprintln!("a CTRL_BREAK_EVENT to a CREATE_NO_WINDOW child: {outcome}");
    let _ = child.kill();
    let _ = child.wait();
}

/// This binary as a window helper.
fn window_helper(pidfile: &PidFile) -> Command {
    let exe = std::env::current_exe().expect("test binary path");
    Command::new(exe)
        .args(helper_args("polite::helper_window_entry_point"))
        .env(WINDOW_ENV, &pidfile.0)
}

/// The window helper once its window exists, or `None` (said loudly) where
/// no window can be made: Wine without a display driver.
async fn windowed(pidfile: &PidFile, test: &str) -> Option<Watched> {
    ready(pidfile)
        .await
        .inspect_err(|why| skipped(test, why))
        .ok()
}

#[tokio::test]
async fn stop_closes_the_window_of_a_windowed_child() {
    let pidfile = PidFile::new("window");
    let mut run = window_helper(&pidfile).start().await.unwrap();
    let helper = windowed(&pidfile, "stop_closes_the_window...").await;
    let status = bounded(run.stop(GRACE)).await.unwrap();
    if let Some(helper) = helper {
        assert_eq!(status.code(), Some(CLOSE_EXIT), "{status:?}");
        helper.assert_gone("the windowed helper").await;
    }
}

#[tokio::test]
async fn a_group_stop_closes_every_window() {
    let (first, second) = (
        PidFile::new("group-window-a"),
        PidFile::new("group-window-b"),
    );
    let group = ProcessGroup::new().unwrap();
    let _a = group.start(&window_helper(&first)).await.unwrap();
    let _b = group.start(&window_helper(&second)).await.unwrap();
    let test = "a_group_stop_closes_every_window";
    let helpers = [windowed(&first, test).await, windowed(&second, test).await];
    let report = bounded(group.stop(GRACE)).await.unwrap();
    if helpers.iter().all(Option::is_some) {
        assert_eq!((report.exited, report.killed), (2, 0), "{report:?}");
    }
    for helper in helpers.iter().flatten() {
        helper.assert_gone("a closed window's helper").await;
    }
}

#[cfg(feature = "process-control")]
#[tokio::test]
async fn a_suspended_windowed_run_is_resumed_to_close() {
    let pidfile = PidFile::new("window-suspended");
    let group = ProcessGroup::new().unwrap();
    let mut run = group.start(&window_helper(&pidfile)).await.unwrap();
    let helper = windowed(&pidfile, "a_suspended_windowed_run...").await;
    group.suspend().unwrap();
    // Frozen, it could read no message: only a resume lets it close.
    let status = bounded(run.stop(GRACE)).await.unwrap();
    if let Some(helper) = helper {
        assert_eq!(status.code(), Some(CLOSE_EXIT), "{status:?}");
        helper.assert_gone("the suspended windowed helper").await;
    }
}
