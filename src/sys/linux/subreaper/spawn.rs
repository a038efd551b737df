//! The owner's side of a shim: send the request (to a spare of the zygote,
//! or fork the shim here), then await the program's pid and pidfd through
//! tokio; shutting our end of the socket down tells the shim to kill the tree.

use std::io;
use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendFlags, Shutdown,
    SocketFlags, SocketType,
};
use rustix::process::{Pid, PidfdFlags};
use tokio::io::unix::AsyncFd;

use super::child::{Reader, Registration, ShimChild, register};
use super::pool::{self, IdleShim};
use super::shim;
use super::wire::{self, FAILED, Failure, Message, STARTED};
use crate::sys::linux::reaper;
use crate::sys::spawn::SpawnSpec;
use crate::sys::spawn::linux::{LaunchFailure, ParentEnds, Prepared, child_error};

/// One run's shim, as its owner holds it. A zygote's shim whose run ended
/// untouched goes back to the pool (`pool`) when this is dropped.
#[derive(Debug)]
pub(crate) struct Shim {
    pid: u32,
    /// Our child's pidfd, or one the shim sent: readable once the shim (and
    /// so its tree) is gone. `None` only once dropped.
    pidfd: Option<OwnedFd>,
    channel: Option<OwnedFd>,
    /// Can serve another run (a zygote's shim, with the buffers for it).
    reusable: bool,
    /// When the shim reported the program's exit with nothing left below it:
    /// it now waits, idle, for another request or to be let go.
    idle: OnceLock<Instant>,
    /// The run was signalled, stopped or killed: never reused.
    tainted: AtomicBool,
}

impl Shim {
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    fn channel(&self) -> Option<&OwnedFd> {
        self.channel.as_ref()
    }

    /// Tells the shim to kill its whole tree and exit: our end of the socket
    /// shuts down, which the shim reads as end-of-file (as it would if we
    /// died). Cannot fail for want of memory; repeating it is harmless. An
    /// idle shim's tree has ended: nothing is left to kill.
    pub(crate) fn kill(&self) {
        if self.idle.get().is_some() {
            return;
        }
        self.tainted.store(true, Ordering::Relaxed);
        self.shut_down();
    }

    fn shut_down(&self) {
        if let Some(channel) = self.channel() {
            let _ = rustix::net::shutdown(channel, Shutdown::Write);
        }
        // A member may have stopped the shim (SIGSTOP cannot be blocked).
        if let Some(pidfd) = &self.pidfd {
            let _ = crate::sys::linux::pidfd::send_signal(pidfd.as_fd(), libc::SIGCONT, 0);
        }
    }

    /// Marks the run as signalled or stopped: its shim is never reused, and
    /// is told so (it exits once its tree is empty, as it would unshared).
    pub(crate) fn taint(&self) {
        if self.tainted.swap(true, Ordering::Relaxed) || !self.reusable {
            return;
        }
        if let Some(channel) = self.channel() {
            let flags = SendFlags::NOSIGNAL | SendFlags::DONTWAIT;
            if rustix::net::send(channel, &wire::RETIRE, flags).is_err() {
                self.shut_down();
            }
        }
    }

    /// Records the shim's report that the tree has ended and it is idle.
    pub(super) fn mark_idle(&self) {
        let _ = self.idle.set(Instant::now());
    }

    /// Whether the run's tree may still have processes: the shim runs and
    /// has not reported it empty.
    pub(crate) fn is_alive(&self) -> bool {
        self.idle.get().is_none() && self.pidfd.as_ref().is_some_and(pool::alive)
    }

    /// Another descriptor of our end of the socket.
    pub(super) fn copy_channel(&self) -> io::Result<OwnedFd> {
        match self.channel() {
            Some(channel) => channel.try_clone(),
            None => Err(io::Error::from_raw_os_error(libc::EBADF)),
        }
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        let untouched = !self.tainted.load(Ordering::Relaxed);
        if let (true, true, Some(&since)) = (self.reusable, untouched, self.idle.get())
            && let (Some(pidfd), Some(channel)) = (self.pidfd.take(), self.channel.take())
        {
            pool::give_back(pool::IdleShim {
                pid: self.pid,
                pidfd,
                channel,
                since,
            });
            return;
        }
        self.shut_down();
    }
}

/// A program just started under its shim, until its run claims it; dropped
/// unclaimed, its tree is killed.
#[derive(Debug)]
pub(crate) struct ShimSpawn {
    pub(crate) shim: Arc<Shim>,
    /// The shim is our child (forked here), not the zygote's.
    pub(crate) forked_here: bool,
    pub(crate) pid: u32,
    program: Option<OwnedFd>,
    /// A copy of the socket, made before the start: waiting needs no
    /// descriptor, and it is registered with tokio already.
    reader: Option<Reader>,
    pub(crate) stdin: Option<OwnedFd>,
    pub(crate) stdout: Option<OwnedFd>,
    pub(crate) stderr: Option<OwnedFd>,
}

