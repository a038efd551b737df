//! The Linux clone spawner's front: whether it is used (and, once the
//! kernel refuses the clone, that it no longer is), and the child it starts,
//! killed with its tree if its caller never claims it.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

mod child;
mod clone;
mod clone3;
mod fds;
mod output_pipe;
pub(crate) mod pipe_thread;
pub(crate) mod thread;

use self::clone::{CloneError, Spawned};
pub(crate) use self::clone::{LaunchFailure, LaunchPlan, Launched, Prepared, child_error, launch};
pub(crate) use self::fds::{ParentEnds, Stack};
use super::{InputPipe, OsChild, ReadPipe, SpawnError, SpawnSpec, StartedChild};
use crate::sys::linux::pidfd_child::{self, PidfdChild};

/// Set `PROCESSKIT_SPAWNER=std` to spawn through std/tokio (fork + exec when
/// a pre-exec step is needed) instead of the vfork-style clone.
pub(crate) const SPAWNER_ENV: &str = "PROCESSKIT_SPAWNER";

/// The kernel refused the clone once; every later spawn uses std.
static REFUSED: AtomicBool = AtomicBool::new(false);

/// Whether to use the clone spawner; the first time it is not, says why in tracing.
fn usable() -> bool {
    static SAID: AtomicBool = AtomicBool::new(false);
    let Some(reason) = unavailable_reason() else {
        return true;
    };
    if !SAID.swap(true, Ordering::Relaxed) {
        crate::trace::trace_event!(info, "spawner_fallback", reason = %reason);
    }
    false
}

/// Why the clone spawner is not used, if it is not.
fn unavailable_reason() -> Option<&'static str> {
    static BY_ENV: OnceLock<bool> = OnceLock::new();
    let by_env = *BY_ENV.get_or_init(|| {
        std::env::var_os(SPAWNER_ENV).is_some_and(|v| v.as_bytes().trim_ascii() == b"std")
    });
    if by_env {
        return Some("PROCESSKIT_SPAWNER=std");
    }
    if !pidfd_child::supported() {
        return Some("this kernel cannot wait on pidfds (Linux 5.4+ is needed)");
    }
    if REFUSED.load(Ordering::Relaxed) {
        return Some("the kernel refused clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD)");
    }
    None
}

/// A cloned child and the parent's ends of its pipes.
#[derive(Debug)]
pub(crate) struct Cloned {
    pub(crate) child: ClonedChild,
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    /// Born in its cgroup by `clone3(CLONE_INTO_CGROUP)`.
    born_in_cgroup: bool,
}

/// A child the clone spawner started, until its caller claims it. Dropped
/// unclaimed (the start was cancelled, or failed after the clone), it is
/// killed with its tree and reaped: nobody else knows it exists.
#[derive(Debug)]
pub(crate) struct ClonedChild {
    pid: u32,
    /// `None` once claimed.
    pidfd: Option<OwnedFd>,
    /// Its cgroup's directory, when it joined one.
    cgroup: Option<Arc<OwnedFd>>,
    leads_group: bool,
}

impl ClonedChild {
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Takes the child over: from now on its handle owns it.
    fn claim(mut self) -> PidfdChild {
        let pidfd = self.pidfd.take().expect("a child is claimed once");
        PidfdChild::new(self.pid, pidfd)
    }
}

impl Drop for ClonedChild {
    fn drop(&mut self) {
        let Some(pidfd) = self.pidfd.take() else {
            return;
        };
        if let Some(dir) = &self.cgroup {
            kill_cgroup(dir);
        }
        // The unreaped child pins its pid, and so its group's id.
        if self.leads_group {
            let _ = crate::sys::unix::signal::group_signal(self.pid as i32, libc::SIGKILL);
        }
        let _ = rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
        crate::sys::linux::reaper::reap_orphan(pidfd);
    }
}

/// Writes `1` to `cgroup.kill` in the open cgroup directory `dir` (5.14+;
/// elsewhere killing the child itself does the work). Best effort.
pub(crate) fn kill_cgroup(dir: &OwnedFd) {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::WRONLY | OFlags::CLOEXEC;
    if let Ok(kill) = rustix::fs::openat(dir, c"cgroup.kill", flags, Mode::empty()) {
        let _ = rustix::io::write(&kill, b"1");
    }
}

/// Starts `spec` with the clone spawner. `None`: this kernel refuses the
/// clone (said once in tracing; later spawns skip it), so use std instead.
pub(crate) fn spawn(spec: &SpawnSpec) -> io::Result<Option<Cloned>> {
    // A caller's pre-exec hook is Rust code that may touch memory a
    // `CLONE_VM` child shares with us: only a forked child may run it.
    if !usable() || !spec.pre_exec.is_empty() {
        return Ok(None);
    }
    match clone::spawn(spec) {
        Ok(spawned) => Ok(Some(wrap(spec, spawned))),
        Err(CloneError::Other(e)) => Err(e),
        Err(CloneError::Unsupported(e)) => {
            if !REFUSED.swap(true, Ordering::Relaxed) {
                crate::trace::trace_event!(
                    warn,
                    "spawner_fallback",
                    reason = %format!("clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD) failed: {e}"),
                );
            }
            Ok(None)
        }
    }
}

