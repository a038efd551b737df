//! Windows containment: one Job Object per group (placeholder until the Job
//! Object backend lands; every operation reports `Unsupported`).

use std::io;

use crate::command::OsOptions;
use crate::error::Error;

fn not_yet() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "Job Object backend not built yet",
    )
}

/// A Job Object with kill-on-close.
#[derive(Debug)]
pub(crate) struct JobContainer;

impl JobContainer {
    pub(crate) fn new() -> io::Result<JobContainer> {
        Err(not_yet())
    }
    pub(crate) fn slot(&self) -> io::Result<JobSlot> {
        Err(not_yet())
    }
    pub(crate) fn terminate(&self) -> io::Result<()> {
        Err(not_yet())
    }
    pub(crate) fn set_frozen(&self, _frozen: bool) -> io::Result<()> {
        Err(not_yet())
    }
    pub(crate) fn members(&self) -> io::Result<Vec<u32>> {
        Err(not_yet())
    }
    pub(crate) fn adopt(&self, _pid: u32) -> io::Result<()> {
        Err(not_yet())
    }
}

/// One run inside a job.
#[derive(Debug)]
pub(crate) struct JobSlot;

impl JobSlot {
    pub(crate) fn prepare(
        &self,
        _cmd: &mut tokio::process::Command,
        _os: &OsOptions,
    ) -> Result<(), Error> {
        Err(Error::Unsupported {
            operation: "spawn",
            reason: "Job Object backend not built yet".into(),
        })
    }
    pub(crate) fn attach(&mut self, _child: &tokio::process::Child) -> io::Result<()> {
        Err(not_yet())
    }
    pub(crate) fn kill(&self) -> io::Result<()> {
        Err(not_yet())
    }
    pub(crate) fn is_populated(&self) -> bool {
        false
    }
}
