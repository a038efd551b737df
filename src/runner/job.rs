//! `JobRunner`: the real runner that gives every run its own container.

use super::{BoxFuture, ProcessRunner};
use crate::command::Command;
use crate::error::Result;
use crate::mechanism::Mechanism;
use crate::result::ProcessResult;
use crate::running::{Placement, RunningProcess, spawn, spawn_and_finish};

/// Runs each command in a container of its own: dropping the handle (or the
/// verb's future) kills the command's whole tree. This is what the verbs on
/// [`Command`] use.
#[derive(Debug, Clone, Copy, Default)]
pub struct JobRunner {
    mechanism: Option<Mechanism>,
}

impl JobRunner {
    /// A runner on the best mechanism this host offers.
    pub fn new() -> JobRunner {
        JobRunner::default()
    }

    /// A runner whose containers use `mechanism` (e.g. the process-group fallback).
    pub fn with_mechanism(mechanism: Mechanism) -> JobRunner {
        JobRunner {
            mechanism: Some(mechanism),
        }
    }

    /// Starts `cmd` in a fresh container.
    pub async fn start(&self, cmd: &Command) -> Result<RunningProcess> {
        spawn(cmd, Placement::Own(self.mechanism)).await
    }
}

impl ProcessRunner for JobRunner {
    fn start<'a>(&'a self, cmd: &'a Command) -> BoxFuture<'a, Result<RunningProcess>> {
        Box::pin(JobRunner::start(self, cmd))
    }

    fn output_bytes<'a>(
        &'a self,
        cmd: &'a Command,
    ) -> BoxFuture<'a, Result<ProcessResult<Vec<u8>>>> {
        Box::pin(super::with_retries(cmd, move || {
            spawn_and_finish(cmd, Placement::Own(self.mechanism))
        }))
    }
}
