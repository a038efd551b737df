//! The one "reading output" state machine: a child's stdout or stderr is
//! idle, drained into a buffer by a pump (a task of its own, or the task
//! that finishes the run; it calls an optional line handler, so no child
//! blocks on a full pipe), or read line by line by the caller; the handler
//! sees each line once, however the reading moves.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::AsyncRead;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::lines::LineReader;
use super::{LineBatch, OutputPipe};
use crate::command::LineHandler;
pub(crate) use drain::{Bound, Drained};
use drain::{Splitter, drain};

mod drain;

/// Size of each read from a pipe.
pub(crate) const READ_CHUNK: usize = 64 * 1024;

/// The longest a finisher keeps waiting for a pipe that is still delivering
/// (or a line handler that is still catching up) after the tree died.
const MAX_DRAIN_AFTER_EXIT: Duration = Duration::from_secs(30);

/// One output stream of a run, however it is being read.
pub(crate) struct Capture {
    buf: Arc<Mutex<Vec<u8>>>,
    handler: Option<LineHandler>,
    mode: Mode,
    /// Whether what is read belongs to the run's result: false while the
    /// caller only reads lines off a pipe that was never captured.
    collects: bool,
    /// Bumped by the drain task for every read and every handled line, so a
    /// finisher can tell a pump that is busy from a pipe held open idle.
    progress: Arc<AtomicU64>,
    /// How much of the stream is kept, when bounded.
    bound: Option<Arc<Bound>>,
}

enum Mode {
    /// Nobody has read the pipe yet.
    Idle(OutputPipe),
    /// A background task drains the pipe into `buf`; it returns the pipe
    /// when `stop` fires, or `None` at end-of-file.
    Draining {
        task: JoinHandle<Drained>,
        stop: Option<oneshot::Sender<()>>,
    },
    /// Drained like `Draining`, but by the task that finishes the run (a
    /// verb that waits for the exit right after the start), without a task
    /// of its own; anything else that wants the stream moves it to a task.
    Inline {
        drain: PumpFuture,
        stop: Option<oneshot::Sender<()>>,
    },
    /// The caller reads the stream line by line; `buf` was moved into the
    /// reader, whose first `handled` bytes the line handler already saw.
    Lines {
        reader: LineReader<OutputPipe>,
        handled: u64,
    },
    /// Nothing left to read.
    Closed,
}

/// How many reads (or handled lines) an inline drain makes before it moves
/// to a task: a few for a quiet stream, not the thousands of a busy one.
const INLINE_STEPS: u64 = 2;

/// A drain that has not been given a task.
type PumpFuture = Pin<Box<dyn Future<Output = Drained> + Send>>;

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Idle(_) => "Idle",
            Mode::Draining { .. } => "Draining",
            Mode::Inline { .. } => "Inline",
            Mode::Lines { .. } => "Lines",
            Mode::Closed => "Closed",
        })
    }
}

