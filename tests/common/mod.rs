//! Shared integration-test support, one copy for every test binary: unique
//! argv tokens and /proc scans, bounded polling, scratch directories, kill-by-pid
//! guards, pid-recording trees, `sh`, re-running one test of this binary, and
//! this binary as a portable helper program. Area-only support lives in its area.
#![allow(dead_code, unused_imports)]

mod cmd;
mod git;
mod helper;
mod poll;
#[cfg(target_os = "linux")]
pub mod privileges;
mod procs;
mod rerun;
mod scratch;
mod tracing_capture;
mod tree;

pub use cmd::{sh, sh_as, sh_trapping};
pub use git::git_repo;
pub use helper::{HelperTree, act_as_tree_member};
pub use poll::{eventually, eventually_async, wait_for_count, wait_for_settled, wait_gone};
pub use procs::{
    Cleanup, KillPidOnDrop, all_pids, argv_of, is_alive, kill_pid, pids_with_token,
    pids_with_token_or_zombie, signal, token,
};
pub use rerun::{run_alone, test_named};
pub use scratch::{TempDir, fixture, free_port, line_count, read_pids};
#[cfg(feature = "tracing")]
pub use tracing_capture::CapturingSubscriber;
pub use tree::{Tree, tree_script};
