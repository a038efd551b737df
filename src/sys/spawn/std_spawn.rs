//! The std/tokio spawner: every platform's, and Linux's when the clone is
//! refused. std forks (or posix_spawns) and execs; the child's setup runs
//! in its pre-exec hook; on Windows the child starts suspended.

use std::io;
use std::process::Stdio;

use tokio::process::ChildStdout;

use super::spec::{Environment, SpawnSpec, StagePipe, StdinPlan};

/// A child std/tokio started, until its caller claims it. Dropped unclaimed
/// (a cancelled start, or a failure right after the spawn), it is killed
/// with its cgroup or its process group, whichever it has; tokio reaps it.
#[derive(Debug)]
pub(crate) struct StdChild {
    /// `None` once claimed.
    child: Option<tokio::process::Child>,
    leads_group: bool,
    /// The cgroup it joined, killed whole if the child is never claimed.
    #[cfg(target_os = "linux")]
    cgroup: Option<std::sync::Arc<std::os::fd::OwnedFd>>,
}

impl StdChild {
    pub(crate) fn get_mut(&mut self) -> io::Result<&mut tokio::process::Child> {
        self.child
            .as_mut()
            .ok_or_else(|| io::Error::other("the child was already claimed"))
    }

    pub(crate) fn get(&self) -> io::Result<&tokio::process::Child> {
        self.child
            .as_ref()
            .ok_or_else(|| io::Error::other("the child was already claimed"))
    }

    pub(crate) fn claim(mut self) -> io::Result<tokio::process::Child> {
        self.child
            .take()
            .ok_or_else(|| io::Error::other("the child was already claimed"))
    }
}

impl Drop for StdChild {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Its tree first: what it started may already be running.
        #[cfg(target_os = "linux")]
        if let Some(dir) = &self.cgroup {
            super::linux::kill_cgroup(dir);
        }
        // Unreaped, the child still pins its pid and so its group's id.
        #[cfg(unix)]
        if let Some(pid) = child.id().filter(|_| self.leads_group) {
            let _ = crate::sys::unix::signal::group_signal(pid as i32, libc::SIGKILL);
        }
        #[cfg(not(unix))]
        let _ = self.leads_group;
        let _ = child.start_kill();
    }
}

/// Starts `spec` through tokio; takes the stdin descriptor it hands on.
pub(crate) fn spawn(spec: &mut SpawnSpec) -> io::Result<StdChild> {
    let (program, args) = spec.program_and_args();
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args);
    apply_env(&mut cmd, &spec.env);
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    cmd.stdin(match std::mem::replace(&mut spec.stdin, StdinPlan::Null) {
        StdinPlan::Inherit => Stdio::inherit(),
        StdinPlan::Null => Stdio::null(),
        StdinPlan::Pipe => Stdio::piped(),
        StdinPlan::Stage(pipe) => Stdio::from(pipe),
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    #[cfg(unix)]
    install_setup(&mut cmd, spec)?;
    #[cfg(windows)]
    cmd.creation_flags(creation_flags(spec));
    let child = cmd.spawn()?;
    Ok(StdChild {
        child: Some(child),
        #[cfg(unix)]
        leads_group: spec.setup.leads_group(),
        #[cfg(not(unix))]
        leads_group: false,
        #[cfg(target_os = "linux")]
        cgroup: spec.setup.cgroup().cloned(),
    })
}

#[cfg(unix)]
fn apply_env(cmd: &mut tokio::process::Command, env: &Environment) {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let Environment::Exact(vars) = env else {
        return;
    };
    cmd.env_clear();
    for var in vars {
        // `NAME=value`; a name may start with `=` (as std reads `environ`).
        let bytes = var.to_bytes();
        if let Some(at) = bytes.iter().skip(1).position(|&b| b == b'=') {
            let (name, value) = bytes.split_at(at + 1);
            cmd.env(OsStr::from_bytes(name), OsStr::from_bytes(&value[1..]));
        }
    }
}

#[cfg(windows)]
fn apply_env(cmd: &mut tokio::process::Command, env: &Environment) {
    match env {
        Environment::Inherited => {}
        Environment::Overrides(overrides) => {
            for (name, value) in overrides {
                match value {
                    Some(v) => cmd.env(name, v),
                    None => cmd.env_remove(name),
                };
            }
        }
        Environment::Exact(vars) => {
            cmd.env_clear().envs(vars);
        }
    }
}

/// Installs the child's setup as std's pre-exec hook. std itself wires
/// stdio, enters the working directory and starts the process group (so
/// it can posix_spawn where nothing else is asked); the hook does the rest.
#[cfg(unix)]
fn install_setup(cmd: &mut tokio::process::Command, spec: &SpawnSpec) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;

    use super::setup::Join;

    let mut setup = spec.setup.clone();
    if matches!(setup.join, Join::ProcessGroup) && !setup.setsid {
        cmd.process_group(0);
        setup.join = Join::None;
    }
    // std enters the directory before the hook runs, as us: after dropping
    // privileges it is entered again, by its absolute path, as the new user.
    setup.cwd = None;
    if setup.drops_privileges()
        && let Some(dir) = &spec.cwd
    {
        let absolute = std::path::absolute(dir)
            .ok()
            .and_then(|d| CString::new(d.as_os_str().as_bytes()).ok());
        setup.cwd = Some(absolute.ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?);
    }
    // On Linux always: std then execs with `execvp`, which runs a file the
    // kernel cannot execute (no `#!`) with `/bin/sh`, like the clone
    // spawner; glibc's `posix_spawn` would fail with `ENOEXEC` instead.
    let needed = cfg!(any(target_os = "linux", target_os = "android"))
        || !matches!(setup.join, Join::None)
        || setup.setsid
        || setup.drops_privileges()
        || setup.parent_death.is_some();
    if needed {
        // SAFETY: `apply` makes only async-signal-safe syscalls on data
        // prepared before the fork and allocates nothing; the hook owns
        // that data (and the cgroup directory it names).
        unsafe {
            cmd.pre_exec(move || {
                setup
                    .apply(false)
                    .map_err(|(_, errno)| io::Error::from_raw_os_error(errno))
            });
        }
    }
    Ok(())
}

/// Suspended when the slot asks (a job is joined before the child runs),
/// without a console window when the command asks.
#[cfg(windows)]
fn creation_flags(spec: &SpawnSpec) -> u32 {
    use windows_sys::Win32::System::Threading::{CREATE_NO_WINDOW, CREATE_SUSPENDED};
    let mut flags = 0;
    if spec.start_suspended {
        flags |= CREATE_SUSPENDED;
    }
    if spec.create_no_window {
        flags |= CREATE_NO_WINDOW;
    }
    flags
}

/// The read end of `stdout` as a blocking descriptor for another child's stdin.
pub(crate) fn into_stage_pipe(stdout: ChildStdout) -> io::Result<StagePipe> {
    #[cfg(unix)]
    return stdout.into_owned_fd();
    #[cfg(windows)]
    return stdout.into_owned_handle();
}