impl ShimSpawn {
    /// The handle that waits for the program.
    pub(crate) fn claim_child(&mut self) -> ShimChild {
        ShimChild {
            pid: self.pid,
            _pidfd: self.program.take(),
            shim: Arc::clone(&self.shim),
            reader: self.reader.take(),
            status: None,
        }
    }
}

impl Drop for ShimSpawn {
    fn drop(&mut self) {
        if self.program.is_some() {
            self.shim.kill();
        }
    }
}

/// A start on its way: the shim has (or is about to read) the request; its
/// report is awaited with `started`. Dropped before that, at any point, the
/// shim is told to tear down, which kills whatever it started.
#[derive(Debug)]
pub(crate) struct PendingShim {
    /// Our end of the socket, non-blocking; `None` once a `Shim` owns it.
    channel: Option<OwnedFd>,
    /// The shim's pid and pidfd when it was forked here (our child).
    forked: Option<(u32, OwnedFd)>,
    /// The shim's pid and pidfd when it is an idle one, reused.
    reused: Option<(u32, OwnedFd)>,
    ends: Option<ParentEnds>,
}

/// Asks for `spec` to start under a shim of its own: a spare the zygote
/// forked ahead takes the request when a zygote runs (cheap: no fork on
/// this path), else the shim is forked from this process. Returns once the
/// request is on its way; `PendingShim::started` awaits the program.
pub(crate) fn request(spec: &mut SpawnSpec) -> io::Result<PendingShim> {
    if let Some(sent) = super::zygote::send_request(spec) {
        return sent;
    }
    let mut prepared = Prepared::new(spec)?;
    let (channel, shim_end) = match socket_pair() {
        Ok(pair) => pair,
        Err(e) => {
            prepared.release();
            return Err(e);
        }
    };
    let setup = spec.setup.view();
    let ignored = shim::ignored_here();
    // SAFETY: the child runs only `shim::run`, which makes async-signal-safe
    // syscalls on memory prepared above (its copy of it) and never returns.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        shim::run(shim_end.as_raw_fd(), |me| {
            shim::ignore_like_owner(ignored, 0);
            let mut setup = setup;
            setup.parent_death = setup.parent_death.map(|_| me);
            prepared.launch(setup)
        });
    }
    if pid < 0 {
        prepared.release();
        return Err(io::Error::last_os_error());
    }
    drop(shim_end);
    let pidfd = adopt(pid)?;
    // The request is on its way from here: a failure tears the shim down.
    let pending = PendingShim {
        channel: Some(channel),
        forked: Some((pid as u32, pidfd)),
        reused: None,
        ends: Some(prepared.into_parent_ends()),
    };
    pending.nonblocking()?;
    Ok(pending)
}

impl PendingShim {
    /// A start whose request went to the zygote over `channel`'s peer.
    pub(super) fn sent(channel: OwnedFd, ends: ParentEnds) -> io::Result<PendingShim> {
        let pending = PendingShim {
            channel: Some(channel),
            forked: None,
            reused: None,
            ends: Some(ends),
        };
        pending.nonblocking()?;
        Ok(pending)
    }

    /// A start whose request went to an idle shim (its socket is
    /// non-blocking already).
    pub(super) fn reused(shim: IdleShim, ends: ParentEnds) -> PendingShim {
        PendingShim {
            channel: Some(shim.channel),
            forked: None,
            reused: Some((shim.pid, shim.pidfd)),
            ends: Some(ends),
        }
    }

    fn nonblocking(&self) -> io::Result<()> {
        if let Some(channel) = &self.channel {
            rustix::io::ioctl_fionbio(channel, true)?;
        }
        Ok(())
    }

    /// The pid of our own child, if the shim is one (forked here).
    pub(crate) fn direct_child(&self) -> Option<u32> {
        self.forked.as_ref().map(|(pid, _)| *pid)
    }

    /// Awaits the shim's first message without holding a worker thread: the
    /// program runs (its pid and pidfd, the shim's pid and pidfd unless we
    /// forked it), or why not. `None`: the idle shim asked had ended, or the
    /// zygote has gone away meanwhile; ask again (another idle shim, a new
    /// spare, or a shim forked here once the zygote is gone).
    pub(crate) async fn started(mut self) -> io::Result<Option<ShimSpawn>> {
        let Some(channel) = &self.channel else {
            return Err(io::Error::other("a shim's start awaited twice"));
        };
        // A copy for the run's waits, registered once, here.
        let (message, [program, own], reader) = match register(channel.try_clone()?) {
            Registration::Done(fd, runtime) => {
                let received = receive_async(&fd).await?;
                (received.0, received.1, Reader::Registered(fd, runtime))
            }
            Registration::Refused(fd, _) => {
                let received = receive_blocking(&fd)?;
                (received.0, received.1, Reader::Plain(fd))
            }
            Registration::NoDriver => {
                let received = receive_blocking(channel)?;
                (received.0, received.1, Reader::Plain(channel.try_clone()?))
            }
        };
        let (kind, a, b) = wire::decode(&message);
        if kind == FAILED {
            return Err(failure_error(wire::failure(a, b)));
        }
        let forked = self.forked.take();
        let forked_here = forked.is_some();
        let reused = self.reused.take();
        let was_idle = reused.is_some();
        let shim_pidfd = forked.or(reused).map(|(_, pidfd)| pidfd).or(own);
        let (STARTED, Some(program), Some(pidfd)) = (kind, program, shim_pidfd) else {
            // An idle shim that ended as we asked it, or a zygote that is
            // gone: ask again (a new spare, or a shim forked here).
            if was_idle || (!forked_here && super::zygote::gone()) {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the shim ended before starting the program",
            ));
        };
        let (Some(channel), Some((stdin, stdout, stderr))) =
            (self.channel.take(), self.ends.take())
        else {
            unreachable!("checked above; taken only here");
        };
        Ok(Some(ShimSpawn {
            shim: Arc::new(Shim {
                pid: b as u32,
                pidfd: Some(pidfd),
                channel: Some(channel),
                reusable: !forked_here,
                idle: OnceLock::new(),
                tainted: AtomicBool::new(false),
            }),
            forked_here,
            pid: a as u32,
            program: Some(program),
            reader: Some(reader),
            stdin,
            stdout,
            stderr,
        }))
    }
}

