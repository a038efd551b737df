//! The platform layer: the only place with `unsafe`, raw syscalls and
//! `cfg(target_os)`. Everything above sees one `Container` (a group's tree)
//! and one `Slot` (one run inside it), whatever the mechanism; the backend
//! (`imp`) is chosen once per platform. `sys` returns `io::Error` and plain
//! data; `crate::Error` and the words users read are made above it.
//!
//! # Process-global state
//!
//! Every static below is created lazily, on the first use that needs it.
//!
//! | Where | Statics | What they hold |
//! |---|---|---|
//! | `linux/cgroup/root.rs` | `ROOT`, `MISSING`, `CREATING`, `NONCE` | the per-process cgroup root (or why there is none, for good), its creation lock, its name's nonce |
//! | `linux/spare.rs` | `POOL`, `WANTED`, `DEMAND`, `FILLER` | single-run cgroups made ahead of time or handed back for reuse, and their filler thread's state |
//! | `linux/kill_retry.rs` | `PENDING`, `ADDED`, `RUNNING` | failed kills waiting to be retried |
//! | `linux/reaper.rs` | `QUEUE`, `ORPHANS` | cgroups to remove once empty; abandoned children to reap |
//! | `linux/guardian.rs`, `linux/guardian/send.rs` | `STATE`, `RETRY`, `OUTBOX` | the guardian's state, why its last start failed, messages waiting for its socket |
//! | `spawn/linux/thread.rs` | `SPAWNER` | the channel to the spawner thread |
//! | `spawn/linux/mod.rs`, `spawn/linux/clone3.rs` | `REFUSED` (both), `SAID`, `BY_ENV` | the kernel refused the clone spawner once; its tracing note; `PROCESSKIT_SPAWNER` |
//! | `linux/pidfd_child.rs`, `linux/pipe.rs`, `spawn/linux/fds.rs` | `SUPPORTED`, `NO_SOFT_LIMIT`, `DEV_NULL`, thread-local `SPARE_STACK` | probed kernel facts, `/dev/null`, one clone stack per spawning thread |
//! | `linux/own_children.rs`, `linux/orphans.rs` | `SPAWNS`, `ENABLED`, `OWN`, thread-local `INSIDE`; `STARTED`, `REAPED` | the registry of our own children (kept once `reap_orphans` is on) and the lock spawns share against the orphan reaper; whether it runs, its count |
//! | `linux/subreaper/mod.rs`, `linux/subreaper/zygote.rs` | `REASON`; `ZYGOTE`, `STARTING`, `GONE` | why this kernel cannot host shims, if it cannot; the zygote's socket and the ids it was forked with, its start lock, whether it has gone away |
//! | `linux/subreaper/pool.rs` | `POOL` | idle shims whose runs ended untouched, ready for the next run, and whether their trimming thread runs |
//! | `unix/leader.rs` | `BY_PID`, `TICKETS`, `GROUP_FLAG` | the newest leader per pid (stale records lose), whether `pidfd_send_signal` takes the group flag |
//! | `raw_spawn.rs` | thread-local `PENDING` | the cgroup directory a raw spawn on this thread joins, set only during that spawn |
//!
//! Outside `sys`, `policy/backoff.rs` keeps one jitter `COUNTER`.
//!
//! # Background threads and processes (Linux only)
//!
//! - `processkit-reaper` (`linux/reaper.rs`): removes emptied cgroups.
//! - `processkit-pidfd-reaper` (`linux/reaper.rs`): reaps children nobody waits for.
//! - `processkit-cgroups` (`linux/spare.rs`): makes single-run cgroups ahead of time and
//!   drops reusable ones left idle for 2 s.
//! - `processkit-killer` (`linux/kill_retry.rs`): retries a failed kill until it lands.
//! - `processkit-spawner` (`spawn/linux/thread.rs`): starts every child that must die
//!   with this process (parent-death follows the thread that forked).
//! - `pk-guardian-send` (`linux/guardian/send.rs`): drains guardian messages
//!   while its socket is full.
//! - `processkit-orphans` (`linux/orphans.rs`): reaps orphans re-parented to
//!   this process, only once `reap_orphans` was called.
//! - `processkit-shims` (`linux/subreaper/pool.rs`): lets idle shims go once
//!   unused for 2 s.
//! - `processkit-drain` (`spawn/linux/pipe_thread.rs`): one per plain capture
//!   past 4 MiB, reading its pipe until end-of-file or until the pump stops it.
//! - The guardian process (`linux/guardian.rs`): forked with the first
//!   container; it tears everything down if this process dies without `Drop`.
//! - The zygote (`pk-zygote`, `linux/subreaper/zygote.rs`): forked with the
//!   first subreaper container; it keeps one spare shim (`pk-spare`) ready.
//!   Each subreaper run has a shim (`pk-shim`, `linux/subreaper/shim.rs`) that
//!   holds its tree; a shim whose run ended untouched may serve the next run.
//!
//! macOS, the BSDs and Windows start no thread or process of their own,
//! except for runs on a pseudo-terminal (feature `pty`): a thread per
//! direction of the terminal (`processkit-tty-out`, `processkit-tty-in`,
//! `thread_io.rs`), on Windows also one waiting for the child
//! (`processkit-conpty-wait`, `windows/conpty/spawn.rs`).

