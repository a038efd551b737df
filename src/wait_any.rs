//! `wait_any`: races several running children and reports the first to exit,
//! borrowing them so the others stay usable.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use crate::error::{Error, Operation, Result};
use crate::running::{Exit, RunningProcess};

/// Waits until any of `procs` exits and returns its index with its exit code
/// (`None` when it was killed by a signal or its timeout).
///
/// Only borrows: the others keep running and stay usable. A child that had
/// already exited wins at once (the lowest such index). The race reads no
/// output and applies no deadline of its own; bound it with
/// [`tokio::time::timeout`]. A cancelled winner reports
/// [`Error::Cancelled`]; an empty slice is an [`Error::InvalidArgument`].
///
/// ```no_run
/// # async fn demo() -> processkit::Result<()> {
/// use processkit::{Command, wait_any};
/// let mut a = Command::new("server-a").start().await?;
/// let mut b = Command::new("server-b").start().await?;
/// let (idx, code) = wait_any(&mut [&mut a, &mut b]).await?;
/// println!("contender #{idx} exited first with {code:?}");
/// # Ok(()) }
/// ```
pub async fn wait_any(procs: &mut [&mut RunningProcess]) -> Result<(usize, Option<i32>)> {
    if procs.is_empty() {
        return Err(Error::InvalidArgument {
            operation: Operation::WaitAny,
            reason: "there are no processes to wait for".to_owned(),
        });
    }
    let (index, exit) = {
        type Reap<'a> = Pin<Box<dyn Future<Output = Result<Exit>> + Send + 'a>>;
        let mut reaps: Vec<Reap<'_>> = procs
            .iter_mut()
            .map(|p| Box::pin(p.reap()) as Reap<'_>)
            .collect();
        std::future::poll_fn(|cx| {
            for (index, reap) in reaps.iter_mut().enumerate() {
                if let Poll::Ready(exit) = reap.as_mut().poll(cx) {
                    return Poll::Ready((index, exit));
                }
            }
            Poll::Pending
        })
        .await
    };
    let winner = &procs[index];
    let exit = exit?;
    winner.check_cancelled()?;
    let code = if winner.timed_out() { None } else { exit.code };
    Ok((index, code))
}
