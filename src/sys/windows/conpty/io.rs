//! A pseudo console's pipes as tokio reader and writer: anonymous pipes
//! have no overlapped I/O for tokio to drive, so one thread per direction
//! does the blocking calls. Neither thread outlives the console's pipe.

use std::fs::File;
use std::future::Future;
use std::io::{self, Read, Write};
use std::os::windows::io::OwnedHandle;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot};

/// The console's output, drained by a thread into a small channel. The
/// thread ends at end-of-file (the console closed) or once we stop reading.
pub(super) struct ThreadReader {
    chunks: mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl ThreadReader {
    pub(super) fn start(pipe: OwnedHandle) -> io::Result<ThreadReader> {
        let mut pipe = File::from(pipe);
        let (tx, chunks) = mpsc::channel(4);
        std::thread::Builder::new()
            .name("processkit-conpty-out".into())
            .spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                // A broken pipe (the console closed) reads as end-of-file.
                while let Ok(n @ 1..) = pipe.read(&mut buf) {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            })?;
        Ok(ThreadReader {
            chunks,
            chunk: Vec::new(),
            at: 0,
        })
    }
}

impl AsyncRead for ThreadReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.at == self.chunk.len() {
            match ready!(self.chunks.poll_recv(cx)) {
                Some(chunk) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = (self.chunk.len() - self.at).min(out.remaining());
        let at = self.at;
        out.put_slice(&self.chunk[at..at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

/// One write for the thread, and where it says how it went.
type Job = (Vec<u8>, oneshot::Sender<io::Result<()>>);

/// The console's input, written by a thread: one write in flight at a time,
/// its result reported at the next write, flush or shutdown. Shutdown
/// types `eof` once; the pipe stays open (the console would end otherwise).
pub(super) struct ThreadWriter {
    jobs: std::sync::mpsc::Sender<Job>,
    pending: Option<oneshot::Receiver<io::Result<()>>>,
    eof: &'static [u8],
    eof_sent: bool,
}

impl ThreadWriter {
    pub(super) fn start(pipe: OwnedHandle, eof: &'static [u8]) -> io::Result<ThreadWriter> {
        let mut pipe = File::from(pipe);
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("processkit-conpty-in".into())
            .spawn(move || {
                // Ends when the writer is dropped.
                for (bytes, done) in queue {
                    let _ = done.send(pipe.write_all(&bytes));
                }
            })?;
        Ok(ThreadWriter {
            jobs,
            pending: None,
            eof,
            eof_sent: false,
        })
    }

    /// Waits for the write in flight, if any, and returns its result.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(pending) = self.pending.as_mut() {
            let done = ready!(Pin::new(pending).poll(cx));
            self.pending = None;
            // The thread is gone only if the pipe failed for good.
            done.unwrap_or_else(|_| Err(io::ErrorKind::BrokenPipe.into()))?;
        }
        Poll::Ready(Ok(()))
    }

    fn send(&mut self, bytes: Vec<u8>) -> io::Result<()> {
        let (done, pending) = oneshot::channel();
        self.jobs
            .send((bytes, done))
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        self.pending = Some(pending);
        Ok(())
    }
}

impl AsyncWrite for ThreadWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        self.send(buf.to_vec())?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_pending(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        if !self.eof_sent {
            self.eof_sent = true;
            let eof = self.eof.to_vec();
            self.send(eof)?;
        }
        self.poll_pending(cx)
    }
}
