//! Read pumps: background tasks that drain a child's stdout or stderr into a
//! buffer (calling an optional line handler), so no child ever blocks on a
//! full pipe that nobody reads. A pump can hand its pipe back to be read line by line.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{LineBatch, LineReader, OutputPipe};
use crate::command::LineHandler;

/// Size of each read from a pipe.
pub(crate) const READ_CHUNK: usize = 64 * 1024;

/// Below this much spare capacity, a capture buffer grows before the next
/// read, so a read can take a whole (1 MiB) pipe's worth at once.
const MIN_SPARE: usize = 1024 * 1024;

/// The most a capture buffer grows by at once, so a huge capture does not
/// double its reservation at the very end.
const MAX_GROWTH: usize = 256 * 1024 * 1024;

/// A running capture of one output stream.
pub(crate) struct Capture {
    buf: Arc<Mutex<Vec<u8>>>,
    handler: Option<LineHandler>,
    mode: Mode,
}

enum Mode {
    /// A background task drains the pipe into `buf`; it returns the pipe
    /// when `stop` fires, or `None` at end-of-file.
    Draining {
        task: JoinHandle<Option<OutputPipe>>,
        stop: Option<oneshot::Sender<()>>,
    },
    /// The caller reads the stream line by line; `buf` was moved into the reader.
    Lines(LineReader<OutputPipe>),
    /// Nothing left to read.
    Closed,
}

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
            Mode::Draining { .. } => "Draining",
            Mode::Lines(_) => "Lines",
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
        let mut capture = Capture {
            buf: Arc::new(Mutex::new(initial)),
            handler,
            mode: Mode::Closed,
        };
        capture.drain_in_background(Box::new(reader));
        capture
    }

    /// A capture of something already collected (e.g. a scripted reply).
    pub(crate) fn ready(bytes: Vec<u8>) -> Capture {
        Capture {
            buf: Arc::new(Mutex::new(bytes)),
            handler: None,
            mode: Mode::Closed,
        }
    }

    fn drain_in_background(&mut self, pipe: OutputPipe) {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(drain(
            pipe,
            Arc::clone(&self.buf),
            self.handler.clone(),
            stopped,
        ));
        self.mode = Mode::Draining {
            task,
            stop: Some(stop),
        };
    }

    /// The next line of the stream, taking the pipe back from the background
    /// pump on first use: lines start with the bytes captured so far, and
    /// nothing read so far is lost. `None` at end-of-file (or a read error).
    /// The line handler does not see lines delivered here.
    pub(crate) fn poll_next_line(&mut self, cx: &mut Context<'_>) -> Poll<Option<String>> {
        let reader = ready!(self.poll_reader(cx));
        reader.poll_next_line(cx).map(|r| r.ok().flatten())
    }

    /// Like `poll_next_line`, but every line that is ready as one batch.
    pub(crate) fn poll_next_batch(&mut self, cx: &mut Context<'_>) -> Poll<Option<LineBatch>> {
        let reader = ready!(self.poll_reader(cx));
        reader.poll_next_batch(cx).map(|r| r.ok().flatten())
    }

    /// Switches to caller-driven line reading, once the pump has handed the pipe back.
    fn poll_reader(&mut self, cx: &mut Context<'_>) -> Poll<&mut LineReader<OutputPipe>> {
        loop {
            match &mut self.mode {
                Mode::Lines(_) => break,
                Mode::Draining { task, stop } => {
                    if let Some(stop) = stop.take() {
                        let _ = stop.send(());
                    }
                    let pipe = match ready!(Pin::new(task).poll(cx)) {
                        Ok(Some(pipe)) => pipe,
                        Ok(None) | Err(_) => Box::new(tokio::io::empty()),
                    };
                    self.read_lines_from(pipe);
                }
                Mode::Closed => self.read_lines_from(Box::new(tokio::io::empty())),
            }
        }
        match &mut self.mode {
            Mode::Lines(reader) => Poll::Ready(reader),
            _ => unreachable!("switched to lines above"),
        }
    }

    fn read_lines_from(&mut self, pipe: OutputPipe) {
        let captured = std::mem::take(&mut *lock(&self.buf));
        self.mode = Mode::Lines(LineReader::with_buffered(captured, pipe));
    }

    /// Goes back to draining in the background if the caller was reading
    /// lines, so a stream nobody reads any more cannot block the child.
    pub(crate) fn resume(&mut self) {
        if let Mode::Lines(_) = self.mode {
            let Mode::Lines(reader) = std::mem::replace(&mut self.mode, Mode::Closed) else {
                unreachable!("checked above")
            };
            let (unread, pipe) = reader.into_parts();
            lock(&self.buf).extend_from_slice(&unread);
            self.drain_in_background(pipe);
        }
    }

    /// Waits for end-of-file, at most `grace`; then returns what was read
    /// (and not already delivered as lines).
    /// The bound matters when a process that escaped teardown still holds the pipe.
    pub(crate) async fn finish(mut self, grace: Duration) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            self.resume();
            let Mode::Draining { task, stop: _stop } = &mut self.mode else {
                break;
            };
            match tokio::time::timeout_at(deadline, &mut *task).await {
                // A line reader took the pipe back and let go of it: keep draining.
                Ok(Ok(Some(pipe))) => self.drain_in_background(pipe),
                Ok(_) => {
                    self.mode = Mode::Closed;
                    break;
                }
                Err(_) => break,
            }
        }
        std::mem::take(&mut *lock(&self.buf))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Mode::Draining { task, .. } = &self.mode {
            task.abort();
        }
    }
}

