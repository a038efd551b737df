//! Readiness probes on a running child: wait for a stdout or stderr line,
//! a TCP port, a path, a Unix socket or any async check (HTTP lives in
//! `probe_http`). A probe that cannot pass fails with `Error::NotReady` and
//! leaves the child running.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::task::{Context, Poll};
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
        pred: impl FnMut(&str) -> bool,
        deadline: Duration,
    ) -> Result<String> {
        let begun = Instant::now();
        let found = self
            .search_lines(|run, cx| run.poll_stdout_line(cx, false), pred, deadline)
            .await;
        self.line_found(found, NotReadyReason::StdoutClosed, begun)
    }

    /// Reads stderr until a line satisfies `pred` and returns that line: the
    /// same as [`wait_for_line`](RunningProcess::wait_for_line), on stderr.
    /// Lines before it are consumed; everything after it stays readable by
    /// [`stderr_lines`](RunningProcess::stderr_lines) or the finishers.
    ///
    /// Fails with [`Error::NotReady`] when `deadline` passes
    /// ([`NotReadyReason::DeadlineExpired`]) or stderr closes first
    /// ([`NotReadyReason::StderrClosed`]), which is at once when stderr is
    /// not captured (inherited, null, a file, or merged into stdout). The
    /// child is never killed here.
    ///
    /// ```no_run
    /// # async fn demo() -> processkit::Result<()> {
    /// use processkit::Command;
    /// use std::time::Duration;
    /// let mut run = Command::new("my-server").start().await?;
    /// run.wait_for_stderr_line(|l| l.contains("ready"), Duration::from_secs(10))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_for_stderr_line(
        &mut self,
        pred: impl FnMut(&str) -> bool,
        deadline: Duration,
    ) -> Result<String> {
        let begun = Instant::now();
        let found = self
            .search_lines(|run, cx| run.poll_stderr_line(cx), pred, deadline)
            .await;
        // Whoever reads stderr next finds it drained in the background again.
        self.resume_stderr_capture();
        self.line_found(found, NotReadyReason::StderrClosed, begun)
    }

    /// Reads lines with `poll_line` until one satisfies `pred`: `None` when
    /// the stream closed first, `Err` when `deadline` passed.
    async fn search_lines(
        &mut self,
        mut poll_line: impl FnMut(&mut Self, &mut Context<'_>) -> Poll<Option<String>>,
        mut pred: impl FnMut(&str) -> bool,
        deadline: Duration,
    ) -> std::result::Result<Option<String>, tokio::time::error::Elapsed> {
        let search = async {
            while let Some(line) = std::future::poll_fn(|cx| poll_line(self, cx)).await {
                if pred(&line) {
                    return Some(line);
                }
            }
            None
        };
        tokio::time::timeout(deadline, search).await
    }

    /// What a line probe returns for what `search_lines` found.
    fn line_found(
        &self,
        found: std::result::Result<Option<String>, tokio::time::error::Elapsed>,
        closed: NotReadyReason,
        begun: Instant,
    ) -> Result<String> {
        match found {
            Ok(Some(line)) => Ok(line),
            Ok(None) => {
                self.check_cancelled()?;
                Err(self.not_ready(closed, begun))
            }
            Err(_) => Err(self.not_ready(NotReadyReason::DeadlineExpired, begun)),
        }
    }

    /// Waits until `path` exists (a file, a directory, anything a `stat`
    /// finds; a dangling symbolic link does not count), e.g. a pidfile or a
    /// socket the child creates. Checked with the same pauses as
    /// [`wait_for`](RunningProcess::wait_for).
    ///
    /// Fails with [`Error::NotReady`] when `deadline` passes
    /// ([`NotReadyReason::DeadlineExpired`]) or the child exits first
    /// ([`NotReadyReason::Exited`]). The child is never killed here.
    ///
    /// ```no_run
    /// # async fn demo() -> processkit::Result<()> {
    /// use processkit::Command;
    /// use std::time::Duration;
    /// let mut run = Command::new("my-daemon").arg("--pidfile=/tmp/d.pid").start().await?;
    /// run.wait_for_path("/tmp/d.pid", Duration::from_secs(5)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_for_path(
        &mut self,
        path: impl AsRef<Path>,
        deadline: Duration,
    ) -> Result<()> {
        let path = path.as_ref();
        self.wait_for(|| async move { path.exists() }, deadline)
            .await
    }

    /// Waits until the Unix domain socket at `path` accepts a connection
    /// (the file existing is not enough: someone must listen on it).
    ///
    /// Fails with [`Error::NotReady`] when `deadline` passes
    /// ([`NotReadyReason::DeadlineExpired`]) or the child exits first
    /// ([`NotReadyReason::Exited`]). On Windows it fails at once with
    /// [`Error::Unsupported`]. The child is never killed here.
    ///
    /// ```no_run
    /// # async fn demo() -> processkit::Result<()> {
    /// use processkit::Command;
    /// use std::time::Duration;
    /// let mut run = Command::new("my-agent").arg("--listen=/tmp/agent.sock").start().await?;
    /// run.wait_for_socket("/tmp/agent.sock", Duration::from_secs(5)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_for_socket(
        &mut self,
        path: impl AsRef<Path>,
        deadline: Duration,
    ) -> Result<()> {
        if !crate::sys::socket::PROBES_UNIX_SOCKETS {
            return Err(Error::Unsupported {
                operation: "wait_for_socket",
                reason: "Unix domain sockets are not probed on this platform".to_owned(),
            });
        }
        let path = path.as_ref();
        self.wait_for(
            || async move { crate::sys::socket::accepts(path).await.unwrap_or(false) },
            deadline,
        )
        .await
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
