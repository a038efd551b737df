//! A child started outside every container on purpose. Unix: our child
//! starts a session and forks the program, then exits at once; the program
//! is nobody's child of ours (no zombie here, no process group, cgroup,
//! shim or parent-death signal of ours). Windows: a detached process that
//! breaks away from any job this process is in, where that job allows it.

use std::io;
use std::process::Stdio;

use super::spec::{OutputPlan, SpawnError, SpawnSpec, StdinPlan};
use super::std_spawn::apply_env;

/// Starts `spec` detached and returns the program's pid.
pub(crate) fn spawn(mut spec: SpawnSpec) -> Result<u32, SpawnError> {
    let (program, args) = spec.program_and_args();
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    apply_env(&mut cmd, &spec.env);
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    cmd.stdin(match std::mem::replace(&mut spec.stdin, StdinPlan::Null) {
        StdinPlan::Inherit => Stdio::inherit(),
        StdinPlan::Stage(file) => Stdio::from(file),
        StdinPlan::Null | StdinPlan::Pipe => Stdio::null(),
    });
    let stdout = std::mem::take(&mut spec.stdout);
    let stderr = match std::mem::take(&mut spec.stderr) {
        OutputPlan::Stdout => same_as(&stdout).map_err(SpawnError::Spawn)?,
        other => output(other),
    };
    cmd.stdout(output(stdout)).stderr(stderr);
    imp::spawn(cmd, &spec)
}

/// Where a stream goes: nothing of a detached child is read by us, so a
/// pipe (the default capture) becomes `/dev/null`.
fn output(plan: OutputPlan) -> Stdio {
    match plan {
        OutputPlan::Inherit => Stdio::inherit(),
        OutputPlan::File(file) => Stdio::from(file),
        OutputPlan::Pipe | OutputPlan::Null | OutputPlan::Stdout => Stdio::null(),
    }
}

/// stderr sent wherever stdout goes.
fn same_as(stdout: &OutputPlan) -> io::Result<Stdio> {
    Ok(match stdout {
        OutputPlan::File(file) => Stdio::from(file.try_clone()?),
        OutputPlan::Inherit => Stdio::inherit(),
        OutputPlan::Pipe | OutputPlan::Null | OutputPlan::Stdout => Stdio::null(),
    })
}

#[cfg(unix)]
mod imp {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;

    use super::super::spec::{SpawnError, SpawnSpec};

    /// Spawns our child (the intermediate) with a hook that starts a new
    /// session, forks the program, reports its pid on a pipe and exits; the
    /// program goes on to exec. std's own error pipe, inherited by the
    /// program, still reports a failed exec, and the spawn returns only
    /// once the program has exec'd (or failed to).
    pub(super) fn spawn(
        mut cmd: std::process::Command,
        spec: &SpawnSpec,
    ) -> Result<u32, SpawnError> {
        let mut setup = spec.setup.clone();
        setup.join = super::super::setup::Join::None;
        setup.setsid = true;
        setup.parent_death = None;
        // std enters the directory first, as us; after a privilege drop it is
        // entered again by its absolute path, as the new user.
        setup.cwd = None;
        if setup.drops_privileges()
            && let Some(dir) = &spec.cwd
        {
            use std::os::unix::ffi::OsStrExt;
            let absolute = std::path::absolute(dir)
                .ok()
                .and_then(|d| std::ffi::CString::new(d.as_os_str().as_bytes()).ok());
            setup.cwd = Some(absolute.ok_or_else(|| {
                SpawnError::Spawn(std::io::Error::from_raw_os_error(libc::ENOENT))
            })?);
        }
        // Both ends close on exec: only the intermediate writes.
        let (mut reader, writer) = std::io::pipe().map_err(SpawnError::Spawn)?;
        let report = writer.as_raw_fd();
        // SAFETY: in the forked child the hook makes only async-signal-safe
        // calls on data prepared here: the setup's syscalls, `fork`, one
        // `write` of a pid on the stack and `_exit`; it allocates nothing.
        // The program (the fork's child) returns to std, which execs.
        unsafe {
            cmd.pre_exec(move || {
                setup
                    .apply(false)
                    .map_err(|(_, errno)| std::io::Error::from_raw_os_error(errno))?;
                match libc::fork() {
                    -1 => Err(std::io::Error::last_os_error()),
                    0 => Ok(()),
                    pid => {
                        let bytes = pid.to_ne_bytes();
                        libc::write(report, bytes.as_ptr().cast(), bytes.len());
                        libc::_exit(0)
                    }
                }
            });
        }
        let spawned =
            crate::sys::orphans::own_spawn(|| cmd.spawn(), |c| Some(c.as_ref().ok()?.id()));
        // Ours closed, so a read cannot wait for a writer that is gone.
        drop(writer);
        let mut intermediate = spawned.map_err(|e| spec.classify(e))?;
        let mut pid = [0u8; size_of::<libc::pid_t>()];
        let read = reader.read_exact(&mut pid);
        // The intermediate has exited (or is about to): reaped here, so no
        // zombie of ours is left.
        let _ = intermediate.wait();
        read.map_err(SpawnError::Spawn)?;
        let pid = libc::pid_t::from_ne_bytes(pid);
        u32::try_from(pid)
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| SpawnError::Spawn(std::io::Error::other("no pid was reported")))
    }
}

#[cfg(windows)]
mod imp {
    use std::os::windows::process::CommandExt;

    use windows_sys::Win32::Foundation::ERROR_ACCESS_DENIED;
    use windows_sys::Win32::System::Threading::{
        CREATE_BREAKAWAY_FROM_JOB, CREATE_NEW_PROCESS_GROUP, DETACHED_PROCESS,
    };

    use super::super::spec::{SpawnError, SpawnSpec};

    /// A process without our console, in a process group of its own, that
    /// breaks away from any job this process is in. A job that forbids
    /// breakaway answers "access denied": the child then starts inside that
    /// job (none of ours: its owner decides its fate).
    pub(super) fn spawn(
        mut cmd: std::process::Command,
        spec: &SpawnSpec,
    ) -> Result<u32, SpawnError> {
        let detached = DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP;
        cmd.creation_flags(detached | CREATE_BREAKAWAY_FROM_JOB);
        let child = match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(ERROR_ACCESS_DENIED as i32) => {
                cmd.creation_flags(detached);
                cmd.spawn()
            }
            other => other,
        }
        .map_err(|e| spec.classify(e))?;
        // Dropping the handle leaves the process running.
        Ok(child.id())
    }
}
