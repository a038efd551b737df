//! The macOS/BSD backend behind `sys::Container` and `sys::Slot`: process
//! groups are the only mechanism there.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::pgroup::{self, PgroupContainer, PgroupSlot};
use super::signal::number;
use crate::mechanism::Mechanism;
use crate::signal::Signal;
use crate::sys::CreateError;
use crate::sys::spawn::setup::Join;
use crate::sys::spawn::{SpawnSpec, Unclaimed};

/// Best first.
pub(crate) const MECHANISMS: &[Mechanism] = &[Mechanism::ProcessGroup];

/// One container's mechanism (the only one here).
#[derive(Debug)]
pub(crate) enum ContainerKind {
    Pgroup(Arc<PgroupContainer>),
}

/// One run's place in its container.
#[derive(Debug)]
pub(crate) enum SlotKind {
    Pgroup(PgroupSlot),
}

pub(crate) fn new_container(
    request: Option<Mechanism>,
    _single_run: bool,
) -> Result<ContainerKind, CreateError> {
    match request {
        None | Some(Mechanism::ProcessGroup) => Ok(ContainerKind::Pgroup(pgroup::new_container())),
        Some(other) => Err(CreateError::NotOnPlatform(other)),
    }
}

/// Process groups are the best this platform has.
pub(crate) fn degraded_reason() -> Option<&'static str> {
    None
}

pub(crate) use super::is_descriptor_exhaustion;

/// Pipe sizes are fixed on this platform.
pub(crate) fn enlarge_pipe<P>(_pipe: &P) {}

pub(crate) fn exit_signal(status: &std::process::ExitStatus) -> Option<i32> {
    super::exit_signal(status)
}

pub(crate) fn guardian_status() -> crate::sys::GuardianState {
    if crate::sys::guardian_disabled_by_env() {
        return crate::sys::GuardianState::Disabled;
    }
    crate::sys::GuardianState::Unavailable {
        reason: "no guardian on this platform yet: a SIGKILLed owner leaves its \
                 process groups running"
            .into(),
    }
}

impl ContainerKind {
    fn pgroup(&self) -> &Arc<PgroupContainer> {
        let ContainerKind::Pgroup(c) = self;
        c
    }

    pub(crate) fn mechanism(&self) -> Mechanism {
        Mechanism::ProcessGroup
    }

    pub(crate) fn slot(&self, stop: Signal) -> io::Result<SlotKind> {
        Ok(SlotKind::Pgroup(self.pgroup().slot(number(stop))))
    }

    pub(crate) fn ask_all_to_stop(&self) -> io::Result<()> {
        self.pgroup().ask_all_to_stop();
        Ok(())
    }

    /// The live groups and adopted processes: a group's members cannot be
    /// listed here without `/proc`.
    pub(crate) fn process_count(&self) -> usize {
        self.pgroup().members().len()
    }

    pub(crate) fn kill_all(&self) -> io::Result<()> {
        self.pgroup().signal_all(libc::SIGKILL);
        Ok(())
    }

    pub(crate) fn kill_all_or_retry(&self) {
        let _ = self.kill_all();
    }

    pub(crate) fn signal_all(&self, signal: Signal) -> io::Result<()> {
        self.pgroup().signal_all(number(signal));
        Ok(())
    }

    pub(crate) fn set_frozen(&self, frozen: bool) -> io::Result<()> {
        self.pgroup().set_stopped(frozen);
        Ok(())
    }

    pub(crate) fn members(&self) -> io::Result<Vec<u32>> {
        Ok(self.pgroup().members())
    }

    pub(crate) fn is_populated(&self) -> io::Result<bool> {
        Ok(self.pgroup().is_populated())
    }

    pub(crate) async fn wait_empty(&self, limit: Duration) -> bool {
        crate::sys::poll_until_empty(|| self.is_populated(), limit).await
    }

    pub(crate) fn adopt(&self, pid: u32) -> io::Result<()> {
        self.pgroup().adopt(pid);
        Ok(())
    }

    /// Only the live groups and adopted processes can be counted here.
    #[cfg(feature = "stats")]
    pub(crate) fn usage(&self) -> io::Result<crate::sys::Usage> {
        let c = self.pgroup();
        Ok(count_live(&c.pgids(), &c.adopted_pids()))
    }

    #[cfg(feature = "limits")]
    pub(crate) fn apply_limits(
        &self,
        _limits: &crate::sys::Limits,
    ) -> Result<(), crate::sys::LimitRefusal> {
        Err(crate::sys::LimitRefusal::NoAccounting(
            crate::mechanism::Mechanism::ProcessGroup,
        ))
    }
}

impl Drop for ContainerKind {
    fn drop(&mut self) {
        // Killed here, by their owner (slots share the tracking list).
        self.pgroup().signal_all(libc::SIGKILL);
    }
}

impl SlotKind {
    fn pgroup(&self) -> &PgroupSlot {
        let SlotKind::Pgroup(s) = self;
        s
    }

    pub(crate) fn kill(&self) -> io::Result<()> {
        self.pgroup().signal(libc::SIGKILL);
        Ok(())
    }

    pub(crate) fn ask_to_stop(&self, suspended: bool) -> io::Result<()> {
        self.pgroup().ask_to_stop(suspended);
        Ok(())
    }

    pub(crate) async fn wait_empty(&self, limit: Duration) -> bool {
        crate::sys::poll_until_empty(|| Ok(self.pgroup().is_populated()), limit).await
    }

    /// Readies `spec` so the child leads a process group of its own.
    pub(crate) fn prepare(&mut self, spec: &mut SpawnSpec) -> io::Result<()> {
        spec.setup.join = Join::ProcessGroup;
        Ok(())
    }

    /// Right after a successful spawn: the process group records its leader.
    pub(crate) fn attach(&mut self, child: &Unclaimed) -> io::Result<()> {
        let SlotKind::Pgroup(s) = self;
        if let Some(pid) = child.pid() {
            s.attach(pid);
        }
        Ok(())
    }

    /// Only a Windows job forces an exit code on a killed child.
    pub(crate) fn killed_child(&self) -> bool {
        false
    }

    #[cfg(feature = "stats")]
    pub(crate) fn usage(&self) -> io::Result<crate::sys::Usage> {
        Ok(count_live(&[self.pgroup().pgid()], &[]))
    }
}

/// The live groups and adopted processes, as a process count.
#[cfg(feature = "stats")]
fn count_live(pgids: &[i32], adopted: &[u32]) -> crate::sys::Usage {
    use super::signal::{group_alive, pid_alive};
    let groups = pgids.iter().filter(|&&g| group_alive(g)).count();
    let others = adopted.iter().filter(|&&p| pid_alive(p)).count();
    crate::sys::Usage {
        active_process_count: (groups + others) as u64,
        ..crate::sys::Usage::default()
    }
}
