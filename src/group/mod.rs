//! `ProcessGroup`: a caller-owned container shared by several runs. Dropping
//! it kills the whole tree; `shutdown` asks politely first. The types live
//! here; their methods in the files below, one per concern and feature.

// rustdoc lists a type's impls in module order: `lifecycle` (the core
// methods) sorts first.
mod lifecycle;
#[cfg(feature = "limits")]
#[cfg_attr(docsrs, doc(cfg(feature = "limits")))]
mod limits;
#[cfg(feature = "process-control")]
#[cfg_attr(docsrs, doc(cfg(feature = "process-control")))]
mod process_control;
mod raw;
#[cfg(feature = "stats")]
#[cfg_attr(docsrs, doc(cfg(feature = "stats")))]
mod stats;
mod stop;

pub use stop::StopReport;

use std::sync::Arc;
use std::time::Duration;

use crate::mechanism::Mechanism;
use crate::sys::Container;

/// Options for [`ProcessGroup::with_options`]: the mechanism, the shutdown
/// grace and (with the `limits` feature) whole-tree resource caps.
#[derive(Debug, Clone, Default)]
pub struct ProcessGroupOptions {
    pub(crate) mechanism: Option<Mechanism>,
    pub(crate) shutdown_grace: Option<Duration>,
    #[cfg(feature = "limits")]
    pub(crate) limits: crate::sys::Limits,
}

/// A kill-on-drop container for several children and all their descendants.
///
/// ```no_run
/// # async fn demo() -> processkit::Result<()> {
/// use processkit::{Command, ProcessGroup};
/// let group = ProcessGroup::new()?;
/// let _server = group.start(&Command::new("my-server")).await?;
/// println!("contained by {}", group.mechanism());
/// group.shutdown().await?; // SIGTERM, a grace period, then SIGKILL
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ProcessGroup {
    pub(crate) container: Arc<Container>,
    pub(crate) shutdown_grace: Duration,
}
