//! What the probe tests share: their deadlines, the reason a probe failed,
//! a started child with a pid guard, and the checks that a failed probe
//! left the child alive and failed promptly.
#![cfg(unix)]

use std::time::Duration;

use crate::common::{KillPidOnDrop, is_alive};
use processkit::{Command, Error, NotReadyReason, RunningProcess};

/// Long enough that a probe that should pass never hits it.
pub const PATIENT: Duration = Duration::from_secs(30);
/// A deadline a probe that cannot pass is meant to hit.
pub const SHORT: Duration = Duration::from_millis(300);

/// Why a probe failed; panics on any other error.
pub fn reason(err: Error) -> NotReadyReason {
    match err {
        Error::NotReady { reason, .. } => reason,
        other => panic!("expected NotReady, got {other:?}"),
    }
}

/// Starts `cmd` and returns the handle with a guard that kills its pid.
pub async fn start(cmd: Command) -> (RunningProcess, KillPidOnDrop) {
    let run = cmd.start().await.unwrap();
    let guard = KillPidOnDrop(run.id());
    (run, guard)
}

/// The probe failed but the child is still there and still usable.
pub fn assert_survived(run: &RunningProcess) {
    let pid = run.id().expect("the child was not reaped");
    assert!(is_alive(pid), "a failed probe must not kill the child");
}

/// Fails unless `err` came well before `PATIENT`: a probe on an exited
/// child must not sit out its deadline.
pub fn prompt(err: &Error) {
    if let Error::NotReady { waited, .. } = err {
        assert!(*waited < PATIENT / 2, "took {waited:?}");
    }
}