async fn drain(
    mut reader: OutputPipe,
    buf: Arc<Mutex<Vec<u8>>>,
    handler: Option<LineHandler>,
    stopped: oneshot::Receiver<()>,
) -> Option<OutputPipe> {
    // Completes only when a stop was sent, never when the sender is dropped.
    let stop = async move {
        if stopped.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(stop);
    let mut splitter = handler.map(|h| (h, Vec::<u8>::new()));
    loop {
        // Reading a pipe is cancel-safe: a stop loses no bytes.
        let read = tokio::select! {
            biased;
            () = &mut stop => return Some(reader),
            read = std::future::poll_fn(|cx| poll_append(&mut reader, &buf, cx)) => read,
        };
        let Some(range) = read else { break };
        if let Some((handler, pending)) = splitter.as_mut() {
            pending.extend_from_slice(&lock(&buf)[range]);
            emit_lines(pending, handler, false);
        }
    }
    if let Some((handler, mut pending)) = splitter {
        emit_lines(&mut pending, &handler, true);
    }
    None
}

/// Reads once from `reader` straight into the spare capacity of `buf`
/// (no intermediate chunk, no second copy) and returns where the new bytes
/// landed; `None` at end-of-file or on a read error. The lock is held only
/// for this one non-blocking read.
fn poll_append(
    reader: &mut OutputPipe,
    buf: &Mutex<Vec<u8>>,
    cx: &mut Context<'_>,
) -> Poll<Option<std::ops::Range<usize>>> {
    let mut buf = lock(buf);
    if buf.capacity() - buf.len() < MIN_SPARE {
        // Doubling keeps the number of copies logarithmic in the output size.
        let more = buf.len().clamp(READ_CHUNK, MAX_GROWTH);
        buf.reserve(more);
    }
    let start = buf.len();
    // `read_buf` fills the spare capacity in place; polling it once and
    // dropping it loses nothing, as no bytes are taken before it is ready.
    let read = std::pin::pin!(reader.read_buf(&mut *buf)).poll(cx);
    match ready!(read) {
        Ok(0) | Err(_) => Poll::Ready(None),
        Ok(n) => Poll::Ready(Some(start..start + n)),
    }
}

/// Calls `handler` for every complete line in `pending` (and the unterminated
/// rest when `at_eof`), removing them. `\n` and `\r\n` both end a line.
fn emit_lines(pending: &mut Vec<u8>, handler: &LineHandler, at_eof: bool) {
    let mut start = 0;
    while let Some(pos) = memchr::memchr(b'\n', &pending[start..]) {
        handler(&decode_line(&pending[start..start + pos]));
        start += pos + 1;
    }
    pending.drain(..start);
    if at_eof && !pending.is_empty() {
        handler(&decode_line(pending));
        pending.clear();
    }
}

/// One line's text: a trailing `\r` removed, invalid UTF-8 replaced.
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
