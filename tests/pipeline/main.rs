//! Pipelines: chained stages, their stdin and output, attribution of failures
//! and teardown of every stage.

#[path = "../common/mod.rs"]
mod common;

mod pipelines;
mod spec_pipelines;
