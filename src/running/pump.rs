//! Read pumps: background tasks that drain a child's stdout or stderr into a
//! buffer (calling an optional line handler), so no child ever blocks on a
//! full pipe that nobody reads.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;

use crate::command::LineHandler;

/// Size of each read from a pipe.
pub(crate) const READ_CHUNK: usize = 64 * 1024;

/// A running capture of one output stream.
#[derive(Debug)]
pub(crate) struct Capture {
    buf: Arc<Mutex<Vec<u8>>>,
    task: JoinHandle<()>,
}

impl Capture {
    /// Starts draining `reader` in the background.
    /// `initial` holds bytes already read from the pipe by someone else.
    pub(crate) fn start<R>(initial: Vec<u8>, reader: R, handler: Option<LineHandler>) -> Capture
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let buf = Arc::new(Mutex::new(initial));
        let task = tokio::spawn(drain(reader, Arc::clone(&buf), handler));
        Capture { buf, task }
    }

    /// A capture of something already collected (e.g. a scripted reply).
    pub(crate) fn ready(bytes: Vec<u8>) -> Capture {
        Capture {
            buf: Arc::new(Mutex::new(bytes)),
            task: tokio::spawn(async {}),
        }
    }

    /// Waits for end-of-file, at most `grace`; then returns what was read.
    /// The bound matters when a process that escaped teardown still holds the pipe.
    pub(crate) async fn finish(mut self, grace: Duration) -> Vec<u8> {
        if tokio::time::timeout(grace, &mut self.task).await.is_err() {
            self.task.abort();
        }
        std::mem::take(&mut *lock(&self.buf))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn drain<R>(mut reader: R, buf: Arc<Mutex<Vec<u8>>>, handler: Option<LineHandler>)
where
    R: AsyncRead + Unpin,
{
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut splitter = handler.map(|h| (h, Vec::<u8>::new()));
    loop {
        let n = match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        lock(&buf).extend_from_slice(&chunk[..n]);
        if let Some((handler, pending)) = splitter.as_mut() {
            pending.extend_from_slice(&chunk[..n]);
            emit_lines(pending, handler, false);
        }
    }
    if let Some((handler, mut pending)) = splitter {
        emit_lines(&mut pending, &handler, true);
    }
}

/// Calls `handler` for every complete line in `pending` (and the unterminated
/// rest when `at_eof`), removing them. `\n` and `\r\n` both end a line.
fn emit_lines(pending: &mut Vec<u8>, handler: &LineHandler, at_eof: bool) {
    let mut start = 0;
    while let Some(pos) = pending[start..].iter().position(|&b| b == b'\n') {
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
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
