//! The finishers: every verb is `start()` followed by one of these, so all
//! verbs share one spawn path and one set of error semantics.

use crate::error::Result;
use crate::result::ProcessResult;
use crate::running::RunningProcess;

/// Full outcome with raw bytes; a non-zero exit or timeout is data.
pub(crate) async fn output_bytes(run: RunningProcess) -> Result<ProcessResult<Vec<u8>>> {
    run.finish_output().await
}

/// Trimmed stdout; anything but a clean exit 0 is an error.
pub(crate) fn require_success(result: ProcessResult<String>) -> Result<String> {
    let result = result.into_success()?;
    Ok(result.stdout.trim().to_owned())
}

/// Trimmed stdout of an unchecked run: its exit code or signal is not an
/// error, but a timeout still is (the run did not finish).
pub(crate) fn stdout_unless_timed_out(result: ProcessResult<String>) -> Result<String> {
    if result.timed_out {
        return Err(result.failure().expect("a timeout is a failure"));
    }
    Ok(result.stdout.trim().to_owned())
}

/// The exit code; a timed-out or killed run is an error, never an invented code.
pub(crate) fn exit_code<T: AsRef<[u8]>>(result: &ProcessResult<T>) -> Result<i32> {
    match result.code {
        Some(code) if !result.timed_out => Ok(code),
        // No code, or a timeout: the failure says what ended the run.
        _ => Err(result
            .failure()
            .expect("a run without an exit code is a failure")),
    }
}

/// Exit 0 → true, 1 → false, anything else is an error.
pub(crate) fn probe<T: AsRef<[u8]>>(result: &ProcessResult<T>) -> Result<bool> {
    match exit_code(result)? {
        0 => Ok(true),
        1 => Ok(false),
        _ => Err(result.failure().expect("a code other than 0 is a failure")),
    }
}

/// The first stdout line matching `pred`; the run's tree is torn down as
/// soon as the answer is known. `None` when stdout closes without a match.
/// An `on_stdout_line` handler still sees every line read up to the answer.
pub(crate) async fn first_line(
    mut run: RunningProcess,
    mut pred: impl FnMut(&str) -> bool,
) -> Result<Option<String>> {
    while let Some(line) = run.next_stdout_line_handled().await? {
        if pred(&line) {
            let _ = run.kill();
            // A line read after a cancel killed the tree is not an answer.
            run.check_cancelled()?;
            return Ok(Some(line));
        }
    }
    let result = run.finish_output().await?;
    if result.timed_out {
        return Err(result.failure().expect("a timeout is a failure"));
    }
    Ok(None)
}
