//! The clone spawner's parent side: a vfork-style child (`CLONE_VM |
//! CLONE_VFORK` on a small stack of its own) runs `child::child_main` until
//! exec. No address space is copied, so a spawn costs the same whatever the
//! parent's RSS; the parent gets a pidfd and the child's verdict.

use std::ffi::{CString, c_char, c_int, c_void};
use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::ptr;

use super::child::{Shared, child_main};
use super::clone3;
use super::fds::{ParentEnds, Pipes, Stack};
use crate::sys::spawn::setup::{JoinView, SetupView, Step};
use crate::sys::spawn::spec::{Environment, SpawnSpec};

/// A started child: its pid, a pidfd, and the parent's ends of its pipes.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) pid: u32,
    pub(crate) pidfd: OwnedFd,
    pub(crate) stdin: Option<OwnedFd>,
    pub(crate) stdout: Option<OwnedFd>,
    pub(crate) stderr: Option<OwnedFd>,
    /// Born in its cgroup by `clone3(CLONE_INTO_CGROUP)`.
    pub(crate) born_in_cgroup: bool,
}

/// Starts the child described by `spec`. Errors name the step that failed;
/// a failed exec keeps its OS error code (so `NotFound` stays recognisable).
/// `EINVAL`/`ENOSYS`/`EPERM` from the clone itself mean this kernel (or a
/// seccomp filter) refuses `CLONE_PIDFD`: the caller then uses the std path.
pub(crate) fn spawn(spec: &SpawnSpec) -> Result<Spawned, CloneError> {
    let mut prepared = Prepared::new(spec).map_err(CloneError::Other)?;
    match prepared.launch(spec.setup.view()) {
        Ok(launched) => Ok(prepared.finish(launched)),
        Err(failure) => {
            prepared.release();
            Err(failure.into())
        }
    }
}

/// Everything a clone needs, made in the parent beforehand: the pipes, the
/// argument and environment arrays, a stack. `launch` then only makes
/// syscalls, so it can also run in a forked process that must not allocate.
pub(crate) struct Prepared {
    pipes: Pipes,
    argv: Vec<*const c_char>,
    script_argv: Vec<*const c_char>,
    envp: Vec<*const c_char>,
    candidates: Vec<*const c_char>,
    /// Owns the strings `envp` points to when the environment is inherited.
    inherited: Vec<CString>,
    stack: Stack,
}

/// A child that has exec'd.
pub(crate) struct Launched {
    pub(crate) pid: u32,
    pub(crate) pidfd: OwnedFd,
    born_in_cgroup: bool,
}

/// Why `launch` started nothing; plain numbers, so a forked shim can pass it on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LaunchFailure {
    /// The kernel (or a seccomp filter) refuses this clone: errno.
    Refused(c_int),
    /// The clone failed: errno.
    Clone(c_int),
    /// The child failed at `step` with errno.
    Child(Step, c_int),
}

/// What one clone reads: null-terminated arrays of NUL-terminated strings,
/// the child's stdio, its setup and a stack, all kept alive by the caller.
pub(crate) struct LaunchPlan<'a> {
    pub(crate) argv: *const *const c_char,
    pub(crate) envp: *const *const c_char,
    pub(crate) candidates: *const *const c_char,
    /// `/bin/sh`, a free slot, then `argv[1..]`, null-terminated.
    pub(crate) script_argv: *mut *const c_char,
    pub(crate) stdio: [RawFd; 3],
    pub(crate) setup: SetupView<'a>,
    pub(crate) stack: &'a Stack,
}

