//! Choosing and feeding the fast spawner: turns a `Command` into a `Plan` of
//! C strings, remembers whether this kernel accepts the clone, routes children
//! that must die with us through the long-lived spawner thread, and kills a
//! started child that its caller never claims.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

pub(crate) mod child;
pub(crate) mod clone;
mod clone3;
mod fds;
pub(crate) mod thread;

use self::clone::{CloneError, Join, Plan, Spawned, StdinWiring};
use crate::command::Command;
use crate::sys::SpawnGate;
use crate::sys::linux::pidfd_child::{self, PidfdChild};

/// Set `PROCESSKIT_SPAWNER=std` to spawn through std/tokio (fork + exec when
/// a pre-exec step is needed) instead of the vfork-style clone.
pub(crate) const SPAWNER_ENV: &str = "PROCESSKIT_SPAWNER";

/// The kernel refused the clone once; every later spawn uses std.
static REFUSED: AtomicBool = AtomicBool::new(false);

/// Whether to use the fast spawner; the first time it is not, says why in tracing.
pub(crate) fn usable() -> bool {
    static SAID: AtomicBool = AtomicBool::new(false);
    let Some(reason) = unavailable_reason() else {
        return true;
    };
    if !SAID.swap(true, Ordering::Relaxed) {
        crate::trace::trace_event!(info, "spawner_fallback", reason = %reason);
    }
    false
}

/// Why the fast spawner is not used, if it is not.
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

/// How a cloned child joins its slot. The cgroup directory is owned: the plan
/// names it by number, so it must stay open for as long as the spawn may run.
#[derive(Debug)]
pub(crate) enum FastJoin {
    Cgroup(OwnedFd),
    ProcessGroup,
}

impl FastJoin {
    fn join(&self) -> Join {
        match self {
            FastJoin::Cgroup(dir) => Join::Cgroup(dir.as_raw_fd()),
            FastJoin::ProcessGroup => Join::ProcessGroup,
        }
    }
}

/// A started child and the parent's ends of its pipes.
#[derive(Debug)]
pub(crate) struct Started {
    pub(crate) child: ClonedChild,
    pub(crate) stdin: Option<OwnedFd>,
    pub(crate) stdout: OwnedFd,
    pub(crate) stderr: OwnedFd,
    /// Born in its cgroup by `clone3(CLONE_INTO_CGROUP)`.
    pub(crate) born_in_cgroup: bool,
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
    cgroup: Option<OwnedFd>,
    leads_group: bool,
}

impl ClonedChild {
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Takes the child over: from now on its handle owns it.
    pub(crate) fn claim(mut self) -> PidfdChild {
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
        // SAFETY: pidfd is our child's pidfd; a null siginfo is allowed; flags 0.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<u8>(),
                0,
            )
        };
        crate::sys::linux::reaper::reap_orphan(pidfd);
    }
}

/// Writes `1` to `cgroup.kill` in the open cgroup directory `dir` (5.14+;
/// elsewhere the pidfd's SIGKILL does the work). Best effort.
fn kill_cgroup(dir: &OwnedFd) {
    // SAFETY: openat on our open directory with a static NUL-terminated name;
    // the result is a new descriptor or -1.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c"cgroup.kill".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        )
    };
    if fd >= 0 {
        // SAFETY: fd was just opened and is owned by nothing else.
        let kill = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: writes one byte from a static buffer to our open descriptor.
        unsafe { libc::write(kill.as_raw_fd(), b"1".as_ptr().cast(), 1) };
    }
}

/// Builds the child's plan: argv, environment, the paths exec will try, cwd.
pub(crate) fn plan(
    cmd: &Command,
    stdin: StdinWiring,
    raw_stdout: bool,
    join: &FastJoin,
) -> io::Result<Plan> {
    let join = join.join();
    let argv = std::iter::once(&cmd.program)
        .chain(&cmd.args)
        .map(|s| c_string(s))
        .collect::<io::Result<Vec<_>>>()?;
    let inherits_unchanged = cmd.env.starts_from_parent() && cmd.env.overrides.is_empty();
    let (envp, path) = if inherits_unchanged {
        (None, std::env::var_os("PATH"))
    } else {
        let mut env = cmd.env.resolve();
        let path = env.remove(OsStr::new("PATH"));
        let path_var = path.as_deref().map(|p| (OsStr::new("PATH"), p));
        let vars = env
            .iter()
            .map(|(name, value)| (name.as_os_str(), value.as_os_str()))
            .chain(path_var)
            .map(|(name, value)| {
                let mut pair = name.as_bytes().to_vec();
                pair.push(b'=');
                pair.extend_from_slice(value.as_bytes());
                CString::new(pair).map_err(nul_error)
            })
            .collect::<io::Result<Vec<_>>>()?;
        (Some(vars), path)
    };
    let os = &cmd.os;
    let drops_privileges = os.uid.is_some() || os.gid.is_some() || os.groups.is_some();
    Ok(Plan {
        candidates: exec_candidates(&cmd.program, path.as_deref())?,
        argv,
        envp,
        cwd: cmd
            .cwd
            .as_deref()
            .map(|d| c_string(d.as_os_str()))
            .transpose()?,
        stdin,
        raw_stdout,
        join,
        setsid: os.setsid,
        groups: drops_privileges.then(|| os.groups.clone().unwrap_or_default()),
        gid: os.gid,
        uid: os.uid,
        parent_death: os
            .kill_on_parent_death
            .then(|| std::process::id() as libc::pid_t),
    })
}

