//! One Job Object: created (optionally kill-on-close), processes assigned to
//! it, terminated as a whole (telling which runs' children that killed), and
//! its live process ids listed. Every call into the Job Object API lives here.

use std::ffi::c_void;
use std::io;
use std::mem::{offset_of, size_of};
use std::os::windows::io::{AsRawHandle, BorrowedHandle, FromRawHandle, OwnedHandle};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use windows_sys::Win32::Foundation::{ERROR_MORE_DATA, WAIT_TIMEOUT};
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, IsProcessInJob, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    JOBOBJECT_BASIC_ACCOUNTING_INFORMATION, JOBOBJECT_BASIC_PROCESS_ID_LIST,
    JOBOBJECT_CPU_RATE_CONTROL_INFORMATION, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
    JOBOBJECTINFOCLASS, JobObjectBasicAccountingInformation, JobObjectBasicProcessIdList,
    JobObjectCpuRateControlInformation, JobObjectExtendedLimitInformation,
    QueryInformationJobObject, SetInformationJobObject, TerminateJobObject,
};
use windows_sys::Win32::System::Threading::{GetProcessId, WaitForSingleObject};

/// The exit code every process gets when its job is terminated.
pub(crate) const TERMINATED_EXIT_CODE: u32 = 1;

/// An owned, unnamed, non-inheritable Job Object handle.
#[derive(Debug)]
pub(crate) struct Job {
    handle: OwnedHandle,
    kill_on_close: bool,
    /// The direct children placed through `assign_watched`, told when a
    /// termination of this job kills them. The lock also orders a placement
    /// against a termination, so a child is marked exactly when it was in
    /// the job and running as the job was terminated.
    watched: Mutex<Vec<Weak<Watched>>>,
}

/// A run's direct child, seen by every job it belongs to.
#[derive(Debug)]
pub(crate) struct Watched {
    /// A handle of our own on the process, to ask whether it still runs;
    /// while it is open the process id cannot be reused.
    process: OwnedHandle,
    pid: u32,
    killed: AtomicBool,
}

impl Watched {
    /// Watches `process` (a handle with `SYNCHRONIZE` access, duplicated here).
    pub(crate) fn new(process: BorrowedHandle<'_>) -> io::Result<Arc<Watched>> {
        // SAFETY: the handle is valid for the call; zero means failure.
        let pid = unsafe { GetProcessId(process.as_raw_handle()) };
        if pid == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Arc::new(Watched {
            process: process.try_clone_to_owned()?,
            pid,
            killed: AtomicBool::new(false),
        }))
    }

    /// The process id, pinned for as long as this `Watched` lives.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether a job termination ended this child while it was running: its
    /// exit code is then the one the job forced, not its own.
    pub(crate) fn was_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    pub(crate) fn is_running(&self) -> bool {
        // SAFETY: the handle is ours and valid; a zero timeout only polls.
        unsafe { WaitForSingleObject(self.process.as_raw_handle(), 0) == WAIT_TIMEOUT }
    }
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
        let job = Job {
            handle,
            kill_on_close,
            watched: Mutex::new(Vec::new()),
        };
        if kill_on_close {
            job.set(&job.base_limits())?;
        }
        Ok(job)
    }

    /// The limits every write starts from: kill-on-close when asked for.
    /// Built rather than read back, since a read can drop flags (Wine
    /// reports none) and a write replaces them all.
    pub(crate) fn base_limits(&self) -> JOBOBJECT_EXTENDED_LIMIT_INFORMATION {
        // SAFETY: the struct is plain data for which all-zero is a valid value.
        let mut info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { std::mem::zeroed() };
        if self.kill_on_close {
            info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
        }
        info
    }

    /// Reads one fixed-size information class.
    #[cfg(feature = "stats")]
    pub(crate) fn query<T: JobInfo>(&self) -> io::Result<T> {
        let mut value = std::mem::MaybeUninit::<T>::zeroed();
        // SAFETY: the pointer and length describe `value`, which is writable,
        // aligned for `T` and outlives the call; a null return-length is allowed.
        let ok = unsafe {
            QueryInformationJobObject(
                self.raw(),
                T::CLASS,
                value.as_mut_ptr().cast::<c_void>(),
                size_of::<T>() as u32,
                ptr::null_mut(),
            )
        };
        check(ok)?;
        // SAFETY: `T` is plain data (JobInfo's contract), so the zeroed value
        // the call filled in is a valid `T`.
        Ok(unsafe { value.assume_init() })
    }

    /// Writes one fixed-size information class.
    pub(crate) fn set<T: JobInfo>(&self, value: &T) -> io::Result<()> {
        // SAFETY: the pointer and length describe `value`, which outlives the call.
        let ok = unsafe {
            SetInformationJobObject(
                self.raw(),
                T::CLASS,
                ptr::from_ref(value).cast::<c_void>(),
                size_of::<T>() as u32,
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

    /// Puts a run's direct child into this job and watches it, so a later
    /// termination can tell it was killed.
    pub(crate) fn assign_watched(
        &self,
        process: BorrowedHandle<'_>,
        child: &Arc<Watched>,
    ) -> io::Result<()> {
        let mut watched = self.watched();
        self.assign(process)?;
        watched.retain(|w| w.strong_count() > 0);
        watched.push(Arc::downgrade(child));
        Ok(())
    }

    fn watched(&self) -> MutexGuard<'_, Vec<Weak<Watched>>> {
        self.watched.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Terminates every process in the job and in the jobs nested below it.
    /// The watched children still running are marked killed once it succeeds.
    pub(crate) fn terminate(&self) -> io::Result<()> {
        let watched = self.watched();
        let running: Vec<Arc<Watched>> = watched
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|child| child.is_running())
            .collect();
        // SAFETY: the job handle is valid; the exit code is a plain integer.
        let ok = unsafe { TerminateJobObject(self.raw(), TERMINATED_EXIT_CODE) };
        check(ok)?;
        for child in running {
            child.killed.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Whether `process` is in this job (or a job nested below it).
    pub(crate) fn holds(&self, process: BorrowedHandle<'_>) -> bool {
        let mut inside = 0;
        // SAFETY: both handles are valid for the call; `inside` is a valid out pointer.
        let ok = unsafe { IsProcessInJob(process.as_raw_handle(), self.raw(), &mut inside) };
        ok != 0 && inside != 0
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

/// A fixed-size job information struct and the class that reads or writes it.
///
/// # Safety
/// Implementors are `repr(C)` plain data for which all-zero bytes are a valid
/// value, and `CLASS` is the information class with exactly that layout.
pub(crate) unsafe trait JobInfo: Copy {
    const CLASS: JOBOBJECTINFOCLASS;
}

// SAFETY: plain-data windows-sys structs matching their information classes.
unsafe impl JobInfo for JOBOBJECT_EXTENDED_LIMIT_INFORMATION {
    const CLASS: JOBOBJECTINFOCLASS = JobObjectExtendedLimitInformation;
}

// SAFETY: as above.
unsafe impl JobInfo for JOBOBJECT_BASIC_ACCOUNTING_INFORMATION {
    const CLASS: JOBOBJECTINFOCLASS = JobObjectBasicAccountingInformation;
}

// SAFETY: as above.
unsafe impl JobInfo for JOBOBJECT_CPU_RATE_CONTROL_INFORMATION {
    const CLASS: JOBOBJECTINFOCLASS = JobObjectCpuRateControlInformation;
}

fn check(ok: i32) -> io::Result<()> {
    if ok == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
