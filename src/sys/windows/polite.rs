//! Polite stop requests, Windows having no signals: `CTRL_BREAK_EVENT` to
//! the console process group a run's child leads, and `WM_CLOSE` to the
//! top-level windows of a job's processes. Whether anything was delivered
//! decides if a grace is worth waiting for.

use std::io;
use std::os::windows::io::{AsHandle, FromRawHandle, OwnedHandle};
use std::sync::{Arc, Mutex};

use windows_sys::Win32::Foundation::{BOOL, HWND, LPARAM, TRUE};
use windows_sys::Win32::System::Console::{
    CTRL_BREAK_EVENT, GenerateConsoleCtrlEvent, GetConsoleProcessList,
};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcessId, OpenProcess, PROCESS_QUERY_INFORMATION, PROCESS_QUERY_LIMITED_INFORMATION,
};
use windows_sys::Win32::UI::WindowsAndMessaging::{
    EnumWindows, GW_OWNER, GetWindow, GetWindowThreadProcessId, PostMessageW, WM_CLOSE,
};

use super::job::{Job, Watched};

/// What one round of polite requests reached.
#[derive(Debug, Default)]
pub(crate) struct Requests {
    delivered: usize,
    /// Why the requests that did not land did not, for the error.
    missed: Vec<String>,
}

impl Requests {
    /// Sends `CTRL_BREAK_EVENT` to the console process group `root` leads
    /// (every child starts with `CREATE_NEW_PROCESS_GROUP`), when it still
    /// runs and shares our console. One that does not (`create_no_window`,
    /// a GUI program, a console of its own) is skipped: the console could
    /// otherwise take the request as meant for a process about to connect
    /// and run its default handler, which ends a windowed program at once.
    pub(crate) fn console_break(&mut self, root: &Watched, console: &Console) {
        let pid = root.pid();
        if !root.is_running() {
            self.missed.push(format!("process {pid} has exited"));
            return;
        }
        if let Console::Attached(pids) = console
            && !pids.contains(&pid)
        {
            self.missed.push(format!(
                "process {pid} does not share this process's console"
            ));
            return;
        }
        // SAFETY: both arguments are plain integers; failure is reported.
        if unsafe { GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, pid) } != 0 {
            self.delivered += 1;
        } else {
            let err = io::Error::last_os_error();
            self.missed
                .push(format!("CTRL_BREAK_EVENT to process {pid} failed: {err}"));
        }
    }

    /// Posts `WM_CLOSE` to every top-level window without an owner (owned
    /// windows close with it) of every process in `job`.
    pub(crate) fn close_windows(&mut self, job: &Job) {
        let pids = match job.pids() {
            Ok(pids) => pids,
            Err(err) => {
                self.missed.push(format!("the job's processes: {err}"));
                return;
            }
        };
        // Pinned by a handle and checked to be in the job, so a process id
        // reused since the listing is never asked to close.
        let pinned: Vec<(u32, OwnedHandle)> = pids
            .into_iter()
            .filter_map(|pid| Some(pid).zip(open(pid)))
            .filter(|(_, process)| job.holds(process.as_handle()))
            .collect();
        let mut search = WindowSearch {
            pids: pinned.iter().map(|&(pid, _)| pid).collect(),
            posted: 0,
        };
        if !search.pids.is_empty() {
            // SAFETY: the callback runs only during this call, and `lparam`
            // points to `search`, which outlives it and nothing else uses
            // meanwhile. The result is ignored: the count says what landed.
            unsafe { EnumWindows(Some(close_one), &raw mut search as LPARAM) };
        }
        drop(pinned);
        if search.posted == 0 {
            self.missed
                .push("no process of the job has a top-level window".into());
        }
        self.delivered += search.posted;
    }

    /// `Ok` when at least one request was delivered, else `Unsupported`
    /// saying why: the caller then kills at once, with nothing to wait for.
    pub(crate) fn finish(self) -> io::Result<()> {
        if self.delivered > 0 {
            return Ok(());
        }
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "no console break or window close could be delivered: {}",
                self.missed.join("; ")
            ),
        ))
    }
}