impl Prepared {
    pub(crate) fn new(spec: &SpawnSpec) -> io::Result<Prepared> {
        let pipes = Pipes::open(spec)?;
        let mut argv = null_terminated(&spec.argv);
        let script_argv = script_argv(&argv);
        // The program sees `arg0` as its name; exec goes by the candidates.
        if let Some(arg0) = &spec.arg0 {
            argv[0] = arg0.as_ptr();
        }
        // Our environment is copied under std's lock: the child's execve reads
        // it while our other threads run, and a `set_var` may free `environ`.
        let (envp, inherited) = match &spec.env {
            Environment::Exact(vars) => (null_terminated(vars), Vec::new()),
            Environment::Inherited => {
                let inherited = environment();
                (null_terminated(&inherited), inherited)
            }
        };
        Ok(Prepared {
            pipes,
            argv,
            script_argv,
            envp,
            candidates: null_terminated(&spec.candidates),
            inherited,
            stack: Stack::take()?,
        })
    }

    /// Clones the child with `setup` (see `launch`).
    pub(crate) fn launch(&mut self, setup: SetupView<'_>) -> Result<Launched, LaunchFailure> {
        launch(&LaunchPlan {
            argv: self.argv.as_ptr(),
            envp: self.envp.as_ptr(),
            candidates: self.candidates.as_ptr(),
            script_argv: self.script_argv.as_mut_ptr(),
            stdio: self.pipes.child_ends(),
            setup,
            stack: &self.stack,
        })
    }

    /// The child's environment as `NAME=value` strings (copied once, here).
    pub(crate) fn environment<'a>(&'a self, spec: &'a SpawnSpec) -> &'a [CString] {
        match &spec.env {
            Environment::Exact(vars) => vars,
            Environment::Inherited => &self.inherited,
        }
    }

    /// The child's ends of its stdio (-1: inherited).
    pub(crate) fn child_ends(&self) -> [RawFd; 3] {
        self.pipes.child_ends()
    }

    /// The parent's ends of the pipes of a launched child.
    pub(crate) fn finish(self, launched: Launched) -> Spawned {
        let (stdin, stdout, stderr) = self.into_parent_ends();
        Spawned {
            pid: launched.pid,
            pidfd: launched.pidfd,
            stdin,
            stdout,
            stderr,
            born_in_cgroup: launched.born_in_cgroup,
        }
    }

    /// The parent's ends of the pipes; the child's ends close here.
    pub(crate) fn into_parent_ends(self) -> ParentEnds {
        self.stack.give_back();
        self.pipes.into_parent_ends()
    }

    /// Nothing was started: keep the stack for the next spawn on this thread.
    pub(crate) fn release(self) {
        self.stack.give_back();
    }
}

/// Clones the child and waits (CLONE_VFORK) until it has exec'd or
/// failed. Async-signal-safe: no allocation, no lock.
pub(crate) fn launch(plan: &LaunchPlan<'_>) -> Result<Launched, LaunchFailure> {
    let mut shared = Shared {
        setup: plan.setup,
        candidates: plan.candidates,
        argv: plan.argv,
        envp: plan.envp,
        script_argv: plan.script_argv,
        stdio: plan.stdio,
        born_in_cgroup: false,
        failed_step: Step::None,
        errno: 0,
    };
    let mut pidfd: c_int = -1;
    // Block every signal so no handler of ours runs on the child's side of the
    // shared address space; the child resets dispositions before unblocking.
    let old_mask = block_all_signals();
    let mut result = Err(libc::ENOSYS);
    if let JoinView::Cgroup(dir) = plan.setup.join
        && clone3::usable()
    {
        shared.born_in_cgroup = true;
        let cloned = clone3::spawn(&mut shared, plan.stack, dir, &mut pidfd);
        if cloned.as_ref().is_err_and(clone3::is_refusal) {
            clone3::refused();
            shared.born_in_cgroup = false;
        }
        result = cloned.map_err(|e| e.raw_os_error().unwrap_or(libc::EIO));
    }
    if !shared.born_in_cgroup {
        let flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD;
        // SAFETY: `child_main` only makes async-signal-safe syscalls and never
        // returns into our frames; it runs on `stack`, which outlives the call
        // because CLONE_VFORK suspends this thread until the child execs or
        // exits. `shared` and everything it points to live in this frame.
        let pid = unsafe {
            libc::clone(
                child_main,
                plan.stack.top(),
                flags,
                ptr::from_mut(&mut shared).cast::<c_void>(),
                ptr::from_mut(&mut pidfd),
            )
        };
        result = if pid < 0 { Err(errno()) } else { Ok(pid) };
    }
    restore_signals(&old_mask);
    let pid = match result {
        Ok(pid) => pid,
        Err(e @ (libc::EINVAL | libc::ENOSYS | libc::EPERM)) => {
            return Err(LaunchFailure::Refused(e));
        }
        Err(e) => return Err(LaunchFailure::Clone(e)),
    };
    // SAFETY: with CLONE_PIDFD the kernel stored a new descriptor we now own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    // The child has exec'd or exited: `shared` holds its verdict.
    if shared.failed_step != Step::None {
        reap_failed(&pidfd);
        return Err(LaunchFailure::Child(shared.failed_step, shared.errno));
    }
    Ok(Launched {
        pid: pid as u32,
        pidfd,
        born_in_cgroup: shared.born_in_cgroup,
    })
}

