//! The chain's watchdog: the one policy watchdog, over the chain's shared
//! container, armed by the pipeline's deadline and every stage's token.

use std::sync::Arc;

use tokio::time::Instant;

use crate::command::Command;
use crate::policy::{Arbiter, Cancel, Stop, Watch, Watchdog};
use crate::sys::Container;

/// Every stage, and everything the stages started.
impl Stop for Arc<Container> {
    fn halt(&self) {
        let _ = self.kill_all();
    }

    fn terminate(&self) -> bool {
        self.ask_all_to_stop().is_ok()
    }
}

/// Starts the watchdog unless there is nothing to watch; dropping it (the
/// chain ended) stops it. `program` and `pid` name the chain in events.
pub(crate) fn start(
    deadline: Option<Instant>,
    stages: &[Command],
    (program, pid): (String, Option<u32>),
    container: Arc<Container>,
    arbiter: Arc<Arbiter>,
) -> Option<Watchdog> {
    let watch = Watch {
        deadline,
        grace: None,
        idle: None,
        cancel: Cancel::any(stages.iter().map(|c| &c.cancel)),
        // Each stage's own grace applies to its own tree (its watchdog).
        cancel_grace: None,
        program,
        pid,
    };
    watch.spawn(container, arbiter)
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
        let first = Command::new("sleep").arg("600").cancel_on(token.clone());
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
