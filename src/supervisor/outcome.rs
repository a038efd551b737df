//! The supervisor's vocabulary: when to restart (`RestartPolicy`), why it
//! stopped (`StopReason`) and what it reports (`SupervisionOutcome`).

use crate::result::ProcessResult;

/// When a [`Supervisor`](crate::Supervisor) restarts its command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    /// After every exit, clean or not.
    Always,
    /// After a failed exit: a non-zero code, a signal or a timeout.
    #[default]
    OnCrash,
    /// Never: the command runs once.
    Never,
}

impl RestartPolicy {
    /// Whether a run that ended with `result` should be restarted.
    pub fn restarts_after<T: AsRef<[u8]>>(self, result: &ProcessResult<T>) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnCrash => !result.is_success(),
            RestartPolicy::Never => false,
        }
    }
}

/// Why supervision ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// The restart policy did not call for another run (`Never`, or a clean
    /// exit under `OnCrash`).
    PolicyDeclined,
    /// The `stop_when` condition accepted a run's result (never asked about
    /// a run its health check stopped).
    StopCondition,
    /// The run ended after `max_restarts` restarts had been used up.
    MaxRestarts,
}

/// What [`Supervisor::run`](crate::Supervisor::run) reports.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SupervisionOutcome {
    /// The result of the last run.
    pub result: ProcessResult,
    /// How many times the command was restarted (runs minus one).
    pub restarts: u32,
    /// How many collective storm pauses were taken.
    pub storms: u32,
    /// How many incarnations a failing health check stopped.
    pub health_check_failures: u32,
    /// Why supervision ended.
    pub stopped: StopReason,
}
