//! Health checks of a running incarnation: the caller's probe, run every
//! interval and bounded by it, and the grace an unhealthy run gets to stop.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use crate::command::Command;
use crate::error::{Error, Result};
use crate::runner::BoxFuture;

/// How long an incarnation stopped by its health check may take to exit
/// after the stop signal, unless its command sets a `timeout_grace`.
pub(crate) const HEALTH_STOP_GRACE: Duration = Duration::from_secs(5);

type Probe = Box<dyn FnMut() -> BoxFuture<'static, bool> + Send>;

/// A probe and its interval. The probe sits behind a mutex so a shared
/// borrow can call it: the command's retry policy may start an incarnation
/// more than once, each attempt watched by the same check.
pub(crate) struct HealthCheck {
    pub(crate) interval: Duration,
    probe: Mutex<Probe>,
}

impl HealthCheck {
    pub(crate) fn new<F, Fut>(interval: Duration, mut probe: F) -> HealthCheck
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        let probe: Probe = Box::new(move || Box::pin(probe()));
        HealthCheck {
            interval,
            probe: Mutex::new(probe),
        }
    }

    /// A zero interval would probe in a busy loop and give each probe no
    /// time to answer.
    pub(crate) fn check(&self, program: &str) -> Result<()> {
        if self.interval.is_zero() {
            return Err(Error::InvalidCommand {
                program: program.to_owned(),
                reason: "the health check interval must be longer than zero".to_owned(),
            });
        }
        Ok(())
    }

    /// Probes every interval (the first one interval after the start) and
    /// resolves at the first failure: `true` when the probe did not answer
    /// within the interval, `false` when it answered `false`. Never resolves
    /// while every probe passes.
    pub(crate) async fn failure(&self) -> bool {
        loop {
            tokio::time::sleep(self.interval).await;
            let answer = {
                let mut probe = self.probe.lock().unwrap_or_else(|e| e.into_inner());
                probe()
            };
            match tokio::time::timeout(self.interval, answer).await {
                Ok(true) => {}
                Ok(false) => return false,
                // A hung probe is dropped: it must not hang supervision.
                Err(_) => return true,
            }
        }
    }
}

/// The grace an unhealthy incarnation of `cmd` gets between the stop signal
/// and the kill.
pub(crate) fn stop_grace(cmd: &Command) -> Duration {
    cmd.timeout_grace.unwrap_or(HEALTH_STOP_GRACE)
}