/// The processes attached to our console, read once per round of requests.
#[derive(Debug)]
pub(crate) enum Console {
    Attached(Vec<u32>),
    /// The list could not be read (no console, or an API that answers
    /// nothing, as Wine 8 does): the break is tried and its error kept.
    Unknown,
}

impl Console {
    pub(crate) fn read() -> Console {
        let mut list = vec![0u32; 64];
        loop {
            // SAFETY: the pointer and count describe `list`, which is writable.
            let count = unsafe { GetConsoleProcessList(list.as_mut_ptr(), list.len() as u32) };
            let count = count as usize;
            // Our own process is always listed: zero means no answer.
            if count == 0 {
                return Console::Unknown;
            }
            if count <= list.len() {
                list.truncate(count);
                return Console::Attached(list);
            }
            list = vec![0; count + 16];
        }
    }
}

/// Every run's direct child in a group, for a group stop's console breaks.
/// A child that exited is dropped (with the handle that pinned its id) when
/// the list has doubled since the last sweep.
#[derive(Debug, Default)]
pub(crate) struct Roots {
    list: Mutex<(Vec<Arc<Watched>>, usize)>,
}

impl Roots {
    pub(crate) fn add(&self, child: Arc<Watched>) {
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        let (roots, swept) = &mut *list;
        roots.push(child);
        if roots.len() >= (*swept * 2).max(16) {
            roots.retain(|root| root.is_running());
            *swept = roots.len();
        }
    }

    /// The children still running.
    pub(crate) fn running(&self) -> Vec<Arc<Watched>> {
        let list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        list.0.iter().filter(|r| r.is_running()).cloned().collect()
    }
}

/// A process handle that pins `pid`, unless it cannot be opened (gone, or
/// ours to skip: never our own process).
fn open(pid: u32) -> Option<OwnedHandle> {
    // SAFETY: GetCurrentProcessId takes no arguments and cannot fail.
    if pid == unsafe { GetCurrentProcessId() } {
        return None;
    }
    // Wine answers `IsProcessInJob` only with the full query right; Windows
    // takes the limited one, which is all some processes grant.
    [PROCESS_QUERY_INFORMATION, PROCESS_QUERY_LIMITED_INFORMATION]
        .into_iter()
        .find_map(|access| {
            // SAFETY: OpenProcess takes plain integers; a null result is checked.
            let raw = unsafe { OpenProcess(access, 0, pid) };
            // SAFETY: a non-null `raw` is a fresh handle that nothing else owns.
            (!raw.is_null()).then(|| unsafe { OwnedHandle::from_raw_handle(raw) })
        })
}

struct WindowSearch {
    pids: Vec<u32>,
    posted: usize,
}

/// `EnumWindows`' callback: closes `window` if one of the searched processes
/// owns it. Never panics (it is called across the FFI boundary).
unsafe extern "system" fn close_one(window: HWND, lparam: LPARAM) -> BOOL {
    // SAFETY: `lparam` is the `&mut WindowSearch` given to `EnumWindows`,
    // valid and unaliased for the whole enumeration.
    let search = unsafe { &mut *(lparam as *mut WindowSearch) };
    let mut pid = 0;
    // SAFETY: `window` comes from the enumeration; `pid` is a valid out pointer.
    unsafe { GetWindowThreadProcessId(window, &mut pid) };
    // SAFETY: as above; a null owner means a window nothing else owns.
    if search.pids.contains(&pid) && unsafe { GetWindow(window, GW_OWNER) }.is_null() {
        // SAFETY: posting to a window that may close meanwhile only fails.
        if unsafe { PostMessageW(window, WM_CLOSE, 0, 0) } != 0 {
            search.posted += 1;
        }
    }
    TRUE
}
