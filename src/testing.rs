//! The test doubles in one place: runners that answer without spawning
//! (scripted, recorded, mocked) and the types their scripts are made of.
//! Each is also re-exported at the crate root.
//!
//! ```
//! use processkit::testing::{Reply, ScriptedRunner};
//! use processkit::{Command, ProcessRunnerExt};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> processkit::Result<()> {
//! let fake = ScriptedRunner::new().exact("uname", ["-s"], Reply::success("Plan9\n"));
//! assert_eq!(fake.run(&Command::new("uname").arg("-s")).await?, "Plan9");
//! # Ok(()) }
//! ```

#[cfg(feature = "mock")]
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
pub use crate::runner::MockRunner;
#[cfg(feature = "record")]
#[cfg_attr(docsrs, doc(cfg(feature = "record")))]
pub use crate::runner::RecordReplayRunner;
pub use crate::runner::{Invocation, Match, RecordingRunner, Reply, ScriptedRunner};