impl Drop for PendingShim {
    fn drop(&mut self) {
        if let Some(channel) = &self.channel {
            let _ = rustix::net::shutdown(channel, Shutdown::Write);
        }
        if let Some((_, pidfd)) = self.forked.as_ref().or(self.reused.as_ref()) {
            // A program that stopped its shim must not hold the teardown up.
            let _ = crate::sys::linux::pidfd::send_signal(pidfd.as_fd(), libc::SIGCONT, 0);
        }
    }
}

/// A `SEQPACKET` pair: each message arrives whole.
pub(super) fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// Holds our new child through a pidfd and has the reaper collect it once
/// it exits. Without a pidfd it is killed and reaped at once (it is ours and
/// unreaped: its pid cannot name anyone else).
pub(super) fn adopt(pid: libc::pid_t) -> io::Result<OwnedFd> {
    let opened = Pid::from_raw(pid)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))
        .and_then(|p| Ok(rustix::process::pidfd_open(p, PidfdFlags::empty())?));
    let pidfd = match opened.and_then(|fd| Ok((fd.try_clone()?, fd))) {
        Ok((pidfd, for_reaper)) => {
            reaper::reap_orphan(for_reaper);
            pidfd
        }
        Err(e) => {
            // SAFETY: kill and waitpid take integers; `pid` is our unreaped child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            return Err(e);
        }
    };
    Ok(pidfd)
}

fn failure_error(failure: Failure) -> io::Error {
    match failure {
        Failure::Launch(LaunchFailure::Refused(e)) => io::Error::new(
            io::Error::from_raw_os_error(e).kind(),
            format!(
                "the shim's clone was refused: {}",
                io::Error::from_raw_os_error(e)
            ),
        ),
        Failure::Launch(LaunchFailure::Clone(e)) => io::Error::from_raw_os_error(e),
        Failure::Launch(LaunchFailure::Child(step, e)) => child_error(step, e),
        Failure::Subreaper(e) => io::Error::new(
            io::Error::from_raw_os_error(e).kind(),
            format!(
                "the shim cannot become a child subreaper: {}",
                io::Error::from_raw_os_error(e)
            ),
        ),
    }
}

type Received = (Message, [Option<OwnedFd>; 2]);

/// The shim's first message, read when tokio says it is there (all zeros
/// at end-of-file).
async fn receive_async(channel: &AsyncFd<OwnedFd>) -> io::Result<Received> {
    loop {
        let mut ready = channel.readable().await?;
        match receive(channel.get_ref(), RecvFlags::DONTWAIT) {
            Err(Errno::AGAIN) => ready.clear_ready(),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
            Ok(None) => return Ok(([0; 12], [None, None])),
            Ok(Some(received)) => return Ok(received),
        }
    }
}

/// The shim's first message, waiting for it on this thread (a runtime that
/// cannot register the socket).
fn receive_blocking(channel: &OwnedFd) -> io::Result<Received> {
    loop {
        match receive(channel, RecvFlags::DONTWAIT) {
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => {
                let mut poll = [PollFd::new(channel, PollFlags::IN)];
                match rustix::event::poll(&mut poll, None) {
                    Ok(_) | Err(Errno::INTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
            Ok(None) => return Ok(([0; 12], [None, None])),
            Ok(Some(received)) => return Ok(received),
        }
    }
}

/// One message and the (up to two) descriptors that came with it; `None` at
/// end-of-file.
pub(super) fn receive(channel: &OwnedFd, flags: RecvFlags) -> rustix::io::Result<Option<Received>> {
    let mut message: Message = [0; 12];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let received = rustix::net::recvmsg(
        channel,
        &mut [IoSliceMut::new(&mut message)],
        &mut control,
        flags | RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fds = [None, None];
    for cmsg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received_fds) = cmsg {
            for (slot, fd) in fds.iter_mut().zip(received_fds) {
                *slot = Some(fd);
            }
        }
    }
    Ok((received.bytes > 0).then_some((message, fds)))
}
