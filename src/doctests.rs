//! Compiles every Rust snippet of the README and the guides in `docs/` as a
//! doctest, so the documentation cannot drift from the API.

#[doc = include_str!("../README.md")]
pub struct Readme;

#[doc = include_str!("../docs/architecture.md")]
pub struct Architecture;

#[doc = include_str!("../docs/commands.md")]
pub struct Commands;

#[cfg(feature = "cancellation")]
#[doc = include_str!("../docs/timeouts-and-cancellation.md")]
pub struct TimeoutsAndCancellation;

#[doc = include_str!("../docs/supervision.md")]
pub struct Supervision;

#[cfg(all(feature = "process-control", feature = "limits"))]
#[doc = include_str!("../docs/process-groups.md")]
pub struct ProcessGroups;
