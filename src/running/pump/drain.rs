//! The background pump: reads a pipe into a capture buffer as bytes come,
//! hands completed lines to a line handler and keeps a bounded capture
//! within its bound.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;

use super::super::OutputPipe;
use super::super::split::find_span;
use super::{READ_CHUNK, lock};
use crate::command::LineHandler;
use crate::sys::spawn::PipeThread;

/// Below this much spare capacity, a capture buffer grows before the next
/// read, so a read can take a whole (1 MiB) pipe's worth at once.
const MIN_SPARE: usize = 1024 * 1024;

/// The most a capture buffer grows by at once, so a huge capture does not
/// double its reservation at the very end.
const MAX_GROWTH: usize = 256 * 1024 * 1024;

/// A plain capture (no line handler, no bound) that has read this much
/// moves to a thread of its own where the platform offers one: a busy
/// stream then costs no task wake-up per read and no reactor wake-up per
/// write of the child.
const THREAD_AFTER: usize = 4 * 1024 * 1024;

/// What a bounded capture keeps: the first half of `max` bytes and the
/// most recent rest, with `MARKER` between them once bytes were dropped.
#[derive(Debug)]
pub(crate) struct Bound {
    max: usize,
    truncated: std::sync::atomic::AtomicBool,
}

/// Put where a bounded capture dropped bytes.
const MARKER: &[u8] = b"\n[processkit: output truncated]\n";

impl Bound {
    pub(crate) fn new(max: usize) -> Bound {
        Bound {
            max,
            truncated: Default::default(),
        }
    }

    pub(crate) fn truncated(&self) -> bool {
        self.truncated.load(Ordering::Acquire)
    }

    /// Drops the middle of `buf` once it holds well over `max` bytes (at
    /// most `max` more, so each byte is moved a bounded number of times),
    /// keeping a line handler's place.
    fn compact(&self, buf: &Mutex<Vec<u8>>, splitter: &mut Option<Splitter>) {
        let mut buf = lock(buf);
        let slack = self.max.max(READ_CHUNK);
        if buf.len() <= self.max.saturating_add(slack) {
            return;
        }
        let head = self.max / 2;
        let tail = self.max - head;
        let first = !self.truncated.swap(true, Ordering::AcqRel);
        let kept_head = if first { head } else { head + MARKER.len() };
        let tail_start = buf.len() - tail;
        if first {
            buf.splice(head..tail_start, MARKER.iter().copied());
        } else {
            buf.drain(kept_head..tail_start);
        }
        let new_tail_start = head + MARKER.len();
        if let Some(splitter) = splitter.as_mut() {
            if splitter.at >= tail_start {
                splitter.at -= tail_start - new_tail_start;
            } else if splitter.at > kept_head.min(head) {
                // Lines in the dropped middle are lost to the handler too.
                splitter.at = new_tail_start;
                splitter.scanned = 0;
            }
        }
    }
}

/// What a drain task hands back when it ends.
pub(crate) struct Drained {
    /// The pipe, when the task was stopped before end-of-file.
    pub(crate) pipe: Option<OutputPipe>,
    /// How many leading bytes of `buf` the line handler has seen.
    pub(crate) handled: usize,
}

/// Hands the lines of a capture buffer to a line handler as they complete,
/// split exactly as a `LineReader` splits them (pieces of at most `MAX_LINE`).
pub(super) struct Splitter {
    handler: LineHandler,
    /// Bytes of the buffer already handed to the handler.
    at: usize,
    /// How far past `at` the search for a newline got.
    scanned: usize,
}

impl Splitter {
    /// A splitter whose handler already saw the first `at` bytes.
    pub(super) fn new(handler: LineHandler, at: usize) -> Splitter {
        Splitter {
            handler,
            at,
            scanned: 0,
        }
    }

