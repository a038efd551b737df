//! Policies above a single run: the supervisor's restarts and the retry policy.

#[path = "../common/mod.rs"]
mod common;

mod health;
mod lifecycle;
mod retry;
mod spec_supervision;
mod supervisor;
