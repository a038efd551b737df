//! A big capture read by a thread of its own: past a few MiB, waking a tokio
//! task for every read of the pipe costs more than the read, so a thread
//! reads it straight into the capture buffer until end-of-file or a stop.
//! The pipe leaves tokio's reactor meanwhile, which would wake for every write.

use std::any::Any;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll};

use rustix::event::{EventfdFlags, PollFd, PollFlags};
use rustix::io::Errno;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::oneshot;

use super::output_pipe::OutputPipe;
use crate::sys::spawn::ReadPipe;

/// A pipe being read into a buffer by its own thread. Dropping it stops the
/// thread, which then closes the pipe.
pub(crate) struct PipeThread {
    stop: Arc<StopSwitch>,
    /// The pipe back after a stop; `None` at end-of-file or a read error.
    done: oneshot::Receiver<Option<OwnedFd>>,
}

struct StopSwitch {
    stopped: AtomicBool,
    /// Written once to wake the thread from `poll`.
    wake: OwnedFd,
}

impl StopSwitch {
    fn stop(&self) {
        if !self.stopped.swap(true, Ordering::AcqRel) {
            let _ = rustix::io::write(&self.wake, &1u64.to_ne_bytes());
        }
    }
}

/// Moves `pipe` to a thread that appends what it reads to `buf` (calling
/// `grow` before each read, bumping `progress` after it). The pipe comes
/// back when it is not one of ours or no thread can be had (descriptors or
/// threads exhausted): the caller reads it on as before.
pub(crate) fn start(
    mut pipe: ReadPipe,
    buf: Arc<Mutex<Vec<u8>>>,
    progress: Arc<AtomicU64>,
    grow: fn(&mut Vec<u8>),
) -> Result<PipeThread, ReadPipe> {
    let Some(ours) = (&mut *pipe as &mut dyn Any).downcast_mut::<OutputPipe>() else {
        return Err(pipe);
    };
    let Ok(wake) = rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK) else {
        return Err(pipe);
    };
    let stop = Arc::new(StopSwitch {
        stopped: AtomicBool::new(false),
        wake,
    });
    let (reply, done) = oneshot::channel();
    // The pipe goes over once the thread exists, so a failed spawn keeps it.
    let (hand_over, handed) = mpsc::channel::<OwnedFd>();
    let thread_stop = Arc::clone(&stop);
    let spawned = std::thread::Builder::new()
        .name("processkit-drain".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            if let Ok(fd) = handed.recv() {
                let _ = reply.send(read_all(fd, &buf, &progress, grow, &thread_stop));
            }
        });
    if spawned.is_err() {
        return Err(pipe);
    }
    match ours.detach() {
        Some(Ok(fd)) => {
            // The thread is waiting for it: this cannot fail.
            let _ = hand_over.send(fd);
            Ok(PipeThread { stop, done })
        }
        // Leaving tokio failed, which closed the pipe: a read error, as if
        // the pump had read it. The idle thread ends with `hand_over`.
        Some(Err(e)) => Err(Box::new(Failed(Some(e)))),
        None => Err(pipe),
    }
}

impl PipeThread {
    /// Waits for the thread to end: `None` at end-of-file (or a read
    /// error), the pipe, registered with tokio again, after `stop`.
    pub(crate) async fn ended(&mut self) -> Option<ReadPipe> {
        let fd = (&mut self.done).await.ok().flatten()?;
        Some(match OutputPipe::attach(fd) {
            Ok(pipe) => Box::new(pipe),
            Err(e) => Box::new(Failed(Some(e))),
        })
    }

    /// Asks the thread to hand the pipe back; `ended` returns it.
    pub(crate) fn stop(&self) {
        self.stop.stop();
    }
}

impl Drop for PipeThread {
    fn drop(&mut self) {
        self.stop.stop();
    }
}

/// A pipe lost on its way between tokio and a thread: its first read
/// reports why, later ones end-of-file.
struct Failed(Option<io::Error>);

impl AsyncRead for Failed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Ready(self.0.take().map_or(Ok(()), Err))
    }
}

/// Reads until end-of-file (`None`) or a stop (the pipe).
fn read_all(
    fd: OwnedFd,
    buf: &Mutex<Vec<u8>>,
    progress: &AtomicU64,
    grow: fn(&mut Vec<u8>),
    stop: &StopSwitch,
) -> Option<OwnedFd> {
    let mut mapped = Mapped::default();
    loop {
        if stop.stopped.load(Ordering::Acquire) {
            return Some(fd);
        }
        match read_once(fd.as_fd(), buf, grow, &mut mapped) {
            Ok(0) => return None,
            Ok(_) => {
                progress.fetch_add(1, Ordering::Release);
            }
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => {
                if !wait_readable(fd.as_fd(), stop) {
                    return Some(fd);
                }
            }
            Err(_) => return None,
        }
    }
}