    /// Calls the handler for every complete item past `at` (and the
    /// unterminated rest when `eof`). Each byte is searched once.
    fn emit(&mut self, buf: &Mutex<Vec<u8>>, eof: bool, progress: &AtomicU64) {
        loop {
            let item = {
                let buf = lock(buf);
                // `None` when a finisher that stopped waiting took the buffer.
                let Some(unread) = buf.get(self.at..) else {
                    return;
                };
                let Some(span) = find_span(unread, &mut self.scanned, eof) else {
                    return;
                };
                self.at += span.next;
                self.scanned = 0;
                span.text(unread)
            };
            // Outside the lock: a slow handler must not stall a finisher.
            (self.handler)(&item);
            progress.fetch_add(1, Ordering::Release);
        }
    }
}

pub(super) async fn drain(
    mut reader: OutputPipe,
    buf: Arc<Mutex<Vec<u8>>>,
    mut splitter: Option<Splitter>,
    progress: Arc<AtomicU64>,
    bound: Option<Arc<Bound>>,
    stopped: oneshot::Receiver<()>,
) -> Drained {
    // Completes only when a stop was sent, never when the sender is dropped.
    let stop = async move {
        if stopped.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(stop);
    let handled = |s: &Option<Splitter>| s.as_ref().map_or(0, |s| s.at);
    let mut unthreaded = splitter.is_none() && bound.is_none();
    let mut read_here = 0;
    loop {
        // Reading a pipe is cancel-safe: a stop loses no bytes.
        let read = tokio::select! {
            biased;
            () = &mut stop => {
                return Drained { handled: handled(&splitter), pipe: Some(reader) };
            }
            read = std::future::poll_fn(|cx| poll_append(&mut reader, &buf, cx)) => read,
        };
        let Some(range) = read else {
            break;
        };
        progress.fetch_add(1, Ordering::Release);
        if let Some(splitter) = splitter.as_mut() {
            splitter.emit(&buf, false, &progress);
        }
        if let Some(bound) = &bound {
            bound.compact(&buf, &mut splitter);
        }
        read_here += range.len();
        if unthreaded && read_here >= THREAD_AFTER {
            unthreaded = false;
            let (buf, progress) = (Arc::clone(&buf), Arc::clone(&progress));
            match crate::sys::spawn::read_on_thread(reader, buf, progress, reserve_for_read) {
                Ok(thread) => return on_thread(thread, stop).await,
                Err(pipe) => reader = pipe,
            }
        }
    }
    if let Some(splitter) = splitter.as_mut() {
        splitter.emit(&buf, true, &progress);
    }
    Drained {
        pipe: None,
        handled: handled(&splitter),
    }
}

/// Waits for a capture read by its own thread to reach end-of-file, or
/// takes the pipe back from it on a stop.
async fn on_thread(mut thread: PipeThread, stop: Pin<&mut impl Future<Output = ()>>) -> Drained {
    let stopped = tokio::select! {
        biased;
        () = stop => None,
        pipe = thread.ended() => Some(pipe),
    };
    let pipe = match stopped {
        Some(pipe) => pipe,
        None => {
            thread.stop();
            thread.ended().await
        }
    };
    Drained { pipe, handled: 0 }
}

/// Makes room for a read of a whole pipe's worth.
fn reserve_for_read(buf: &mut Vec<u8>) {
    if buf.capacity() - buf.len() < MIN_SPARE {
        // Doubling keeps the number of copies logarithmic in the output size.
        let more = buf.len().clamp(READ_CHUNK, MAX_GROWTH);
        buf.reserve(more);
    }
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
    reserve_for_read(&mut buf);
    let start = buf.len();
    // `read_buf` fills the spare capacity in place; polling it once and
    // dropping it loses nothing, as no bytes are taken before it is ready.
    let read = std::pin::pin!(reader.read_buf(&mut *buf)).poll(cx);
    match ready!(read) {
        Ok(0) | Err(_) => Poll::Ready(None),
        Ok(n) => Poll::Ready(Some(start..start + n)),
    }
}
