//! The idle timeout's eyes: an output pipe that stamps the run's `Activity`
//! whenever bytes are read from it, whoever reads it (the background
//! capture, a line stream, a raw reader, an events stream).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, ReadBuf};

use super::OutputPipe;
use crate::policy::Activity;

/// `pipe`, stamping `activity` on every read that brings bytes.
pub(crate) fn watched(pipe: OutputPipe, activity: Option<&Arc<Activity>>) -> OutputPipe {
    match activity {
        Some(activity) => Box::new(ActivityReader {
            inner: pipe,
            activity: Arc::clone(activity),
        }),
        None => pipe,
    }
}

struct ActivityReader {
    inner: OutputPipe,
    activity: Arc<Activity>,
}

impl AsyncRead for ActivityReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.activity.stamp();
        }
        Poll::Ready(Ok(()))
    }
}
