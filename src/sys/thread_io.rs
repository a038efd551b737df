//! Blocking descriptors as tokio reader and writer, one thread per
//! direction: Windows' anonymous pipes (a merged stdout, a ConPTY) have no
//! overlapped I/O for tokio to drive, and kqueue has not always reported a
//! pty master's readiness or its slave's close on macOS. Neither thread
//! outlives its descriptor's end.

use std::future::Future;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot};

/// What the terminal writes, drained by a thread into a small channel. The
/// thread ends at end-of-file or a read error (a closed console, a pty whose
/// slave side is gone), or once we stop reading.
pub(crate) struct ThreadReader {
    chunks: mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl ThreadReader {
    /// Starts the thread, named `name`, that drains `source`.
    pub(crate) fn start(
        mut source: impl Read + Send + 'static,
        name: &str,
    ) -> io::Result<ThreadReader> {
        let (tx, chunks) = mpsc::channel(4);
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                // A broken pipe or EIO (the other side is gone) ends it too.
                while let Ok(n @ 1..) = source.read(&mut buf) {
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
#[cfg_attr(not(feature = "pty"), allow(dead_code))]
type Job = (Vec<u8>, oneshot::Sender<io::Result<()>>);

/// The bytes that end a terminal's input, asked for when input ends.
// Without `pty`, only the merged Windows pipe uses this module (the reader).
#[cfg_attr(not(feature = "pty"), allow(dead_code))]
pub(crate) type EndOfInput = Box<dyn Fn() -> Vec<u8> + Send + Sync>;

/// The terminal's input, written by a thread: one write in flight at a
/// time, its result reported at the next write, flush or shutdown. Shutdown
/// types the end-of-input bytes once and closes nothing (a terminal whose
/// input closes hangs up or ends its clients).
#[cfg_attr(not(feature = "pty"), allow(dead_code))]
pub(crate) struct ThreadWriter {
    jobs: std::sync::mpsc::Sender<Job>,
    pending: Option<oneshot::Receiver<io::Result<()>>>,
    eof: EndOfInput,
    eof_sent: bool,
}

#[cfg_attr(not(feature = "pty"), allow(dead_code))]
impl ThreadWriter {
    pub(crate) fn start(
        mut sink: impl Write + Send + 'static,
        eof: EndOfInput,
    ) -> io::Result<ThreadWriter> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("processkit-tty-in".into())
            .spawn(move || {
                // Ends when the writer is dropped.
                for (bytes, done) in queue {
                    let _ = done.send(sink.write_all(&bytes));
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

/// A writer dropped without a shutdown still ends the input, as a dropped
/// pipe does: the thread types the end-of-input bytes, then ends.
impl Drop for ThreadWriter {
    fn drop(&mut self) {
        if !self.eof_sent {
            let (done, _) = oneshot::channel();
            let _ = self.jobs.send(((self.eof)(), done));
        }
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
            let eof = (self.eof)();
            self.send(eof)?;
        }
        self.poll_pending(cx)
    }
}

/// The thread path over a real pty on Linux (where runs use tokio's epoll
/// instead): typed input comes back through `cat`, the end-of-input bytes
/// end it, and the master's EIO after the slave closes is end-of-file.
#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::os::fd::OwnedFd;
    use std::process::Stdio;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::{ThreadReader, ThreadWriter};

    fn pty() -> (OwnedFd, OwnedFd) {
        use rustix::pty::OpenptFlags;
        let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
        let master = rustix::pty::openpt(flags).unwrap();
        rustix::pty::unlockpt(&master).unwrap();
        let slave = rustix::pty::ioctl_tiocgptpeer(&master, flags).unwrap();
        (master, slave)
    }

    #[tokio::test]
    async fn a_pty_master_through_threads_carries_input_output_and_its_end() {
        for drop_writer in [false, true] {
            through_threads(drop_writer).await;
        }
    }

    /// Input ends with a shutdown, or with the writer dropped.
    async fn through_threads(drop_writer: bool) {
        let (master, slave) = pty();
        let mut child = std::process::Command::new("cat")
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave))
            .spawn()
            .unwrap();
        let sink = std::fs::File::from(master.try_clone().unwrap());
        let mut writer = ThreadWriter::start(sink, Box::new(|| vec![0x04])).unwrap();
        let mut reader = ThreadReader::start(std::fs::File::from(master), "test").unwrap();
        writer.write_all(b"hello\n").await.unwrap();
        if drop_writer {
            writer.flush().await.unwrap();
            drop(writer);
        } else {
            writer.shutdown().await.unwrap();
        }
        let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        assert!(status.success(), "drop: {drop_writer}: {status}");
        let mut out = Vec::new();
        reader.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"hello\r\nhello\r\n", "the echo, then cat's copy");
    }
}
