//! The platform layer: the only place with `unsafe`, raw syscalls and
//! `cfg(target_os)`. Everything above sees one `Container` (a group's tree)
//! and one `Slot` (one run inside it), whatever the mechanism.

#[cfg(feature = "stats")]
mod accounting;
#[cfg(feature = "process-control")]
mod adopt;
#[cfg(target_os = "linux")]
pub(crate) mod linux;
pub(crate) mod spawn;
mod spawn_gate;
#[cfg(unix)]
pub(crate) mod unix;
#[cfg(windows)]
pub(crate) mod windows;

use std::io;
use std::sync::Arc;

use crate::error::Error;
use crate::mechanism::Mechanism;
use crate::signal::Signal;

#[cfg(feature = "process-control")]
pub(crate) use adopt::{adoptable, process_exists};
pub(crate) use spawn_gate::SpawnGate;

/// Environment variable that forces a mechanism for every container
/// (`process-group` or `cgroup-v2`), e.g. to run a test suite under the fallback.
pub(crate) const MECHANISM_ENV: &str = "PROCESSKIT_MECHANISM";

/// One kill-on-drop container holding a group's (or a single run's) tree.
#[derive(Debug)]
pub(crate) struct Container {
    kind: ContainerKind,
    /// Closed while the tree is suspended.
    gate: Arc<SpawnGate>,
}

#[derive(Debug)]
enum ContainerKind {
    #[cfg(target_os = "linux")]
    Cgroup(linux::CgroupContainer),
    #[cfg(unix)]
    Pgroup(Arc<unix::pgroup::PgroupContainer>),
    #[cfg(windows)]
    Job(windows::JobContainer),
}

/// Where one run lives inside a container.
#[derive(Debug)]
pub(crate) struct Slot {
    kind: SlotKind,
    gate: Arc<SpawnGate>,
}

#[derive(Debug)]
enum SlotKind {
    #[cfg(target_os = "linux")]
    Cgroup(linux::CgroupSlot),
    #[cfg(unix)]
    Pgroup(unix::pgroup::PgroupSlot),
    #[cfg(windows)]
    Job(windows::JobSlot),
}

/// The mechanism requested through `PROCESSKIT_MECHANISM`, if any.
fn requested_by_env() -> Option<Mechanism> {
    std::env::var(MECHANISM_ENV)
        .ok()
        .and_then(|v| Mechanism::from_name(v.trim()))
}

fn unsupported(mechanism: Mechanism, reason: impl Into<String>) -> Error {
    Error::Unsupported {
        operation: mechanism.name(),
        reason: reason.into(),
    }
}

/// Why the best mechanism of this platform is unavailable, if it is.
pub(crate) fn degraded_reason() -> Option<&'static str> {
    // A passing failure (out of descriptors) is no verdict on the host.
    #[cfg(target_os = "linux")]
    return match linux::CgroupContainer::available() {
        Err(linux::cgroup::RootError::Missing(why)) => Some(why),
        _ => None,
    };
    #[cfg(not(target_os = "linux"))]
    None
}

impl Container {
    /// A new container. `request` picks a mechanism (else `PROCESSKIT_MECHANISM`,
    /// else the best available); a `single_run` container holds exactly one run.
    pub(crate) fn new(request: Option<Mechanism>, single_run: bool) -> Result<Container, Error> {
        let request = request.or_else(requested_by_env);
        let kind = new_kind(request, single_run)?;
        #[cfg(target_os = "linux")]
        linux::guardian::ensure_started();
        Ok(Container {
            kind,
            gate: Arc::default(),
        })
    }

    pub(crate) fn mechanism(&self) -> Mechanism {
        match &self.kind {
            #[cfg(target_os = "linux")]
            ContainerKind::Cgroup(_) => Mechanism::CgroupV2,
            #[cfg(unix)]
            ContainerKind::Pgroup(_) => Mechanism::ProcessGroup,
            #[cfg(windows)]
            ContainerKind::Job(_) => Mechanism::JobObject,
        }
    }

    /// A place for one more run in this container.
    pub(crate) fn slot(&self) -> io::Result<Slot> {
        drop(self.gate.enter()?);
        let kind = match &self.kind {
            #[cfg(target_os = "linux")]
            ContainerKind::Cgroup(c) => SlotKind::Cgroup(c.slot()?),
            #[cfg(unix)]
            ContainerKind::Pgroup(c) => SlotKind::Pgroup(c.slot()),
            #[cfg(windows)]
            ContainerKind::Job(c) => SlotKind::Job(c.slot()?),
        };
        Ok(Slot {
            kind,
            gate: Arc::clone(&self.gate),
        })
    }

