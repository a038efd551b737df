//! A caller-built tokio command started inside a container: the escape
//! hatch behind `ProcessGroup::spawn`. The child joins a fresh slot before it
//! runs (a run cgroup joined from std's pre-exec hook, a process group of its
//! own, or a suspended start placed in the job); the container keeps it.

use std::io;
use std::sync::Arc;

use super::{Container, SlotKind};
use crate::signal::Signal;

/// Why a raw spawn did not happen; words for users are made above `sys`.
#[derive(Debug)]
pub(crate) enum RawSpawnError {
    /// This mechanism (or platform) cannot hold such a child: why.
    Unsupported(&'static str),
    /// No slot could be made (the group is suspended, a cgroup could not be made).
    Slot(io::Error),
    /// The OS refused the spawn (nothing runs).
    Spawn(io::Error),
    /// The child started but could not be contained (it was ended).
    Contain(io::Error),
}

/// Why the subreaper mechanism refuses a raw spawn.
#[cfg(target_os = "linux")]
const NO_SHIM: &str = "under the subreaper mechanism each run starts below a shim that \
     holds its tree; a command that tokio spawns is this process's own child, so its \
     orphans would escape the group: use ProcessGroup::start, or a group on the \
     process-group or cgroup-v2 mechanism";

/// Starts `cmd` inside `container`, in a slot of its own whose graceful stop
/// is SIGTERM. `creation_flags` (Windows only; 0 elsewhere) are the caller's,
/// OR'd with the suspended start: std cannot read back a command's flags.
pub(crate) fn spawn_into(
    container: &Container,
    cmd: &mut tokio::process::Command,
    creation_flags: u32,
) -> Result<tokio::process::Child, RawSpawnError> {
    if cfg!(not(windows)) && creation_flags != 0 {
        return Err(RawSpawnError::Unsupported(
            "creation flags exist only on Windows",
        ));
    }
    super::spawn::io_driver_available().map_err(RawSpawnError::Spawn)?;
    let mut slot = container.slot(Signal::Term).map_err(RawSpawnError::Slot)?;
    // Held until the child has exec'd: a suspend waits for this spawn.
    let gate = Arc::clone(&slot.gate);
    let _entered = gate.enter().map_err(RawSpawnError::Contain)?;
    place(&mut slot.kind, cmd, creation_flags)
}

/// Spawns so the orphan reaper (`reap_orphans`) never takes the child's status.
fn spawn_own(cmd: &mut tokio::process::Command) -> Result<tokio::process::Child, RawSpawnError> {
    super::orphans::own_spawn(|| cmd.spawn(), |c| c.as_ref().ok()?.id())
        .map_err(RawSpawnError::Spawn)
}

#[cfg(target_os = "linux")]
fn place(
    slot: &mut SlotKind,
    cmd: &mut tokio::process::Command,
    _flags: u32,
) -> Result<tokio::process::Child, RawSpawnError> {
    match slot {
        SlotKind::Cgroup(s) => {
            let dir = s.take_dir().map_err(RawSpawnError::Slot)?;
            cgroup_join::install(cmd);
            let child = cgroup_join::while_pending(&dir, || spawn_own(cmd))?;
            s.attach();
            Ok(child)
        }
        SlotKind::Subreaper(_) => Err(RawSpawnError::Unsupported(NO_SHIM)),
        SlotKind::Pgroup(s) => {
            let child = lead_own_group(cmd)?;
            if let Some(pid) = child.id() {
                s.attach(pid);
            }
            Ok(child)
        }
    }
}

#[cfg(all(unix, not(target_os = "linux")))]
fn place(
    slot: &mut SlotKind,
    cmd: &mut tokio::process::Command,
    _flags: u32,
) -> Result<tokio::process::Child, RawSpawnError> {
    let SlotKind::Pgroup(s) = slot;
    let child = lead_own_group(cmd)?;
    if let Some(pid) = child.id() {
        s.attach(pid);
    }
    Ok(child)
}

/// The child leads a process group of its own, which the slot then tracks
/// like any run's (it overrides a `process_group` the caller set).
#[cfg(unix)]
fn lead_own_group(
    cmd: &mut tokio::process::Command,
) -> Result<tokio::process::Child, RawSpawnError> {
    use std::os::unix::process::CommandExt;
    cmd.as_std_mut().process_group(0);
    spawn_own(cmd)
}

#[cfg(windows)]
fn place(
    slot: &mut SlotKind,
    cmd: &mut tokio::process::Command,
    flags: u32,
) -> Result<tokio::process::Child, RawSpawnError> {
    use windows_sys::Win32::System::Threading::CREATE_SUSPENDED;
    let SlotKind::Job(s) = slot;
    cmd.creation_flags(flags | CREATE_SUSPENDED);
    let child = spawn_own(cmd)?;
    let unreaped = || io::Error::other("the child was reaped before it was contained");
    let raw = child
        .raw_handle()
        .ok_or_else(unreaped)
        .map_err(RawSpawnError::Contain)?;
    let pid = child
        .id()
        .ok_or_else(unreaped)
        .map_err(RawSpawnError::Contain)?;
    // SAFETY: `child` owns this process handle and outlives the borrow.
    let process = unsafe { std::os::windows::io::BorrowedHandle::borrow_raw(raw) };
    // Placed in the job(s) and resumed; terminated if it cannot be placed.
    s.attach(process, pid).map_err(RawSpawnError::Contain)?;
    Ok(child)
}

/// Joining a run's cgroup from std's pre-exec hook. The hook stays on the
/// caller's command (std cannot remove one), so it reads the directory to
/// join from this thread's state, set only while `while_pending` spawns:
/// the same command spawned again joins its new slot, and spawned any
/// other way its hooks do nothing.
#[cfg(target_os = "linux")]
mod cgroup_join {
    use std::cell::Cell;
    use std::io;
    use std::os::fd::{AsRawFd, OwnedFd, RawFd};

