//! Line streams over a running child's stdout and stderr, and
//! `finish_streamed`, which ends a streamed run with its exit code and the
//! stderr that was drained in the background.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio_stream::Stream;

use super::RunningProcess;
use super::batch::LineBatch;
use super::raw::OutputReader;
use crate::error::Result;

/// Which output a [`LineStream`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Stdout,
    Stderr,
}

/// The lines of a running child's stdout or stderr, as they are written.
///
/// Returned by [`RunningProcess::stdout_lines`] and
/// [`RunningProcess::stderr_lines`]. It borrows the handle, so the handle
/// is usable again (e.g. for [`finish_streamed`](RunningProcess::finish_streamed))
/// once the stream is no longer used. Lines end at `\n` or `\r\n` (neither is
/// included); an unterminated last line is delivered too; invalid UTF-8 is
/// replaced with `U+FFFD`; a line longer than [`MAX_LINE`](crate::MAX_LINE)
/// bytes arrives in `MAX_LINE`-byte pieces. The stream ends when the pipe
/// closes: the child and everything holding the pipe exited, or the run's
/// timeout or cancellation killed the tree.
///
/// Dropping the stream loses nothing: bytes already read but not yet
/// delivered stay buffered for the next stream, probe or finisher.
///
/// For output with very many lines, [`next_batch`](LineStream::next_batch)
/// returns all the lines that are ready at once, without a `String` per line.
#[derive(Debug)]
#[must_use = "a stream does nothing unless polled"]
pub struct LineStream<'a> {
    run: &'a mut RunningProcess,
    source: Source,
    /// Set by `next_line` when it returns no line: whether that is the end.
    ended: bool,
}

impl Stream for LineStream<'_> {
    type Item = String;

    // Inlined into the caller's crate: the line reaches the caller's loop
    // in registers (a `String` returned through memory and read back at
    // once costs a store-forwarding stall every line).
    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<String>> {
        let this = self.get_mut();
        match this.next_line(cx) {
            Some(line) => Poll::Ready(Some(line.into_string())),
            None if this.ended => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

impl LineStream<'_> {
    /// The next line, or `None` with `ended` saying whether the stream
    /// ended or is pending. Out of line, but its result comes back in two
    /// registers, so the caller's loop gets each line without a trip
    /// through memory.
    #[inline(never)]
    fn next_line(&mut self, cx: &mut Context<'_>) -> Option<Box<str>> {
        // Once per line: a line that is read and checked already is one
        // slice and one copy away, without the layers below.
        if self.source == Source::Stdout
            && let Some(line) = self.run.stdout.ready_line()
        {
            return Some(line);
        }
        let polled = self.poll_line(cx);
        self.ended = matches!(polled, Poll::Ready(None));
        match polled {
            Poll::Ready(Some(line)) => Some(line.into_boxed_str()),
            _ => None,
        }
    }

    /// The next line when none is waiting: reads, or takes the pipe back.
    fn poll_line(&mut self, cx: &mut Context<'_>) -> Poll<Option<String>> {
        match self.source {
            // stderr went back to its background drain when the stream was
            // made, and no stderr stream can exist while this one borrows
            // the run: straight to the next line.
            Source::Stdout => self.run.stdout.poll_next_line(cx, false),
            Source::Stderr => self.run.poll_stderr_line(cx),
        }
    }
}

impl LineStream<'_> {
    /// Every line that is ready, as one [`LineBatch`]: whatever complete
    /// lines are buffered, or else those that one read from the pipe
    /// brings. Waits if there is none yet; `None` once the stream has ended.
    ///
    /// This is the fast way to consume a chatty child: a batch is one
    /// buffer (normally the read buffer itself, handed over without a
    /// copy), checked for UTF-8 once, and its
    /// lines are `&str` slices of it, where [`next`](crate::StreamExt::next)
    /// allocates a `String` per line. The lines are exactly those `next()`
    /// would return, in the same order, and the two may be mixed on one
    /// stream: nothing is lost or repeated. Cancel-safe, like `next()`.
    ///
    /// ```no_run
    /// # async fn demo() -> processkit::Result<()> {
    /// use processkit::Command;
    /// let mut run = Command::new("seq").arg("1000000").start().await?;
    /// let mut lines = run.stdout_lines();
    /// let mut total = 0u64;
    /// while let Some(batch) = lines.next_batch().await {
    ///     for line in &batch {
    ///         total += line.parse::<u64>().unwrap_or(0);
    ///     }
    /// }
    /// # let _ = total; Ok(()) }
    /// ```
    pub async fn next_batch(&mut self) -> Option<LineBatch> {
        std::future::poll_fn(|cx| match self.source {
            Source::Stdout => self.run.poll_stdout_batch(cx),
            Source::Stderr => self.run.poll_stderr_batch(cx),
        })
        .await
    }
}

