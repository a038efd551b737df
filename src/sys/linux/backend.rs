//! The Linux backend behind `sys::Container` and `sys::Slot`: a cgroup v2
//! where one is writable, else process groups, chosen per container at runtime.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::cgroup::RootError;
use super::subreaper::{self, SubreaperContainer, SubreaperSlot};
use super::{CgroupContainer, CgroupSlot};
use crate::mechanism::Mechanism;
use crate::signal::Signal;
use crate::sys::CreateError;
use crate::sys::spawn::setup::Join;
use crate::sys::spawn::{SpawnSpec, Unclaimed};
use crate::sys::unix::pgroup::{self, PgroupContainer, PgroupSlot};
use crate::sys::unix::signal::number;

/// Best first.
pub(crate) const MECHANISMS: &[Mechanism] = &[
    Mechanism::CgroupV2,
    Mechanism::Subreaper,
    Mechanism::ProcessGroup,
];

/// One container's mechanism.
#[derive(Debug)]
pub(crate) enum ContainerKind {
    Cgroup(CgroupContainer),
    Subreaper(Arc<SubreaperContainer>),
    Pgroup(Arc<PgroupContainer>),
}

/// One run's place in its container.
#[derive(Debug)]
pub(crate) enum SlotKind {
    Cgroup(CgroupSlot),
    Subreaper(SubreaperSlot),
    Pgroup(PgroupSlot),
}

/// A new container. Only a definitive "no writable cgroup v2" falls back, to
/// a subreaper where this kernel has what it needs, else to process groups
/// (and `mechanism()` says which); a passing failure is this call's error,
/// and the next call retries.
pub(crate) fn new_container(
    request: Option<Mechanism>,
    single_run: bool,
) -> Result<ContainerKind, CreateError> {
    let cgroup = |required: bool| match CgroupContainer::available() {
        Ok(()) => CgroupContainer::new(single_run)
            .map(ContainerKind::Cgroup)
            .map_err(|source| CreateError::Io {
                step: crate::sys::CreateStep::Cgroup,
                source,
            }),
        Err(RootError::Missing(why)) if required => {
            Err(CreateError::Unavailable(Mechanism::CgroupV2, why))
        }
        Err(RootError::Missing(_)) => Ok(weaker()),
        Err(RootError::Transient(source)) => Err(CreateError::Io {
            step: crate::sys::CreateStep::Cgroup,
            source,
        }),
    };
    let kind = match request {
        None => cgroup(false),
        Some(Mechanism::CgroupV2) => cgroup(true),
        Some(Mechanism::Subreaper) => match subreaper::unavailable_reason() {
            None => Ok(ContainerKind::Subreaper(subreaper::new_container())),
            Some(why) => Err(CreateError::Unavailable(Mechanism::Subreaper, why)),
        },
        Some(Mechanism::ProcessGroup) => Ok(ContainerKind::Pgroup(pgroup::new_container())),
        Some(other) => Err(CreateError::NotOnPlatform(other)),
    }?;
    super::guardian::ensure_started();
    Ok(kind)
}

/// Below a writable cgroup v2: a subreaper if this kernel has what it
/// needs, else process groups.
fn weaker() -> ContainerKind {
    match subreaper::unavailable_reason() {
        None => ContainerKind::Subreaper(subreaper::new_container()),
        Some(_) => ContainerKind::Pgroup(pgroup::new_container()),
    }
}

/// Why no writable cgroup v2 is available, if none is (and, when the
/// subreaper cannot stand in either, why not). A passing failure (out of
/// descriptors) is no verdict on the host.
pub(crate) fn degraded_reason() -> Option<&'static str> {
    static BOTH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let Err(RootError::Missing(why)) = CgroupContainer::available() else {
        return None;
    };
    match subreaper::unavailable_reason() {
        None => Some(why),
        Some(no_subreaper) => {
            Some(BOTH.get_or_init(|| format!("{why}; and no subreaper either: {no_subreaper}")))
        }
    }
}

pub(crate) use super::pipe::enlarge as enlarge_pipe;
pub(crate) use crate::sys::unix::is_descriptor_exhaustion;

pub(crate) fn exit_signal(status: &std::process::ExitStatus) -> Option<i32> {
    crate::sys::unix::exit_signal(status)
}

pub(crate) fn guardian_status() -> crate::sys::GuardianState {
    super::guardian::status()
}

impl ContainerKind {
    pub(crate) fn mechanism(&self) -> Mechanism {
        match self {
            ContainerKind::Cgroup(_) => Mechanism::CgroupV2,
            ContainerKind::Subreaper(_) => Mechanism::Subreaper,
            ContainerKind::Pgroup(_) => Mechanism::ProcessGroup,
        }
    }

