//! `RetryPolicy`: replays a run until it succeeds, with a bounded number of
//! attempts, exponential backoff with jitter, and a classifier that decides
//! which failures are worth another attempt.

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::Cancel;
use super::backoff::Backoff;
use crate::error::{Error, Result};
use crate::trace::trace_event;

/// A caller-supplied classifier: `true` means "try again".
type Classifier = Arc<dyn Fn(&Error) -> bool + Send + Sync>;

/// How a [`Command`](crate::Command) is retried (see
/// [`Command::retry`](crate::Command::retry)).
///
/// By default a policy retries only transient spawn failures (the OS was
/// briefly out of processes, descriptors or memory, or the executable was
/// busy being written). Failed exits and timeouts are retried only when asked
/// for, and a cancelled run is never retried.
///
/// ```no_run
/// # async fn demo() -> processkit::Result<()> {
/// use processkit::{Command, RetryPolicy};
/// use std::time::Duration;
/// let policy = RetryPolicy::new(4)
///     .backoff(Duration::from_millis(100), 2.0)
///     .retry_on_failed_exit();
/// let body = Command::new("curl").arg("-fsS").arg("https://example.com").retry(policy).run().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RetryPolicy {
    max_attempts: u32,
    backoff: Backoff,
    failed_exits: bool,
    timeouts: bool,
    classifier: Option<Classifier>,
}

impl RetryPolicy {
    /// At most `max_attempts` runs in total (the first one included; 0 is
    /// taken as 1). Backoff starts at 100 ms, doubles, is capped at 30 s and
    /// is jittered.
    pub fn new(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts: max_attempts.max(1),
            backoff: Backoff {
                base: Duration::from_millis(100),
                multiplier: 2.0,
                max: Duration::from_secs(30),
                jitter: true,
            },
            failed_exits: false,
            timeouts: false,
            classifier: None,
        }
    }

    /// The delay before the first retry, and the factor (at least 1) each
    /// later delay grows by. A zero base means no delay at all; a factor
    /// below 1, NaN or infinite makes the run fail with
    /// [`Error::InvalidCommand`] before its first attempt.
    pub fn backoff(mut self, base: Duration, multiplier: f64) -> RetryPolicy {
        self.backoff.base = base;
        self.backoff.multiplier = multiplier;
        self
    }

    /// Caps the delay between attempts (default 30 s).
    pub fn max_backoff(mut self, max: Duration) -> RetryPolicy {
        self.backoff.max = max;
        self
    }

    /// Turns jitter on or off (default on). With jitter each delay is drawn
    /// from `[d/2, d]`, so callers that fail together do not retry together.
    pub fn jitter(mut self, jitter: bool) -> RetryPolicy {
        self.backoff.jitter = jitter;
        self
    }

    /// Also retries runs that exit with a non-zero code, die by a signal or
    /// are otherwise killed ([`Error::Killed`]).
    pub fn retry_on_failed_exit(mut self) -> RetryPolicy {
        self.failed_exits = true;
        self
    }

    /// Also retries runs that hit their timeout.
    pub fn retry_on_timeout(mut self) -> RetryPolicy {
        self.timeouts = true;
        self
    }

    /// Replaces the default classifier: `retryable` sees every failure (spawn
    /// errors, and failed exits or timeouts as the error a verb would report
    /// for them) and returns `true` to try again. [`Error::Cancelled`] is
    /// never retried, whatever it returns.
    pub fn retry_if(
        mut self,
        retryable: impl Fn(&Error) -> bool + Send + Sync + 'static,
    ) -> RetryPolicy {
        self.classifier = Some(Arc::new(retryable));
        self
    }

    /// The most runs this policy allows, the first one included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The delay before retry `n` (1-based) without jitter: at most the
    /// maximum, zero for a zero base. A factor the policy rejects counts as 1.
    pub fn backoff_delay(&self, n: u32) -> Duration {
        self.backoff.delay(n)
    }

    /// Whether this policy would try again after `error`.
    pub fn is_retryable(&self, error: &Error) -> bool {
        if matches!(error, Error::Cancelled { .. }) {
            return false;
        }
        if let Some(classifier) = &self.classifier {
            return classifier(error);
        }
        match error {
            Error::NonZeroExit { .. } | Error::Signalled { .. } | Error::Killed { .. } => {
                self.failed_exits
            }
            Error::Timeout { .. } | Error::IdleTimeout { .. } => self.timeouts,
            _ => RetryPolicy::is_transient_spawn_error(error),
        }
    }

    /// Whether `error` is a spawn failure that may well succeed moments later:
    /// the OS was out of processes, descriptors or memory, was interrupted, or
    /// the executable was still open for writing.
    pub fn is_transient_spawn_error(error: &Error) -> bool {
        let source = match error {
            Error::Spawn { source, .. } => source,
            Error::Io {
                operation:
                    crate::error::Operation::PrepareContainer
                    | crate::error::Operation::PlaceInContainer,
                source,
                ..
            } => source,
            _ => return false,
        };
        matches!(
            source.kind(),
            io::ErrorKind::WouldBlock
                | io::ErrorKind::Interrupted
                | io::ErrorKind::ExecutableFileBusy
                | io::ErrorKind::OutOfMemory
                | io::ErrorKind::ResourceBusy
        ) || crate::sys::is_descriptor_exhaustion(source)
    }
}

