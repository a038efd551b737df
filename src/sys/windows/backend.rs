//! The Windows backend behind `sys::Container` and `sys::Slot`: a Job Object
//! per container (and per run of a shared one) is the only mechanism.

use std::io;
use std::time::Duration;

use super::{JobContainer, JobSlot};
use crate::mechanism::Mechanism;
use crate::signal::Signal;
use crate::sys::CreateError;
use crate::sys::spawn::{SpawnSpec, Unclaimed};

/// Best first.
pub(crate) const MECHANISMS: &[Mechanism] = &[Mechanism::JobObject];

/// One container's mechanism (the only one here).
#[derive(Debug)]
pub(crate) enum ContainerKind {
    Job(JobContainer),
}

/// One run's place in its container.
#[derive(Debug)]
pub(crate) enum SlotKind {
    Job(JobSlot),
}

pub(crate) fn new_container(
    request: Option<Mechanism>,
    single_run: bool,
) -> Result<ContainerKind, CreateError> {
    match request {
        None | Some(Mechanism::JobObject) => JobContainer::new(single_run)
            .map(ContainerKind::Job)
            .map_err(|source| CreateError::Io {
                step: crate::sys::CreateStep::JobObject,
                source,
            }),
        Some(other) => Err(CreateError::NotOnPlatform(other)),
    }
}

/// Job Objects are always there.
pub(crate) fn degraded_reason() -> Option<&'static str> {
    None
}

/// Whether `error` says the process or the system ran out of handles.
pub(crate) fn is_descriptor_exhaustion(error: &io::Error) -> bool {
    error.raw_os_error() == Some(4) // ERROR_TOO_MANY_OPEN_FILES
}

/// Pipe sizes are fixed on this platform.
pub(crate) fn enlarge_pipe<P>(_pipe: &P) {}

/// No signals on Windows.
pub(crate) fn exit_signal(_status: &std::process::ExitStatus) -> Option<i32> {
    None
}

pub(crate) fn guardian_status() -> crate::sys::GuardianState {
    if crate::sys::guardian_disabled_by_env() {
        return crate::sys::GuardianState::Disabled;
    }
    crate::sys::GuardianState::NotNeeded
}

impl ContainerKind {
    fn job(&self) -> &JobContainer {
        let ContainerKind::Job(c) = self;
        c
    }

    pub(crate) fn mechanism(&self) -> Mechanism {
        Mechanism::JobObject
    }

    /// Windows has no signals: every graceful stop is the same console
    /// break and `WM_CLOSE`, so the stop signal is not kept.
    pub(crate) fn slot(&self, _stop: Signal) -> io::Result<SlotKind> {
        self.job().slot().map(SlotKind::Job)
    }

    /// A console break to every run and `WM_CLOSE` to every window;
    /// `Unsupported` when none could be delivered (the group stop then
    /// kills without waiting).
    pub(crate) fn ask_all_to_stop(&self) -> io::Result<()> {
        self.job().ask_all_to_stop()
    }

    pub(crate) fn process_count(&self) -> usize {
        self.job().members().map_or(0, |m| m.len())
    }

    pub(crate) fn kill_all(&self) -> io::Result<()> {
        self.job().terminate()
    }

    pub(crate) fn kill_all_or_retry(&self) {
        let _ = self.kill_all();
    }

    /// A job can only be terminated (that is `kill_all`).
    pub(crate) fn signal_all(&self, _signal: Signal) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }

    pub(crate) fn set_frozen(&self, frozen: bool) -> io::Result<()> {
        self.job().set_frozen(frozen)
    }

    pub(crate) fn members(&self) -> io::Result<Vec<u32>> {
        self.job().members()
    }

    pub(crate) fn is_populated(&self) -> io::Result<bool> {
        self.job().members().map(|m| !m.is_empty())
    }

    pub(crate) async fn wait_empty(&self, limit: Duration) -> bool {
        crate::sys::poll_until_empty(|| self.is_populated(), limit).await
    }

    pub(crate) fn adopt(&self, pid: u32) -> io::Result<()> {
        self.job().adopt(pid)
    }

    #[cfg(feature = "stats")]
    pub(crate) fn usage(&self) -> io::Result<crate::sys::Usage> {
        self.job().usage()
    }

    #[cfg(feature = "limits")]
    pub(crate) fn apply_limits(
        &self,
        limits: &crate::sys::Limits,
    ) -> Result<(), crate::sys::LimitRefusal> {
        self.job()
            .set_limits(limits)
            .map_err(crate::sys::LimitRefusal::JobRefused)
    }
}

impl SlotKind {
    fn job(&self) -> &JobSlot {
        let SlotKind::Job(s) = self;
        s
    }

    pub(crate) fn kill(&self) -> io::Result<()> {
        self.job().kill()
    }

    /// A console break and `WM_CLOSE` to this run only; `Unsupported`
    /// when none could be delivered (the caller then kills at once).
    pub(crate) fn ask_to_stop(&self, suspended: bool) -> io::Result<()> {
        self.job().ask_to_stop(suspended)
    }

    pub(crate) async fn wait_empty(&self, limit: Duration) -> bool {
        crate::sys::poll_until_empty(|| self.job().is_populated(), limit).await
    }

    /// Readies `spec` so the child starts suspended, until `attach` has put
    /// it in the job.
    pub(crate) fn prepare(&mut self, spec: &mut SpawnSpec) -> io::Result<()> {
        spec.start_suspended = true;
        Ok(())
    }

    /// Right after a successful spawn: places the child in the job and
    /// resumes it.
    pub(crate) fn attach(&mut self, child: &Unclaimed) -> io::Result<()> {
        let SlotKind::Job(s) = self;
        let (process, pid) = child.process()?;
        s.attach(process, pid)
    }

    /// Whether the run's child was still running when its job was terminated.
    pub(crate) fn killed_child(&self) -> bool {
        self.job().killed_child()
    }

    #[cfg(feature = "stats")]
    pub(crate) fn usage(&self) -> io::Result<crate::sys::Usage> {
        self.job().usage()
    }
}
