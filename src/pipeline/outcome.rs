//! The chain under a pipeline's handle: `Stages` is its `ChildWait`. Waiting
//! waits for every stage, then attributes the exit (pipefail) to the stage
//! whose exit code, stderr and program the outcome reports.

use crate::error::{Error, Result};
use crate::policy::Verdict;
use crate::running::{Attribution, ChildExit, ChildWait, LineBatch, RunningProcess, WaitFuture};
use crate::sys::Container;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The started stages of one pipeline, all in one shared container.
pub(crate) struct Stages {
    runs: Vec<RunningProcess>,
    checked: Vec<bool>,
    container: Arc<Container>,
    /// The stage whose stderr a merged stderr stream polls first next time,
    /// so a chatty stage cannot starve the others.
    next_stderr: usize,
}

/// How one stage ended, as far as attribution cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StageEnd {
    /// Failures of this stage count (it was not marked `unchecked`).
    pub(crate) checked: bool,
    /// Exit code 0, not ended by its own timeout or cancellation.
    pub(crate) clean: bool,
}

/// The stage whose outcome the pipeline reports: the first checked stage that
/// did not end cleanly; else the last checked stage; else the last stage.
pub(crate) fn blamed_stage(ends: &[StageEnd]) -> usize {
    ends.iter()
        .position(|e| e.checked && !e.clean)
        .or_else(|| ends.iter().rposition(|e| e.checked))
        .unwrap_or(ends.len().saturating_sub(1))
}

impl Stages {
    pub(crate) fn new(
        runs: Vec<RunningProcess>,
        checked: Vec<bool>,
        container: Arc<Container>,
    ) -> Stages {
        Stages {
            runs,
            checked,
            container,
            next_stderr: 0,
        }
    }

    fn poll_any_stderr<T>(
        &mut self,
        cx: &mut Context<'_>,
        mut poll: impl FnMut(&mut RunningProcess, &mut Context<'_>) -> Poll<Option<T>>,
    ) -> Poll<Option<T>> {
        let n = self.runs.len();
        let mut open = false;
        for k in 0..n {
            let i = (self.next_stderr + k) % n;
            match poll(&mut self.runs[i], cx) {
                Poll::Ready(Some(item)) => {
                    self.next_stderr = (i + 1) % n;
                    return Poll::Ready(Some(item));
                }
                Poll::Ready(None) => {}
                Poll::Pending => open = true,
            }
        }
        if open {
            Poll::Pending
        } else {
            Poll::Ready(None)
        }
    }

    fn last_program(&self) -> &str {
        self.runs.last().map_or("pipeline", |r| r.program())
    }

    /// Waits for every stage to exit, then attributes the outcome.
    async fn wait_all(&mut self) -> Result<ChildExit> {
        let mut ends = Vec::with_capacity(self.runs.len());
        let mut cancelled = false;
        for (run, &checked) in self.runs.iter_mut().zip(&self.checked) {
            let exit = run.wait_exit().await?;
            let verdict = run.arbiter.verdict();
            cancelled |= verdict == Verdict::Cancelled;
            let clean = exit.code == Some(0) && verdict == Verdict::Running;
            ends.push(StageEnd { checked, clean });
        }
        let run = &mut self.runs[blamed_stage(&ends)];
        let exit = run.exit.expect("every stage was waited for above");
        let timed_out = run.arbiter.verdict().is_timeout();
        Ok(ChildExit {
            code: if timed_out { None } else { exit.code },
            signal: exit.signal,
            attribution: Some(Attribution {
                program: run.program.clone(),
                stderr: run.stderr.take(),
                timeout: if timed_out {
                    run.expired_timeout()
                } else {
                    None
                },
                idle: run.idle_timed_out(),
                cancelled,
            }),
        })
    }
}

impl ChildWait for Stages {
    /// Boxed: a stage's own wait is the same `wait_exit` that awaits this.
    fn wait(&mut self) -> WaitFuture<'_> {
        Box::pin(self.wait_all())
    }

    /// Kills every stage and everything the stages started.
    fn kill(&self) -> Result<()> {
        self.container.kill_all().map_err(|e| {
            Error::io(
                self.last_program(),
                crate::error::Operation::KillPipeline,
                e,
            )
        })
    }

    /// Every stage's tree gets its own stage's stop signal.
    fn ask_to_stop(&self) -> Result<()> {
        self.runs.iter().try_for_each(|run| run.child.ask_to_stop())
    }

    fn wait_gone(&self, limit: std::time::Duration) -> crate::running::GoneFuture<'_> {
        Box::pin(self.container.wait_empty(limit))
    }

    #[cfg(feature = "stats")]
    fn sampled(&self) -> crate::running::Sampled {
        crate::running::Sampled::Container(Arc::clone(&self.container))
    }

    /// The next stderr line of any stage, in the order the stages write
    /// them; `None` once every stage's stderr is closed.
    fn poll_stderr_line(&mut self, cx: &mut Context<'_>) -> Poll<Option<String>> {
        self.poll_any_stderr(cx, |run, cx| run.poll_stderr_line(cx))
    }

    fn poll_stderr_batch(&mut self, cx: &mut Context<'_>) -> Poll<Option<LineBatch>> {
        self.poll_any_stderr(cx, |run, cx| run.poll_stderr_batch(cx))
    }

    /// Puts every stage's stderr back to background draining after a merged
    /// stderr stream stopped being read.
    fn resume_stderr(&mut self) {
        for run in &mut self.runs {
            run.resume_stderr_capture();
        }
    }
}

impl fmt::Debug for Stages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let programs: Vec<&str> = self.runs.iter().map(RunningProcess::program).collect();
        f.debug_struct("Pipeline")
            .field("stages", &programs)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(checked: bool, clean: bool) -> StageEnd {
        StageEnd { checked, clean }
    }

    #[test]
    fn first_checked_failure_wins() {
        let ends = [end(true, true), end(true, false), end(true, false)];
        assert_eq!(blamed_stage(&ends), 1);
    }

    #[test]
    fn all_clean_reports_the_last_stage() {
        assert_eq!(blamed_stage(&[end(true, true), end(true, true)]), 1);
    }

    #[test]
    fn unchecked_failures_are_skipped() {
        let ends = [end(false, false), end(true, false), end(true, true)];
        assert_eq!(blamed_stage(&ends), 1);
        assert_eq!(blamed_stage(&[end(false, false), end(true, true)]), 1);
    }

    #[test]
    fn an_unchecked_last_stage_defers_to_the_last_checked_one() {
        assert_eq!(blamed_stage(&[end(true, true), end(false, false)]), 0);
        assert_eq!(blamed_stage(&[end(false, false), end(false, true)]), 1);
    }
}
