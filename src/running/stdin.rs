//! The child's stdin: background feeders for data and line streams, and the
//! interactive writer handed out by `RunningProcess::standard_input`.

use std::future::Future;
use std::io;
use std::pin::Pin;

use tokio::io::AsyncWriteExt;
use tokio_stream::StreamExt;

use crate::error::{Error, Result};
use crate::stdin::StdinSource;
use crate::sys::spawn::InputPipe;

/// Writes `source` to the child's stdin in the background, then closes it.
/// A child that stops reading early (EPIPE) simply ends the feed, and so
/// does `run_ended`: a feeder never outlives its run, and when it ends it
/// drops the caller's stream and the pipe.
pub(crate) fn feed(
    source: &StdinSource,
    mut pipe: InputPipe,
    run_ended: impl Future<Output = ()> + Send + 'static,
) {
    let work: Pin<Box<dyn Future<Output = ()> + Send>> = match source {
        StdinSource::Bytes(bytes) => {
            let bytes = bytes.clone();
            Box::pin(async move {
                let _ = pipe.write_all(&bytes).await;
                let _ = pipe.shutdown().await;
            })
        }
        StdinSource::Lines(shared) => {
            let stream = shared.lock().unwrap_or_else(|e| e.into_inner()).take();
            Box::pin(async move {
                if let Some(mut lines) = stream {
                    while let Some(line) = lines.next().await {
                        let mut bytes = line.into_bytes();
                        bytes.push(b'\n');
                        if pipe.write_all(&bytes).await.is_err() {
                            return;
                        }
                    }
                }
                let _ = pipe.shutdown().await;
            })
        }
        StdinSource::Reader(shared) => {
            let reader = shared.lock().unwrap_or_else(|e| e.into_inner()).take();
            Box::pin(async move {
                if let Some(mut reader) = reader {
                    let _ = tokio::io::copy(&mut reader, &mut pipe).await;
                }
                let _ = pipe.shutdown().await;
            })
        }
        StdinSource::Null | StdinSource::Inherit | StdinSource::File(_) => return,
    };
    tokio::spawn(async move {
        tokio::select! {
            () = work => {}
            () = run_ended => {}
        }
    });
}

/// An open pipe to a running child's stdin (see
/// [`Command::keep_stdin_open`](crate::Command::keep_stdin_open)).
/// Dropping it closes the pipe, as [`finish`](StdinWriter::finish) does.
/// On a pseudo-terminal (`Command::pty`, feature `pty`) it writes to the
/// terminal as if typed, and finishing or dropping it types the terminal's
/// end-of-file character instead of closing anything (see `docs/pty.md`).
pub struct StdinWriter {
    program: String,
    pipe: Option<InputPipe>,
}

impl std::fmt::Debug for StdinWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdinWriter")
            .field("program", &self.program)
            .field("open", &self.pipe.is_some())
            .finish()
    }
}

impl StdinWriter {
    pub(crate) fn new(program: String, pipe: InputPipe) -> StdinWriter {
        StdinWriter {
            program,
            pipe: Some(pipe),
        }
    }

    /// Writes all of `bytes`.
    pub async fn write(&mut self, bytes: impl AsRef<[u8]>) -> Result<()> {
        let pipe = self.pipe()?;
        let result = pipe.write_all(bytes.as_ref()).await;
        self.check(result)
    }

    /// Writes `line` followed by `\n`, and flushes.
    pub async fn write_line(&mut self, line: &str) -> Result<()> {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.write(bytes).await?;
        self.flush().await
    }

    /// Flushes anything buffered.
    pub async fn flush(&mut self) -> Result<()> {
        let pipe = self.pipe()?;
        let result = pipe.flush().await;
        self.check(result)
    }

    /// Closes stdin: the child sees end-of-file. On a pseudo-terminal this
    /// types the terminal's end-of-file character, which ends input at the
    /// start of a line: end the last line first.
    pub async fn finish(mut self) -> Result<()> {
        if let Some(mut pipe) = self.pipe.take() {
            let result = pipe.shutdown().await;
            return self.check(result);
        }
        Ok(())
    }

    fn pipe(&mut self) -> Result<&mut InputPipe> {
        let program = &self.program;
        self.pipe.as_mut().ok_or_else(|| Error::StdinClosed {
            program: program.clone(),
        })
    }

    fn check(&mut self, result: io::Result<()>) -> Result<()> {
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.pipe = None;
                Err(Error::StdinClosed {
                    program: self.program.clone(),
                })
            }
            Err(e) => Err(Error::io(
                &self.program,
                crate::error::Operation::WriteStdin,
                e,
            )),
        }
    }
}
