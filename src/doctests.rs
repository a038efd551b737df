//! Compiles every Rust snippet of the README and the guides in `docs/` as a
//! doctest, so the documentation cannot drift from the API. A page whose
//! snippets need an optional feature is compiled only when it is enabled.

#[doc = include_str!("../README.md")]
pub struct Readme;

#[doc = include_str!("../docs/cookbook.md")]
pub struct Cookbook;

#[doc = include_str!("../docs/architecture.md")]
pub struct Architecture;

#[doc = include_str!("../docs/commands.md")]
pub struct Commands;

#[cfg(all(feature = "process-control", feature = "limits"))]
#[doc = include_str!("../docs/process-groups.md")]
pub struct ProcessGroups;

#[doc = include_str!("../docs/streaming.md")]
pub struct Streaming;

#[doc = include_str!("../docs/pipelines.md")]
pub struct Pipelines;

#[cfg(feature = "cancellation")]
#[doc = include_str!("../docs/timeouts-and-cancellation.md")]
pub struct TimeoutsAndCancellation;

#[doc = include_str!("../docs/supervision.md")]
pub struct Supervision;

#[doc = include_str!("../docs/testing.md")]
pub struct Testing;

#[doc = include_str!("../docs/privileges.md")]
pub struct Privileges;

#[doc = include_str!("../docs/platform-support.md")]
pub struct PlatformSupport;

#[cfg(feature = "pty")]
#[doc = include_str!("../docs/pty.md")]
pub struct Pty;
