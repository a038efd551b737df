//! `RunningProcess::events`: stdout and stderr lines interleaved, each
//! delivered as soon as it is read, tagged with the stream it came from.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio_stream::Stream;

use super::RunningProcess;

/// One line of a child's output, tagged with its stream (see
/// [`RunningProcess::events`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputEvent {
    /// A line of stdout, without its line ending.
    Stdout(String),
    /// A line of stderr, without its line ending.
    Stderr(String),
}

/// The stream [`RunningProcess::events`] returns.
#[derive(Debug)]
#[must_use = "a stream does nothing unless polled"]
pub struct OutputEvents<'a> {
    run: &'a mut RunningProcess,
    stdout_done: bool,
    stderr_done: bool,
    /// Which stream is asked first next time, so a chatty one cannot starve
    /// the other.
    stderr_first: bool,
}

impl RunningProcess {
    /// Streams stdout and stderr together, line by line, in the order the
    /// lines are read from the two pipes: what a terminal would show, as
    /// nearly as two pipes allow (lines the child writes to both within
    /// the same instant may come in either order). Each stream starts with
    /// whatever was captured before the call. Ends when both streams have
    /// ended. Lines delivered here bypass `on_stdout_line`/`on_stderr_line`
    /// handlers and are not part of what finishers return.
    ///
    /// ```no_run
    /// # async fn demo() -> processkit::Result<()> {
    /// use processkit::{Command, OutputEvent, StreamExt};
    /// let mut run = Command::new("make").start().await?;
    /// let mut events = run.events();
    /// while let Some(event) = events.next().await {
    ///     match event {
    ///         OutputEvent::Stdout(line) => println!("{line}"),
    ///         OutputEvent::Stderr(line) => eprintln!("{line}"),
    ///     }
    /// }
    /// drop(events);
    /// run.wait().await?;
    /// # Ok(()) }
    /// ```
    pub fn events(&mut self) -> OutputEvents<'_> {
        OutputEvents {
            run: self,
            stdout_done: false,
            stderr_done: false,
            stderr_first: false,
        }
    }
}

impl OutputEvents<'_> {
    fn poll_stdout(&mut self, cx: &mut Context<'_>) -> Poll<Option<OutputEvent>> {
        if self.stdout_done {
            return Poll::Ready(None);
        }
        let line = std::task::ready!(self.run.stdout.poll_next_line(cx, false));
        self.stdout_done = line.is_none();
        Poll::Ready(line.map(OutputEvent::Stdout))
    }

    fn poll_stderr(&mut self, cx: &mut Context<'_>) -> Poll<Option<OutputEvent>> {
        if self.stderr_done {
            return Poll::Ready(None);
        }
        let line = std::task::ready!(self.run.poll_stderr_line(cx));
        self.stderr_done = line.is_none();
        Poll::Ready(line.map(OutputEvent::Stderr))
    }
}

impl Stream for OutputEvents<'_> {
    type Item = OutputEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<OutputEvent>> {
        let this = self.get_mut();
        let first_stderr = this.stderr_first;
        this.stderr_first = !first_stderr;
        for stderr in [first_stderr, !first_stderr] {
            let polled = if stderr {
                this.poll_stderr(cx)
            } else {
                this.poll_stdout(cx)
            };
            if let Poll::Ready(Some(event)) = polled {
                return Poll::Ready(Some(event));
            }
        }
        if this.stdout_done && this.stderr_done {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}
