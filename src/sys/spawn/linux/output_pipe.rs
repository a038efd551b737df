//! The parent's read end of a child's output pipe. Its first read goes
//! straight to the pipe: a child that has exited by then has left its output
//! and end-of-file there, and tokio would only learn of them at its driver's
//! next turn. Every later read goes through tokio's readiness as usual.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::unix::pipe;

pub(crate) struct OutputPipe {
    /// `None` once handed to a reader thread (reads then see end-of-file).
    pipe: Option<pipe::Receiver>,
    /// Not read yet: the next read asks the pipe itself first.
    fresh: bool,
}

impl OutputPipe {
    /// `pipe` is registered with tokio already (its errors belong to the spawn).
    pub(crate) fn new(pipe: pipe::Receiver) -> OutputPipe {
        OutputPipe {
            pipe: Some(pipe),
            fresh: true,
        }
    }

    /// The pipe's descriptor, no longer registered with tokio (whose
    /// reactor would otherwise wake for every write while a thread reads).
    pub(crate) fn detach(&mut self) -> Option<io::Result<OwnedFd>> {
        self.pipe.take().map(pipe::Receiver::into_nonblocking_fd)
    }

    /// A descriptor from `detach`, registered with tokio again (within a
    /// runtime); its first read goes to the pipe itself.
    pub(crate) fn attach(fd: OwnedFd) -> io::Result<OutputPipe> {
        pipe::Receiver::from_owned_fd_unchecked(fd).map(OutputPipe::new)
    }

    /// One non-blocking read into the unfilled part of `buf`; `None` when
    /// the pipe is empty but open.
    fn read_now(fd: BorrowedFd<'_>, buf: &mut ReadBuf<'_>) -> Option<io::Result<()>> {
        // SAFETY: the read only writes bytes into the slice, and only the
        // `n` bytes it wrote are marked initialised below.
        let unfilled = unsafe { buf.unfilled_mut() };
        match rustix::io::read(fd, unfilled) {
            Ok((read, _)) => {
                let n = read.len();
                // SAFETY: the kernel initialised the first `n` unfilled bytes.
                unsafe { buf.assume_init(n) };
                buf.advance(n);
                Some(Ok(()))
            }
            Err(rustix::io::Errno::AGAIN) => None,
            Err(rustix::io::Errno::INTR) => Self::read_now(fd, buf),
            Err(e) => Some(Err(e.into())),
        }
    }
}

impl AsyncRead for OutputPipe {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let Some(pipe) = this.pipe.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        if std::mem::take(&mut this.fresh)
            && buf.remaining() > 0
            && let Some(read) = Self::read_now(pipe.as_fd(), buf)
        {
            return Poll::Ready(read);
        }
        Pin::new(pipe).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use tokio::io::AsyncReadExt;

    use super::*;

    fn pipe_pair() -> (OutputPipe, std::fs::File) {
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        rustix::fs::fcntl_setfl(&read, rustix::fs::OFlags::NONBLOCK).unwrap();
        let receiver = pipe::Receiver::from_owned_fd_unchecked(read).unwrap();
        (OutputPipe::new(receiver), std::fs::File::from(write))
    }

    #[tokio::test]
    async fn what_was_written_before_the_first_read_comes_whole() {
        let (mut pipe, mut write) = pipe_pair();
        write.write_all(b"before").unwrap();
        drop(write);
        let mut out = Vec::new();
        pipe.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"before");
    }

    #[tokio::test]
    async fn an_empty_pipe_is_waited_for_through_tokio() {
        let (mut pipe, mut write) = pipe_pair();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            write.write_all(b"later").unwrap();
        });
        let mut out = Vec::new();
        pipe.read_to_end(&mut out).await.unwrap();
        writer.join().unwrap();
        assert_eq!(out, b"later");
    }
}