#[cfg(feature = "stats")]
mod accounting;
#[cfg(feature = "process-control")]
mod adopt;
#[cfg(target_os = "linux")]
pub(crate) mod linux;
pub(crate) mod newlines;
pub(crate) mod orphans;
pub(crate) mod raw_spawn;
pub(crate) mod socket;
pub(crate) mod spawn;
mod spawn_gate;
#[cfg(any(windows, all(feature = "pty", any(not(target_os = "linux"), test))))]
pub(crate) mod thread_io;
#[cfg(unix)]
pub(crate) mod unix;
#[cfg(windows)]
pub(crate) mod windows;

use std::io;
use std::sync::Arc;

use crate::mechanism::Mechanism;
use crate::signal::Signal;

#[cfg(feature = "stats")]
pub(crate) use accounting::Usage;
#[cfg(feature = "limits")]
pub(crate) use accounting::{LimitFailure, LimitRefusal, Limits, RefusedWhy};
#[cfg(feature = "process-control")]
pub(crate) use adopt::{adoptable, process_exists};
pub(crate) use spawn_gate::SpawnGate;
#[cfg(unix)]
pub(crate) use unix::terminal::Foreground;

/// Windows has no terminal process groups to hand over (`foreground` is
/// refused there): this type has no values.
#[cfg(windows)]
#[derive(Debug)]
pub(crate) enum Foreground {}
/// Pseudo-terminals: a pty pair on Unix, a ConPTY pseudo console on Windows.
#[cfg(all(unix, feature = "pty"))]
pub(crate) use unix::pty;
#[cfg(all(windows, feature = "pty"))]
pub(crate) use windows::conpty as pty;

// The backend is chosen once per platform; on Linux it picks cgroup or
// process group per container at runtime.
#[cfg(target_os = "linux")]
use linux::backend as imp;
#[cfg(all(unix, not(target_os = "linux")))]
use unix::backend as imp;
#[cfg(windows)]
use windows::backend as imp;

use imp::{ContainerKind, SlotKind};
// Whether an `io::Error` means the descriptors (or handles) ran out; a bigger
// kernel buffer for a pipe we drain, where the platform has one.
pub(crate) use imp::{enlarge_pipe, is_descriptor_exhaustion};

/// Environment variable that forces a mechanism for every container
/// (`process-group` or `cgroup-v2`), e.g. to run a test suite under the fallback.
pub(crate) const MECHANISM_ENV: &str = "PROCESSKIT_MECHANISM";

/// Whether signals other than a kill reach a container's members (not on
/// Windows, where a job can only be terminated).
pub(crate) const DELIVERS_SIGNALS: bool = cfg!(unix);

/// The mechanisms this platform has, best first.
pub(crate) const MECHANISMS: &[Mechanism] = imp::MECHANISMS;

/// One kill-on-drop container holding a group's (or a single run's) tree.
#[derive(Debug)]
pub(crate) struct Container {
    kind: ContainerKind,
    /// Closed while the tree is suspended.
    gate: Arc<SpawnGate>,
}

/// Where one run lives inside a container.
#[derive(Debug)]
pub(crate) struct Slot {
    kind: SlotKind,
    gate: Arc<SpawnGate>,
}