/// One non-blocking read into the spare capacity of `buf`, under its lock.
fn read_once(
    fd: BorrowedFd<'_>,
    buf: &Mutex<Vec<u8>>,
    grow: fn(&mut Vec<u8>),
    mapped: &mut Mapped,
) -> Result<usize, Errno> {
    let mut buf = buf.lock().unwrap_or_else(|e| e.into_inner());
    grow(&mut buf);
    populate_ahead(&mut buf, mapped);
    rustix::io::read(fd, rustix::buffer::spare_capacity(&mut *buf))
}

/// How much of the spare capacity `populate_ahead` maps: one full pipe.
const POPULATE_AHEAD: usize = 1024 * 1024;

/// The addresses `populate_ahead` last had mapped. Most reads bring a few
/// KiB, so it maps again only once half a window is used up (or the buffer
/// moved: a buffer that moved onto the old addresses only loses the head
/// start).
#[derive(Debug, Default, PartialEq)]
struct Mapped {
    from: usize,
    to: usize,
}

/// Has the kernel map the pages the next reads will fill, before they read.
/// A read into unmapped pages takes their faults while it holds the pipe's
/// lock, and the child's writes wait all that time; one `madvise` also maps
/// a window for less than a fault a page costs. Best effort (Linux 5.14+).
fn populate_ahead(buf: &mut Vec<u8>, mapped: &mut Mapped) {
    let page = rustix::param::page_size();
    let spare = buf.spare_capacity_mut();
    let start = spare.as_mut_ptr() as usize;
    let end = start + spare.len().min(POPULATE_AHEAD);
    if mapped.from <= start && end.min(start + POPULATE_AHEAD / 2) <= mapped.to {
        return;
    }
    let first = start.next_multiple_of(page);
    let last = end - end % page;
    if last <= first {
        return;
    }
    *mapped = Mapped {
        from: first,
        to: last,
    };
    // SAFETY: `first..last` lies inside the vector's spare capacity: memory
    // the vector owns and nothing reads. MADV_POPULATE_WRITE only maps its
    // pages writable; a page already mapped keeps its bytes and a new one is
    // zeroed, so no value anyone can observe changes.
    let _ = unsafe {
        rustix::mm::madvise(
            spare.as_mut_ptr().wrapping_add(first - start).cast(),
            last - first,
            rustix::mm::Advice::LinuxPopulateWrite,
        )
    };
}

/// Sleeps until the pipe is readable (`true`) or the stop switch fires.
fn wait_readable(fd: BorrowedFd<'_>, stop: &StopSwitch) -> bool {
    loop {
        let mut fds = [
            PollFd::new(&fd, PollFlags::IN),
            PollFd::new(&stop.wake, PollFlags::IN),
        ];
        match rustix::event::poll(&mut fds, None) {
            Err(Errno::INTR) => continue,
            // A poll that fails lets the next read report what is wrong.
            _ => return !stop.stopped.load(Ordering::Acquire),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn populating_ahead_keeps_the_bytes_and_leaves_room_to_write() {
        let mut buf = Vec::with_capacity(3 * POPULATE_AHEAD);
        buf.extend((0..5000u32).map(|i| i as u8));
        let before = buf.clone();
        populate_ahead(&mut buf, &mut Mapped::default());
        assert_eq!(buf, before);
        buf.resize(buf.capacity(), 7);
        assert!(buf[5000..].iter().all(|&b| b == 7));
        assert_eq!(buf[..5000], before[..]);
    }

    #[test]
    fn populating_ahead_of_less_than_a_page_changes_nothing() {
        let mut short = vec![1u8; 10];
        let mut mapped = Mapped::default();
        populate_ahead(&mut short, &mut mapped);
        assert_eq!(short, [1; 10]);
        let mut empty: Vec<u8> = Vec::new();
        populate_ahead(&mut empty, &mut mapped);
        assert!(empty.is_empty());
        assert_eq!(mapped, Mapped::default(), "nothing was mapped");
    }

    #[test]
    fn a_window_is_mapped_again_only_once_half_of_it_is_used() {
        let mut buf: Vec<u8> = Vec::with_capacity(4 * POPULATE_AHEAD);
        let mut mapped = Mapped::default();
        populate_ahead(&mut buf, &mut mapped);
        let first = Mapped {
            from: mapped.from,
            to: mapped.to,
        };
        assert!(first.to - first.from > POPULATE_AHEAD / 2);
        buf.resize(POPULATE_AHEAD / 4, 0);
        populate_ahead(&mut buf, &mut mapped);
        assert_eq!(mapped.from, first.from, "a quarter used: not mapped again");
        buf.resize(POPULATE_AHEAD / 2 + 4096, 0);
        populate_ahead(&mut buf, &mut mapped);
        assert!(
            mapped.from > first.from,
            "past half: the next window is mapped"
        );
        assert!(mapped.to > first.to);
    }
}
