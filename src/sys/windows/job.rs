//! One Job Object: created (optionally kill-on-close), processes assigned to
//! it, terminated as a whole, and its live process ids listed. Every call into
//! the Job Object API lives here.

use std::ffi::c_void;
use std::io;
use std::mem::{offset_of, size_of};
use std::os::windows::io::{AsRawHandle, BorrowedHandle, FromRawHandle, OwnedHandle};
use std::ptr;

use windows_sys::Win32::Foundation::ERROR_MORE_DATA;
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    JOBOBJECT_BASIC_PROCESS_ID_LIST, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
    JobObjectBasicProcessIdList, JobObjectExtendedLimitInformation, QueryInformationJobObject,
    SetInformationJobObject, TerminateJobObject,
};

/// The exit code every process gets when its job is terminated.
pub(crate) const TERMINATED_EXIT_CODE: u32 = 1;

/// An owned, unnamed, non-inheritable Job Object handle.
#[derive(Debug)]
pub(crate) struct Job {
    handle: OwnedHandle,
}

impl Job {
    /// A new job. With `kill_on_close`, closing the last handle (including our
    /// own process dying) terminates every process in it.
    pub(crate) fn new(kill_on_close: bool) -> io::Result<Job> {
        // SAFETY: null security attributes (a handle children do not inherit)
        // and a null name (an unnamed job) are both documented as valid.
        let raw = unsafe { CreateJobObjectW(ptr::null(), ptr::null()) };
        if raw.is_null() {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh, valid handle that nothing else owns.
        let handle = unsafe { OwnedHandle::from_raw_handle(raw) };
        let job = Job { handle };
        if kill_on_close {
            job.set_kill_on_close()?;
        }
        Ok(job)
    }

    fn set_kill_on_close(&self) -> io::Result<()> {
        // SAFETY: the struct is plain data for which all-zero is a valid value.
        let mut info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { std::mem::zeroed() };
        info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
        // SAFETY: the pointer and length describe `info`, which outlives the call.
        let ok = unsafe {
            SetInformationJobObject(
                self.raw(),
                JobObjectExtendedLimitInformation,
                ptr::from_ref(&info).cast::<c_void>(),
                size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
            )
        };
        check(ok)
    }

    fn raw(&self) -> *mut c_void {
        self.handle.as_raw_handle()
    }

    /// Puts `process` (a handle with `PROCESS_SET_QUOTA | PROCESS_TERMINATE`)
    /// into this job. A process already in a job is nested below it (Windows 8+).
    pub(crate) fn assign(&self, process: BorrowedHandle<'_>) -> io::Result<()> {
        // SAFETY: both handles are valid for the duration of the call.
        let ok = unsafe { AssignProcessToJobObject(self.raw(), process.as_raw_handle()) };
        check(ok)
    }

    /// Terminates every process in the job and in the jobs nested below it.
    pub(crate) fn terminate(&self) -> io::Result<()> {
        // SAFETY: the job handle is valid; the exit code is a plain integer.
        let ok = unsafe { TerminateJobObject(self.raw(), TERMINATED_EXIT_CODE) };
        check(ok)
    }

    /// The ids of the processes currently in the job (nested jobs included).
    pub(crate) fn pids(&self) -> io::Result<Vec<u32>> {
        let header = offset_of!(JOBOBJECT_BASIC_PROCESS_ID_LIST, ProcessIdList);
        let mut capacity = 64usize;
        loop {
            // usize-typed storage keeps the list's alignment on every target.
            let words = header.div_ceil(size_of::<usize>()) + capacity;
            let mut buf = vec![0usize; words];
            let bytes = (words * size_of::<usize>()) as u32;
            // SAFETY: `buf` is writable for `bytes` bytes, aligned for the list
            // struct, and outlives the call; a null return-length is allowed.
            let ok = unsafe {
                QueryInformationJobObject(
                    self.raw(),
                    JobObjectBasicProcessIdList,
                    buf.as_mut_ptr().cast::<c_void>(),
                    bytes,
                    ptr::null_mut(),
                )
            };
            if ok == 0 {
                let err = io::Error::last_os_error();
                if err.raw_os_error() == Some(ERROR_MORE_DATA as i32) {
                    capacity *= 4;
                    continue;
                }
                return Err(err);
            }
            let list = buf.as_ptr().cast::<JOBOBJECT_BASIC_PROCESS_ID_LIST>();
            // SAFETY: the call succeeded, so the header fields are initialised.
            let (assigned, listed) = unsafe {
                (
                    (*list).NumberOfAssignedProcesses as usize,
                    (*list).NumberOfProcessIdsInList as usize,
                )
            };
            if listed < assigned && capacity < assigned {
                capacity = assigned + 16;
                continue;
            }
            let listed = listed.min(capacity);
            // SAFETY: the ids follow the header inside `buf`, and `listed` is
            // bounded by the capacity we allocated.
            let ids = unsafe {
                std::slice::from_raw_parts(
                    buf.as_ptr().cast::<u8>().add(header).cast::<usize>(),
                    listed,
                )
            };
            return Ok(ids.iter().map(|&id| id as u32).collect());
        }
    }
}

fn check(ok: i32) -> io::Result<()> {
    if ok == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
