//! Readiness probes on a running child: wait for a stdout line, a TCP port
//! or any async check. A probe that cannot pass fails with
//! `Error::NotReady` and leaves the child running.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::RunningProcess;
use crate::error::{Error, NotReadyReason, Result};

/// First pause between attempts of a polling probe; it doubles up to `MAX_PAUSE`.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_millis(200);

impl RunningProcess {
    /// Reads stdout until a line satisfies `pred` and returns that line.
    /// Lines before it are consumed; everything after it stays readable by
    /// [`stdout_lines`](RunningProcess::stdout_lines) or the finishers.
    ///
    /// Fails with [`Error::NotReady`] when `deadline` passes
    /// ([`NotReadyReason::DeadlineExpired`]) or stdout closes first
    /// ([`NotReadyReason::StdoutClosed`]). The child is never killed here.
    ///
    /// ```no_run
    /// # async fn demo() -> processkit::Result<()> {
    /// use processkit::Command;
    /// use std::time::Duration;
    /// let mut run = Command::new("my-server").start().await?;
    /// let banner = run
    ///     .wait_for_line(|l| l.contains("listening on"), Duration::from_secs(10))
    ///     .await?;
    /// # let _ = banner; Ok(()) }
    /// ```
    pub async fn wait_for_line(
        &mut self,
        mut pred: impl FnMut(&str) -> bool,
        deadline: Duration,
    ) -> Result<String> {
        let begun = Instant::now();
        let search = async {
            while let Some(line) = std::future::poll_fn(|cx| self.poll_stdout_line(cx, false)).await
            {
                if pred(&line) {
                    return Some(line);
                }
            }
            None
        };
        match tokio::time::timeout(deadline, search).await {
            Ok(Some(line)) => Ok(line),
            Ok(None) => {
                self.check_cancelled()?;
                Err(self.not_ready(NotReadyReason::StdoutClosed, begun))
            }
            Err(_) => Err(self.not_ready(NotReadyReason::DeadlineExpired, begun)),
        }
    }

    /// Waits until a TCP connection to `addr` succeeds. Does not read or
    /// write the child's pipes.
    ///
    /// Fails with [`Error::NotReady`] when `deadline` passes
    /// ([`NotReadyReason::DeadlineExpired`]) or the child exits first
    /// ([`NotReadyReason::Exited`]). The child is never killed here.
    pub async fn wait_for_port(&mut self, addr: SocketAddr, deadline: Duration) -> Result<()> {
        self.wait_for(
            || async move { TcpStream::connect(addr).await.is_ok() },
            deadline,
        )
        .await
    }

    /// Calls `check` until it returns `true`, pausing briefly between
    /// attempts (10 ms, doubling up to 200 ms). Does not read or write the
    /// child's pipes.
    ///
    /// Fails with [`Error::NotReady`] when `deadline` passes
    /// ([`NotReadyReason::DeadlineExpired`]), even in the middle of a slow
    /// check, or the child exits before the check passes
    /// ([`NotReadyReason::Exited`]). A check that passes after the child
    /// exited still counts. The child is never killed here.
    ///
    /// ```no_run
    /// # async fn demo() -> processkit::Result<()> {
    /// use processkit::Command;
    /// use std::time::Duration;
    /// let mut run = Command::new("my-server").start().await?;
    /// run.wait_for(|| async { std::path::Path::new("/tmp/ready").exists() }, Duration::from_secs(5))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_for<F, Fut>(&mut self, mut check: F, deadline: Duration) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let begun = Instant::now();
        let passes = async {
            let mut pause = FIRST_PAUSE;
            while !check().await {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
        };
        let raced = async {
            // The check goes first: one that passes wins over an exit
            // noticed in the same poll (e.g. a server that daemonized).
            tokio::select! {
                biased;
                () = passes => Ok(()),
                exit = self.reap() => Err(exit),
            }
        };
        match tokio::time::timeout(deadline, raced).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(exit)) => {
                let code = exit?.code;
                self.check_cancelled()?;
                let code = if self.timed_out() { None } else { code };
                Err(self.not_ready(NotReadyReason::Exited(code), begun))
            }
            Err(_) => Err(self.not_ready(NotReadyReason::DeadlineExpired, begun)),
        }
    }

    fn not_ready(&self, reason: NotReadyReason, begun: Instant) -> Error {
        Error::NotReady {
            program: self.program.clone(),
            reason,
            waited: begun.elapsed(),
        }
    }
}
