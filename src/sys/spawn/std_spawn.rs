//! The std/tokio spawner: every platform's, and Linux's when the clone is
//! refused. std forks (or posix_spawns) and execs; the child's setup runs
//! in its pre-exec hook; on Windows the child starts suspended.

use std::io;
use std::process::Stdio;

use tokio::process::ChildStdout;

use super::spec::{Environment, OutputPlan, SpawnSpec, StagePipe, StdinPlan};

/// A child std/tokio started, until its caller claims it. Dropped unclaimed
/// (a cancelled start, or a failure right after the spawn), it is killed
/// with its cgroup or its process group, whichever it has; tokio reaps it.
#[derive(Debug)]
pub(crate) struct StdChild {
    /// `None` once claimed.
    child: Option<tokio::process::Child>,
    /// The read end of the one pipe stdout and stderr share.
    pub(crate) merged: Option<std::io::PipeReader>,
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

/// stderr going wherever a stdout that is not piped goes.
fn same_as(stdout: &OutputPlan) -> io::Result<Stdio> {
    Ok(match stdout {
        OutputPlan::Pipe | OutputPlan::Stdout => Stdio::piped(),
        OutputPlan::Inherit => {
            #[cfg(unix)]
            let ours = std::os::fd::AsFd::as_fd(&io::stdout()).try_clone_to_owned()?;
            #[cfg(windows)]
            let ours =
                std::os::windows::io::AsHandle::as_handle(&io::stdout()).try_clone_to_owned()?;
            Stdio::from(ours)
        }
        OutputPlan::Null => Stdio::null(),
        OutputPlan::File(file) => Stdio::from(file.try_clone()?),
    })
}

/// What std makes of an output plan (stderr's `Stdout` is handled by the caller).
fn output(plan: OutputPlan) -> Stdio {
    match plan {
        OutputPlan::Pipe | OutputPlan::Stdout => Stdio::piped(),
        OutputPlan::Inherit => Stdio::inherit(),
        OutputPlan::Null => Stdio::null(),
        OutputPlan::File(file) => Stdio::from(file),
    }
}

/// Starts `spec` through tokio; takes the stdin descriptor it hands on.
pub(crate) fn spawn(spec: &mut SpawnSpec) -> io::Result<StdChild> {
    let (program, args) = spec.program_and_args();
    let mut cmd = tokio::process::Command::new(program);
    #[cfg(unix)]
    cmd.args(args);
    #[cfg(windows)]
    add_args(&mut cmd, args, &spec.raw_args);
    #[cfg(unix)]
    if let Some(arg0) = &spec.arg0 {
        use std::os::unix::ffi::OsStrExt;
        cmd.arg0(std::ffi::OsStr::from_bytes(arg0.to_bytes()));
    }
    apply_env(cmd.as_std_mut(), &spec.env);
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    cmd.stdin(match std::mem::replace(&mut spec.stdin, StdinPlan::Null) {
        StdinPlan::Inherit => Stdio::inherit(),
        StdinPlan::Null => Stdio::null(),
        StdinPlan::Pipe => Stdio::piped(),
        StdinPlan::Stage(pipe) => Stdio::from(pipe),
    });
    let stdout = std::mem::take(&mut spec.stdout);
    let stderr = std::mem::take(&mut spec.stderr);
    let mut merged = None;
    match (stdout, stderr) {
        // One pipe, both streams in write order.
        (OutputPlan::Pipe, OutputPlan::Stdout) => {
            let (reader, writer) = std::io::pipe()?;
            cmd.stderr(Stdio::from(writer.try_clone()?));
            cmd.stdout(Stdio::from(writer));
            merged = Some(reader);
        }
        (stdout, OutputPlan::Stdout) => {
            cmd.stderr(same_as(&stdout)?);
            cmd.stdout(output(stdout));
        }
        (stdout, stderr) => {
            cmd.stdout(output(stdout)).stderr(output(stderr));
        }
    }
    #[cfg(unix)]
    install_setup(&mut cmd, spec)?;
    #[cfg(windows)]
    cmd.creation_flags(creation_flags(spec));
    let child = cmd.spawn()?;
    Ok(StdChild {
        child: Some(child),
        merged,
        #[cfg(unix)]
        leads_group: spec.setup.leads_group(),
        #[cfg(not(unix))]
        leads_group: false,
        #[cfg(target_os = "linux")]
        cgroup: spec.setup.cgroup().cloned(),
    })
}

/// Gives the child the environment the spec resolved.
#[cfg(unix)]
pub(super) fn apply_env(cmd: &mut std::process::Command, env: &Environment) {
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

/// Gives the child the environment the spec resolved.
#[cfg(windows)]
pub(super) fn apply_env(cmd: &mut std::process::Command, env: &Environment) {
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
        || setup.parent_death.is_some()
        || setup.umask.is_some()
        || setup.priority.is_some()
        || setup.rlimits.iter().any(Option::is_some);
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
    for hook in &spec.pre_exec {
        let hook = hook.clone();
        // SAFETY: the caller promised, through `Command::pre_exec` (an
        // `unsafe fn`), that the hook is safe to run between fork and exec.
        unsafe {
            cmd.pre_exec(move || (hook.0)());
        }
    }
    Ok(())
}

/// The arguments in order, the raw ones where they were given.
#[cfg(windows)]
fn add_args<'a>(
    cmd: &mut tokio::process::Command,
    args: impl Iterator<Item = &'a std::ffi::OsStr>,
    raw: &[(usize, std::ffi::OsString)],
) {
    let mut raw = raw.iter().peekable();
    for (i, arg) in args.enumerate() {
        while let Some((_, r)) = raw.next_if(|(at, _)| *at == i) {
            cmd.raw_arg(r);
        }
        cmd.arg(arg);
    }
    for (_, r) in raw {
        cmd.raw_arg(r);
    }
}

/// Leading a console process group of its own (a graceful stop sends it
/// `CTRL_BREAK_EVENT` without the break reaching us), suspended when the
/// slot asks (a job is joined before the child runs), without a console
/// window when the command asks.
#[cfg(windows)]
fn creation_flags(spec: &SpawnSpec) -> u32 {
    use windows_sys::Win32::System::Threading::{
        CREATE_NEW_PROCESS_GROUP, CREATE_NO_WINDOW, CREATE_SUSPENDED,
    };
    let mut flags = spec.creation_flags | CREATE_NEW_PROCESS_GROUP;
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

/// The read end of the pipe stdout and stderr share, as the parent reads it:
/// raw for a pipeline's next stage, else registered with tokio (on Windows,
/// read by a thread of its own: tokio has no reader for anonymous pipes).
pub(crate) fn merged_reader(
    reader: std::io::PipeReader,
    raw: bool,
) -> io::Result<Result<super::ReadPipe, StagePipe>> {
    if raw {
        return Ok(Err(StagePipe::from(reader)));
    }
    #[cfg(unix)]
    {
        let fd = std::os::fd::OwnedFd::from(reader);
        rustix::fs::fcntl_setfl(&fd, rustix::fs::OFlags::NONBLOCK)?;
        let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd_unchecked(fd)?;
        Ok(Ok(Box::new(pipe)))
    }
    #[cfg(windows)]
    {
        let reader = crate::sys::thread_io::ThreadReader::start(reader, "processkit-pipe")?;
        Ok(Ok(Box::new(reader)))
    }
}