    /// Hard-kills every process in the container, now.
    pub(crate) fn kill_all(&self) -> io::Result<()> {
        match &self.kind {
            #[cfg(target_os = "linux")]
            ContainerKind::Cgroup(c) => c.kill(),
            #[cfg(unix)]
            ContainerKind::Pgroup(c) => {
                c.signal_all(libc::SIGKILL);
                Ok(())
            }
            #[cfg(windows)]
            ContainerKind::Job(c) => c.terminate(),
        }
    }

    /// Hard-kills every process for a teardown nobody can hear fail (a
    /// dropped group): a failed kill is retried in the background.
    pub(crate) fn kill_all_or_retry(&self) {
        #[cfg(target_os = "linux")]
        if let ContainerKind::Cgroup(c) = &self.kind {
            let _ = c.kill_or_retry();
            return;
        }
        let _ = self.kill_all();
    }

    /// Delivers `signal` to every member. `Signal::Kill` is `kill_all`.
    pub(crate) fn signal_all(&self, signal: Signal) -> Result<(), Error> {
        if signal == Signal::Kill {
            return self
                .kill_all()
                .map_err(|e| Error::io("process group", "kill", e));
        }
        match &self.kind {
            #[cfg(target_os = "linux")]
            ContainerKind::Cgroup(c) => c
                .cgroup()
                .signal(unix::signal::number(signal))
                .map_err(|e| Error::io("process group", "signal", e)),
            #[cfg(unix)]
            ContainerKind::Pgroup(c) => {
                c.signal_all(unix::signal::number(signal));
                Ok(())
            }
            #[cfg(windows)]
            ContainerKind::Job(_) => Err(Error::Unsupported {
                operation: "signal",
                reason: "Windows delivers only Signal::Kill (job terminate)".into(),
            }),
        }
    }

    /// Freezes (or thaws) the whole tree.
    pub(crate) fn set_frozen(&self, frozen: bool) -> io::Result<()> {
        // Closed before freezing (once every spawn in flight has returned),
        // reopened only after thawing: no child is ever born frozen.
        if frozen {
            self.gate.set(true);
        }
        let result = self.freeze(frozen);
        if !frozen {
            self.gate.set(false);
        }
        result
    }

    fn freeze(&self, frozen: bool) -> io::Result<()> {
        match &self.kind {
            #[cfg(target_os = "linux")]
            ContainerKind::Cgroup(c) => c.cgroup().set_frozen(frozen),
            #[cfg(unix)]
            ContainerKind::Pgroup(c) => {
                c.signal_all(if frozen { libc::SIGSTOP } else { libc::SIGCONT });
                Ok(())
            }
            #[cfg(windows)]
            ContainerKind::Job(c) => c.set_frozen(frozen),
        }
    }

    /// Live member pids: the whole tree, or the tracked leaders for process groups.
    #[cfg_attr(not(feature = "process-control"), allow(dead_code))]
    pub(crate) fn members(&self) -> io::Result<Vec<u32>> {
        match &self.kind {
            #[cfg(target_os = "linux")]
            ContainerKind::Cgroup(c) => c.cgroup().pids(),
            #[cfg(unix)]
            ContainerKind::Pgroup(c) => Ok(c.members()),
            #[cfg(windows)]
            ContainerKind::Job(c) => c.members(),
        }
    }

    /// Whether any process is still contained.
    pub(crate) fn is_populated(&self) -> io::Result<bool> {
        match &self.kind {
            #[cfg(target_os = "linux")]
            ContainerKind::Cgroup(c) => c.cgroup().is_populated(),
            #[cfg(unix)]
            ContainerKind::Pgroup(c) => Ok(c.is_populated()),
            #[cfg(windows)]
            ContainerKind::Job(c) => c.members().map(|m| !m.is_empty()),
        }
    }

    /// Waits until no process is left, at most `limit`; `true` once empty.
    /// A cgroup is watched through inotify; other mechanisms are polled.
    pub(crate) async fn wait_empty(&self, limit: std::time::Duration) -> bool {
        #[cfg(target_os = "linux")]
        if let ContainerKind::Cgroup(c) = &self.kind {
            return linux::events::wait_empty(c.cgroup(), limit).await;
        }
        let deadline = tokio::time::Instant::now() + limit;
        let mut pause = std::time::Duration::from_micros(500);
        while tokio::time::Instant::now() < deadline {
            if !self.is_populated().unwrap_or(false) {
                return true;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_millis(20));
        }
        false
    }

