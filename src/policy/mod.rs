//! Run policy, independent of `Command`: cancellation (`Cancel`), backoff,
//! retries and the deadline watchdog that stops a run and records why.

mod backoff;
mod cancel;
mod retry;
mod watchdog;

pub(crate) use backoff::Backoff;
pub(crate) use cancel::Cancel;
pub use retry::RetryPolicy;
pub(crate) use retry::with_retries;
pub(crate) use watchdog::{Arbiter, Stop, Verdict, Watch, Watchdog};
