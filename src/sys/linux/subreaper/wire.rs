//! The messages a shim sends its owner over their `SEQPACKET` socket: three
//! native-endian `i32`s, a kind and two values, read without allocating.
//! The owner sends an idle shim requests, "retire" (`RETIRE`) to a signalled
//! run's; shutting its end down means "kill the tree".

use std::ffi::c_int;

use crate::sys::spawn::linux::LaunchFailure;
use crate::sys::spawn::setup::Step;

/// One message.
pub(super) type Message = [u8; 12];

/// Shim → owner: the program runs; its pid, with its pidfd as `SCM_RIGHTS`.
pub(super) const STARTED: i32 = 1;
/// Shim → owner: nothing was started (`Failure` in the values).
pub(super) const FAILED: i32 = 2;
/// Shim → owner: the program ended; its raw wait status, and 1 when the
/// tree ended with it and the shim now waits, idle, for another request.
pub(super) const EXITED: i32 = 3;
/// Owner → shim: never go idle, exit once the tree is empty (the run was
/// signalled or stopped); to an idle shim, exit now.
pub(super) const RETIRE: [u8; 1] = [b'r'];

/// Why a shim started nothing.
#[derive(Debug, Clone, Copy)]
pub(super) enum Failure {
    /// The program's launch failed.
    Launch(LaunchFailure),
    /// `PR_SET_CHILD_SUBREAPER` was refused: errno.
    Subreaper(c_int),
}

pub(super) fn encode(kind: i32, a: i32, b: i32) -> Message {
    let mut message = [0; 12];
    message[0..4].copy_from_slice(&kind.to_ne_bytes());
    message[4..8].copy_from_slice(&a.to_ne_bytes());
    message[8..12].copy_from_slice(&b.to_ne_bytes());
    message
}

pub(super) fn decode(message: &Message) -> (i32, i32, i32) {
    let word = |at: usize| {
        i32::from_ne_bytes([
            message[at],
            message[at + 1],
            message[at + 2],
            message[at + 3],
        ])
    };
    (word(0), word(4), word(8))
}

pub(super) fn failed(failure: Failure) -> Message {
    let (class, step, errno) = match failure {
        Failure::Launch(LaunchFailure::Refused(e)) => (0, 0, e),
        Failure::Launch(LaunchFailure::Clone(e)) => (1, 0, e),
        Failure::Launch(LaunchFailure::Child(step, e)) => (2, step as i32, e),
        Failure::Subreaper(e) => (3, 0, e),
    };
    encode(FAILED, class << 8 | step, errno)
}

/// The failure a `FAILED` message carries (`a`, `b` as decoded).
pub(super) fn failure(a: i32, errno: i32) -> Failure {
    let step = Step::ALL
        .get((a & 0xff) as usize)
        .copied()
        .unwrap_or(Step::None);
    match a >> 8 {
        0 => Failure::Launch(LaunchFailure::Refused(errno)),
        1 => Failure::Launch(LaunchFailure::Clone(errno)),
        2 => Failure::Launch(LaunchFailure::Child(step, errno)),
        _ => Failure::Subreaper(errno),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_survives_the_wire() {
        for step in Step::ALL {
            let sent = Failure::Launch(LaunchFailure::Child(step, libc::ENOENT));
            let (kind, a, b) = decode(&failed(sent));
            assert_eq!(kind, FAILED);
            match failure(a, b) {
                Failure::Launch(LaunchFailure::Child(got, libc::ENOENT)) => assert_eq!(got, step),
                other => panic!("{other:?}"),
            }
        }
        let (_, a, b) = decode(&failed(Failure::Subreaper(libc::EINVAL)));
        assert!(matches!(failure(a, b), Failure::Subreaper(libc::EINVAL)));
    }
}
