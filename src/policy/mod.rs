//! Run policy, independent of `Command`: cancellation (`Cancel`), backoff,
//! retries and the deadline watchdog that stops a run and records why.

mod backoff;
mod cancel;
mod idle;
mod retry;
mod watchdog;

pub(crate) use backoff::Backoff;
pub(crate) use cancel::Cancel;
pub(crate) use idle::{Activity, Idle};
pub use retry::RetryPolicy;
pub(crate) use retry::with_retries;
pub(crate) use watchdog::{Arbiter, Stop, Verdict, Watch, Watchdog};
