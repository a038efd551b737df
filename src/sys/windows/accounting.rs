//! Job accounting and job limits: what `stats()` and the `limits` feature
//! read from and write to a Job Object on Windows.

use std::io;
use std::time::Duration;

use windows_sys::Win32::System::JobObjects::{
    JOB_OBJECT_CPU_RATE_CONTROL_ENABLE, JOB_OBJECT_CPU_RATE_CONTROL_HARD_CAP,
    JOB_OBJECT_LIMIT_ACTIVE_PROCESS, JOB_OBJECT_LIMIT_JOB_MEMORY,
    JOBOBJECT_BASIC_ACCOUNTING_INFORMATION, JOBOBJECT_CPU_RATE_CONTROL_INFORMATION,
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
};

use super::job::Job;

/// A whole job's resource use, nested jobs included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JobAccounting {
    /// User plus kernel time of every process that was ever in the job.
    pub(crate) cpu_time: Duration,
    /// Processes in the job now.
    pub(crate) active_processes: u32,
    /// Processes that were ever in the job.
    pub(crate) total_processes: u32,
    /// The most committed memory the job's processes held at once.
    pub(crate) peak_memory_bytes: u64,
}

/// Whole-job caps; `None` leaves a dimension unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct JobLimits {
    pub(crate) memory_max: Option<u64>,
    pub(crate) max_processes: Option<u64>,
    /// A fraction of one core (`0.5` = half a core).
    pub(crate) cpu_quota: Option<f64>,
}

impl Job {
    pub(crate) fn accounting(&self) -> io::Result<JobAccounting> {
        let basic: JOBOBJECT_BASIC_ACCOUNTING_INFORMATION = self.query()?;
        let extended: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = self.query()?;
        let ticks = (basic.TotalUserTime + basic.TotalKernelTime).max(0) as u64;
        Ok(JobAccounting {
            // Job times count 100-nanosecond ticks.
            cpu_time: Duration::from_nanos(ticks.saturating_mul(100)),
            active_processes: basic.ActiveProcesses,
            total_processes: basic.TotalProcesses,
            peak_memory_bytes: extended.PeakJobMemoryUsed as u64,
        })
    }

    /// Applies `limits` (once, to a fresh job), keeping kill-on-close.
    pub(crate) fn set_limits(&self, limits: &JobLimits) -> io::Result<()> {
        let mut info = self.base_limits();
        if let Some(bytes) = limits.memory_max {
            info.BasicLimitInformation.LimitFlags |= JOB_OBJECT_LIMIT_JOB_MEMORY;
            info.JobMemoryLimit = usize::try_from(bytes).unwrap_or(usize::MAX);
        }
        if let Some(count) = limits.max_processes {
            info.BasicLimitInformation.LimitFlags |= JOB_OBJECT_LIMIT_ACTIVE_PROCESS;
            info.BasicLimitInformation.ActiveProcessLimit =
                u32::try_from(count).unwrap_or(u32::MAX);
        }
        self.set(&info)?;
        if let Some(cores) = limits.cpu_quota {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            // SAFETY: the struct is plain data for which all-zero is a valid value.
            let mut rate: JOBOBJECT_CPU_RATE_CONTROL_INFORMATION = unsafe { std::mem::zeroed() };
            rate.ControlFlags =
                JOB_OBJECT_CPU_RATE_CONTROL_ENABLE | JOB_OBJECT_CPU_RATE_CONTROL_HARD_CAP;
            rate.Anonymous.CpuRate = cpu_rate(cores, cpus);
            self.set(&rate)?;
        }
        Ok(())
    }
}

/// Converts "cores" into the job's CPU rate: hundredths of a percent of the
/// whole machine (1..=10000), so it is only as exact as the host's CPU count.
pub(crate) fn cpu_rate(cores: f64, cpus: usize) -> u32 {
    let share = cores / cpus.max(1) as f64;
    (share * 10_000.0).round().clamp(1.0, 10_000.0) as u32
}
