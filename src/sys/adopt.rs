//! Which processes a group may adopt: never this process, its threads, its
//! ancestors or its guardian.

use std::io;

/// Whether a process with this pid exists (on Windows the Job Object
/// backend reports a missing one when it is adopted).
#[cfg(feature = "process-control")]
pub(crate) fn process_exists(pid: u32) -> bool {
    #[cfg(unix)]
    return super::unix::signal::pid_alive(pid);
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// The process to adopt for `pid`: the one it belongs to (a thread id
/// names its whole process). Refuses this process, its ancestors and its
/// guardian: killing the group would then kill the caller.
#[cfg(feature = "process-control")]
pub(crate) fn adoptable(pid: u32) -> io::Result<u32> {
    let refuse = |what: &str| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("pid {pid} cannot be adopted: it is {what}"),
        ))
    };
    #[cfg(target_os = "linux")]
    let pid = {
        let tgid = super::linux::ancestry::thread_group(pid)?;
        if tgid == std::process::id() {
            return refuse("a thread of this process");
        }
        if super::linux::ancestry::is_ancestor(tgid) {
            return refuse("an ancestor of this process");
        }
        if matches!(super::guardian_status(), super::GuardianState::Running { pid: g } if g == tgid)
        {
            return refuse("this process's guardian");
        }
        tgid
    };
    #[cfg(all(unix, not(target_os = "linux")))]
    if pid == std::os::unix::process::parent_id() {
        return refuse("the parent of this process");
    }
    if pid == std::process::id() {
        return refuse("this process");
    }
    Ok(pid)
}
