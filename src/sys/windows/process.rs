//! Process handles: opening an existing process to adopt it, and
//! terminating a child that could not be contained.

use std::io;
use std::os::windows::io::{AsRawHandle, BorrowedHandle, FromRawHandle, OwnedHandle};

use windows_sys::Win32::Foundation::ERROR_INVALID_PARAMETER;
use windows_sys::Win32::System::Threading::{
    GetCurrentProcessId, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_SET_QUOTA,
    PROCESS_TERMINATE, TerminateProcess,
};

use super::job::TERMINATED_EXIT_CODE;

/// Opens `pid` with the rights a job assignment needs.
pub(crate) fn open_for_job(pid: u32) -> io::Result<OwnedHandle> {
    // SAFETY: GetCurrentProcessId takes no arguments and cannot fail.
    if pid == unsafe { GetCurrentProcessId() } {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a process cannot adopt itself: the group would kill it on drop",
        ));
    }
    let access = PROCESS_SET_QUOTA | PROCESS_TERMINATE | PROCESS_QUERY_LIMITED_INFORMATION;
    // SAFETY: OpenProcess takes plain integers; a null result is checked.
    let raw = unsafe { OpenProcess(access, 0, pid) };
    if raw.is_null() {
        let err = io::Error::last_os_error();
        // OpenProcess answers "invalid parameter" for a pid that does not exist.
        if err.raw_os_error() == Some(ERROR_INVALID_PARAMETER as i32) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no process with pid {pid}"),
            ));
        }
        return Err(err);
    }
    // SAFETY: `raw` is a fresh, valid handle that nothing else owns.
    Ok(unsafe { OwnedHandle::from_raw_handle(raw) })
}

/// Terminates one process (used when it could not be placed in its job).
pub(crate) fn terminate(process: BorrowedHandle<'_>) {
    // SAFETY: the handle is valid for the call; failure (already exited) is harmless.
    unsafe {
        TerminateProcess(process.as_raw_handle(), TERMINATED_EXIT_CODE);
    }
}
