//! The chain's watchdog: kills every stage at the pipeline's deadline, or as
//! soon as any stage's cancellation token fires, and records which happened.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::command::Command;
use crate::running::Arbiter;
use crate::sys::Container;

type Cancelled = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Starts the watchdog unless there is nothing to watch; dropping the returned
/// sender (the chain ended) stops it.
pub(crate) fn start(
    deadline: Option<Instant>,
    stages: &[Command],
    container: Arc<Container>,
    arbiter: Arc<Arbiter>,
) -> Option<oneshot::Sender<()>> {
    let tokens = cancellations(stages);
    if deadline.is_none() && tokens.is_empty() {
        return None;
    }
    let (done_tx, done_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let expired = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = done_rx => return,
            () = any(tokens) => arbiter.mark_cancelled(),
            () = expired => arbiter.mark_timed_out(),
        }
        let _ = container.kill_all();
    });
    Some(done_tx)
}

/// Resolves when the first of `futures` does; never when there are none.
async fn any(mut futures: Vec<Cancelled>) {
    std::future::poll_fn(|cx| {
        if futures.iter_mut().any(|f| f.as_mut().poll(cx).is_ready()) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}

#[cfg(feature = "cancellation")]
fn cancellations(stages: &[Command]) -> Vec<Cancelled> {
    stages
        .iter()
        .filter_map(|c| c.cancel.clone())
        .map(|token| Box::pin(token.cancelled_owned()) as Cancelled)
        .collect()
}

#[cfg(not(feature = "cancellation"))]
fn cancellations(_stages: &[Command]) -> Vec<Cancelled> {
    Vec::new()
}

#[cfg(all(test, unix, feature = "cancellation"))]
mod tests {
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use crate::command::Command;
    use crate::error::Error;

    #[tokio::test]
    async fn one_stage_cancelled_ends_every_stage() {
        let token = CancellationToken::new();
        let mut first = Command::new("sleep").arg("600");
        first.cancel = Some(token.clone());
        // The last stage never reads stdin: only the chain's teardown ends it.
        let chain = first | Command::new("sleep").arg("600");
        let mut run = chain.start().await.unwrap();
        token.cancel();
        let waited = tokio::time::timeout(Duration::from_secs(60), run.wait()).await;
        let outcome = waited.expect("every stage was killed and reaped");
        assert!(
            matches!(outcome, Err(Error::Cancelled { .. })),
            "{outcome:?}"
        );
    }
}
