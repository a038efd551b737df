//! Delivering messages to the guardian without ever dropping one: each goes
//! out at once when the socket has room; otherwise it waits in order in a
//! queue that one drainer (the sender for a moment, then a thread) empties.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::sys::unix::pgid_table::{self, Message};

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
pub(super) fn track(channel: RawFd, pgid: i32, out: Outgoing) -> u64 {
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
pub(super) fn forget(channel: RawFd, pgid: i32, ticket: u64) {
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
fn deliver(channel: RawFd, mut outbox: MutexGuard<'static, Outbox>) {
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

fn drain_in_background(channel: RawFd) {
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
fn send_queued(channel: RawFd, outbox: &mut Outbox) -> bool {
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

fn wait_for_room(channel: RawFd, limit: Duration) {
    let mut poll = libc::pollfd {
        fd: channel,
        events: libc::POLLOUT,
        revents: 0,
    };
    let millis = limit.as_millis().clamp(1, 100) as libc::c_int;
    // SAFETY: polls one pollfd on our stack for at most `millis`.
    let ready = unsafe { libc::poll(&mut poll, 1, millis) };
    if ready > 0 && poll.revents & libc::POLLOUT == 0 {
        // An error or hang-up is reported at once; pace the retries anyway.
        std::thread::sleep(Duration::from_millis(millis as u64));
    }
}

/// One message, with its descriptor as `SCM_RIGHTS` when it has one.
fn send_one(channel: RawFd, out: &Outgoing) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: out.message.as_ptr() as *mut libc::c_void,
        iov_len: out.message.len(),
    };
    // u64 elements keep the control buffer aligned for a cmsghdr.
    let mut control = [0u64; 4];
    // SAFETY: a zeroed msghdr is valid; every pointer set below points into
    // `iov`, `out.message` or `control`, which outlive the sendmsg call, and
    // the control header is written inside `control` (CMSG_SPACE(4) <= 32).
    let sent = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if let Some(fd) = &out.pidfd {
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(size_of::<RawFd>() as u32) as _;
            let header = libc::CMSG_FIRSTHDR(&msg);
            (*header).cmsg_level = libc::SOL_SOCKET;
            (*header).cmsg_type = libc::SCM_RIGHTS;
            (*header).cmsg_len = libc::CMSG_LEN(size_of::<RawFd>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(header).cast::<RawFd>(), fd.as_raw_fd());
        }
        // MSG_NOSIGNAL turns a dead guardian into EPIPE instead of SIGPIPE;
        // MSG_DONTWAIT keeps a full socket from blocking with the lock held.
        libc::sendmsg(channel, &msg, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT)
    };
    if sent == out.message.len() as isize {
        Ok(())
    } else if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        Err(io::Error::other("short send to the guardian"))
    }
}

fn trace_failure(error: &io::Error) {
    #[cfg(feature = "tracing")]
    tracing::warn!(%error, "cannot tell the processkit guardian about a process group");
    let _ = error;
}
