//! Pseudo-terminals on Unix: open a master/slave pair before the spawn, wire
//! the slave as the child's stdin, stdout and stderr (a new session takes it
//! as its controlling terminal), and give the parent the master as an async
//! reader, a writer that ends input with the terminal's EOF character, and
//! the resize control. Linux reads and writes the master through tokio;
//! elsewhere a thread per direction does (`sys::thread_io`).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::{SpecialCodeIndex, Winsize};

use crate::sys::spawn::{InputPipe, OutputPlan, ReadPipe, SpawnSpec, StdinPlan};

/// The byte sent when the terminal has no EOF character: `^D`.
const DEFAULT_EOF: u8 = 0x04;

/// The parent's side of a run's terminal: the master, once the slave went
/// to the spawn.
#[derive(Debug)]
pub(crate) struct Terminal {
    master: Arc<OwnedFd>,
}

/// Resizes a run's terminal for as long as the run's handle lives.
#[derive(Debug, Clone)]
pub(crate) struct Control {
    master: Arc<OwnedFd>,
}

/// Opens a terminal of `rows` x `cols` and gives `spec` its slave as stdin,
/// stdout and stderr, in a new session whose controlling terminal it is.
pub(crate) fn attach(spec: &mut SpawnSpec, rows: u16, cols: u16) -> io::Result<Terminal> {
    let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY)?;
    // Not every platform takes CLOEXEC in `openpt`: set it before anything forks.
    rustix::io::fcntl_setfd(&master, rustix::io::FdFlags::CLOEXEC)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let slave = open_slave(&master)?;
    rustix::termios::tcsetwinsize(&slave, winsize(rows, cols))?;
    spec.stdin = StdinPlan::Stage(slave.try_clone()?);
    spec.stdout = OutputPlan::File(slave.try_clone()?);
    spec.stderr = OutputPlan::File(slave);
    spec.setup.setsid = true;
    spec.setup.controlling_tty = true;
    // Non-blocking for tokio (after the slave is open: macOS refuses it
    // before); the flag is the master's, shared by every copy.
    #[cfg(target_os = "linux")]
    rustix::fs::fcntl_setfl(&master, OFlags::NONBLOCK)?;
    Ok(Terminal {
        master: Arc::new(master),
    })
}

/// The slave side, opened without becoming our controlling terminal.
fn open_slave(master: &OwnedFd) -> io::Result<OwnedFd> {
    #[cfg(target_os = "linux")]
    {
        let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
        // Linux 4.13+: no path lookup, so no race with a recycled name.
        if let Ok(slave) = rustix::pty::ioctl_tiocgptpeer(master, flags) {
            return Ok(slave);
        }
    }
    let name = rustix::pty::ptsname(master, Vec::new())?;
    let flags = OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC;
    Ok(rustix::fs::open(name.as_c_str(), flags, Mode::empty())?)
}

fn winsize(rows: u16, cols: u16) -> Winsize {
    Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

impl Terminal {
    /// What the child writes to the terminal. A read the kernel answers with
    /// EIO (every slave descriptor closed: the child and all that shared its
    /// terminal are gone) is end-of-file.
    pub(crate) fn reader(&self) -> io::Result<ReadPipe> {
        let fd = self.copy()?;
        #[cfg(target_os = "linux")]
        return linux::reader(fd);
        #[cfg(not(target_os = "linux"))]
        return Ok(Box::new(crate::sys::thread_io::ThreadReader::start(
            std::fs::File::from(fd),
            "processkit-tty-out",
        )?));
    }

    /// Writes to the terminal as if typed; shutting it down sends the
    /// terminal's EOF character instead of closing anything.
    pub(crate) fn writer(&self) -> io::Result<InputPipe> {
        let fd = self.copy()?;
        #[cfg(target_os = "linux")]
        return linux::writer(fd);
        #[cfg(not(target_os = "linux"))]
        {
            let master = Arc::clone(&self.master);
            let eof = Box::new(move || vec![eof_char(master.as_fd())]);
            let sink = std::fs::File::from(fd);
            Ok(Box::new(crate::sys::thread_io::ThreadWriter::start(
                sink, eof,
            )?))
        }
    }

    /// A copy of the master, numbered above stdio.
    fn copy(&self) -> io::Result<OwnedFd> {
        Ok(rustix::io::fcntl_dupfd_cloexec(self.master.as_ref(), 3)?)
    }

    pub(crate) fn control(&self) -> Control {
        Control {
            master: Arc::clone(&self.master),
        }
    }
}

impl Control {
    /// Sets the terminal's size; the kernel sends SIGWINCH to its
    /// foreground process group.
    pub(crate) fn resize(&self, rows: u16, cols: u16) -> io::Result<()> {
        Ok(rustix::termios::tcsetwinsize(
            self.master.as_ref(),
            winsize(rows, cols),
        )?)
    }
}

/// The terminal's EOF character as it is now (the child may change it), or
/// `^D` when it has none.
fn eof_char(master: impl AsFd) -> u8 {
    let disabled = |c: u8| c == 0 || c == 0xff;
    rustix::termios::tcgetattr(master)
        .map(|t| t.special_codes[SpecialCodeIndex::VEOF])
        .ok()
        .filter(|&c| !disabled(c))
        .unwrap_or(DEFAULT_EOF)
}

/// The master through tokio's epoll: EIO reads as end-of-file, and
/// shutting the writer down types the EOF character.
#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::{AsFd, OwnedFd};
    use std::pin::Pin;
    use std::task::{Context, Poll, ready};

    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio::net::unix::pipe;

    use crate::sys::spawn::{InputPipe, ReadPipe};

    pub(super) fn reader(fd: OwnedFd) -> io::Result<ReadPipe> {
        let pipe = pipe::Receiver::from_owned_fd_unchecked(fd)?;
        Ok(Box::new(MasterReader { pipe }))
    }

    pub(super) fn writer(fd: OwnedFd) -> io::Result<InputPipe> {
        let pipe = pipe::Sender::from_owned_fd_unchecked(fd)?;
        Ok(Box::new(MasterWriter {
            pipe,
            eof_sent: false,
        }))
    }

    struct MasterReader {
        pipe: pipe::Receiver,
    }

    impl AsyncRead for MasterReader {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            match ready!(Pin::new(&mut self.pipe).poll_read(cx, buf)) {
                // Every slave descriptor is closed: the child and all that
                // shared its terminal are gone.
                Err(e) if e.raw_os_error() == Some(libc::EIO) => Poll::Ready(Ok(())),
                other => Poll::Ready(other),
            }
        }
    }

    struct MasterWriter {
        pipe: pipe::Sender,
        eof_sent: bool,
    }

    /// A writer dropped without a shutdown still ends the input, as a
    /// dropped pipe does: one byte, best effort (the master never blocks).
    impl Drop for MasterWriter {
        fn drop(&mut self) {
            if !self.eof_sent {
                let _ = rustix::io::write(&self.pipe, &[super::eof_char(self.pipe.as_fd())]);
            }
        }
    }

    impl AsyncWrite for MasterWriter {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.pipe).poll_write(cx, buf)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.pipe).poll_flush(cx)
        }

        /// Closing the master would hang the terminal up: the child gets the
        /// EOF character instead, as if typed at the start of a line.
        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            if !self.eof_sent {
                let eof = [super::eof_char(self.pipe.as_fd())];
                ready!(Pin::new(&mut self.pipe).poll_write(cx, &eof))?;
                self.eof_sent = true;
            }
            Poll::Ready(Ok(()))
        }
    }
}
