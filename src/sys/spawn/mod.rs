//! Starting one child in a slot. Linux uses the vfork-style clone spawner
//! (`linux::clone_spawn`); other platforms, and Linux when the kernel refuses
//! that clone, go through tokio/std. Either way the caller gets a `StartedChild`.

use std::io;
use std::process::{ExitStatus, Stdio};

use tokio::io::{AsyncRead, AsyncWrite};

#[cfg(target_os = "linux")]
pub(crate) mod linux;
#[cfg(unix)]
pub(crate) mod setup;
pub(crate) mod stdio;

use self::stdio::StagePipe;
use super::Slot;
use crate::command::Command;
use crate::error::Error;

/// The parent's end of a child's stdin.
pub(crate) type InputPipe = Box<dyn AsyncWrite + Send + Unpin>;
/// The parent's end of a child's stdout or stderr.
pub(crate) type ReadPipe = Box<dyn AsyncRead + Send + Unpin>;

/// Where a child's stdin comes from.
#[derive(Debug)]
pub(crate) enum StdinPlan {
    Inherit,
    Null,
    /// A pipe the parent writes.
    Pipe,
    /// The previous pipeline stage's stdout.
    Stage(StagePipe),
}

/// A started child process, however it was spawned.
#[derive(Debug)]
pub(crate) enum OsChild {
    Std(tokio::process::Child),
    #[cfg(target_os = "linux")]
    Pidfd(crate::sys::linux::pidfd_child::PidfdChild),
}

impl OsChild {
    /// The pid (std's child forgets it once reaped).
    pub(crate) fn id(&self) -> Option<u32> {
        match self {
            OsChild::Std(child) => child.id(),
            #[cfg(target_os = "linux")]
            OsChild::Pidfd(child) => Some(child.id()),
        }
    }

    /// Waits for the exit and reaps the child. Cancel-safe.
    pub(crate) async fn wait(&mut self) -> io::Result<ExitStatus> {
        match self {
            OsChild::Std(child) => child.wait().await,
            #[cfg(target_os = "linux")]
            OsChild::Pidfd(child) => child.wait().await,
        }
    }
}

/// A child and the parent's ends of its pipes.
pub(crate) struct StartedChild {
    pub(crate) child: OsChild,
    pub(crate) stdin: Option<InputPipe>,
    /// stdout for the parent to read (absent when `stage_stdout` is set).
    pub(crate) stdout: Option<ReadPipe>,
    /// stdout kept raw for the next pipeline stage.
    pub(crate) stage_stdout: Option<StagePipe>,
    pub(crate) stderr: Option<ReadPipe>,
    /// Which spawner started it: `clone3` (born in its cgroup), `clone`, or `std`.
    pub(crate) spawner: &'static str,
}

/// Why a child did not start.
#[derive(Debug)]
pub(crate) enum StartError {
    /// The command asks for something this platform cannot do.
    Refused(Error),
    /// The OS refused the spawn.
    Spawn(io::Error),
    /// The child could not be contained (it was ended).
    Contain(io::Error),
}

/// A child std/tokio started, until its caller claims it. Dropped unclaimed
/// (a cancelled start, or a failure right after the spawn), it is killed with
/// its process group when it leads one; tokio reaps it.
#[derive(Debug)]
pub(crate) struct Unclaimed {
    /// `None` once claimed.
    child: Option<tokio::process::Child>,
    leads_group: bool,
}

impl Unclaimed {
    pub(crate) fn new(child: tokio::process::Child, leads_group: bool) -> Unclaimed {
        Unclaimed {
            child: Some(child),
            leads_group,
        }
    }

    fn get_mut(&mut self) -> io::Result<&mut tokio::process::Child> {
        self.child
            .as_mut()
            .ok_or_else(|| io::Error::other("the child was already claimed"))
    }

    fn claim(mut self) -> io::Result<tokio::process::Child> {
        self.child
            .take()
            .ok_or_else(|| io::Error::other("the child was already claimed"))
    }
}

impl Drop for Unclaimed {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
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

/// Whether the current tokio runtime can register descriptors: one built
/// without `enable_io` panics on the first registration, and tokio has no
/// fallible way to ask, so a throwaway socket is registered first.
pub(crate) fn io_driver_available() -> io::Result<()> {
    tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
    #[cfg(unix)]
    {
        let (probe, _peer) = std::os::unix::net::UnixStream::pair()?;
        probe.set_nonblocking(true)?;
        let registered =
            std::panic::catch_unwind(move || tokio::net::UnixStream::from_std(probe).map(drop));
        match registered {
            Ok(result) => result?,
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "the tokio runtime has no IO driver: build it with `enable_io()` \
                     (or `enable_all()`)",
                ));
            }
        }
    }
    Ok(())
}

/// A spawn refused because the tree is suspended (or the cgroup refuses a
/// member) is a containment error, like a start refused before it queued.
fn spawn_failed(error: io::Error) -> StartError {
    if error.kind() == io::ErrorKind::ResourceBusy {
        StartError::Contain(error)
    } else {
        StartError::Spawn(error)
    }
}