impl Capture {
    /// Starts draining `reader` in the background.
    /// `initial` holds bytes already read from the pipe by someone else.
    pub(crate) fn start<R>(initial: Vec<u8>, reader: R, handler: Option<LineHandler>) -> Capture
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        Capture::start_bounded(initial, Box::new(reader), handler, None)
    }

    /// `start` for a pipe, keeping at most about `max` bytes (see `Bound`).
    /// The pipe is not boxed again: the platform must see its own type.
    pub(crate) fn start_bounded(
        initial: Vec<u8>,
        pipe: OutputPipe,
        handler: Option<LineHandler>,
        max: Option<usize>,
    ) -> Capture {
        let mut capture = Capture::collecting(initial, handler, max);
        capture.drain_in_background(pipe, 0);
        capture
    }

    /// `start_bounded` for a run that is finished right away: the pipe is
    /// read by the finishing task while it waits (`poll_inline`), which
    /// spares a task, its wake-ups and its hand-over per stream.
    pub(crate) fn start_for_finisher(
        pipe: OutputPipe,
        handler: Option<LineHandler>,
        max: Option<usize>,
    ) -> Capture {
        let mut capture = Capture::collecting(Vec::new(), handler, max);
        let (drain, stop) = capture.pump(pipe, 0);
        capture.mode = Mode::Inline {
            drain,
            stop: Some(stop),
        };
        capture
    }

    fn collecting(initial: Vec<u8>, handler: Option<LineHandler>, max: Option<usize>) -> Capture {
        Capture {
            buf: Arc::new(Mutex::new(initial)),
            handler,
            mode: Mode::Closed,
            progress: Arc::default(),
            collects: true,
            bound: max.map(|max| Arc::new(Bound::new(max))),
        }
    }

    /// The bound, to ask after a finish whether bytes were dropped.
    pub(crate) fn bound(&self) -> Option<Arc<Bound>> {
        self.bound.clone()
    }

    /// A pipe read only when asked: line by line by the caller, or in the
    /// background from the first `resume` on.
    pub(crate) fn idle(pipe: OutputPipe) -> Capture {
        Capture::unread(Mode::Idle(pipe))
    }

    /// Nothing to read: no pipe, or it was handed on (to a pipeline's handle).
    pub(crate) fn closed() -> Capture {
        Capture::unread(Mode::Closed)
    }

    fn unread(mode: Mode) -> Capture {
        Capture {
            buf: Arc::default(),
            handler: None,
            mode,
            progress: Arc::default(),
            collects: false,
            bound: None,
        }
    }

    /// Hands this stream on, leaving it closed here.
    pub(crate) fn take(&mut self) -> Capture {
        std::mem::replace(self, Capture::closed())
    }

    /// A capture of something already collected (e.g. a scripted reply).
    pub(crate) fn ready(bytes: Vec<u8>) -> Capture {
        Capture {
            buf: Arc::new(Mutex::new(bytes)),
            handler: None,
            mode: Mode::Closed,
            progress: Arc::default(),
            collects: true,
            bound: None,
        }
    }

    /// Drains `pipe` into `buf`; the handler starts at byte `handled` of `buf`.
    fn drain_in_background(&mut self, pipe: OutputPipe, handled: usize) {
        let (drain, stop) = self.pump(pipe, handled);
        self.mode = Mode::Draining {
            task: tokio::spawn(drain),
            stop: Some(stop),
        };
    }

    /// The drain of `pipe` into `buf` (not yet running) and its stop switch.
    fn pump(&self, pipe: OutputPipe, handled: usize) -> (PumpFuture, oneshot::Sender<()>) {
        let (stop, stopped) = oneshot::channel();
        let splitter = self
            .handler
            .clone()
            .map(|handler| Splitter::new(handler, handled));
        let drain = drain(
            pipe,
            Arc::clone(&self.buf),
            splitter,
            Arc::clone(&self.progress),
            self.bound.clone(),
            stopped,
        );
        (Box::pin(drain), stop)
    }

    /// Whether the finishing task drains this stream (see `start_for_finisher`).
    pub(crate) fn drains_inline(&self) -> bool {
        matches!(self.mode, Mode::Inline { .. })
    }

    /// Reads what the pipe has for an inline drain; called by the task
    /// that waits for the run, every time it is polled.
    pub(crate) fn poll_inline(&mut self, cx: &mut Context<'_>) {
        let Mode::Inline { drain, .. } = &mut self.mode else {
            return;
        };
        if let Poll::Ready(drained) = drain.as_mut().poll(cx) {
            self.drained(drained);
            return;
        }
        // A stream that keeps delivering gets a task of its own: driven from
        // the finisher, every read would wait for that task to be woken,
        // which costs a thread switch where it is not a runtime worker
        // (the future a runtime's `block_on` drives).
        if self.progress.load(Ordering::Acquire) > INLINE_STEPS {
            self.move_to_task();
        }
    }

    /// The next mode after a drain ended: a pipe handed back (stopped for a
    /// line reader that let go of it again) drains on; at end-of-file, closed.
    fn drained(&mut self, drained: Drained) {
        match drained.pipe {
            Some(pipe) => self.drain_in_background(pipe, drained.handled),
            None => self.mode = Mode::Closed,
        }
    }

    /// Gives an inline drain a task of its own, for anyone but the finisher.
    fn move_to_task(&mut self) {
        if let Mode::Inline { .. } = self.mode {
            let Mode::Inline { drain, stop } = std::mem::replace(&mut self.mode, Mode::Closed)
            else {
                unreachable!("checked above")
            };
            self.mode = Mode::Draining {
                task: tokio::spawn(drain),
                stop,
            };
        }
    }

    /// The next line of the stream, taking the pipe back from the background
    /// pump on first use: lines start with the bytes captured so far, and
    /// nothing read so far is lost. `None` at end-of-file (or a read error).
    /// With `through_handler`, the line handler gets every line it has not
    /// seen yet; otherwise lines delivered here bypass it.
    #[inline]
    pub(crate) fn poll_next_line(
        &mut self,
        cx: &mut Context<'_>,
        through_handler: bool,
    ) -> Poll<Option<String>> {
        self.poll_line(cx, through_handler)
            .map(|line| line.ok().flatten())
    }

    /// The next line if the line reader has one checked and waiting, for a
    /// caller that bypasses the handler; `None` says "poll", not the end.
    #[inline]
    pub(crate) fn ready_line(&mut self) -> Option<Box<str>> {
        match &mut self.mode {
            Mode::Lines { reader, .. } => reader.take_ready_line(),
            _ => None,
        }
    }

    /// `poll_next_line`, with a read error reported rather than taken as
    /// end-of-file.
    #[inline]
    pub(crate) fn poll_line(
        &mut self,
        cx: &mut Context<'_>,
        through_handler: bool,
    ) -> Poll<io::Result<Option<String>>> {
        // Cloned only when it is called: this runs once per line.
        let handler = if through_handler {
            self.handler.clone()
        } else {
            None
        };
        let (reader, handled) = ready!(self.poll_reader(cx));
        let line = ready!(reader.poll_next_line(cx))?;
        if let (Some(line), Some(handler)) = (&line, handler)
            && reader.delivered() > handled
        {
            handler(line);
        }
        Poll::Ready(Ok(line))
    }

    /// Like `poll_next_line` (bypassing the handler), but every line that
    /// is ready as one batch.
    pub(crate) fn poll_next_batch(&mut self, cx: &mut Context<'_>) -> Poll<Option<LineBatch>> {
        let (reader, _) = ready!(self.poll_reader(cx));
        reader.poll_next_batch(cx).map(|r| r.ok().flatten())
    }

    /// The caller-driven line reader, taking the pipe back from the pump as
    /// `poll_line` does, for a probe that looks at text no newline ended yet.
    pub(crate) fn poll_line_reader(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<&mut LineReader<OutputPipe>> {
        self.poll_reader(cx).map(|(reader, _)| reader)
    }

    /// Switches to caller-driven line reading, once the pump has handed the pipe back.
    #[inline]
    fn poll_reader(&mut self, cx: &mut Context<'_>) -> Poll<(&mut LineReader<OutputPipe>, u64)> {
        if !matches!(self.mode, Mode::Lines { .. }) {
            ready!(self.poll_switch_to_lines(cx));
        }
        match &mut self.mode {
            Mode::Lines { reader, handled } => Poll::Ready((reader, *handled)),
            _ => unreachable!("switched to lines above"),
        }
    }

    /// Takes the pipe back from the pump (or from nobody) for line reading.
    fn poll_switch_to_lines(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.move_to_task();
        loop {
            match &mut self.mode {
                Mode::Lines { .. } => break,
                Mode::Idle(_) => {
                    let Mode::Idle(pipe) = std::mem::replace(&mut self.mode, Mode::Closed) else {
                        unreachable!("matched above")
                    };
                    self.read_lines_from(pipe, 0);
                }
                Mode::Draining { task, stop } => {
                    if let Some(stop) = stop.take() {
                        let _ = stop.send(());
                    }
                    let (pipe, handled) = match ready!(Pin::new(task).poll(cx)) {
                        Ok(Drained { pipe, handled }) => (pipe, handled),
                        Err(_) => (None, 0),
                    };
                    let pipe = pipe.unwrap_or_else(|| Box::new(tokio::io::empty()));
                    self.read_lines_from(pipe, handled);
                }
                Mode::Closed => self.read_lines_from(Box::new(tokio::io::empty()), 0),
                Mode::Inline { .. } => unreachable!("moved to a task above"),
            }
        }
        Poll::Ready(())
    }

    fn read_lines_from(&mut self, pipe: OutputPipe, handled: usize) {
        let captured = std::mem::take(&mut *lock(&self.buf));
        self.mode = Mode::Lines {
            reader: LineReader::with_buffered(captured, pipe),
            handled: handled as u64,
        };
    }

    /// Goes back to (or starts) draining in the background if the caller
    /// was reading lines or nobody read yet, so a stream nobody reads any
    /// more cannot block the child. From here on the stream is collected.
    pub(crate) fn resume(&mut self) {
        if let Mode::Idle(_) = self.mode {
            let Mode::Idle(pipe) = std::mem::replace(&mut self.mode, Mode::Closed) else {
                unreachable!("checked above")
            };
            self.collects = true;
            self.drain_in_background(pipe, 0);
        }
        if let Mode::Lines { .. } = self.mode {
            self.collects = true;
            let Mode::Lines { reader, handled } = std::mem::replace(&mut self.mode, Mode::Closed)
            else {
                unreachable!("checked above")
            };
            // Unread bytes the handler already saw are not handed to it again.
            let seen = handled.saturating_sub(reader.delivered());
            let (unread, pipe) = reader.into_parts();
            let mut buf = lock(&self.buf);
            let at = buf.len()
                + usize::try_from(seen)
                    .unwrap_or(usize::MAX)
                    .min(unread.len());
            buf.extend_from_slice(&unread);
            drop(buf);
            self.drain_in_background(pipe, at);
        }
    }

    /// Waits for end-of-file, then returns what was read (and not already
    /// delivered as lines). Once `grace` passes without the pump making
    /// progress it stops waiting: a process that escaped teardown may hold
    /// the pipe open. A pump that is still reading or handing lines to a
    /// slow handler is waited for, up to `MAX_DRAIN_AFTER_EXIT`.
    /// A stream that was never collected (only read line by line, or
    /// handed on) gives nothing.
    pub(crate) async fn finish(mut self, grace: Duration) -> Vec<u8> {
        if !self.collects {
            return Vec::new();
        }
        let begun = tokio::time::Instant::now();
        let mut deadline = begun + grace;
        let mut seen = self.progress.load(Ordering::Acquire);
        loop {
            self.resume();
            // The stop switch stays in the mode, so the drain is not told to stop.
            let ended = match &mut self.mode {
                Mode::Draining { task, .. } => within(deadline, async { task.await.ok() }).await,
                Mode::Inline { drain, .. } => {
                    within(deadline, async { Some(drain.as_mut().await) }).await
                }
                _ => break,
            };
            match ended {
                // A line reader took the pipe back and let go of it: keep draining.
                Ok(Some(drained)) if drained.pipe.is_some() => self.drained(drained),
                Ok(_) => {
                    self.mode = Mode::Closed;
                    break;
                }
                Err(_) => {
                    let now = self.progress.load(Ordering::Acquire);
                    if now == seen || begun.elapsed() >= MAX_DRAIN_AFTER_EXIT {
                        break;
                    }
                    seen = now;
                    deadline = tokio::time::Instant::now() + grace;
                }
            }
        }
        std::mem::take(&mut *lock(&self.buf))
    }
}

