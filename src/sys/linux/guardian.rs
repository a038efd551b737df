//! The guardian, owner side: forks the one guardian process on first use,
//! feeds it the process groups to remember, and reports its status. The
//! guardian's own life after fork is in `guardian_process`.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};
use rustix::process::{Pid, WaitOptions};

use super::cgroup;
use super::guardian_process::{self, Plan};
use crate::sys::{GuardianState, guardian_disabled_by_env};
use send::Outgoing;

pub(super) mod pgid_table;
mod send;

enum State {
    Running {
        pid: libc::pid_t,
        /// Our end of the socket pair: the guardian reads end-of-file when it
        /// closes, which happens only when this process is gone.
        channel: OwnedFd,
        /// Set once we have seen the guardian exit (its pid may be reused after).
        exited: Mutex<Option<String>>,
    },
    Disabled,
    Failed(String),
}

/// Set once the answer is definitive: running, disabled, or a failure that
/// retrying cannot cure.
static STATE: OnceLock<State> = OnceLock::new();
/// Serialises start attempts; holds why the last one failed for a reason
/// that may pass (out of descriptors, memory or processes): the next
/// container tries again.
static RETRY: Mutex<Option<String>> = Mutex::new(None);

/// Starts the guardian unless it already runs, is disabled, or cannot run.
/// Called for every new container; it does work only until it has an answer.
pub(crate) fn ensure_started() {
    if STATE.get().is_some() {
        return;
    }
    let mut retry = RETRY.lock().unwrap_or_else(|e| e.into_inner());
    if STATE.get().is_some() {
        return;
    }
    match start() {
        Ok(state) => {
            *retry = None;
            let _ = STATE.set(state);
        }
        Err(Failure::Transient(reason)) => {
            trace_unavailable(&reason);
            *retry = Some(reason);
        }
        Err(Failure::Final(reason)) => {
            trace_unavailable(&reason);
            let _ = STATE.set(State::Failed(reason));
        }
    }
}

/// The guardian's current status.
pub(crate) fn status() -> GuardianState {
    match STATE.get() {
        None => match RETRY.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            Some(reason) => GuardianState::Unavailable { reason },
            None => GuardianState::NotStarted,
        },
        Some(State::Disabled) => GuardianState::Disabled,
        Some(State::Failed(reason)) => GuardianState::Unavailable {
            reason: reason.clone(),
        },
        Some(State::Running { pid, exited, .. }) => {
            let mut exited = exited.lock().unwrap_or_else(|e| e.into_inner());
            if exited.is_none() {
                *exited = reap(*pid);
            }
            match exited.as_ref() {
                Some(reason) => GuardianState::Unavailable {
                    reason: reason.clone(),
                },
                None => GuardianState::Running { pid: *pid as u32 },
            }
        }
    }
}

/// Asks the guardian to kill process group `pgid` if we die. The leader's
/// pidfd lets it hit exactly that group; without one it checks the leader's
/// start time. Returns the ticket `forget` needs (0: not tracked).
pub(crate) fn track(pgid: i32, pidfd: Option<BorrowedFd<'_>>) -> u64 {
    let Some(channel) = channel() else {
        return 0;
    };
    // The queue owns its copy: ours may close before the message leaves.
    let pidfd = pidfd.and_then(|fd| fd.try_clone_to_owned().ok());
    let start = match pidfd {
        Some(_) => 0,
        None => cgroup::start_time(pgid as u32).unwrap_or(0),
    };
    send::track(
        channel,
        pgid,
        Outgoing {
            message: pgid_table::track(pgid, start),
            pidfd,
        },
    )
}

/// Tells the guardian that group `pgid` (tracked under `ticket`) is gone or
/// already killed. A newer group that reused the id keeps its own entry.
pub(crate) fn forget(pgid: i32, ticket: u64) {
    if let Some(channel) = channel() {
        send::forget(channel, pgid, ticket);
    }
}

fn channel() -> Option<BorrowedFd<'static>> {
    match STATE.get() {
        Some(State::Running { channel, .. }) => Some(channel.as_fd()),
        _ => None,
    }
}

enum Failure {
    /// Out of descriptors, memory or processes: worth another try later.
    Transient(String),
    Final(String),
}

