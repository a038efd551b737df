//! `Stdio::capture().tee_inherit()`: a child's output pipe that copies every
//! byte read from it to this process's own stdout or stderr, whoever reads
//! it (the background capture, a line stream, a raw reader).

use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, ReadBuf};

use super::OutputPipe;

/// Which of this process's streams a tee writes to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Forward {
    Stdout,
    Stderr,
}

/// `pipe`, copying what is read from it to `to` when `on`.
pub(crate) fn tee(pipe: OutputPipe, on: bool, to: Forward) -> OutputPipe {
    if on {
        Box::new(TeeReader { inner: pipe, to })
    } else {
        pipe
    }
}

struct TeeReader {
    inner: OutputPipe,
    to: Forward,
}

impl AsyncRead for TeeReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let new = &buf.filled()[before..];
        if !new.is_empty() {
            // Written before the bytes are handed on, like `tee`: a stream
            // of ours that is slow holds the child back rather than
            // growing a buffer. A failed write (our stream closed) only
            // ends the copy's use, never the capture.
            let _ = match self.to {
                Forward::Stdout => io::stdout().lock().write_all(new),
                Forward::Stderr => io::stderr().lock().write_all(new),
            };
        }
        Poll::Ready(Ok(()))
    }
}