impl Default for RetryPolicy {
    /// Three attempts, transient spawn errors only.
    fn default() -> RetryPolicy {
        RetryPolicy::new(3)
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("base", &self.backoff.base)
            .field("multiplier", &self.backoff.multiplier)
            .field("max_backoff", &self.backoff.max)
            .field("jitter", &self.backoff.jitter)
            .field("failed_exits", &self.failed_exits)
            .field("timeouts", &self.timeouts)
            .field("custom_classifier", &self.classifier.is_some())
            .finish()
    }
}

/// Runs `attempt` under `policy` (once without one); `cancel` cuts the
/// pauses between attempts short. `failure_of` says whether a produced value
/// is a failure worth classifying (a result with a non-zero exit); when the
/// attempts run out, the last outcome is returned as it is.
pub(crate) async fn with_retries<T, F, Fut>(
    policy: Option<&RetryPolicy>,
    cancel: &Cancel,
    program: &str,
    mut attempt: F,
    failure_of: impl Fn(&T) -> Option<Error>,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let Some(policy) = policy else {
        return attempt().await;
    };
    policy.backoff.check(program)?;
    let mut attempts = 1;
    loop {
        let outcome = attempt().await;
        let failure = match &outcome {
            Err(e) => policy.is_retryable(e).then(|| kind_name(e)),
            Ok(value) => failure_of(value)
                .filter(|e| policy.is_retryable(e))
                .map(|e| kind_name(&e)),
        };
        let Some(reason) = failure else {
            return outcome;
        };
        if attempts >= policy.max_attempts {
            return outcome;
        }
        let delay = policy.backoff.next_delay(attempts);
        trace_event!(
            info,
            "retry",
            program = %program,
            attempt = %attempts,
            reason = %reason,
            delay = ?delay,
        );
        drop(outcome);
        cancel.sleep(program, delay).await?;
        attempts += 1;
    }
}

/// A short label for an error, safe to log (no stderr, no arguments).
fn kind_name(error: &Error) -> &'static str {
    match error {
        Error::NotFound { .. } => "not-found",
        Error::Spawn { .. } => "spawn",
        Error::InvalidCommand { .. } => "invalid-command",
        Error::WorkingDirectory { .. } => "working-directory",
        Error::NonZeroExit { .. } => "non-zero-exit",
        Error::Timeout { .. } => "timeout",
        Error::IdleTimeout { .. } => "idle-timeout",
        Error::Signalled { .. } => "signalled",
        Error::Killed { .. } => "killed",
        Error::Cancelled { .. } => "cancelled",
        Error::NotReady { .. } => "not-ready",
        Error::ResourceLimit { .. } => "resource-limit",
        Error::Unsupported { .. } => "unsupported",
        Error::StdinClosed { .. } => "stdin-closed",
        Error::Io { .. } => "io",
        Error::NoReply { .. } => "no-reply",
        #[allow(unreachable_patterns)]
        _ => "other",
    }
}