/// Starts the planned child (planned with `join`) through `gate`. `Ok(Err)`
/// hands the plan back: this kernel refuses the clone (said once in
/// tracing), so the caller uses std instead.
pub(crate) async fn spawn(
    plan: Plan,
    join: FastJoin,
    gate: &Arc<SpawnGate>,
    kill_on_parent_death: bool,
) -> io::Result<Result<Started, Plan>> {
    let (plan, result) = if kill_on_parent_death {
        // PR_SET_PDEATHSIG fires when the *thread* that cloned the child ends.
        // The job owns the plan and the directory it names: the caller may be
        // gone (and its slot closed) by the time the job runs.
        let gate = Arc::clone(gate);
        thread::run(move || spawn_now(plan, join, &gate)).await?
    } else {
        spawn_now(plan, join, gate)
    };
    match result {
        Ok(started) => Ok(Ok(started)),
        Err(CloneError::Other(e)) => Err(e),
        Err(CloneError::Unsupported(e)) => {
            if !REFUSED.swap(true, Ordering::Relaxed) {
                crate::trace::trace_event!(
                    warn,
                    "spawner_fallback",
                    reason = %format!("clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD) failed: {e}"),
                );
            }
            Ok(Err(plan))
        }
    }
}

/// Clones unless the slot's tree is suspended, and wraps the child at once so
/// it is killed if nobody takes it.
fn spawn_now(plan: Plan, join: FastJoin, gate: &SpawnGate) -> (Plan, Result<Started, CloneError>) {
    let entered = match gate.enter() {
        Ok(entered) => entered,
        Err(e) => return (plan, Err(CloneError::Other(e))),
    };
    let result = clone::spawn(&plan);
    drop(entered);
    let started = result.map(|spawned: Spawned| Started {
        child: ClonedChild {
            pid: spawned.pid,
            pidfd: Some(spawned.pidfd),
            cgroup: match join {
                FastJoin::Cgroup(dir) => Some(dir),
                FastJoin::ProcessGroup => None,
            },
            leads_group: matches!(plan.join, Join::ProcessGroup) || plan.setsid,
        },
        stdin: spawned.stdin,
        stdout: spawned.stdout,
        stderr: spawned.stderr,
        born_in_cgroup: spawned.born_in_cgroup,
    });
    (plan, started)
}

/// The paths exec tries, like `execvp`: a name with a slash as is, a bare
/// name in each `PATH` directory (an empty entry is the working directory).
fn exec_candidates(program: &OsStr, path: Option<&OsStr>) -> io::Result<Vec<CString>> {
    if program.as_bytes().contains(&b'/') {
        return Ok(vec![c_string(program)?]);
    }
    // glibc's search list when PATH is unset.
    let path = path.unwrap_or(OsStr::new("/bin:/usr/bin"));
    path.as_bytes()
        .split(|&b| b == b':')
        .map(|dir| {
            if dir.is_empty() {
                return c_string(program);
            }
            c_string(Path::new(OsStr::from_bytes(dir)).join(program).as_os_str())
        })
        .collect()
}

fn c_string(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(nul_error)
}

fn nul_error(_: std::ffi::NulError) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "a NUL byte in a spawn argument",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: Vec<CString>) -> Vec<String> {
        v.into_iter().map(|c| c.into_string().unwrap()).collect()
    }

    #[test]
    fn a_bare_name_is_searched_in_every_path_entry() {
        let found = exec_candidates(OsStr::new("ls"), Some(OsStr::new("/a::/b/"))).unwrap();
        assert_eq!(strings(found), ["/a/ls", "ls", "/b/ls"]);
    }

    #[test]
    fn a_name_with_a_slash_is_taken_as_is() {
        let found = exec_candidates(OsStr::new("./tool"), Some(OsStr::new("/a"))).unwrap();
        assert_eq!(strings(found), ["./tool"]);
    }

    #[test]
    fn without_path_the_default_list_is_searched() {
        let found = exec_candidates(OsStr::new("sh"), None).unwrap();
        assert_eq!(strings(found), ["/bin/sh", "/usr/bin/sh"]);
    }

    fn sleeper() -> Plan {
        Plan {
            candidates: vec![c"/bin/sleep".into()],
            argv: vec![c"sleep".into(), c"30".into()],
            envp: Some(Vec::new()),
            cwd: None,
            stdin: StdinWiring::Null,
            raw_stdout: true,
            join: Join::ProcessGroup,
            setsid: false,
            groups: None,
            gid: None,
            uid: None,
            parent_death: None,
        }
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
        let (_, started) = spawn_now(sleeper(), FastJoin::ProcessGroup, &SpawnGate::default());
        let started = started.map_err(|e| format!("{e:?}")).unwrap();
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
    fn a_suspended_gate_refuses_the_clone() {
        let gate = SpawnGate::default();
        gate.set(true);
        let (_, started) = spawn_now(sleeper(), FastJoin::ProcessGroup, &gate);
        match started {
            Err(CloneError::Other(e)) => assert_eq!(e.kind(), io::ErrorKind::ResourceBusy),
            other => panic!("{other:?}"),
        }
    }
}
