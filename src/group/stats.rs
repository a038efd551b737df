//! `ProcessGroup::stats` and `sample_stats` (`stats` feature): a group's
//! point-in-time usage and a sampled series of it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tokio_stream::Stream;

use super::ProcessGroup;
use crate::error::Result;
use crate::stats::{ProcessGroupStats, sample_interval};
use crate::sys::Container;

impl ProcessGroup {
    /// What the group's tree uses right now.
    ///
    /// ```no_run
    /// # async fn demo() -> processkit::Result<()> {
    /// use processkit::{Command, ProcessGroup};
    /// let group = ProcessGroup::new()?;
    /// let _job = group.start(&Command::new("make").arg("-j4")).await?;
    /// let s = group.stats()?;
    /// println!("{} processes, cpu {:?}, rss {:?}", s.active_process_count, s.cpu_time, s.memory_bytes);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> Result<ProcessGroupStats> {
        self.container.stats()
    }

    /// A stream of [`stats`](Self::stats) samples: the first at once, then one
    /// every `interval` (at least 1 ms, at most a year). It ends when the group has no live
    /// process left, has been dropped, or its stats can no longer be read;
    /// start the children before sampling.
    ///
    /// ```no_run
    /// # async fn demo() -> processkit::Result<()> {
    /// use processkit::{Command, ProcessGroup, StreamExt};
    /// use std::time::Duration;
    /// let group = ProcessGroup::new()?;
    /// let _worker = group.start(&Command::new("worker")).await?;
    /// let mut samples = group.sample_stats(Duration::from_millis(250));
    /// while let Some(s) = samples.next().await {
    ///     println!("procs={} mem={:?}", s.active_process_count, s.memory_bytes);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn sample_stats(
        &self,
        interval: Duration,
    ) -> impl Stream<Item = ProcessGroupStats> + Send + Unpin + 'static {
        StatsSamples {
            container: Arc::downgrade(&self.container),
            interval: sample_interval(interval),
            sleep: None,
            done: false,
        }
    }
}

/// The stream behind [`ProcessGroup::sample_stats`]. It holds the group
/// weakly, so it never keeps a dropped group's container alive.
struct StatsSamples {
    container: Weak<Container>,
    interval: Duration,
    /// `None` before the first sample, which is taken at once.
    sleep: Option<Pin<Box<Sleep>>>,
    done: bool,
}

impl Stream for StatsSamples {
    type Item = ProcessGroupStats;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let next = Instant::now() + self.interval;
        match &mut self.sleep {
            None => self.sleep = Some(Box::pin(tokio::time::sleep_until(next))),
            Some(sleep) => {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                sleep.as_mut().reset(next);
            }
        }
        let sample = self
            .container
            .upgrade()
            .and_then(|c| c.stats().ok())
            .filter(|s| s.active_process_count > 0);
        if sample.is_none() {
            self.done = true;
        }
        Poll::Ready(sample)
    }
}