    /// Moves an existing process into this container.
    #[cfg_attr(not(feature = "process-control"), allow(dead_code))]
    pub(crate) fn adopt(&self, pid: u32) -> io::Result<()> {
        match &self.kind {
            #[cfg(target_os = "linux")]
            ContainerKind::Cgroup(c) => c.adopt(pid),
            #[cfg(unix)]
            ContainerKind::Pgroup(c) => {
                c.adopt(pid);
                Ok(())
            }
            #[cfg(windows)]
            ContainerKind::Job(c) => c.adopt(pid),
        }
    }
}

impl Drop for Container {
    // On macOS/BSD the process group is the only kind, so the `if let` always matches.
    #[allow(irrefutable_let_patterns)]
    fn drop(&mut self) {
        // cgroups and jobs tear themselves down in their own Drop.
        #[cfg(unix)]
        if let ContainerKind::Pgroup(c) = &self.kind {
            c.signal_all(libc::SIGKILL);
        }
    }
}

#[cfg(target_os = "linux")]
fn new_kind(request: Option<Mechanism>, single_run: bool) -> Result<ContainerKind, Error> {
    use linux::cgroup::RootError;
    // Only a definitive "no writable cgroup v2" falls back (and says so in
    // `mechanism()`); a passing failure is this call's error, and the next retries.
    let cgroup = |reason_if_missing: bool| match linux::CgroupContainer::available() {
        Ok(()) => linux::CgroupContainer::new(single_run)
            .map(ContainerKind::Cgroup)
            .map_err(|e| Error::io("process group", "create cgroup", e)),
        Err(RootError::Missing(why)) if reason_if_missing => {
            Err(unsupported(Mechanism::CgroupV2, why))
        }
        Err(RootError::Missing(_)) => Ok(ContainerKind::Pgroup(unix::pgroup::new_container())),
        Err(RootError::Transient(e)) => Err(Error::io("process group", "create cgroup", e)),
    };
    match request {
        None => cgroup(false),
        Some(Mechanism::CgroupV2) => cgroup(true),
        Some(Mechanism::ProcessGroup) => Ok(ContainerKind::Pgroup(unix::pgroup::new_container())),
        Some(other) => Err(unsupported(other, "not available on Linux")),
    }
}

#[cfg(all(unix, not(target_os = "linux")))]
fn new_kind(request: Option<Mechanism>, _single_run: bool) -> Result<ContainerKind, Error> {
    match request {
        None | Some(Mechanism::ProcessGroup) => {
            Ok(ContainerKind::Pgroup(unix::pgroup::new_container()))
        }
        Some(other) => Err(unsupported(
            other,
            "only process groups exist on this platform",
        )),
    }
}

#[cfg(windows)]
fn new_kind(request: Option<Mechanism>, single_run: bool) -> Result<ContainerKind, Error> {
    match request {
        None | Some(Mechanism::JobObject) => windows::JobContainer::new(single_run)
            .map(ContainerKind::Job)
            .map_err(|e| Error::io("process group", "create job object", e)),
        Some(other) => Err(unsupported(other, "only Job Objects exist on Windows")),
    }
}

impl Slot {
    /// Readies `spec` so the child starts inside this slot: it joins the
    /// run's cgroup (whose directory the spec now owns) or leads a process
    /// group of its own; on Windows it starts suspended until `attach`.
    pub(crate) fn prepare(&mut self, spec: &mut spawn::SpawnSpec) -> io::Result<()> {
        match &mut self.kind {
            #[cfg(target_os = "linux")]
            SlotKind::Cgroup(s) => {
                spec.setup.join = spawn::setup::Join::Cgroup(Arc::new(s.take_dir()?))
            }
            #[cfg(unix)]
            SlotKind::Pgroup(_) => spec.setup.join = spawn::setup::Join::ProcessGroup,
            #[cfg(windows)]
            SlotKind::Job(_) => spec.start_suspended = true,
        }
        Ok(())
    }

