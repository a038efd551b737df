//! Batches: `output_all` runs many commands with a bound on how many live at
//! once, and `wait_all` waits for several started runs; both answer in input
//! order, over one small driver that polls a window of futures by hand.

use std::borrow::Borrow;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use crate::command::Command;
use crate::error::{Error, Operation, Result};
use crate::exit_status::ExitStatus;
use crate::result::ProcessResult;
use crate::running::RunningProcess;

/// Runs every command in `commands`, at most `concurrency` of them alive at
/// once, and returns each one's outcome in input order.
///
/// Each entry is what [`Command::output_string`] returns for that command:
/// a non-zero exit, a death by signal and a timeout are data in the
/// [`ProcessResult`]; a command that cannot start (a missing program, a bad
/// working directory) or is cancelled is that entry's `Err`. One failure
/// stops nothing else. Commands start in input order as earlier ones finish,
/// each in a container of its own, and every run is over (its tree killed)
/// when its entry is filled.
///
/// Dropping the returned future kills every child still running and starts
/// no more. The outer `Result` concerns the arguments only: a `concurrency`
/// of 0 is an [`Error::InvalidArgument`].
///
/// ```no_run
/// # async fn demo() -> processkit::Result<()> {
/// use processkit::{Command, output_all};
/// let checks: Vec<Command> = ["fmt", "clippy", "test"]
///     .into_iter()
///     .map(|verb| Command::new("cargo").arg(verb))
///     .collect();
/// for (cmd, result) in checks.iter().zip(output_all(&checks, 2).await?) {
///     match result {
///         Ok(out) if out.is_success() => println!("{cmd:?}: ok"),
///         Ok(out) => println!("{cmd:?}: failed with {:?}", out.code()),
///         Err(e) => println!("{cmd:?}: did not run: {e}"),
///     }
/// }
/// # Ok(()) }
/// ```
pub async fn output_all<I>(commands: I, concurrency: usize) -> Result<Vec<Result<ProcessResult>>>
where
    I: IntoIterator,
    I::Item: Borrow<Command>,
{
    if concurrency == 0 {
        return Err(Error::InvalidArgument {
            operation: Operation::OutputAll,
            reason: "concurrency must be at least 1".to_owned(),
        });
    }
    // Owned here, so each run can borrow its command for as long as it lasts.
    let commands: Vec<I::Item> = commands.into_iter().collect();
    let runs = commands.iter().map(|cmd| cmd.borrow().output_string());
    Ok(in_order(runs, concurrency).await)
}

/// Waits for every run in `procs` and returns how each ended, in input order.
///
/// The runs are waited for together, and each one's output keeps being
/// drained meanwhile, as with [`RunningProcess::wait_status`]; each entry is
/// what `wait_status` returns for that run, so a cancelled run's entry is
/// [`Error::Cancelled`] and the others are unaffected. An empty slice gives
/// an empty `Vec`. Only borrows: dropping the future early leaves every
/// handle usable. No deadline of its own; bound it with
/// [`tokio::time::timeout`] or give the commands a timeout.
///
/// ```no_run
/// # async fn demo() -> processkit::Result<()> {
/// use processkit::{Command, wait_all};
/// let mut build = Command::new("make").arg("build").start().await?;
/// let mut docs = Command::new("make").arg("docs").start().await?;
/// for status in wait_all(&mut [&mut build, &mut docs]).await {
///     println!("{}", status?);
/// }
/// # Ok(()) }
/// ```
pub async fn wait_all(procs: &mut [&mut RunningProcess]) -> Vec<Result<ExitStatus>> {
    let all = procs.len();
    in_order(procs.iter_mut().map(|p| p.wait_status()), all).await
}

/// Drives the futures of `pending`, at most `limit` at a time, taking the
/// next one as soon as a slot frees, and returns their outputs in the order
/// `pending` gave them. The window is polled oldest first, so the futures
/// also begin in that order.
async fn in_order<F: Future>(mut pending: impl Iterator<Item = F>, limit: usize) -> Vec<F::Output> {
    let mut window: Vec<(usize, Pin<Box<F>>)> = Vec::new();
    let mut done: Vec<(usize, F::Output)> = Vec::new();
    let mut taken = 0;
    std::future::poll_fn(|cx| {
        loop {
            while window.len() < limit {
                let Some(next) = pending.next() else { break };
                window.push((taken, Box::pin(next)));
                taken += 1;
            }
            if window.is_empty() {
                return Poll::Ready(());
            }
            let finished = done.len();
            let mut slot = 0;
            while slot < window.len() {
                match window[slot].1.as_mut().poll(cx) {
                    Poll::Ready(output) => done.push((window.remove(slot).0, output)),
                    Poll::Pending => slot += 1,
                }
            }
            // Nothing freed a slot: every future in the window is registered.
            if done.len() == finished {
                return Poll::Pending;
            }
        }
    })
    .await;
    done.sort_by_key(|(index, _)| *index);
    done.into_iter().map(|(_, output)| output).collect()
}
