//! The guardian, owner side: forks the one guardian process on first use,
//! feeds it the process groups to remember, and reports its status. The
//! guardian's own life after fork is in `guardian_process`.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use super::cgroup;
use super::guardian_process::{self, Plan};
use crate::guardian::{GuardianStatus, disabled_by_env};
use crate::sys::unix::pgid_table::{self, Message};

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

static STATE: OnceLock<State> = OnceLock::new();

/// Starts the guardian unless it already runs, failed, or is disabled.
/// Called for every new container; only the first call does any work.
pub(crate) fn ensure_started() {
    STATE.get_or_init(start);
}

/// The guardian's current status.
pub(crate) fn status() -> GuardianStatus {
    match STATE.get() {
        None => GuardianStatus::NotStarted,
        Some(State::Disabled) => GuardianStatus::Disabled,
        Some(State::Failed(reason)) => GuardianStatus::Unavailable {
            reason: reason.clone(),
        },
        Some(State::Running { pid, exited, .. }) => {
            let mut exited = exited.lock().unwrap_or_else(|e| e.into_inner());
            if exited.is_none() {
                *exited = reap(*pid);
            }
            match exited.as_ref() {
                Some(reason) => GuardianStatus::Unavailable {
                    reason: reason.clone(),
                },
                None => GuardianStatus::Running { pid: *pid as u32 },
            }
        }
    }
}

/// Asks the guardian to kill process group `pgid` if we die.
pub(crate) fn track(pgid: i32) {
    send(pgid_table::track(pgid));
}

/// Tells the guardian that group `pgid` is gone (or already killed).
pub(crate) fn forget(pgid: i32) {
    send(pgid_table::forget(pgid));
}

fn send(message: Message) {
    let Some(State::Running { channel, .. }) = STATE.get() else {
        return;
    };
    // SAFETY: a 4-byte buffer we own; MSG_NOSIGNAL turns a dead guardian into
    // EPIPE instead of SIGPIPE, MSG_DONTWAIT keeps a stuck one from blocking us.
    let sent = unsafe {
        libc::send(
            channel.as_raw_fd(),
            message.as_ptr().cast(),
            message.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    if sent != message.len() as isize {
        trace_send_failure(io::Error::last_os_error());
    }
}

fn start() -> State {
    if disabled_by_env() {
        #[cfg(feature = "tracing")]
        tracing::debug!("processkit guardian disabled by PROCESSKIT_GUARDIAN");
        return State::Disabled;
    }
    match fork_guardian() {
        Ok((pid, channel)) => {
            #[cfg(feature = "tracing")]
            tracing::debug!(pid, "processkit guardian started");
            State::Running {
                pid,
                channel,
                exited: Mutex::new(None),
            }
        }
        Err(reason) => {
            #[cfg(feature = "tracing")]
            tracing::warn!(
                %reason,
                "processkit guardian unavailable: groups still work, but a SIGKILLed \
                 owner leaves its children running"
            );
            State::Failed(reason)
        }
    }
}

fn fork_guardian() -> Result<(libc::pid_t, OwnedFd), String> {
    // Everything the guardian needs is built here: after fork it may not allocate.
    let plan = Plan {
        cgroup_root: root_path().and_then(|p| CString::new(p.as_os_str().as_bytes()).ok()),
    };
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two new descriptors into the array we pass.
    // SEQPACKET keeps each 4-byte message whole; CLOEXEC keeps both ends out
    // of every child we exec.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "cannot create the guardian's socket pair: {}",
            io::Error::last_os_error()
        ));
    }
    // SAFETY: socketpair succeeded, so both descriptors are open and ours alone.
    let (owner_end, guardian_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the child runs only `guardian_process::run`, which makes
    // async-signal-safe syscalls on memory prepared above and never returns.
    match unsafe { libc::fork() } {
        0 => guardian_process::run(&plan, guardian_end.as_raw_fd()),
        -1 => Err(format!(
            "cannot fork the guardian: {}",
            io::Error::last_os_error()
        )),
        pid => Ok((pid, owner_end)),
    }
}

/// The per-process root, whether or not it exists yet: a group on the
/// process-group fallback may come first, and a cgroup one later.
fn root_path() -> Option<PathBuf> {
    if let Some(root) = cgroup::existing_root() {
        return Some(root.path.clone());
    }
    let mount = cgroup::find_cgroup2_mount(&fs::read_to_string("/proc/self/mountinfo").ok()?)?;
    let own = cgroup::own_cgroup(&fs::read_to_string("/proc/self/cgroup").ok()?)?;
    let pid = std::process::id();
    let name = cgroup::root_name(pid, cgroup::start_time(pid).ok()?);
    Some(mount.join(own.trim_start_matches('/')).join(name))
}

/// Why the guardian is gone, if it has exited (reaping it if so).
fn reap(pid: libc::pid_t) -> Option<String> {
    let mut status = 0;
    // SAFETY: waitpid on our own child with WNOHANG only writes `status`.
    match unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } {
        0 => None,
        -1 => Some(format!("the guardian (pid {pid}) is gone")),
        _ if libc::WIFSIGNALED(status) => Some(format!(
            "the guardian (pid {pid}) was killed by signal {}",
            libc::WTERMSIG(status)
        )),
        _ => Some(format!(
            "the guardian (pid {pid}) exited with status {}",
            libc::WEXITSTATUS(status)
        )),
    }
}

fn trace_send_failure(error: io::Error) {
    #[cfg(feature = "tracing")]
    tracing::warn!(%error, "cannot tell the processkit guardian about a process group");
    let _ = error;
}
