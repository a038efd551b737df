//! Starting a program: the clone and std spawners, the fallback between them,
//! refused input, credentials and parent death, exec failures and output capture.

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod capture_path;
mod capture_thread;
mod detached;
mod privileges;
mod program_lookup;
mod reliability_exec;
mod reliability_spawn;
mod spawn_options;
mod spawn_path;
mod spawner_fallback;
mod spec_privileges;