impl RunningProcess {
    /// Streams stdout line by line as the child writes it. Meanwhile stderr
    /// keeps being drained in the background (collect it with
    /// [`finish_streamed`](RunningProcess::finish_streamed)).
    ///
    /// Lines already consumed by [`wait_for_line`](RunningProcess::wait_for_line)
    /// are not repeated; everything after them is. The stream reads the
    /// pipe only while it is polled, so a child writing faster than the
    /// caller reads waits for the caller: memory stays bounded. With an
    /// [`on_stdout_line`](crate::Command::on_stdout_line) handler, lines
    /// the stream delivers bypass the handler.
    ///
    /// ```no_run
    /// # async fn demo() -> processkit::Result<()> {
    /// use processkit::{Command, StreamExt};
    /// let mut run = Command::new("seq").arg("3").start().await?;
    /// let mut lines = run.stdout_lines();
    /// while let Some(line) = lines.next().await {
    ///     println!("{line}");
    /// }
    /// let (code, stderr) = run.finish_streamed().await?;
    /// # let _ = (code, stderr); Ok(()) }
    /// ```
    pub fn stdout_lines(&mut self) -> LineStream<'_> {
        self.resume_stderr_capture();
        LineStream {
            run: self,
            source: Source::Stdout,
            ended: false,
        }
    }

    /// Streams stderr line by line as the child writes it, starting with
    /// whatever stderr was captured before the call. Unread stdout is
    /// drained into a buffer in the background meanwhile, so the child
    /// never blocks on it; a later [`stdout_lines`](RunningProcess::stdout_lines)
    /// still sees all of it. Once you stop streaming stderr (and wait,
    /// probe or stream stdout instead) it is drained in the background
    /// again. Lines delivered here do not reach an
    /// [`on_stderr_line`](crate::Command::on_stderr_line) handler and are not
    /// part of `finish_streamed`'s stderr.
    ///
    /// On a [`Pipeline`](crate::Pipeline) handle that has not been waited for,
    /// this streams every stage's stderr, interleaved line by line as the
    /// stages write it (what a shell shows on its terminal). The stderr that
    /// `finish_streamed` returns is then what is left of the attributed
    /// stage's (see the pipefail rule on [`Pipeline`](crate::Pipeline)).
    pub fn stderr_lines(&mut self) -> LineStream<'_> {
        self.start_stdout_capture();
        LineStream {
            run: self,
            source: Source::Stderr,
            ended: false,
        }
    }

    /// Takes stdout as exact bytes: no line splitting, no UTF-8 decoding,
    /// `\r`, NUL and invalid UTF-8 as the child wrote them. The reader starts
    /// with what was captured and not yet read as lines, then reads the pipe
    /// until it closes. From then on stdout is the reader's: its line stream
    /// ends at once and finishers return no stdout. `None` once taken (or
    /// when stdout was handed to a pipeline's next stage).
    ///
    /// ```no_run
    /// # async fn demo() -> processkit::Result<()> {
    /// use tokio::io::AsyncReadExt;
    /// let mut run = processkit::Command::new("cat").arg("image.png").start().await?;
    /// let mut bytes = Vec::new();
    /// if let Some(mut stdout) = run.stdout_reader() {
    ///     stdout.read_to_end(&mut bytes).await.expect("read");
    /// }
    /// run.wait().await?;
    /// # Ok(()) }
    /// ```
    pub fn stdout_reader(&mut self) -> Option<OutputReader> {
        self.stdout.take_raw().map(OutputReader::new)
    }

    /// Takes stderr as exact bytes, like
    /// [`stdout_reader`](RunningProcess::stdout_reader): what was captured so
    /// far first, then the pipe; stderr's line stream ends at once and
    /// finishers return no stderr.
    pub fn stderr_reader(&mut self) -> Option<OutputReader> {
        self.stderr.as_mut()?.take_raw().map(OutputReader::new)
    }

    /// Ends a streamed run: waits for the child to exit, kills whatever it
    /// left running, and returns the exit code with the stderr that was
    /// drained in the background. The code is `None` when the run was
    /// killed (its timeout, a signal, or [`kill`](RunningProcess::kill)).
    /// stdout that was never streamed is discarded. A cancelled run reports
    /// [`Error::Cancelled`](crate::Error::Cancelled).
    pub async fn finish_streamed(self) -> Result<(Option<i32>, String)> {
        let result = self.finish_output().await?;
        Ok((
            result.code,
            String::from_utf8_lossy(&result.stderr).into_owned(),
        ))
    }

    /// The next stdout line; `None` once stdout is closed or was taken.
    /// With `through_handler`, an `on_stdout_line` handler sees the line too
    /// (unless it already saw it); otherwise the line bypasses it.
    pub(crate) fn poll_stdout_line(
        &mut self,
        cx: &mut Context<'_>,
        through_handler: bool,
    ) -> Poll<Option<String>> {
        self.resume_stderr_capture();
        self.stdout.poll_next_line(cx, through_handler)
    }

    /// The stdout lines that are ready, as one batch; `None` once stdout is
    /// closed or was taken.
    pub(crate) fn poll_stdout_batch(&mut self, cx: &mut Context<'_>) -> Poll<Option<LineBatch>> {
        self.resume_stderr_capture();
        self.stdout.poll_next_batch(cx)
    }

    /// Drains stderr in the background again if a stderr stream had taken
    /// it over: whoever streamed it is not reading it any more.
    pub(crate) fn resume_stderr_capture(&mut self) {
        if let Some(stderr) = self.stderr.as_mut() {
            stderr.resume();
        }
        self.child.resume_stderr();
    }

    /// The next stderr line; `None` once stderr is closed. A pipeline that
    /// has not been waited for yet streams every stage's stderr.
    pub(crate) fn poll_stderr_line(&mut self, cx: &mut Context<'_>) -> Poll<Option<String>> {
        match self.stderr.as_mut() {
            Some(capture) => capture.poll_next_line(cx, false),
            None => self.child.poll_stderr_line(cx),
        }
    }

    /// The stderr lines that are ready, as one batch; `None` once stderr is
    /// closed.
    pub(crate) fn poll_stderr_batch(&mut self, cx: &mut Context<'_>) -> Poll<Option<LineBatch>> {
        match self.stderr.as_mut() {
            Some(capture) => capture.poll_next_batch(cx),
            None => self.child.poll_stderr_batch(cx),
        }
    }
}
