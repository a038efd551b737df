//! Starting one child in a slot from a lowered `SpawnSpec`. Linux tries the
//! vfork-style clone (`linux`); other platforms, and Linux when the kernel
//! refuses that clone, use std/tokio (`std_spawn`). Either way the caller
//! gets a `StartedChild`: the child and the parent's ends of its pipes.

pub(crate) mod detach;
#[cfg(target_os = "linux")]
pub(crate) mod linux;
pub(crate) mod lookup;
pub(crate) mod options;
#[cfg(unix)]
pub(crate) mod setup;
pub(crate) use self::options::{PreExec, SpawnOptions};
pub(crate) mod spec;
mod std_spawn;

use std::io;
use std::process::ExitStatus;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

pub(crate) use self::spec::{
    EnvPlan, Invalid, OutputPlan, SpawnError, SpawnSpec, StagePipe, StdinPlan,
};
use super::{Slot, SpawnGate};

/// The parent's end of a child's stdin.
pub(crate) type InputPipe = Box<dyn AsyncWrite + Send + Unpin>;
/// The parent's end of a child's stdout or stderr.
pub(crate) type ReadPipe = Box<dyn OutputSource>;

/// What a child's output is read from: anything tokio can read, which the
/// platform may recognise as its own pipe (to read it on a thread).
pub(crate) trait OutputSource: AsyncRead + Send + Unpin + std::any::Any {}

impl<T: AsyncRead + Send + Unpin + std::any::Any> OutputSource for T {}

/// A pipe read into a capture buffer by a thread of its own.
#[cfg(target_os = "linux")]
pub(crate) use self::linux::pipe_thread::PipeThread;

/// Where no platform thread reader exists: never made.
#[cfg(not(target_os = "linux"))]
pub(crate) enum PipeThread {}

#[cfg(not(target_os = "linux"))]
impl PipeThread {
    pub(crate) async fn ended(&mut self) -> Option<ReadPipe> {
        match *self {}
    }

    pub(crate) fn stop(&self) {
        match *self {}
    }
}

/// Moves `pipe` to a thread that appends it to `buf` until end-of-file or a
/// stop; hands it back where that cannot be done.
pub(crate) fn read_on_thread(
    pipe: ReadPipe,
    buf: Arc<std::sync::Mutex<Vec<u8>>>,
    progress: Arc<std::sync::atomic::AtomicU64>,
    grow: fn(&mut Vec<u8>),
) -> Result<PipeThread, ReadPipe> {
    #[cfg(target_os = "linux")]
    return linux::pipe_thread::start(pipe, buf, progress, grow);
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (buf, progress, grow);
        Err(pipe)
    }
}

/// A started child process, however it was spawned.
#[derive(Debug)]
pub(crate) enum OsChild {
    Std(tokio::process::Child),
    #[cfg(target_os = "linux")]
    Pidfd(super::linux::pidfd_child::PidfdChild),
    /// A program started by its subreaper shim, which reports its exit.
    #[cfg(target_os = "linux")]
    Shim(super::linux::subreaper::ShimChild),
    /// A program on a ConPTY pseudo console.
    #[cfg(all(windows, feature = "pty"))]
    ConPty(super::windows::conpty::ConPtyChild),
}

impl OsChild {
    /// The pid (std's child forgets it once reaped).
    pub(crate) fn id(&self) -> Option<u32> {
        match self {
            OsChild::Std(child) => child.id(),
            #[cfg(target_os = "linux")]
            OsChild::Pidfd(child) => Some(child.id()),
            #[cfg(target_os = "linux")]
            OsChild::Shim(child) => Some(child.id()),
            #[cfg(all(windows, feature = "pty"))]
            OsChild::ConPty(child) => Some(child.id()),
        }
    }