/// Starts `cmd` inside `slot`. With `raw_stdout`, stdout is kept as a plain
/// descriptor for a pipeline's next stage instead of being read by us.
pub(crate) async fn start(
    cmd: &Command,
    stdin: StdinPlan,
    raw_stdout: bool,
    slot: &mut Slot,
) -> Result<StartedChild, StartError> {
    // Checked before anything starts: nothing is left running on this error.
    io_driver_available().map_err(StartError::Spawn)?;
    #[cfg(target_os = "linux")]
    let stdin = match linux::usable().then(|| slot.fast_join()).flatten() {
        Some(join) => match fast_start(cmd, stdin, raw_stdout, join, slot).await? {
            Ok(started) => return Ok(started),
            Err(stdin) => stdin,
        },
        None => stdin,
    };
    std_start(cmd, stdin, raw_stdout, slot).await
}

/// The clone spawner; `Ok(Err(stdin))` hands stdin back when the kernel
/// refuses that clone.
#[cfg(target_os = "linux")]
async fn fast_start(
    cmd: &Command,
    stdin: StdinPlan,
    raw_stdout: bool,
    join: linux::FastJoin,
    slot: &mut Slot,
) -> Result<Result<StartedChild, StdinPlan>, StartError> {
    use linux::clone::StdinWiring;
    use tokio::net::unix::pipe;

    let wiring = match stdin {
        StdinPlan::Inherit => StdinWiring::Inherit,
        StdinPlan::Null => StdinWiring::Null,
        StdinPlan::Pipe => StdinWiring::Pipe,
        StdinPlan::Stage(fd) => StdinWiring::Fd(fd),
    };
    let plan = linux::plan(cmd, wiring, raw_stdout, &join).map_err(StartError::Spawn)?;
    let gate = slot.gate();
    let started = match linux::spawn(plan, join, gate, cmd.os.kill_on_parent_death).await {
        Ok(Ok(started)) => started,
        Ok(Err(plan)) => {
            return Ok(Err(match plan.stdin {
                StdinWiring::Inherit => StdinPlan::Inherit,
                StdinWiring::Null => StdinPlan::Null,
                StdinWiring::Pipe => StdinPlan::Pipe,
                StdinWiring::Fd(fd) => StdinPlan::Stage(fd),
            }));
        }
        Err(e) => return Err(spawn_failed(e)),
    };
    slot.attach_pid(started.child.pid());
    // Until claimed below, a failure kills and reaps the child.
    let reader = |fd| -> Result<ReadPipe, StartError> {
        let pipe = pipe::Receiver::from_owned_fd_unchecked(fd).map_err(StartError::Contain)?;
        Ok(Box::new(pipe))
    };
    let stdin = match started.stdin {
        Some(fd) => {
            let pipe = pipe::Sender::from_owned_fd_unchecked(fd).map_err(StartError::Contain)?;
            Some(Box::new(pipe) as InputPipe)
        }
        None => None,
    };
    let (stdout, stage_stdout) = if raw_stdout {
        (None, Some(started.stdout))
    } else {
        (Some(reader(started.stdout)?), None)
    };
    let stderr = Some(reader(started.stderr)?);
    let spawner = if started.born_in_cgroup {
        "clone3"
    } else {
        "clone"
    };
    Ok(Ok(StartedChild {
        child: OsChild::Pidfd(started.child.claim()),
        stdin,
        stdout,
        stage_stdout,
        stderr,
        spawner,
    }))
}

/// tokio's spawner: posix_spawn, or fork + exec when the slot needs a
/// pre-exec step.
async fn std_start(
    cmd: &Command,
    stdin: StdinPlan,
    raw_stdout: bool,
    slot: &mut Slot,
) -> Result<StartedChild, StartError> {
    let mut tc = tokio::process::Command::new(&cmd.program);
    tc.args(&cmd.args);
    if cmd.env.starts_from_parent() {
        for (name, value) in &cmd.env.overrides {
            match value {
                Some(v) => tc.env(name, v),
                None => tc.env_remove(name),
            };
        }
    } else {
        tc.env_clear().envs(cmd.env.resolve());
    }
    if let Some(dir) = &cmd.cwd {
        tc.current_dir(dir);
    }
    tc.stdin(match stdin {
        StdinPlan::Inherit => Stdio::inherit(),
        StdinPlan::Null => Stdio::null(),
        StdinPlan::Pipe => Stdio::piped(),
        StdinPlan::Stage(pipe) => Stdio::from(pipe),
    });
    tc.stdout(Stdio::piped()).stderr(Stdio::piped());
    slot.prepare(&mut tc, &cmd.os)
        .map_err(StartError::Refused)?;
    let leads_group = slot.child_leads_group(&cmd.os);
    let mut unclaimed = crate::sys::spawn_child(tc, &cmd.os, slot.gate(), leads_group)
        .await
        .map_err(spawn_failed)?;
    let child = unclaimed.get_mut().map_err(StartError::Spawn)?;
    slot.attach(child).map_err(StartError::Contain)?;

    let stdin = child.stdin.take().map(|p| Box::new(p) as InputPipe);
    let stdout = child.stdout.take();
    let (stdout, stage_stdout) = match stdout {
        Some(pipe) if raw_stdout => {
            let raw = stdio::into_stage_pipe(pipe).map_err(StartError::Contain)?;
            (None, Some(raw))
        }
        Some(pipe) => {
            crate::sys::enlarge_pipe(&pipe);
            (Some(Box::new(pipe) as ReadPipe), None)
        }
        None => (None, None),
    };
    let stderr = child.stderr.take().map(|p| Box::new(p) as ReadPipe);
    let child = unclaimed.claim().map_err(StartError::Spawn)?;
    Ok(StartedChild {
        child: OsChild::Std(child),
        stdin,
        stdout,
        stage_stdout,
        stderr,
        spawner: "std",
    })
}