/// `timeout_at(deadline, fut)`, arming no timer when `fut` is done by the
/// runtime's next turn: after the exit, a pipe is mostly at end-of-file,
/// which tokio learns at that turn (a timer per stream would cost a driver
/// wake-up each).
async fn within<F: Future>(
    deadline: tokio::time::Instant,
    fut: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    let mut fut = std::pin::pin!(fut);
    for _ in 0..2 {
        let polled = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
        if let Poll::Ready(out) = polled {
            return Ok(out);
        }
        tokio::task::yield_now().await;
    }
    tokio::time::timeout_at(deadline, fut).await
}

/// A stream taken whole for raw reading: the bytes collected and not yet
/// delivered, then the pipe (once a background pump has handed it back).
pub(crate) struct RawParts {
    pub(crate) collected: Arc<Mutex<Vec<u8>>>,
    pub(crate) pipe: RawPipe,
}

pub(crate) enum RawPipe {
    Ready(Option<OutputPipe>),
    /// The pump was told to stop; it returns the pipe (`None` at end-of-file).
    Pending(JoinHandle<Drained>),
}

impl Capture {
    /// Takes the stream for a raw reader, leaving it closed here (line
    /// streams end, finishers get nothing). `None` when there is nothing to
    /// read: never captured and closed, or already taken.
    pub(crate) fn take_raw(&mut self) -> Option<RawParts> {
        self.move_to_task();
        let collects = std::mem::replace(&mut self.collects, false);
        let collected = std::mem::take(&mut self.buf);
        let pipe = match std::mem::replace(&mut self.mode, Mode::Closed) {
            Mode::Idle(pipe) => RawPipe::Ready(Some(pipe)),
            Mode::Draining { task, stop } => {
                if let Some(stop) = stop {
                    let _ = stop.send(());
                }
                RawPipe::Pending(task)
            }
            Mode::Lines { reader, .. } => {
                // The bytes not yet delivered as lines come first.
                let (unread, pipe) = reader.into_parts();
                lock(&collected).extend_from_slice(&unread);
                RawPipe::Ready(Some(pipe))
            }
            Mode::Closed if collects => RawPipe::Ready(None),
            Mode::Inline { .. } => unreachable!("moved to a task above"),
            Mode::Closed => return None,
        };
        Some(RawParts { collected, pipe })
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Mode::Draining { task, .. } = &self.mode {
            task.abort();
        }
    }
}

/// One line's text: a trailing `\r` removed, invalid UTF-8 replaced.
#[inline]
pub(crate) fn decode_line(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    // `from_utf8` validates a word at a time; the lossy path is byte by byte.
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
