//! Job accounting and job limits: what `stats()` and the `limits` feature
//! read from and write to a Job Object on Windows.

use std::io;
use std::time::Duration;

use windows_sys::Win32::System::JobObjects::{
    JOBOBJECT_BASIC_ACCOUNTING_INFORMATION, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
};

use super::job::Job;
use crate::sys::Usage;

impl Job {
    /// The whole job's use, nested jobs included. CPU time and the process
    /// total count every process that was ever in the job; peak memory is
    /// the job's peak committed memory. Current memory is not measured.
    pub(crate) fn usage(&self) -> io::Result<Usage> {
        let basic: JOBOBJECT_BASIC_ACCOUNTING_INFORMATION = self.query()?;
        let extended: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = self.query()?;
        let user = ticks(basic.TotalUserTime);
        let system = ticks(basic.TotalKernelTime);
        Ok(Usage {
            active_process_count: u64::from(basic.ActiveProcesses),
            total_processes: Some(u64::from(basic.TotalProcesses)),
            cpu_time: Some(user + system),
            user_cpu_time: Some(user),
            system_cpu_time: Some(system),
            // Zero means "not tracked" (Wine), never a real job's peak.
            peak_memory_bytes: Some(extended.PeakJobMemoryUsed as u64).filter(|&b| b > 0),
            ..Usage::default()
        })
    }
}

/// Job times count 100-nanosecond ticks.
fn ticks(count: i64) -> Duration {
    Duration::from_nanos((count.max(0) as u64).saturating_mul(100))
}

#[cfg(feature = "limits")]
mod limits {
    use std::io;

    use windows_sys::Win32::System::JobObjects::{
        JOB_OBJECT_CPU_RATE_CONTROL_ENABLE, JOB_OBJECT_CPU_RATE_CONTROL_HARD_CAP,
        JOB_OBJECT_LIMIT_ACTIVE_PROCESS, JOB_OBJECT_LIMIT_JOB_MEMORY,
        JOBOBJECT_CPU_RATE_CONTROL_INFORMATION,
    };

    use super::Job;
    use crate::sys::Limits;

    impl Job {
        /// Applies `limits` (once, to a fresh job), keeping kill-on-close.
        pub(crate) fn set_limits(&self, limits: &Limits) -> io::Result<()> {
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
                // SAFETY: the struct is plain data for which all-zero is valid.
                let mut rate: JOBOBJECT_CPU_RATE_CONTROL_INFORMATION =
                    unsafe { std::mem::zeroed() };
                rate.ControlFlags =
                    JOB_OBJECT_CPU_RATE_CONTROL_ENABLE | JOB_OBJECT_CPU_RATE_CONTROL_HARD_CAP;
                rate.Anonymous.CpuRate = cpu_rate(cores, cpus);
                self.set(&rate)?;
            }
            Ok(())
        }
    }

    /// Converts "cores" into the job's CPU rate: hundredths of a percent of
    /// the whole machine (1..=10000), so only as exact as the CPU count.
    pub(crate) fn cpu_rate(cores: f64, cpus: usize) -> u32 {
        let share = cores / cpus.max(1) as f64;
        (share * 10_000.0).round().clamp(1.0, 10_000.0) as u32
    }
}

#[cfg(all(test, feature = "limits"))]
pub(crate) use limits::cpu_rate;
