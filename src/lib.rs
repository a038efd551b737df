//! Async child-process management for tokio in which every child, and
//! everything it starts, lives in a kill-on-drop container: a cgroup v2 or a
//! process group on Linux, a process group on macOS and the BSDs, a Job
//! Object on Windows. No descendant outlives the handle, group or program
//! that started it.
//!
//! ```no_run
//! # async fn demo() -> processkit::Result<()> {
//! use processkit::Command;
//! let version = Command::new("cargo").arg("--version").run().await?;
//! println!("{version}");
//! # Ok(()) }
//! ```
//!
//! The guides in the repository's `docs/` directory cover every capability;
//! the [cookbook](https://github.com/processkit-rs/processkit/blob/main/docs/cookbook.md)
//! maps "I want to …" to a working snippet.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// `unsafe` lives in `sys` only, and every block says why it is sound.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod batches;
mod client;
mod command;
mod container;
#[cfg(doctest)]
mod doctests;
mod error;
mod exit_status;
mod finish;
mod group;
mod guardian;
#[cfg(feature = "limits")]
#[cfg_attr(docsrs, doc(cfg(feature = "limits")))]
mod limits;
mod lookup;
mod mechanism;
mod orphans;
mod pipeline;
mod policy;
mod result;
mod rlimit;
mod runner;
mod running;
mod signal;
mod spawn_options;
#[cfg(feature = "stats")]
#[cfg_attr(docsrs, doc(cfg(feature = "stats")))]
mod stats;
mod stdin;
mod stdio;
mod supervisor;
#[allow(unsafe_code)]
mod sys;
pub mod testing;
mod trace;
mod verbs;
mod wait_any;

pub use batches::{output_all, wait_all};
pub use command::Command;
pub use container::fallback_reason;
pub use error::{Error, NotReadyReason, Operation, Result, Subject};
pub use exit_status::ExitStatus;
pub use group::{ProcessGroup, ProcessGroupOptions, StopReport};
pub use guardian::{GUARDIAN_ENV, GuardianStatus, guardian_status};
pub use lookup::which;
pub use mechanism::Mechanism;
pub use orphans::{OrphanReaper, SpawnedChild, reap_orphans};
pub use pipeline::Pipeline;
pub use policy::RetryPolicy;
pub use result::ProcessResult;
pub use rlimit::Rlimit;
pub use runner::{BoxFuture, JobRunner, ProcessRunner};
#[cfg(feature = "stats")]
#[cfg_attr(docsrs, doc(cfg(feature = "stats")))]
pub use running::RunProfile;
pub use running::{LineBatch, LineBatchIter};
pub use running::{
    LineStream, MAX_LINE, OutputEvent, OutputEvents, OutputReader, RunningProcess, StdinWriter,
};
pub use signal::Signal;
#[cfg(feature = "stats")]
#[cfg_attr(docsrs, doc(cfg(feature = "stats")))]
pub use stats::ProcessGroupStats;
pub use stdin::Stdin;
pub use stdio::Stdio;
pub use supervisor::{
    DEFAULT_HEALTHY_AFTER, RestartPolicy, SUPERVISED_OUTPUT, StopReason, SupervisionOutcome,
    Supervisor, SupervisorEvent, SupervisorEvents,
};
pub use tokio_stream::{Stream, StreamExt};
pub use verbs::{ProcessRunnerExt, output, run};
pub use wait_any::wait_any;

#[cfg(feature = "cancellation")]
#[cfg_attr(docsrs, doc(cfg(feature = "cancellation")))]
pub use tokio_util::sync::CancellationToken;

// The testing seam's doubles and the CLI-client core.
pub use client::CliClient;
#[cfg(feature = "mock")]
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
pub use runner::MockRunner;
#[cfg(feature = "record")]
#[cfg_attr(docsrs, doc(cfg(feature = "record")))]
pub use runner::RecordReplayRunner;
pub use runner::{Invocation, Match, RecordingRunner, Reply, ScriptedRunner};