/// Why no container could be made; `crate::Error` is built from it above `sys`.
#[derive(Debug)]
pub(crate) enum CreateError {
    /// The requested mechanism does not exist on this platform (see `MECHANISMS`).
    NotOnPlatform(Mechanism),
    /// The requested mechanism exists on this platform but not on this
    /// host (no writable cgroup v2, a kernel without what a subreaper
    /// needs): why.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Unavailable(Mechanism, &'static str),
    /// The OS failed while making it; `step` names what was being done.
    #[cfg_attr(all(unix, not(target_os = "linux")), allow(dead_code))]
    Io {
        /// What was being made.
        step: CreateStep,
        /// The OS's error.
        source: io::Error,
    },
}

/// What a container's creation was doing when the OS failed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CreateStep {
    /// Making a cgroup.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Cgroup,
    /// Making a Job Object.
    #[cfg_attr(not(windows), allow(dead_code))]
    JobObject,
}

/// The mechanism requested through `PROCESSKIT_MECHANISM`, if any.
fn requested_by_env() -> Option<Mechanism> {
    std::env::var(MECHANISM_ENV)
        .ok()
        .and_then(|v| Mechanism::from_name(v.trim()))
}

/// Why the best mechanism of this platform is unavailable, if it is.
pub(crate) fn degraded_reason() -> Option<&'static str> {
    imp::degraded_reason()
}

impl Container {
    /// A new container. `request` picks a mechanism (else `PROCESSKIT_MECHANISM`,
    /// else the best available); a `single_run` container holds exactly one run.
    pub(crate) fn new(
        request: Option<Mechanism>,
        single_run: bool,
    ) -> Result<Container, CreateError> {
        let request = request.or_else(requested_by_env);
        Ok(Container {
            kind: imp::new_container(request, single_run)?,
            gate: Arc::default(),
        })
    }

    pub(crate) fn mechanism(&self) -> Mechanism {
        self.kind.mechanism()
    }

    /// A place for one more run in this container, whose graceful stops
    /// send `stop` first.
    pub(crate) fn slot(&self, stop: Signal) -> io::Result<Slot> {
        drop(self.gate.enter()?);
        Ok(Slot {
            kind: self.kind.slot(stop)?,
            gate: Arc::clone(&self.gate),
        })
    }

    /// Asks every run's tree to stop with its own stop signal (adopted
    /// processes get SIGTERM), after thawing a suspended tree; on Windows a
    /// console break to every run and `WM_CLOSE` to every window.
    pub(crate) fn ask_all_to_stop(&self) -> io::Result<()> {
        let _ = self.set_frozen(false);
        self.kind.ask_all_to_stop()
    }

    /// How many processes the container holds now: the whole tree (under
    /// the process-group mechanism outside Linux, the live groups and
    /// adopted processes, since a group's members cannot be listed there).
    pub(crate) fn process_count(&self) -> usize {
        self.kind.process_count()
    }

    /// Hard-kills every process in the container, now.
    pub(crate) fn kill_all(&self) -> io::Result<()> {
        self.kind.kill_all()
    }

    /// Hard-kills every process for a teardown nobody can hear fail (a
    /// dropped group): a failed kill is retried in the background.
    pub(crate) fn kill_all_or_retry(&self) {
        self.kind.kill_all_or_retry();
    }

    /// Delivers `signal` to every member; `Signal::Kill` is `kill_all`. Where
    /// `DELIVERS_SIGNALS` is false any other signal fails as `Unsupported`.
    pub(crate) fn signal_all(&self, signal: Signal) -> io::Result<()> {
        if signal == Signal::Kill {
            return self.kill_all();
        }
        self.kind.signal_all(signal)
    }

    /// Freezes (or thaws) the whole tree.
    pub(crate) fn set_frozen(&self, frozen: bool) -> io::Result<()> {
        // Closed before freezing (once every spawn in flight has returned),
        // reopened only after thawing: no child is ever born frozen.
        if frozen {
            self.gate.set(true);
        }
        let result = self.kind.set_frozen(frozen);
        if !frozen {
            self.gate.set(false);
        }
        result
    }

    /// Live member pids: the whole tree, or the tracked leaders for process groups.
    #[cfg_attr(not(feature = "process-control"), allow(dead_code))]
    pub(crate) fn members(&self) -> io::Result<Vec<u32>> {
        self.kind.members()
    }