fn failure(what: &str, error: io::Error) -> Failure {
    let reason = format!("{what}: {error}");
    match error.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::EAGAIN | libc::ENOBUFS) => {
            Failure::Transient(format!("{reason} (retried with the next group)"))
        }
        _ => Failure::Final(reason),
    }
}

fn start() -> Result<State, Failure> {
    if guardian_disabled_by_env() {
        #[cfg(feature = "tracing")]
        tracing::debug!("processkit guardian disabled by PROCESSKIT_GUARDIAN");
        return Ok(State::Disabled);
    }
    // Registered so the orphan reaper (`reap_orphans`) leaves it to `reap`.
    let forked = crate::sys::orphans::own_spawn(fork_guardian, |f| Some(f.as_ref().ok()?.0 as u32));
    let (pid, channel) = forked?;
    #[cfg(feature = "tracing")]
    tracing::debug!(pid, "processkit guardian started");
    Ok(State::Running {
        pid,
        channel,
        exited: Mutex::new(None),
    })
}

fn trace_unavailable(reason: &str) {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        %reason,
        "processkit guardian unavailable: groups still work, but a SIGKILLed \
         owner leaves its children running"
    );
    let _ = reason;
}

fn fork_guardian() -> Result<(libc::pid_t, OwnedFd), Failure> {
    // Everything the guardian needs is built here: after fork it may not allocate.
    let plan = Plan {
        cgroup_root: root_path()
            .map_err(|e| failure("cannot find the cgroup root", e))?
            .and_then(|p| CString::new(p.as_os_str().as_bytes()).ok()),
    };
    // SEQPACKET keeps each message whole; CLOEXEC keeps both ends out of
    // every child we exec.
    let (owner_end, guardian_end) = socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| failure("cannot create the guardian's socket pair", e.into()))?;
    // SAFETY: the child runs only `guardian_process::run`, which makes
    // async-signal-safe syscalls on memory prepared above and never returns.
    match unsafe { libc::fork() } {
        0 => guardian_process::run(&plan, guardian_end.as_fd()),
        -1 => Err(failure(
            "cannot fork the guardian",
            io::Error::last_os_error(),
        )),
        pid => Ok((pid, owner_end)),
    }
}

/// The per-process root, whether or not it exists yet: a group on the
/// process-group fallback may come first, and a cgroup one later. `None`
/// when there is no cgroup2 here; an error when `/proc` could not be read.
fn root_path() -> io::Result<Option<PathBuf>> {
    if let Some(root) = cgroup::existing_root() {
        return Ok(Some(root.path.clone()));
    }
    let Some(mount) = cgroup::find_cgroup2_mount(&read_proc("/proc/self/mountinfo")?) else {
        return Ok(None);
    };
    let Some(own) = cgroup::own_cgroup(&read_proc("/proc/self/cgroup")?) else {
        return Ok(None);
    };
    let pid = std::process::id();
    let name = cgroup::root_name(pid, cgroup::start_time(pid)?);
    Ok(Some(mount.join(own.trim_start_matches('/')).join(name)))
}

/// A `/proc` file; a missing one reads as empty (no cgroup2 to find in it).
fn read_proc(path: &str) -> io::Result<String> {
    match fs::read_to_string(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        other => other,
    }
}

/// Why the guardian is gone, if it has exited (reaping it if so).
fn reap(pid: libc::pid_t) -> Option<String> {
    let child = Pid::from_raw(pid)?;
    // WNOHANG: never blocks; reaps our own child only once it has exited.
    let status = match rustix::process::waitpid(Some(child), WaitOptions::NOHANG) {
        Ok(None) => return None,
        Err(_) => return Some(format!("the guardian (pid {pid}) is gone")),
        Ok(Some((_, status))) => status.as_raw(),
    };
    if libc::WIFSIGNALED(status) {
        Some(format!(
            "the guardian (pid {pid}) was killed by signal {}",
            libc::WTERMSIG(status)
        ))
    } else {
        Some(format!(
            "the guardian (pid {pid}) exited with status {}",
            libc::WEXITSTATUS(status)
        ))
    }
}