    pub(crate) fn slot(&self, stop: Signal) -> io::Result<SlotKind> {
        let stop = number(stop);
        Ok(match self {
            ContainerKind::Cgroup(c) => SlotKind::Cgroup(c.slot(stop)?),
            ContainerKind::Subreaper(c) => SlotKind::Subreaper(c.slot(stop)),
            ContainerKind::Pgroup(c) => SlotKind::Pgroup(c.slot(stop)),
        })
    }

    /// Each run's tree gets its own stop signal (the tree was thawed).
    pub(crate) fn ask_all_to_stop(&self) -> io::Result<()> {
        match self {
            ContainerKind::Cgroup(c) => c.ask_all_to_stop(),
            ContainerKind::Subreaper(c) => {
                c.ask_all_to_stop();
                Ok(())
            }
            ContainerKind::Pgroup(c) => {
                c.ask_all_to_stop();
                Ok(())
            }
        }
    }

    pub(crate) fn process_count(&self) -> usize {
        match self {
            ContainerKind::Cgroup(c) => c.cgroup().pids().map_or(0, |p| p.len()),
            ContainerKind::Subreaper(c) => c.members().len(),
            ContainerKind::Pgroup(c) => {
                super::procfs::count_in_groups(&c.pgids(), &c.adopted_pids())
            }
        }
    }

    pub(crate) fn kill_all(&self) -> io::Result<()> {
        match self {
            ContainerKind::Cgroup(c) => c.kill(),
            ContainerKind::Subreaper(c) => {
                c.kill_all();
                Ok(())
            }
            ContainerKind::Pgroup(c) => {
                c.signal_all(libc::SIGKILL);
                Ok(())
            }
        }
    }

    pub(crate) fn kill_all_or_retry(&self) {
        let _ = match self {
            ContainerKind::Cgroup(c) => c.kill_or_retry(),
            ContainerKind::Subreaper(_) | ContainerKind::Pgroup(_) => self.kill_all(),
        };
    }

    pub(crate) fn signal_all(&self, signal: Signal) -> io::Result<()> {
        match self {
            ContainerKind::Cgroup(c) => c.signal(number(signal)),
            ContainerKind::Subreaper(c) => {
                c.signal_all(number(signal));
                Ok(())
            }
            ContainerKind::Pgroup(c) => {
                c.signal_all(number(signal));
                Ok(())
            }
        }
    }

    pub(crate) fn set_frozen(&self, frozen: bool) -> io::Result<()> {
        match self {
            ContainerKind::Cgroup(c) => c.set_frozen(frozen),
            ContainerKind::Subreaper(c) => {
                c.set_stopped(frozen);
                Ok(())
            }
            ContainerKind::Pgroup(c) => {
                c.set_stopped(frozen);
                Ok(())
            }
        }
    }

    pub(crate) fn members(&self) -> io::Result<Vec<u32>> {
        match self {
            ContainerKind::Cgroup(c) => c.cgroup().pids(),
            ContainerKind::Subreaper(c) => Ok(c.members()),
            ContainerKind::Pgroup(c) => Ok(c.members()),
        }
    }

    pub(crate) fn is_populated(&self) -> io::Result<bool> {
        match self {
            ContainerKind::Cgroup(c) => c.cgroup().is_populated(),
            ContainerKind::Subreaper(c) => Ok(c.is_populated()),
            ContainerKind::Pgroup(c) => Ok(c.is_populated()),
        }
    }

    /// A cgroup is watched through inotify; shims and process groups are polled.
    pub(crate) async fn wait_empty(&self, limit: Duration) -> bool {
        match self {
            ContainerKind::Cgroup(c) => super::events::wait_empty(c.cgroup(), limit).await,
            ContainerKind::Subreaper(_) | ContainerKind::Pgroup(_) => {
                crate::sys::poll_until_empty(|| self.is_populated(), limit).await
            }
        }
    }

    pub(crate) fn adopt(&self, pid: u32) -> io::Result<()> {
        match self {
            ContainerKind::Cgroup(c) => c.adopt(pid),
            ContainerKind::Subreaper(c) => c.adopt(pid),
            ContainerKind::Pgroup(c) => {
                c.adopt(pid);
                Ok(())
            }
        }
    }