    /// Whether any process is still contained.
    #[cfg_attr(not(all(windows, test)), allow(dead_code))]
    pub(crate) fn is_populated(&self) -> io::Result<bool> {
        self.kind.is_populated()
    }

    /// Waits until no process is left, at most `limit`; `true` once empty.
    /// A cgroup is watched through inotify; other mechanisms are polled.
    pub(crate) async fn wait_empty(&self, limit: std::time::Duration) -> bool {
        self.kind.wait_empty(limit).await
    }

    /// Moves an existing process into this container.
    #[cfg_attr(not(feature = "process-control"), allow(dead_code))]
    pub(crate) fn adopt(&self, pid: u32) -> io::Result<()> {
        self.kind.adopt(pid)
    }
}

/// Polls `populated` with a growing pause until it says no, at most `limit`;
/// `true` once empty. For the mechanisms that have nothing to watch.
pub(crate) async fn poll_until_empty(
    populated: impl Fn() -> io::Result<bool>,
    limit: std::time::Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    let mut pause = std::time::Duration::from_micros(500);
    while tokio::time::Instant::now() < deadline {
        if !populated().unwrap_or(false) {
            return true;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(20));
    }
    false
}

impl Slot {
    /// Readies `spec` so the child starts inside this slot: it joins the
    /// run's cgroup (whose directory the spec now owns) or leads a process
    /// group of its own; on Windows it starts suspended until `attach`.
    pub(crate) fn prepare(&mut self, spec: &mut spawn::SpawnSpec) -> io::Result<()> {
        self.kind.prepare(spec)
    }

    /// Called right after a successful spawn, before the child is claimed:
    /// records it (process groups) or places and resumes it (jobs).
    pub(crate) fn attach(&mut self, child: &spawn::Unclaimed) -> io::Result<()> {
        self.kind.attach(child)
    }

    /// The gate a spawn into this slot passes just before it clones.
    pub(crate) fn gate(&self) -> &Arc<SpawnGate> {
        &self.gate
    }

    /// Hard-kills this run and everything it started (not its siblings).
    pub(crate) fn kill(&self) -> io::Result<()> {
        self.kind.kill()
    }

    /// Asks this run's tree to stop: its stop signal to every process
    /// (Unix), which is thawed first when its group is suspended; a console
    /// break and `WM_CLOSE` on Windows.
    pub(crate) fn ask_to_stop(&self) -> io::Result<()> {
        self.kind.ask_to_stop(self.gate.is_closed())
    }

    /// Waits until no process of this run is left, at most `limit`; `true`
    /// once empty.
    pub(crate) async fn wait_empty(&self, limit: std::time::Duration) -> bool {
        self.kind.wait_empty(limit).await
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
    if slot.is_some_and(|s| s.kind.killed_child()) {
        return (None, None);
    }
    (status.code(), exit_signal(status))
}

/// The signal that ended a child (Unix), if any.
pub(crate) fn exit_signal(status: &std::process::ExitStatus) -> Option<i32> {
    imp::exit_signal(status)
}

/// Whether a guardian is watching over this process's containers.
pub(crate) fn guardian_status() -> GuardianState {
    imp::guardian_status()
}

/// The guardian's state as `sys` knows it; the `guardian` module reports it to
/// users as `GuardianStatus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GuardianState {
    /// No container has been created yet.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    NotStarted,
    /// The guardian runs as process `pid`.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Running {
        /// The guardian's process id.
        pid: u32,
    },
    /// Turned off through [`GUARDIAN_ENV`].
    Disabled,
    /// It could not be started, or it has exited.
    #[cfg_attr(windows, allow(dead_code))]
    Unavailable {
        /// Why.
        reason: String,
    },
    /// The platform's container already dies with its owner (Windows).
    #[cfg_attr(not(windows), allow(dead_code))]
    NotNeeded,
}

/// The environment variable that turns the guardian off (`0`, `off`, `false`
/// or `no`); the `guardian` module publishes it as `GUARDIAN_ENV`.
pub(crate) const GUARDIAN_ENV: &str = "PROCESSKIT_GUARDIAN";

/// Whether [`GUARDIAN_ENV`] asks for no guardian.
pub(crate) fn guardian_disabled_by_env() -> bool {
    std::env::var(GUARDIAN_ENV).is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "0" | "off" | "false" | "no"
        )
    })
}
