//! A running process: its verbs, output streams and line batches, stdin,
//! readiness probes, waiting on several, timeouts and cancellation; plus the
//! quickstart and the guide set as the spec promises them.

#[path = "../common/mod.rs"]
mod common;

mod batches;
mod bounded_capture;
mod cancellation;
mod events;
mod graceful_stop;
mod idle_timeout;
mod interactive_stdin;
mod line_batches;
mod probe_kinds;
mod probe_support;
mod probes;
mod pty;
mod raw_output;
mod reliability_running;
mod spec_cancellation;
mod spec_docs;
mod spec_quickstart;
mod spec_streaming;
mod stdin_sources;
mod stdio_routing;
mod streaming;
mod surface;
mod timeouts;
mod verbs;
mod wait_any;