    /// Waits for the exit and reaps the child. Cancel-safe. On a runtime
    /// without an IO driver it is an error: the pidfd and shim paths find
    /// out as they register, a std child is checked first (tokio's would
    /// wait forever).
    pub(crate) async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let OsChild::Std(_) = self
            && let Err(e) = io_driver_available()
            && e.kind() == io::ErrorKind::Unsupported
        {
            return Err(e);
        }
        match self {
            OsChild::Std(child) => child.wait().await,
            #[cfg(target_os = "linux")]
            OsChild::Pidfd(child) => child.wait().await,
            #[cfg(target_os = "linux")]
            OsChild::Shim(child) => child.wait().await,
            #[cfg(all(windows, feature = "pty"))]
            OsChild::ConPty(child) => child.wait().await,
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
    /// The terminal, handed to the child's process group while it runs.
    pub(crate) foreground: Option<crate::sys::Foreground>,
}

/// A child just spawned, until `start` claims it: dropped unclaimed (a
/// cancelled start, a failure right after the spawn) it is killed with its
/// tree and reaped.
#[derive(Debug)]
pub(crate) enum Unclaimed {
    Std(std_spawn::StdChild),
    #[cfg(target_os = "linux")]
    Cloned(linux::Cloned),
    #[cfg(target_os = "linux")]
    Shim(super::linux::subreaper::ShimSpawn),
    #[cfg(all(windows, feature = "pty"))]
    ConPty(super::windows::conpty::Spawned),
}

impl Unclaimed {
    /// The child's pid.
    pub(crate) fn pid(&self) -> Option<u32> {
        match self {
            Unclaimed::Std(child) => child.get().ok().and_then(tokio::process::Child::id),
            #[cfg(target_os = "linux")]
            Unclaimed::Cloned(cloned) => Some(cloned.child.pid()),
            #[cfg(target_os = "linux")]
            Unclaimed::Shim(spawned) => Some(spawned.pid),
            #[cfg(all(windows, feature = "pty"))]
            Unclaimed::ConPty(spawned) => Some(spawned.pid),
        }
    }

    /// The pid of our own child: the program's, or its shim's.
    pub(crate) fn direct_child(&self) -> Option<u32> {
        match self {
            #[cfg(target_os = "linux")]
            Unclaimed::Shim(spawned) => spawned.forked_here.then(|| spawned.shim.pid()),
            _ => self.pid(),
        }
    }

    /// The child's process handle and pid, for its job (Windows).
    #[cfg(windows)]
    pub(crate) fn process(&self) -> io::Result<(std::os::windows::io::BorrowedHandle<'_>, u32)> {
        use std::os::windows::io::BorrowedHandle;
        let unreaped = || io::Error::other("the child was reaped before it was contained");
        match self {
            Unclaimed::Std(child) => {
                let child = child.get()?;
                let raw = child.raw_handle().ok_or_else(unreaped)?;
                let pid = child.id().ok_or_else(unreaped)?;
                // SAFETY: the child owns this process handle and outlives the borrow.
                Ok((unsafe { BorrowedHandle::borrow_raw(raw) }, pid))
            }
            #[cfg(all(windows, feature = "pty"))]
            Unclaimed::ConPty(spawned) => Ok((spawned.process()?, spawned.pid)),
        }
    }
}

/// Whether the current tokio runtime can register descriptors: one built
/// without `enable_io` panics on the first registration, and tokio has no
/// fallible way to ask, so a descriptor is registered for a moment first
/// (an eventfd on Linux: one descriptor, two fewer calls than a socket pair).
/// A runtime that passed is remembered per thread (a runtime keeps its
/// drivers for life), so a spawn pays for the probe once, not every time.
pub(crate) fn io_driver_available() -> io::Result<()> {
    thread_local! {
        static PASSED: std::cell::Cell<Option<tokio::runtime::Id>> =
            const { std::cell::Cell::new(None) };
    }
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(io::Error::other)?
        .id();
    if PASSED.get() == Some(runtime) {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use tokio::io::{Interest, unix::AsyncFd};

        let probe = probe_fd()?;
        // Deprecated for raw descriptors that may close early; an `OwnedFd`
        // moved in stays open as long as the `AsyncFd`. Its replacement
        // needs tokio 1.54.
        #[allow(deprecated)]
        let registered = std::panic::catch_unwind(move || {
            AsyncFd::with_interest(probe, Interest::READABLE).map(drop)
        });
        match registered {
            Ok(result) => result?,
            Err(_) => return Err(no_io_driver()),
        }
    }
    PASSED.set(Some(runtime));
    Ok(())
}

/// The error for a runtime without an IO driver.
#[cfg(unix)]
pub(crate) fn no_io_driver() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "the tokio runtime has no IO driver: build it with `enable_io()` (or `enable_all()`)",
    )
}

