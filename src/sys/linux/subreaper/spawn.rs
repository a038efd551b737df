//! The owner's side of a shim: fork it with the program's spawn prepared,
//! read back the program's pid and pidfd, then its exit status; shutting
//! our end of the socket down tells the shim to kill the tree.

use std::io;
use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Arc;

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, Shutdown, SocketFlags,
    SocketType,
};
use rustix::process::{Pid, PidfdFlags};
use tokio::io::unix::AsyncFd;

use super::shim;
use super::wire::{self, EXITED, FAILED, Failure, Message, STARTED};
use crate::sys::linux::reaper;
use crate::sys::spawn::SpawnSpec;
use crate::sys::spawn::linux::{LaunchFailure, ParentEnds, Prepared, child_error};

/// One run's shim, as its owner holds it.
#[derive(Debug)]
pub(crate) struct Shim {
    pid: u32,
    /// Our child's pidfd: readable once the shim (and so its tree) is gone.
    pidfd: OwnedFd,
    channel: OwnedFd,
}

impl Shim {
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Tells the shim to kill its whole tree and exit: our end of the socket
    /// shuts down, which the shim reads as end-of-file (as it would if we
    /// died). Cannot fail for want of memory; repeating it is harmless.
    pub(crate) fn kill(&self) {
        let _ = rustix::net::shutdown(&self.channel, Shutdown::Write);
        // A member may have stopped the shim (SIGSTOP cannot be blocked).
        let _ = crate::sys::linux::pidfd::send_signal(self.pidfd.as_fd(), libc::SIGCONT, 0);
    }

