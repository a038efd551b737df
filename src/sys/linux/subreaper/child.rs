//! The program a shim started, as its run waits for it: the shim's `EXITED`
//! report is read from the run's copy of the socket, registered with tokio
//! (at the start, or on the first wait).

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Arc;

use rustix::io::Errno;
use rustix::net::RecvFlags;
use tokio::io::unix::AsyncFd;

use super::spawn::{Shim, receive};
use super::wire::{self, EXITED};

/// The program a shim started, as its run waits for it.
#[derive(Debug)]
pub(crate) struct ShimChild {
    pub(super) pid: u32,
    /// Pins the program's pid while we hold the handle.
    pub(super) _pidfd: Option<OwnedFd>,
    /// Our copy of the socket, registered with a runtime only while someone
    /// waits (`None` once the shim has hung up). Closed before `shim` is
    /// dropped, which may hand the socket to another run.
    pub(super) reader: Option<Reader>,
    pub(super) shim: Arc<Shim>,
    pub(super) status: Option<ExitStatus>,
}

/// The run's copy of the shim's socket.
#[derive(Debug)]
pub(super) enum Reader {
    Plain(OwnedFd),
    /// Registered with the runtime of that id, which alone drives its
    /// readiness: a wait polled on another runtime registers again.
    Registered(AsyncFd<OwnedFd>, Option<tokio::runtime::Id>),
}

impl Reader {
    fn fd(&self) -> &OwnedFd {
        match self {
            Reader::Plain(fd) => fd,
            Reader::Registered(fd, _) => fd.get_ref(),
        }
    }
}

/// How registering a descriptor with the current runtime went.
pub(super) enum Registration {
    Done(AsyncFd<OwnedFd>, Option<tokio::runtime::Id>),
    /// A runtime shutting down refuses, and gives the descriptor back.
    Refused(OwnedFd, io::Error),
    /// A runtime without an IO driver panics: the descriptor went down with it.
    NoDriver,
}

/// Registers `fd` with the current runtime for reading.
pub(super) fn register(fd: OwnedFd) -> Registration {
    // Deprecated for raw descriptors that may close early; an `OwnedFd`
    // moved in stays open as long as the `AsyncFd`. Its replacement needs
    // tokio 1.54. A runtime without an IO driver panics here.
    #[allow(deprecated)]
    let registered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        AsyncFd::try_with_interest(fd, tokio::io::Interest::READABLE)
    }));
    match registered {
        Ok(Ok(fd)) => Registration::Done(fd, current_runtime()),
        Ok(Err(refused)) => {
            let (fd, error) = refused.into_parts();
            Registration::Refused(fd, error)
        }
        Err(_) => Registration::NoDriver,
    }
}

fn current_runtime() -> Option<tokio::runtime::Id> {
    tokio::runtime::Handle::try_current().ok().map(|h| h.id())
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
                    let (kind, raw, idle) = wire::decode(&message);
                    if kind == EXITED {
                        self.status = Some(ExitStatus::from_raw(raw));
                        if idle == 1 {
                            self.shim.mark_idle();
                        }
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
            if let Some(Reader::Registered(_, runtime)) = &self.reader
                && *runtime != current_runtime()
                && let Some(Reader::Registered(fd, _)) = self.reader.take()
            {
                self.reader = Some(Reader::Plain(fd.into_inner()));
            }
            if let Some(Reader::Plain(_)) = &self.reader {
                let Some(Reader::Plain(plain)) = self.reader.take() else {
                    continue;
                };
                match register(plain) {
                    Registration::Done(fd, runtime) => {
                        self.reader = Some(Reader::Registered(fd, runtime));
                    }
                    Registration::Refused(plain, error) => {
                        // Keep the socket for a later wait.
                        self.reader = Some(Reader::Plain(plain));
                        return Err(error);
                    }
                    Registration::NoDriver => {
                        // Copy the shim's socket again, for a wait on a
                        // runtime that can.
                        self.reader = Some(Reader::Plain(self.shim.copy_channel()?));
                        return Err(crate::sys::spawn::no_io_driver());
                    }
                }
            }
            let Some(Reader::Registered(fd, _)) = &self.reader else {
                continue;
            };
            match fd.readable().await {
                Ok(mut ready) => ready.clear_ready(),
                // The runtime it was registered with is shutting down:
                // register again with the one polling us, once.
                Err(e) if moved => return Err(e),
                Err(_) => {
                    moved = true;
                    if let Some(Reader::Registered(fd, _)) = self.reader.take() {
                        self.reader = Some(Reader::Plain(fd.into_inner()));
                    }
                }
            }
        }
    }

    fn hung_up(&self) -> io::Error {
        io::Error::other(format!(
            "the shim (pid {}) of process {} ended without reporting its exit",
            self.shim.pid(),
            self.pid
        ))
    }
}