impl From<LaunchFailure> for CloneError {
    fn from(failure: LaunchFailure) -> CloneError {
        match failure {
            LaunchFailure::Refused(e) => CloneError::Unsupported(io::Error::from_raw_os_error(e)),
            LaunchFailure::Clone(e) => CloneError::Other(io::Error::from_raw_os_error(e)),
            LaunchFailure::Child(step, e) => CloneError::Other(child_error(step, e)),
        }
    }
}

/// The error a child that failed at `step` with `errno` makes.
pub(crate) fn child_error(step: Step, errno: c_int) -> io::Error {
    let os = io::Error::from_raw_os_error(errno);
    if step == Step::Exec || step == Step::None {
        os
    } else {
        let what = step.describe();
        io::Error::new(os.kind(), format!("cannot {what}: {os}"))
    }
}

fn errno() -> c_int {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Why a clone spawn did not happen.
#[derive(Debug)]
pub(crate) enum CloneError {
    /// The kernel refuses this kind of clone: use another spawner.
    Unsupported(io::Error),
    /// The spawn itself failed.
    Other(io::Error),
}

fn block_all_signals() -> libc::sigset_t {
    // SAFETY: both sets live on the stack; pthread_sigmask changes this
    // thread's mask only and writes the old one into `old`.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        old
    }
}

fn restore_signals(old: &libc::sigset_t) {
    // SAFETY: `old` is the mask saved by block_all_signals.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old, ptr::null_mut()) };
}

fn null_terminated(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(ptr::null()))
        .collect()
}

/// `/bin/sh`, a slot for the script's path (filled by the child), then
/// `argv[1..]` with its terminating null: glibc's `execvp` fallback.
fn script_argv(argv: &[*const c_char]) -> Vec<*const c_char> {
    [c"/bin/sh".as_ptr(), ptr::null()]
        .into_iter()
        .chain(argv.iter().skip(1).copied())
        .collect()
}

/// This process's environment as `NAME=value` strings, read through std
/// (which holds its environment lock while copying).
fn environment() -> Vec<CString> {
    std::env::vars_os()
        .filter_map(|(name, value)| {
            // Sized once, with room for the NUL: no reallocation per variable.
            let mut pair = Vec::with_capacity(name.len() + value.len() + 2);
            pair.extend_from_slice(name.as_bytes());
            pair.push(b'=');
            pair.extend_from_slice(value.as_bytes());
            CString::new(pair).ok()
        })
        .collect()
}

/// Reaps a child that failed before exec (it has exited or is exiting).
fn reap_failed(pidfd: &OwnedFd) {
    use rustix::process::{WaitId, WaitIdOptions};
    let _ = rustix::process::waitid(WaitId::PidFd(pidfd.as_fd()), WaitIdOptions::EXITED);
}

#[cfg(test)]
mod tests {
    use crate::sys::spawn::setup::Join;
    use std::io::Read;

    use super::super::tests::spec;
    use super::*;
    use crate::sys::linux::cgroup;