    /// Whether the shim still runs: it exits only once its tree is empty.
    pub(crate) fn is_alive(&self) -> bool {
        let mut poll = [PollFd::new(&self.pidfd, PollFlags::IN)];
        let now = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        !matches!(rustix::event::poll(&mut poll, Some(&now)), Ok(1..))
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        self.kill();
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
    /// A copy of the socket, made now: waiting later needs no descriptor.
    reader: Option<OwnedFd>,
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
            reader: self.reader.take().map(Reader::Plain),
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

/// Starts `spec` under a shim of its own: forked by the zygote when one
/// runs (cheap: it is small), else from this process. Blocks until the
/// program has exec'd (or failed to), as the clone spawner does.
pub(crate) fn spawn(spec: &mut SpawnSpec) -> io::Result<ShimSpawn> {
    if let Some(started) = super::zygote::spawn(spec) {
        return started;
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
            shim::ignore_like_owner(ignored);
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
    let (stdin, stdout, stderr) = prepared.into_parent_ends();
    started(channel, Some(pidfd), (stdin, stdout, stderr))
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

/// Reads the shim's first message on `channel`: the program runs (its pid
/// and pidfd, the shim's pid and pidfd unless we hold `shim_pidfd` already),
/// or why not.
pub(super) fn started(
    channel: OwnedFd,
    shim_pidfd: Option<OwnedFd>,
    (stdin, stdout, stderr): ParentEnds,
) -> io::Result<ShimSpawn> {
    let (message, [program, own]) = receive_blocking(&channel)?;
    let (kind, a, b) = wire::decode(&message);
    if kind == FAILED {
        return Err(failure_error(wire::failure(a, b)));
    }
    let forked_here = shim_pidfd.is_some();
    let (STARTED, Some(program), Some(pidfd)) = (kind, program, shim_pidfd.or(own)) else {
        return Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "the shim ended before starting the program",
        ));
    };
    rustix::io::ioctl_fionbio(&channel, true)?;
    let reader = channel.try_clone()?;
    Ok(ShimSpawn {
        shim: Arc::new(Shim {
            pid: b as u32,
            pidfd,
            channel,
        }),
        forked_here,
        pid: a as u32,
        program: Some(program),
        reader: Some(reader),
        stdin,
        stdout,
        stderr,
    })
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

/// The shim's first message, waiting for it (all zeros at end-of-file).
fn receive_blocking(channel: &OwnedFd) -> io::Result<(Message, [Option<OwnedFd>; 2])> {
    loop {
        match receive(channel, RecvFlags::empty()) {
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
            Ok(None) => return Ok(([0; 12], [None, None])),
            Ok(Some(received)) => return Ok(received),
        }
    }
}

/// One message and the (up to two) descriptors that came with it; `None` at
/// end-of-file.
fn receive(
    channel: &OwnedFd,
    flags: RecvFlags,
) -> rustix::io::Result<Option<(Message, [Option<OwnedFd>; 2])>> {
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

/// The program a shim started, as its run waits for it.
#[derive(Debug)]
pub(crate) struct ShimChild {
    pid: u32,
    /// Pins the program's pid while we hold the handle.
    _pidfd: Option<OwnedFd>,
    shim: Arc<Shim>,
    /// Our copy of the socket, registered with a runtime only while someone
    /// waits (`None` once the shim has hung up).
    reader: Option<Reader>,
    status: Option<ExitStatus>,
}

#[derive(Debug)]
enum Reader {
    Plain(OwnedFd),
    Registered(AsyncFd<OwnedFd>),
}

impl Reader {
    fn fd(&self) -> &OwnedFd {
        match self {
            Reader::Plain(fd) => fd,
            Reader::Registered(fd) => fd.get_ref(),
        }
    }
}

impl ShimChild {
    pub(crate) fn id(&self) -> u32 {
        self.pid
    }

    /// Waits for the shim's report of the program's exit. Cancel-safe.
    pub(crate) async fn wait(&mut self) -> io::Result<ExitStatus> {
        let mut moved = false;
        loop {
            if let Some(status) = self.status {
                return Ok(status);
            }
            let Some(reader) = self.reader.take() else {
                return Err(self.hung_up());
            };
            let received = receive(reader.fd(), RecvFlags::DONTWAIT);
            self.reader = Some(reader);
            match received {
                Ok(Some((message, _))) => {
                    let (kind, raw, _) = wire::decode(&message);
                    if kind == EXITED {
                        self.status = Some(ExitStatus::from_raw(raw));
                    }
                    continue;
                }
                Ok(None) => {
                    self.reader = None;
                    return Err(self.hung_up());
                }
                Err(Errno::AGAIN | Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
            if let Some(Reader::Plain(_)) = &self.reader {
                let Some(Reader::Plain(plain)) = self.reader.take() else {
                    continue;
                };
                // Deprecated for raw descriptors that may close early; an
                // `OwnedFd` moved in stays open as long as the `AsyncFd`. Its
                // replacement needs tokio 1.54. A runtime without an IO
                // driver panics here.
                #[allow(deprecated)]
                let registered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    AsyncFd::try_with_interest(plain, tokio::io::Interest::READABLE)
                }));
                match registered {
                    Ok(Ok(fd)) => self.reader = Some(Reader::Registered(fd)),
                    Ok(Err(refused)) => {
                        // A runtime shutting down refuses; keep the socket.
                        let (plain, error) = refused.into_parts();
                        self.reader = Some(Reader::Plain(plain));
                        return Err(error);
                    }
                    Err(_) => {
                        // The copy went down with the panic: copy the shim's
                        // socket again, for a wait on a runtime that can.
                        self.reader = Some(Reader::Plain(self.shim.channel.try_clone()?));
                        return Err(crate::sys::spawn::no_io_driver());
                    }
                }
            }
            let Some(Reader::Registered(fd)) = &self.reader else {
                continue;
            };
            match fd.readable().await {
                Ok(mut ready) => ready.clear_ready(),
                // The runtime it was registered with is shutting down:
                // register again with the one polling us, once.
                Err(e) if moved => return Err(e),
                Err(_) => {
                    moved = true;
                    if let Some(Reader::Registered(fd)) = self.reader.take() {
                        self.reader = Some(Reader::Plain(fd.into_inner()));
                    }
                }
            }
        }
    }

    fn hung_up(&self) -> io::Error {
        io::Error::other(format!(
            "the shim (pid {}) of process {} ended without reporting its exit",
            self.shim.pid, self.pid
        ))
    }
}
