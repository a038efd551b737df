//! Delivering messages to the guardian without ever dropping one: each goes
//! out at once when the socket has room; otherwise it waits in order in a
//! queue that one drainer (the sender for a moment, then a thread) empties.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

use super::pgid_table::{self, Message};

/// The guardian's socket: ours for the life of the process.
type Channel = BorrowedFd<'static>;

/// How long a sender waits for room before a thread takes over: long
/// enough to slow a burst of spawns to the guardian's pace.
const SENDER_WAIT: Duration = Duration::from_millis(100);

/// One message and the descriptor it carries.
pub(super) struct Outgoing {
    pub(super) message: Message,
    pub(super) pidfd: Option<OwnedFd>,
}

struct Outbox {
    queue: VecDeque<Outgoing>,
    /// Someone is emptying the queue; others only append behind them.
    draining: bool,
    /// The ticket of each tracked pgid's newest group.
    tickets: Option<HashMap<i32, u64>>,
    next_ticket: u64,
}

static OUTBOX: Mutex<Outbox> = Mutex::new(Outbox {
    queue: VecDeque::new(),
    draining: false,
    tickets: None,
    next_ticket: 1,
});

fn outbox() -> MutexGuard<'static, Outbox> {
    OUTBOX.lock().unwrap_or_else(|e| e.into_inner())
}

/// Queues "track `pgid`" and returns its ticket.
pub(super) fn track(channel: Channel, pgid: i32, out: Outgoing) -> u64 {
    let mut outbox = outbox();
    let ticket = outbox.next_ticket;
    outbox.next_ticket += 1;
    outbox
        .tickets
        .get_or_insert_with(HashMap::new)
        .insert(pgid, ticket);
    outbox.queue.push_back(out);
    deliver(channel, outbox);
    ticket
}

/// Queues "forget `pgid`" if `ticket` is still that pgid's newest group.
pub(super) fn forget(channel: Channel, pgid: i32, ticket: u64) {
    let mut outbox = outbox();
    let newest = outbox.tickets.as_ref().and_then(|t| t.get(&pgid)).copied();
    if ticket == 0 || newest != Some(ticket) {
        return;
    }
    if let Some(tickets) = outbox.tickets.as_mut() {
        tickets.remove(&pgid);
    }
    outbox.queue.push_back(Outgoing {
        message: pgid_table::forget(pgid),
        pidfd: None,
    });
    deliver(channel, outbox);
}

/// Sends what is queued, waiting a little for room; then leaves the rest to
/// a thread. Nothing is dropped unless the guardian is gone.
fn deliver(channel: Channel, mut outbox: MutexGuard<'static, Outbox>) {
    if outbox.draining {
        return;
    }
    outbox.draining = true;
    let deadline = Instant::now() + SENDER_WAIT;
    loop {
        if send_queued(channel, &mut outbox) {
            outbox.draining = false;
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        drop(outbox);
        wait_for_room(channel, left);
        outbox = outbox_again();
    }
    drop(outbox);
    let spawned = std::thread::Builder::new()
        .name("pk-guardian-send".into())
        .spawn(move || drain_in_background(channel));
    if let Err(error) = spawned {
        // The next message's sender tries again.
        outbox_again().draining = false;
        trace_failure(&error);
    }
}

fn outbox_again() -> MutexGuard<'static, Outbox> {
    outbox()
}

fn drain_in_background(channel: Channel) {
    loop {
        let mut outbox = outbox();
        if send_queued(channel, &mut outbox) {
            outbox.draining = false;
            return;
        }
        drop(outbox);
        wait_for_room(channel, Duration::from_millis(100));
    }
}

/// Sends queued messages until the queue is empty (true) or the socket is
/// full (false). A dead guardian empties the queue: nobody listens any more.
fn send_queued(channel: Channel, outbox: &mut Outbox) -> bool {
    while let Some(front) = outbox.queue.front() {
        match send_one(channel, front) {
            Ok(()) => {
                outbox.queue.pop_front();
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EAGAIN | libc::ENOBUFS | libc::ENOMEM)
                ) =>
            {
                return false;
            }
            Err(error) => {
                trace_failure(&error);
                if matches!(
                    error.raw_os_error(),
                    Some(libc::EPIPE | libc::ECONNRESET | libc::ENOTCONN)
                ) {
                    outbox.queue.clear();
                } else {
                    outbox.queue.pop_front();
                }
            }
        }
    }
    true
}

fn wait_for_room(channel: Channel, limit: Duration) {
    let millis = limit.as_millis().clamp(1, 100) as u64;
    let timeout = Timespec {
        tv_sec: 0,
        tv_nsec: (millis * 1_000_000) as _,
    };
    let mut poll = [PollFd::from_borrowed_fd(channel, PollFlags::OUT)];
    let ready = rustix::event::poll(&mut poll, Some(&timeout));
    if matches!(ready, Ok(n) if n > 0) && !poll[0].revents().contains(PollFlags::OUT) {
        // An error or hang-up is reported at once; pace the retries anyway.
        std::thread::sleep(Duration::from_millis(millis));
    }
}

/// One message, with its descriptor as `SCM_RIGHTS` when it has one.
fn send_one(channel: Channel, out: &Outgoing) -> io::Result<()> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let pidfd = out.pidfd.as_ref().map(|fd| [fd.as_fd()]);
    if let Some(fds) = &pidfd {
        control.push(SendAncillaryMessage::ScmRights(fds));
    }
    // NOSIGNAL turns a dead guardian into EPIPE instead of SIGPIPE; DONTWAIT
    // keeps a full socket from blocking with the lock held.
    let sent = rustix::net::sendmsg(
        channel,
        &[IoSlice::new(&out.message)],
        &mut control,
        SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
    )?;
    if sent == out.message.len() {
        Ok(())
    } else {
        Err(io::Error::other("short send to the guardian"))
    }
}

fn trace_failure(error: &io::Error) {
    #[cfg(feature = "tracing")]
    tracing::warn!(%error, "cannot tell the processkit guardian about a process group");
    let _ = error;
}