    #[cfg(feature = "stats")]
    pub(crate) fn usage(&self) -> io::Result<crate::sys::Usage> {
        match self {
            ContainerKind::Cgroup(c) => super::usage::cgroup_stats(c.cgroup(), c.baseline()),
            ContainerKind::Subreaper(c) => Ok(super::usage::pid_stats(&c.members())),
            ContainerKind::Pgroup(c) => {
                Ok(super::usage::pgroup_stats(&c.pgids(), &c.adopted_pids()))
            }
        }
    }

    #[cfg(feature = "limits")]
    pub(crate) fn apply_limits(
        &self,
        limits: &crate::sys::Limits,
    ) -> Result<(), crate::sys::LimitRefusal> {
        match self {
            ContainerKind::Cgroup(c) => {
                c.taint();
                super::limits::apply(c.cgroup(), limits)
            }
            ContainerKind::Subreaper(_) | ContainerKind::Pgroup(_) => {
                Err(crate::sys::LimitRefusal::NoAccounting(self.mechanism()))
            }
        }
    }
}

impl Drop for ContainerKind {
    fn drop(&mut self) {
        // A cgroup tears itself down in its own Drop; shims and process
        // groups are killed here, by their owner (slots share their lists).
        match self {
            ContainerKind::Pgroup(c) => c.signal_all(libc::SIGKILL),
            ContainerKind::Subreaper(c) => c.kill_all(),
            ContainerKind::Cgroup(_) => {}
        }
    }
}

impl SlotKind {
    pub(crate) fn kill(&self) -> io::Result<()> {
        match self {
            SlotKind::Cgroup(s) => s.kill(),
            SlotKind::Subreaper(s) => {
                s.kill();
                Ok(())
            }
            SlotKind::Pgroup(s) => {
                s.signal(libc::SIGKILL);
                Ok(())
            }
        }
    }

    /// The run's stop signal to its whole tree; a `suspended` tree is
    /// thawed (SIGCONT after the signal, so it wakes to find it pending).
    pub(crate) fn ask_to_stop(&self, suspended: bool) -> io::Result<()> {
        match self {
            SlotKind::Cgroup(s) => s.ask_to_stop(suspended),
            SlotKind::Subreaper(s) => {
                s.ask_to_stop(suspended);
                Ok(())
            }
            SlotKind::Pgroup(s) => {
                s.ask_to_stop(suspended);
                Ok(())
            }
        }
    }

    /// A cgroup is watched through inotify; shims and groups are polled.
    pub(crate) async fn wait_empty(&self, limit: Duration) -> bool {
        match self {
            SlotKind::Cgroup(s) => super::events::wait_empty(s.cgroup(), limit).await,
            SlotKind::Subreaper(s) => {
                crate::sys::poll_until_empty(|| Ok(s.is_populated()), limit).await
            }
            SlotKind::Pgroup(s) => {
                crate::sys::poll_until_empty(|| Ok(s.is_populated()), limit).await
            }
        }
    }

    /// Readies `spec` so the child joins this run's cgroup (whose directory
    /// the spec now owns) or leads a process group of its own.
    pub(crate) fn prepare(&mut self, spec: &mut SpawnSpec) -> io::Result<()> {
        spec.setup.join = match self {
            SlotKind::Cgroup(s) => Join::Cgroup(s.take_dir()?),
            SlotKind::Subreaper(_) => Join::Subreaper,
            SlotKind::Pgroup(_) => Join::ProcessGroup,
        };
        Ok(())
    }

    /// Right after a successful spawn: the run's cgroup is now in use, or
    /// the process group records its leader.
    pub(crate) fn attach(&mut self, child: &Unclaimed) -> io::Result<()> {
        match self {
            SlotKind::Cgroup(s) => s.attach(),
            SlotKind::Subreaper(s) => {
                if let Unclaimed::Shim(spawned) = child {
                    s.attach(spawned);
                }
            }
            SlotKind::Pgroup(s) => {
                if let Some(pid) = child.pid() {
                    s.attach(pid);
                }
            }
        }
        Ok(())
    }

    /// Only a Windows job forces an exit code on a killed child.
    pub(crate) fn killed_child(&self) -> bool {
        false
    }

    #[cfg(feature = "stats")]
    pub(crate) fn usage(&self) -> io::Result<crate::sys::Usage> {
        match self {
            SlotKind::Cgroup(s) => super::usage::cgroup_stats(s.cgroup(), s.baseline()),
            SlotKind::Subreaper(s) => Ok(super::usage::pid_stats(&s.pids())),
            SlotKind::Pgroup(s) => Ok(super::usage::pgroup_stats(&[s.pgid()], &[])),
        }
    }
}