    /// Spawns `sh -c 'cat /proc/self/cgroup'` into `cg` and returns its output.
    fn cgroup_seen_by_child(cg: &cgroup::Cgroup) -> String {
        let dir = std::sync::Arc::new(cg.dir_fd().unwrap());
        let argv = [c"sh", c"-c", c"cat /proc/self/cgroup"];
        let env = Environment::Exact(Vec::new());
        let plan = spec(c"/bin/sh", &argv, env, Join::Cgroup(dir));
        let spawned = spawn(&plan).map_err(|e| format!("{e:?}")).unwrap();
        reap_failed(&spawned.pidfd);
        let mut out = String::new();
        std::fs::File::from(spawned.stdout.expect("a piped stdout"))
            .read_to_string(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn a_child_is_in_its_cgroup_with_clone3_and_with_the_fallback() {
        let Ok(root) = cgroup::root() else {
            eprintln!("SKIP: no writable cgroup2 here");
            return;
        };
        let cg = root.create_child('t').unwrap();
        let expect = cg
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let born = cgroup_seen_by_child(&cg);
        // Later spawns in this test binary use the fallback: clone + cgroup.procs.
        clone3::refused();
        let joined = cgroup_seen_by_child(&cg);
        let _ = cg.kill();
        let _ = cgroup::remove_tree(cg.path());
        for out in [born, joined] {
            let line = out.lines().find(|l| l.starts_with("0::")).unwrap_or("");
            assert!(line.ends_with(&format!("/{expect}")), "{out}");
        }
    }

    /// Waits for `spawned` and returns its exit code (or 128 + signal).
    fn exit_code(spawned: &Spawned) -> i32 {
        use rustix::process::{WaitId, WaitIdOptions};
        let status =
            rustix::process::waitid(WaitId::PidFd(spawned.pidfd.as_fd()), WaitIdOptions::EXITED);
        let status = status.expect("waitid").expect("an exited child");
        match (status.exit_status(), status.terminating_signal()) {
            (Some(code), _) => code,
            (None, signal) => 128 + signal.unwrap_or(0),
        }
    }

    const ENV_RACE_HELPER: &str = "PK_CLONE_ENV_RACE_HELPER";

    #[test]
    fn spawns_racing_set_var_get_a_whole_environment() {
        if std::env::var_os(ENV_RACE_HELPER).is_some() {
            return race_set_var_against_spawns();
        }
        // Run where a crash cannot take the test harness down.
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sys::spawn::linux::clone::tests::spawns_racing_set_var_get_a_whole_environment",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV_RACE_HELPER, "1")
            .env("PK_RACE_FIXED", "fixed")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let errors = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "{:?}\n{text}\n{errors}",
            out.status
        );
    }

    /// One thread grows and shrinks the environment (so `environ` moves and
    /// is freed) while this one spawns children that check theirs.
    fn race_set_var_against_spawns() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let churn = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let value = "v".repeat(100);
                while !stop.load(Ordering::Relaxed) {
                    for k in 0..64 {
                        // SAFETY: in this helper process nothing but the
                        // spawner under test reads the environment meanwhile.
                        unsafe { std::env::set_var(format!("PK_RACE_{k}"), &value) };
                    }
                    for k in 0..64 {
                        // SAFETY: as above.
                        unsafe { std::env::remove_var(format!("PK_RACE_{k}")) };
                    }
                }
            })
        };
        let mut failures = Vec::new();
        for round in 0..400 {
            let argv = [c"sh", c"-c", c"test \"$PK_RACE_FIXED\" = fixed"];
            let plan = spec(
                c"/bin/sh",
                &argv,
                Environment::Inherited,
                Join::ProcessGroup,
            );
            match spawn(&plan) {
                Ok(spawned) => match exit_code(&spawned) {
                    0 => {}
                    code => failures.push(format!("round {round}: exit {code}")),
                },
                Err(CloneError::Other(e) | CloneError::Unsupported(e)) => {
                    failures.push(format!("round {round}: {e}"))
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        churn.join().unwrap();
        assert!(
            failures.is_empty(),
            "{} failures: {failures:?}",
            failures.len()
        );
    }
}