/// A pollable descriptor to register for a moment: an eventfd where there
/// is one (a single descriptor), a socket elsewhere.
#[cfg(unix)]
fn probe_fd() -> io::Result<std::os::fd::OwnedFd> {
    #[cfg(target_os = "linux")]
    {
        let flags = rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK;
        Ok(rustix::event::eventfd(0, flags)?)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let (probe, _peer) = std::os::unix::net::UnixStream::pair()?;
        probe.set_nonblocking(true)?;
        Ok(probe.into())
    }
}

/// Starts `spec` inside `slot`.
pub(crate) async fn start(
    mut spec: SpawnSpec,
    slot: &mut Slot,
) -> Result<StartedChild, SpawnError> {
    // Checked before anything starts: nothing is left running on this error.
    io_driver_available().map_err(SpawnError::Spawn)?;
    slot.prepare(&mut spec).map_err(SpawnError::Prepare)?;
    let raw_stdout = spec.raw_stdout;
    #[cfg(unix)]
    let foreground = spec.foreground;
    let child = spawn(spec, slot.gate()).await?;
    // Until claimed below, a failure kills and reaps the child.
    slot.attach(&child).map_err(SpawnError::Contain)?;
    #[cfg_attr(windows, allow(unused_mut))]
    let mut started = claim(child, raw_stdout)?;
    #[cfg(unix)]
    if foreground {
        started.foreground = started.child.id().and_then(crate::sys::Foreground::give);
    }
    Ok(started)
}

/// Spawns on this thread, or for a child that must die with this process
/// on the long-lived spawner thread: Linux's parent-death signal fires when
/// the *thread* that started the child ends. The job owns the spec (and the
/// descriptors in it): the caller may be gone by the time it runs.
async fn spawn(spec: SpawnSpec, gate: &Arc<SpawnGate>) -> Result<Unclaimed, SpawnError> {
    // The shim is the program's parent (its parent-death signal follows the
    // shim), so any thread may send the request.
    #[cfg(target_os = "linux")]
    if matches!(spec.setup.join, setup::Join::Subreaper) {
        return spawn_under_shim(spec, gate).await;
    }
    #[cfg(target_os = "linux")]
    if spec.setup.parent_death.is_some() {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| SpawnError::Spawn(io::Error::other(e)))?;
        let gate = Arc::clone(gate);
        let job = move || {
            // A std child registers with this runtime's reaper, as if spawned on it.
            let _context = runtime.enter();
            spawn_now(spec, &gate)
        };
        return linux::thread::run(job).await.map_err(SpawnError::Spawn)?;
    }
    spawn_now(spec, gate)
}

/// Sends the shim its request through `gate`, then awaits the program's
/// start outside it, so no worker thread waits while the program execs. A
/// group suspended meanwhile stops the run as it is attached (see
/// `SubreaperContainer::attach`). Dropped at any point, the shim tears down.
#[cfg(target_os = "linux")]
async fn spawn_under_shim(mut spec: SpawnSpec, gate: &SpawnGate) -> Result<Unclaimed, SpawnError> {
    use super::linux::subreaper;

    if !spec.pre_exec.is_empty() {
        return Err(SpawnError::Unsupported(
            "pre_exec under the subreaper mechanism",
        ));
    }
    // An idle shim that ended meanwhile, or a zygote found gone, makes the
    // next request go to another shim (forked here once the zygote is gone).
    for _ in 0..4 {
        let pending = super::orphans::own_spawn(
            || {
                let _entered = gate.enter()?;
                subreaper::request(&mut spec)
            },
            |p| p.as_ref().ok()?.direct_child(),
        )
        .map_err(|e| failed(&spec, e))?;
        if let Some(spawned) = pending.started().await.map_err(|e| failed(&spec, e))? {
            return Ok(Unclaimed::Shim(spawned));
        }
    }
    let gone = io::Error::new(
        io::ErrorKind::BrokenPipe,
        "every shim asked ended before starting the program",
    );
    Err(failed(&spec, gone))
}

