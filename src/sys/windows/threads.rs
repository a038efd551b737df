//! Per-thread suspend and resume of whole processes. Windows has no
//! documented "resume process" call, so threads are found with a Toolhelp
//! snapshot and suspended or resumed one by one.

use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};

use windows_sys::Win32::Foundation::INVALID_HANDLE_VALUE;
use windows_sys::Win32::System::Diagnostics::ToolHelp::{
    CreateToolhelp32Snapshot, TH32CS_SNAPTHREAD, THREADENTRY32, Thread32First, Thread32Next,
};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcessId, OpenThread, ResumeThread, SuspendThread, THREAD_SUSPEND_RESUME,
};

/// What to do to each thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ThreadAction {
    /// Raise the thread's suspend count by one.
    Suspend,
    /// Lower the thread's suspend count by one.
    Resume,
}

/// Applies `action` to every thread of every process in `pids` (never to our
/// own process). Returns how many threads were changed. Suspends stack: a
/// thread suspended twice needs two resumes.
pub(crate) fn apply(pids: &[u32], action: ThreadAction) -> io::Result<usize> {
    // SAFETY: GetCurrentProcessId takes no arguments and cannot fail.
    let own = unsafe { GetCurrentProcessId() };
    let mut changed = 0;
    for tid in thread_ids(|owner| owner != own && pids.contains(&owner))? {
        // SAFETY: OpenThread takes plain integers; a null result is checked.
        let raw = unsafe { OpenThread(THREAD_SUSPEND_RESUME, 0, tid) };
        if raw.is_null() {
            continue; // the thread exited since the snapshot
        }
        // SAFETY: `raw` is a fresh, valid handle that nothing else owns.
        let thread = unsafe { OwnedHandle::from_raw_handle(raw) };
        // SAFETY: the handle is valid and carries THREAD_SUSPEND_RESUME.
        let previous = unsafe {
            match action {
                ThreadAction::Suspend => SuspendThread(thread.as_raw_handle()),
                ThreadAction::Resume => ResumeThread(thread.as_raw_handle()),
            }
        };
        if previous != u32::MAX {
            changed += 1;
        }
    }
    Ok(changed)
}

/// The ids of every thread whose owning process passes `keep`.
pub(super) fn thread_ids(keep: impl Fn(u32) -> bool) -> io::Result<Vec<u32>> {
    // SAFETY: a thread snapshot takes flags and an (ignored) process id.
    let raw = unsafe { CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0) };
    if raw == INVALID_HANDLE_VALUE || raw.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh, valid handle that nothing else owns.
    let snapshot = unsafe { OwnedHandle::from_raw_handle(raw) };
    // SAFETY: the entry is plain data for which all-zero is a valid value.
    let mut entry: THREADENTRY32 = unsafe { std::mem::zeroed() };
    entry.dwSize = std::mem::size_of::<THREADENTRY32>() as u32;
    let mut ids = Vec::new();
    // SAFETY: the snapshot handle is valid and `entry` has its size set.
    let mut more = unsafe { Thread32First(snapshot.as_raw_handle(), &mut entry) } != 0;
    while more {
        if keep(entry.th32OwnerProcessID) {
            ids.push(entry.th32ThreadID);
        }
        // SAFETY: as above.
        more = unsafe { Thread32Next(snapshot.as_raw_handle(), &mut entry) } != 0;
    }
    Ok(ids)
}
