//! `RunningProcess::profile`: runs a started child to completion while
//! sampling its own tree, and summarises duration, peak memory and CPU.

use std::time::Duration;

use super::{RunningProcess, Sampled};
use crate::error::Result;
use crate::result::ProcessResult;
use crate::stats::{ProcessGroupStats, sample_interval};

/// The summary of one profiled run, from [`RunningProcess::profile`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RunProfile {
    /// The exit code; `None` when the run was killed (timeout or signal).
    pub exit_code: Option<i32>,
    /// Wall time from start to the direct child's exit.
    pub duration: Duration,
    /// The highest memory use seen for the run's tree: the container's own
    /// peak counter where there is one (cgroup `memory.peak`), else the
    /// largest of the sampled `/proc` figures. `None` when nothing measured it.
    pub peak_memory_bytes: Option<u64>,
    /// CPU time the tree consumed: complete under cgroups (read after the
    /// exit); from `/proc`, as of the last sample before the exit.
    pub cpu_time: Option<Duration>,
    /// The most processes seen alive at once in the run's tree.
    pub peak_process_count: u64,
    /// How many samples were taken (one at start, one per interval, one at exit).
    pub samples: usize,
    /// The run's full outcome: output, exit code, `timed_out`, as from
    /// [`Command::output_string`](crate::Command::output_string).
    pub output: ProcessResult<String>,
}

impl RunProfile {
    /// Average CPU use over the run, in cores (`1.0` = one core busy the
    /// whole time); `None` when CPU time was not measured.
    pub fn avg_cpu(&self) -> Option<f64> {
        let cpu = self.cpu_time?;
        (!self.duration.is_zero()).then(|| cpu.as_secs_f64() / self.duration.as_secs_f64())
    }
}

/// Folds samples into the figures a profile reports.
#[derive(Debug, Default)]
struct Tracker {
    peak_memory: Option<u64>,
    cpu_time: Option<Duration>,
    peak_processes: u64,
    samples: usize,
}

impl Tracker {
    fn record(&mut self, sample: Option<ProcessGroupStats>) {
        self.samples += 1;
        let Some(s) = sample else { return };
        let memory = s.peak_memory_bytes.max(s.memory_bytes);
        self.peak_memory = self.peak_memory.max(memory);
        self.cpu_time = self.cpu_time.max(s.cpu_time);
        self.peak_processes = self.peak_processes.max(s.active_process_count);
    }
}

impl RunningProcess {
    /// Waits for the run to finish while sampling its tree every `interval`
    /// (at least 1 ms, at most a year), and returns a [`RunProfile`]. On a
    /// [`Pipeline`](crate::Pipeline) handle every stage's tree is sampled. The run's timeout,
    /// cancellation and output capture apply exactly as for
    /// [`Command::output_string`](crate::Command::output_string); a timed-out
    /// run is reported in the profile, a cancelled one is an error.
    ///
    /// ```no_run
    /// # async fn demo() -> processkit::Result<()> {
    /// use processkit::Command;
    /// use std::time::Duration;
    /// let profile = Command::new("crunch").start().await?.profile(Duration::from_millis(100)).await?;
    /// println!("took {:?}, peak {:?} bytes, {:?} cores", profile.duration,
    ///     profile.peak_memory_bytes, profile.avg_cpu());
    /// # Ok(()) }
    /// ```
    pub async fn profile(mut self, interval: Duration) -> Result<RunProfile> {
        let interval = sample_interval(interval);
        // A pipeline's stages share one container: it samples all of it.
        let sampled = self.child.sampled();
        let sample = || match &sampled {
            Sampled::Slot(slot) => slot.usage().ok().map(ProcessGroupStats::from_usage),
            Sampled::Container(container) => {
                container.usage().ok().map(ProcessGroupStats::from_usage)
            }
            Sampled::Nothing => None,
        };
        let mut tracker = Tracker::default();
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        {
            let exit = self.wait_exit();
            tokio::pin!(exit);
            loop {
                tokio::select! {
                    biased;
                    done = &mut exit => { done?; break; }
                    _ = ticks.tick() => tracker.record(sample()),
                }
            }
        }
        // Under a cgroup the counters still hold the finished tree's totals.
        tracker.record(sample());
        let output = self.finish_output().await?.into_lossy_string();
        Ok(RunProfile {
            exit_code: output.code(),
            duration: output.duration,
            peak_memory_bytes: tracker.peak_memory,
            cpu_time: tracker.cpu_time,
            peak_process_count: tracker.peak_processes,
            samples: tracker.samples,
            output,
        })
    }
}
