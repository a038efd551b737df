//! One socket message with the descriptors passed along with it, read
//! without allocating: the guardian, the zygote and the shims all read
//! their requests this way, some of them in a forked copy of the owner.

use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};

/// The most descriptors one message may bring; more are closed.
const MAX_FDS: usize = 4;

/// Reads one message into `message` and its descriptors into `fds` (in
/// order; those beyond `fds` close). `flags` adds to `CMSG_CLOEXEC`.
/// Returns the message's length (0 at end-of-file).
pub(crate) fn receive<const N: usize>(
    channel: BorrowedFd<'_>,
    message: &mut [u8],
    fds: &mut [Option<OwnedFd>; N],
    flags: RecvFlags,
) -> rustix::io::Result<usize> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let received = rustix::net::recvmsg(
        channel,
        &mut [IoSliceMut::new(message)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC | flags,
    )?;
    for cmsg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received_fds) = cmsg {
            for (slot, fd) in fds.iter_mut().zip(received_fds) {
                *slot = Some(fd);
            }
        }
    }
    Ok(received.bytes)
}