    use crate::sys::spawn::setup::{JoinView, SetupView};

    thread_local! {
        /// The cgroup directory a spawn on this thread joins (-1: none). A
        /// forked child reads its copy of the forking thread's value.
        static PENDING: Cell<RawFd> = const { Cell::new(-1) };
    }

    /// Adds the hook to `cmd`.
    pub(super) fn install(cmd: &mut tokio::process::Command) {
        use std::os::unix::process::CommandExt;
        // SAFETY: the hook reads one thread-local integer (a const-initialised
        // `Cell` without destructor: a plain memory read) and makes the same
        // async-signal-safe `openat`/`write`/`close` calls as every spawn's
        // setup; it allocates nothing and takes no lock.
        unsafe {
            cmd.as_std_mut().pre_exec(join_pending);
        }
    }

    /// Runs `spawn` with `dir` as the cgroup its child joins.
    pub(super) fn while_pending<T>(dir: &OwnedFd, spawn: impl FnOnce() -> T) -> T {
        struct Reset(RawFd);
        impl Drop for Reset {
            fn drop(&mut self) {
                PENDING.set(self.0);
            }
        }
        let _reset = Reset(PENDING.replace(dir.as_raw_fd()));
        spawn()
    }

    /// In the child: joins the pending cgroup, if there is one.
    fn join_pending() -> io::Result<()> {
        let dir = PENDING.get();
        if dir < 0 {
            return Ok(());
        }
        let steps = SetupView {
            join: JoinView::Cgroup(dir),
            setsid: false,
            groups: None,
            gid: None,
            uid: None,
            cwd: None,
            parent_death: None,
            umask: None,
            priority: None,
            rlimits: [None; 7],
            controlling_tty: false,
        };
        steps
            .apply(false)
            .map_err(|(_, errno)| io::Error::from_raw_os_error(errno))
    }
}
