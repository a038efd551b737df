//! `OutputReader`: a child's stdout or stderr as exact bytes, for
//! `RunningProcess::stdout_reader` / `stderr_reader`: what was captured
//! before the call first, then the pipe itself.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, ReadBuf};

use super::OutputPipe;
use super::pump::{RawParts, RawPipe, lock};

/// The exact bytes of one of a child's output streams: no line splitting,
/// no UTF-8 decoding. Starts with whatever was captured before it was
/// taken, then reads the pipe until the child (and every process holding
/// the pipe) closes it. From [`RunningProcess::stdout_reader`] and
/// [`RunningProcess::stderr_reader`].
///
/// [`RunningProcess::stdout_reader`]: crate::RunningProcess::stdout_reader
/// [`RunningProcess::stderr_reader`]: crate::RunningProcess::stderr_reader
pub struct OutputReader {
    state: State,
}

enum State {
    /// Waiting for the background pump to hand the pipe back.
    Pending(RawParts),
    Reading {
        prefix: Vec<u8>,
        at: usize,
        pipe: Option<OutputPipe>,
    },
}

impl std::fmt::Debug for OutputReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputReader").finish_non_exhaustive()
    }
}

impl OutputReader {
    pub(crate) fn new(parts: RawParts) -> OutputReader {
        OutputReader {
            state: State::Pending(parts),
        }
    }
}

impl AsyncRead for OutputReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            match &mut self.state {
                State::Pending(parts) => {
                    let pipe = match &mut parts.pipe {
                        RawPipe::Ready(pipe) => pipe.take(),
                        // A pump that panicked or was aborted returns no pipe.
                        RawPipe::Pending(task) => {
                            ready!(Pin::new(task).poll(cx)).ok().and_then(|d| d.pipe)
                        }
                    };
                    // Everything the pump read is in `collected` once it has stopped.
                    let prefix = std::mem::take(&mut *lock(&parts.collected));
                    self.state = State::Reading {
                        prefix,
                        at: 0,
                        pipe,
                    };
                }
                State::Reading { prefix, at, pipe } => {
                    if *at < prefix.len() {
                        let n = (prefix.len() - *at).min(out.remaining());
                        out.put_slice(&prefix[*at..*at + n]);
                        *at += n;
                        if *at == prefix.len() {
                            *prefix = Vec::new();
                            *at = 0;
                        }
                        return Poll::Ready(Ok(()));
                    }
                    return match pipe {
                        Some(pipe) => Pin::new(pipe).poll_read(cx, out),
                        None => Poll::Ready(Ok(())),
                    };
                }
            }
        }
    }
}