    /// Called right after a successful spawn, before the child is claimed:
    /// records it (process groups) or places and resumes it (jobs).
    pub(crate) fn attach(&mut self, child: &spawn::Unclaimed) -> io::Result<()> {
        match &mut self.kind {
            #[cfg(target_os = "linux")]
            SlotKind::Cgroup(s) => s.attach(),
            #[cfg(unix)]
            SlotKind::Pgroup(s) => {
                if let Some(pid) = child.pid() {
                    s.attach(pid);
                }
            }
            #[cfg(windows)]
            SlotKind::Job(s) => s.attach(child.std_child()?)?,
        }
        Ok(())
    }

    /// The gate a spawn into this slot passes just before it clones.
    pub(crate) fn gate(&self) -> &Arc<SpawnGate> {
        &self.gate
    }

    /// Hard-kills this run and everything it started (not its siblings).
    pub(crate) fn kill(&self) -> io::Result<()> {
        match &self.kind {
            #[cfg(target_os = "linux")]
            SlotKind::Cgroup(s) => s.kill(),
            #[cfg(unix)]
            SlotKind::Pgroup(s) => {
                s.signal(libc::SIGKILL);
                Ok(())
            }
            #[cfg(windows)]
            SlotKind::Job(s) => s.kill(),
        }
    }

    /// Sends SIGTERM to this run's tree (Unix); on Windows terminates it.
    pub(crate) fn terminate_gracefully(&self) -> io::Result<()> {
        match &self.kind {
            #[cfg(target_os = "linux")]
            SlotKind::Cgroup(s) => s.cgroup().signal(libc::SIGTERM),
            #[cfg(unix)]
            SlotKind::Pgroup(s) => {
                s.signal(libc::SIGTERM);
                Ok(())
            }
            #[cfg(windows)]
            SlotKind::Job(s) => s.kill(),
        }
    }
}

/// The signal a run killed by processkit reports: SIGKILL on Unix; none on
/// Windows, where terminating a job leaves no signal to report.
pub(crate) const KILLED_SIGNAL: Option<i32> = if cfg!(unix) { Some(9) } else { None };

/// How a reaped child ended, as `(code, signal)`. A Windows child that was
/// still running when processkit terminated its job reports neither, like a
/// killed Unix child reports no code: the code the job forced is not its own.
pub(crate) fn exit_parts(
    status: &std::process::ExitStatus,
    slot: Option<&Slot>,
) -> (Option<i32>, Option<i32>) {
    #[cfg(windows)]
    if let Some(Slot {
        kind: SlotKind::Job(s),
        ..
    }) = slot
        && s.killed_child()
    {
        return (None, None);
    }
    let _ = slot;
    (status.code(), exit_signal(status))
}

/// The signal that ended a child (Unix), if any.
pub(crate) fn exit_signal(status: &std::process::ExitStatus) -> Option<i32> {
    #[cfg(unix)]
    return unix::exit_signal(status);
    #[cfg(not(unix))]
    {
        let _ = status;
        None
    }
}

/// Whether a guardian is watching over this process's containers.
pub(crate) fn guardian_status() -> crate::GuardianStatus {
    #[cfg(target_os = "linux")]
    return linux::guardian::status();
    #[cfg(not(target_os = "linux"))]
    if crate::guardian::disabled_by_env() {
        return crate::GuardianStatus::Disabled;
    }
    #[cfg(windows)]
    return crate::GuardianStatus::NotNeeded;
    #[cfg(not(any(target_os = "linux", windows)))]
    crate::GuardianStatus::Unavailable {
        reason: "no guardian on this platform yet: a SIGKILLed owner leaves its \
                 process groups running"
            .into(),
    }
}

/// Whether `error` says the process or the system ran out of file descriptors.
pub(crate) fn is_descriptor_exhaustion(error: &io::Error) -> bool {
    #[cfg(unix)]
    return matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
    #[cfg(windows)]
    return error.raw_os_error() == Some(4); // ERROR_TOO_MANY_OPEN_FILES
    #[cfg(not(any(unix, windows)))]
    {
        let _ = error;
        false
    }
}

/// Asks for a 1 MiB kernel buffer on a pipe we drain, where that costs the
/// user's other pipes nothing (Linux; best effort).
#[cfg(target_os = "linux")]
pub(crate) fn enlarge_pipe(pipe: &impl std::os::fd::AsFd) {
    linux::pipe::enlarge(pipe);
}

/// Pipe sizes are fixed on this platform.
#[cfg(not(target_os = "linux"))]
pub(crate) fn enlarge_pipe<P>(_pipe: &P) {}
