//! The runner seam and its test doubles: scripted, mock, recording and
//! cassette runners, CLI clients, and the tracing events a run emits.

#[path = "../common/mod.rs"]
mod common;

mod cassette;
mod client;
mod mock;
mod recording;
mod reliability_seam;
mod scripted;
mod scripted_streaming;
mod spec_testing;
mod tracing_events;
