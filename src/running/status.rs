//! `RunningProcess::wait_status`: the wait that reports how the run ended
//! as an [`ExitStatus`] rather than the bare exit code.

use super::RunningProcess;
use crate::error::Result;
use crate::exit_status::ExitStatus;

impl RunningProcess {
    /// Waits for the child to exit and returns how it ended: its exit code,
    /// the signal that ended it (Unix), or that it hit its timeout. Output
    /// keeps being drained meanwhile, as with [`wait`](RunningProcess::wait).
    /// A cancelled run reports [`Error::Cancelled`](crate::Error::Cancelled).
    pub async fn wait_status(&mut self) -> Result<ExitStatus> {
        let exit = self.wait_exit().await?;
        self.check_cancelled()?;
        Ok(ExitStatus::new(exit.code, exit.signal, self.timed_out()).idle(self.idle_timed_out()))
    }
}
