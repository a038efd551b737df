//! `reap_orphans`: opt-in reaping of the orphans re-parented to a program
//! that runs as PID 1 (or as a child subreaper), sparing every child
//! processkit started and the ones the program exempts.

use crate::error::{Error, Result};

/// Reaps, for the rest of this program's life, every orphan re-parented to
/// it, so no zombie piles up; for programs that run as **PID 1** in a
/// container without an init. Idempotent: later calls return the same
/// reaper. Linux only; elsewhere it does nothing and returns `Ok`.
///
/// # When to call it
///
/// When a process dies, the kernel hands its children to the nearest
/// ancestor that is a child subreaper, else to PID 1 of the pid namespace,
/// and whoever inherits them must wait for them or they stay zombies. A
/// program that *is* PID 1 (`docker run` without `--init`, a `FROM scratch`
/// image, a Kubernetes container without a shared pid namespace) inherits
/// every orphan of the container. Call this **first thing in `main`,
/// before the program starts any process**: whatever is already a child at
/// the first call is treated as the program's own and never reaped by it,
/// because nothing tells processkit runs started earlier from orphans that
/// were already there. It is needed neither under an init (`docker run
/// --init`, tini, dumb-init) nor in a program that is not PID 1 or a child
/// subreaper (`prctl(PR_SET_CHILD_SUBREAPER)`): orphans never reach it then,
/// and the reaper has nothing to do.
///
/// # What it reaps, and what it never takes
///
/// A background thread, `processkit-orphans`, lists this process's
/// children (`/proc/self/task/*/children`) and reaps each *zombie* among
/// them that is not a child of processkit's own, by its pid
/// (`waitid(P_PID, pid, WEXITED | WNOHANG)`), never with `waitpid(-1)`. Every
/// child processkit starts (each run, whatever the spawner, and the
/// guardian) is registered with its pid and start time before the reaper
/// can see it, so processkit's exit codes and signals stay exact.
///
/// It polls: every 100 ms after a pass that found a zombie, backing off to
/// once a second while none turn up. It does not wait for `SIGCHLD`: tokio's
/// process driver owns that signal's handler, and taking it over (or
/// blocking it for a `signalfd`) would break `tokio::process`. A zombie
/// holds only a pid until it is reaped, so a second of delay is harmless.
///
/// # The caveat: children the program starts without processkit
///
/// The reaper does not know children started directly with
/// [`std::process::Command`] or [`tokio::process::Command`]. Once such a
/// child has exited, the reaper may reap it before the program waits for
/// it, and the program's own `wait()`, `status()` or `output()` then fails
/// with `ECHILD` ("No child processes"); exit status lost. Start those
/// children through [`OrphanReaper::spawn_exempt`] (with `spawn()`, then
/// wait as usual) to keep their status. Library code that spawns on its
/// own is exposed to the same race.
///
/// # Cost
///
/// Before the first call, a spawn takes one uncontended shared lock. After
/// it, a spawn also reads its child's `/proc/<pid>/stat` (the start time),
/// and the thread wakes at most ten times a second.
///
/// # Errors
///
/// [`Error::Unsupported`] when `/proc` cannot be read (it is needed to list
/// children) or the thread cannot start; a later call tries again.
///
/// # Example
///
/// ```no_run
/// fn main() -> processkit::Result<()> {
///     // First thing, before this program starts any process.
///     processkit::reap_orphans()?;
///
///     // A child started without processkit keeps its exit status:
///     let child = processkit::OrphanReaper::spawn_exempt(|| {
///         std::process::Command::new("date").spawn()
///     });
///     let status = child.expect("spawn date").wait().expect("still ours to wait for");
///     println!("date: {status}");
///     Ok(())
/// }
/// ```
pub fn reap_orphans() -> Result<OrphanReaper> {
    crate::sys::orphans::start().map_err(|e| Error::Unsupported {
        operation: "reap_orphans",
        reason: format!("cannot start reaping orphans: {e}"),
    })?;
    Ok(OrphanReaper { _private: () })
}

/// The running orphan reaper, from [`reap_orphans`]. It lives as long as
/// the program; this handle only reports on it.
#[derive(Debug, Clone, Copy)]
pub struct OrphanReaper {
    _private: (),
}

impl OrphanReaper {
    /// How many orphans it has reaped so far (0 where there are none to
    /// reap: off Linux, or when this program is neither PID 1 nor a child
    /// subreaper).
    pub fn reaped(&self) -> u64 {
        crate::sys::orphans::reaped()
    }

    /// Runs `spawn`, which starts one child without processkit, so that the
    /// orphan reaper never takes that child's exit status: the child is
    /// registered as the program's own before the reaper can see it. Returns
    /// what `spawn` returned. Usable whether or not [`reap_orphans`] was
    /// called (also before it, and off Linux, where it only runs `spawn`).
    ///
    /// `spawn` must start at most that one child and return promptly:
    /// spawn inside, wait outside. While it runs, the reaper waits for it,
    /// and processkit's own spawns queue behind the reaper.
    ///
    /// ```no_run
    /// let child = processkit::OrphanReaper::spawn_exempt(|| {
    ///     tokio::process::Command::new("make").spawn()
    /// });
    /// ```
    pub fn spawn_exempt<C: SpawnedChild>(spawn: impl FnOnce() -> C) -> C {
        crate::sys::orphans::own_spawn(spawn, SpawnedChild::spawned_pid)
    }
}

/// A child just started without processkit, as
/// [`OrphanReaper::spawn_exempt`] takes it: what it needs is the pid.
pub trait SpawnedChild {
    /// The child's pid, if it was started.
    fn spawned_pid(&self) -> Option<u32>;
}

impl SpawnedChild for std::process::Child {
    fn spawned_pid(&self) -> Option<u32> {
        Some(self.id())
    }
}

impl SpawnedChild for tokio::process::Child {
    fn spawned_pid(&self) -> Option<u32> {
        self.id()
    }
}

/// A spawn that may have failed: the child's pid when it did not.
impl<C: SpawnedChild, E> SpawnedChild for std::result::Result<C, E> {
    fn spawned_pid(&self) -> Option<u32> {
        self.as_ref().ok()?.spawned_pid()
    }
}