/// Spawns so the orphan reaper (`reap_orphans`) never takes the child's status.
fn spawn_now(spec: SpawnSpec, gate: &SpawnGate) -> Result<Unclaimed, SpawnError> {
    super::orphans::own_spawn(
        || spawn_child(spec, gate),
        |c| c.as_ref().ok()?.direct_child(),
    )
}

/// The clone spawner where it is usable (it answers `None` when this
/// kernel refuses it), else std; through `gate`, held until the child
/// has exec'd.
fn spawn_child(mut spec: SpawnSpec, gate: &SpawnGate) -> Result<Unclaimed, SpawnError> {
    let _entered = gate.enter().map_err(|e| failed(&spec, e))?;
    #[cfg(all(windows, feature = "pty"))]
    if spec.conpty.is_some() {
        return super::windows::conpty::spawn(&mut spec)
            .map(Unclaimed::ConPty)
            .map_err(|e| failed(&spec, e));
    }
    #[cfg(target_os = "linux")]
    match linux::spawn(&spec) {
        Ok(Some(cloned)) => return Ok(Unclaimed::Cloned(cloned)),
        Ok(None) => {}
        Err(e) => return Err(failed(&spec, e)),
    }
    std_spawn::spawn(&mut spec)
        .map(Unclaimed::Std)
        .map_err(|e| failed(&spec, e))
}

/// A spawn refused because the tree is suspended (or the cgroup refuses a
/// member) is a containment error, like a start refused before it queued.
fn failed(spec: &SpawnSpec, error: io::Error) -> SpawnError {
    if error.kind() == io::ErrorKind::ResourceBusy {
        SpawnError::Contain(error)
    } else {
        spec.classify(error)
    }
}

/// Takes the child over with the parent's ends of its pipes.
fn claim(child: Unclaimed, raw_stdout: bool) -> Result<StartedChild, SpawnError> {
    match child {
        Unclaimed::Std(child) => claim_std(child, raw_stdout),
        #[cfg(target_os = "linux")]
        Unclaimed::Cloned(cloned) => linux::claim(cloned, raw_stdout),
        #[cfg(target_os = "linux")]
        Unclaimed::Shim(spawned) => linux::claim_shim(spawned, raw_stdout),
        #[cfg(all(windows, feature = "pty"))]
        Unclaimed::ConPty(spawned) => Ok(StartedChild {
            child: OsChild::ConPty(spawned.claim().map_err(SpawnError::Contain)?),
            stdin: None,
            stdout: None,
            stage_stdout: None,
            stderr: None,
            spawner: "conpty",
            foreground: None,
        }),
    }
}

fn claim_std(
    mut unclaimed: std_spawn::StdChild,
    raw_stdout: bool,
) -> Result<StartedChild, SpawnError> {
    let merged = unclaimed.merged.take();
    let child = unclaimed.get_mut().map_err(SpawnError::Spawn)?;
    let stdin = child.stdin.take().map(|p| Box::new(p) as InputPipe);
    let from_merged = merged
        .map(|reader| std_spawn::merged_reader(reader, raw_stdout))
        .transpose()
        .map_err(SpawnError::Contain)?;
    let (stdout, stage_stdout) = match (from_merged, child.stdout.take()) {
        (Some(Ok(pipe)), _) => (Some(pipe), None),
        (Some(Err(stage)), _) => (None, Some(stage)),
        (None, pipe) => match pipe {
            Some(pipe) if raw_stdout => {
                let raw = std_spawn::into_stage_pipe(pipe).map_err(SpawnError::Contain)?;
                (None, Some(raw))
            }
            Some(pipe) => {
                super::enlarge_pipe(&pipe);
                (Some(Box::new(pipe) as ReadPipe), None)
            }
            None => (None, None),
        },
    };
    let stderr = child.stderr.take().map(|p| Box::new(p) as ReadPipe);
    let child = unclaimed.claim().map_err(SpawnError::Spawn)?;
    Ok(StartedChild {
        child: OsChild::Std(child),
        stdin,
        stdout,
        stage_stdout,
        stderr,
        spawner: "std",
        foreground: None,
    })
}