/// Wraps a child at once, so it is killed if nobody takes it.
fn wrap(spec: &SpawnSpec, spawned: Spawned) -> Cloned {
    Cloned {
        child: ClonedChild {
            pid: spawned.pid,
            pidfd: Some(spawned.pidfd),
            cgroup: spec.setup.cgroup().cloned(),
            leads_group: spec.setup.leads_group(),
        },
        stdin: spawned.stdin,
        stdout: spawned.stdout,
        stderr: spawned.stderr,
        born_in_cgroup: spawned.born_in_cgroup,
    }
}

/// Takes a cloned child over with its pipes, registered with tokio.
pub(crate) fn claim(cloned: Cloned, raw_stdout: bool) -> Result<StartedChild, SpawnError> {
    let spawner = if cloned.born_in_cgroup {
        "clone3"
    } else {
        "clone"
    };
    let pipes = (cloned.stdin, cloned.stdout, cloned.stderr);
    with_pipes(
        OsChild::Pidfd(cloned.child.claim()),
        pipes,
        raw_stdout,
        spawner,
    )
}

/// Takes a program started under a subreaper shim over with its pipes.
pub(crate) fn claim_shim(
    mut spawned: crate::sys::linux::subreaper::ShimSpawn,
    raw_stdout: bool,
) -> Result<StartedChild, SpawnError> {
    let pipes = (
        spawned.stdin.take(),
        spawned.stdout.take(),
        spawned.stderr.take(),
    );
    with_pipes(
        OsChild::Shim(spawned.claim_child()),
        pipes,
        raw_stdout,
        "shim",
    )
}

/// A started child with the parent's ends of its pipes registered with tokio.
fn with_pipes(
    child: OsChild,
    (stdin, stdout, stderr): fds::ParentEnds,
    raw_stdout: bool,
    spawner: &'static str,
) -> Result<StartedChild, SpawnError> {
    use tokio::net::unix::pipe;
    let reader = |fd| -> Result<ReadPipe, SpawnError> {
        let pipe = pipe::Receiver::from_owned_fd_unchecked(fd).map_err(SpawnError::Contain)?;
        Ok(Box::new(output_pipe::OutputPipe::new(pipe)))
    };
    let stdin = match stdin {
        Some(fd) => {
            let pipe = pipe::Sender::from_owned_fd_unchecked(fd).map_err(SpawnError::Contain)?;
            Some(Box::new(pipe) as InputPipe)
        }
        None => None,
    };
    let (stdout, stage_stdout) = match stdout {
        Some(fd) if raw_stdout => (None, Some(fd)),
        Some(fd) => (Some(reader(fd)?), None),
        None => (None, None),
    };
    let stderr = stderr.map(reader).transpose()?;
    Ok(StartedChild {
        child,
        stdin,
        stdout,
        stage_stdout,
        stderr,
        spawner,
        foreground: None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::ffi::{CStr, CString};

    use super::*;
    use crate::sys::SpawnGate;
    use crate::sys::spawn::setup::{ChildSetup, Join};
    use crate::sys::spawn::spec::{Environment, StdinPlan};

    /// A spec running `argv` from `program` with stdout kept raw (the one
    /// builder every clone-spawner test uses).
    pub(crate) fn spec(program: &CStr, argv: &[&CStr], env: Environment, join: Join) -> SpawnSpec {
        SpawnSpec {
            argv: argv.iter().map(|&a| CString::from(a)).collect(),
            env,
            candidates: vec![program.into()],
            cwd: None,
            stdin: StdinPlan::Null,
            stdout: Default::default(),
            stderr: Default::default(),
            raw_stdout: true,
            setup: ChildSetup {
                join,
                ..ChildSetup::default()
            },
            arg0: None,
            pre_exec: Vec::new(),
            foreground: false,
        }
    }

    fn sleeper() -> SpawnSpec {
        let argv = [c"sleep", c"30"];
        spec(
            c"/bin/sleep",
            &argv,
            Environment::Exact(Vec::new()),
            Join::ProcessGroup,
        )
    }

    /// The state letter of `pid` while it is still a child of ours.
    fn our_child_state(pid: u32) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
        let state = fields.next()?.chars().next()?;
        let ppid: u32 = fields.next()?.parse().ok()?;
        (ppid == std::process::id()).then_some(state)
    }

    #[test]
    fn a_child_nobody_claims_is_killed_and_reaped() {
        let spec = sleeper();
        let spawned = clone::spawn(&spec).map_err(|e| format!("{e:?}")).unwrap();
        let started = wrap(&spec, spawned);
        let pid = started.child.pid();
        assert_eq!(our_child_state(pid).map(|s| s != 'Z'), Some(true));
        drop(started);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while our_child_state(pid).is_some() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(our_child_state(pid), None, "pid {pid} is still ours");
    }

    #[test]
    fn a_suspended_gate_refuses_the_spawn() {
        let gate = SpawnGate::default();
        gate.set(true);
        match crate::sys::spawn::spawn_now(sleeper(), &gate) {
            Err(SpawnError::Contain(e)) => assert_eq!(e.kind(), io::ErrorKind::ResourceBusy),
            other => panic!("{other:?}"),
        }
    }
}
