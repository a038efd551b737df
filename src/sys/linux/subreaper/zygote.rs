//! The zygote, owner side: forked once, with the first subreaper container,
//! while this process is likely still small; it then forks every shim, so a
//! spawn costs the same however large this process grows. A request carries
//! the spawn flattened (`request`) plus the descriptors the program needs.

use std::ffi::CString;
use std::io;
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use rustix::io::Errno;
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

use super::pool;
use super::request;
use super::spawn::{PendingShim, adopt, socket_pair};
use super::zygote_process::{self, Scratch};
use crate::sys::spawn::SpawnSpec;
use crate::sys::spawn::linux::Prepared;

/// Set to `0`, `off`, `false` or `no` to fork every shim from this process.
pub(crate) const ZYGOTE_ENV: &str = "PROCESSKIT_ZYGOTE";

/// A running zygote.
struct Zygote {
    channel: OwnedFd,
    /// Readable once the zygote has exited.
    pidfd: OwnedFd,
    /// Who we were when it was forked: a process that changed its ids since
    /// must not start children with the old ones.
    credentials: Credentials,
}

#[derive(PartialEq, Eq)]
struct Credentials {
    ids: [u32; 4],
    groups: Vec<u32>,
}

impl Credentials {
    fn now() -> Credentials {
        use rustix::process::{getegid, geteuid, getgid, getuid};
        Credentials {
            ids: [
                getuid().as_raw(),
                geteuid().as_raw(),
                getgid().as_raw(),
                getegid().as_raw(),
            ],
            groups: rustix::process::getgroups()
                .map(|g| g.iter().map(|g| g.as_raw()).collect())
                .unwrap_or_default(),
        }
    }
}

/// `None` until the first start attempt has an answer.
static ZYGOTE: OnceLock<Option<Zygote>> = OnceLock::new();
/// Serialises the start.
static STARTING: Mutex<()> = Mutex::new(());
/// The zygote has gone away: shims are forked here from now on.
static GONE: AtomicBool = AtomicBool::new(false);

/// Starts the zygote unless it runs or cannot (then shims are forked from
/// this process, which is slower but equally sound).
pub(super) fn ensure_started() {
    if ZYGOTE.get().is_some() {
        return;
    }
    let _starting = STARTING.lock().unwrap_or_else(|e| e.into_inner());
    if ZYGOTE.get().is_some() {
        return;
    }
    let started = if disabled_by_env() {
        None
    } else {
        crate::sys::orphans::own_spawn(fork_zygote, |z| z.as_ref().ok().map(|z| z.1)).ok()
    };
    let _ = ZYGOTE.set(started.map(|(zygote, _)| zygote));
}

fn disabled_by_env() -> bool {
    std::env::var(ZYGOTE_ENV).is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "0" | "off" | "false" | "no"
        )
    })
}

fn fork_zygote() -> io::Result<(Zygote, u32)> {
    let mut scratch = Scratch::new()?;
    let (channel, zygote_end) = socket_pair()?;
    let credentials = Credentials::now();
    // SAFETY: the child runs only `zygote_process::run`, which makes
    // async-signal-safe syscalls on memory prepared above and never returns.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        zygote_process::run(&mut scratch, zygote_end.as_raw_fd());
    }
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    // Collected by the reaper whenever it exits (with us, as a rule).
    let pidfd = adopt(pid)?;
    Ok((
        Zygote {
            channel,
            pidfd,
            credentials,
        },
        pid as u32,
    ))
}

/// Sends the zygote a request to start `spec` under a new shim. `None`: no
/// zygote, or this spawn is not for it (too large, our ids changed): fork
/// from here.
pub(super) fn send_request(spec: &SpawnSpec) -> Option<io::Result<PendingShim>> {
    let zygote = ZYGOTE.get()?.as_ref()?;
    if GONE.load(Ordering::Relaxed) || Credentials::now() != zygote.credentials {
        return None;
    }
    let cwd = std::env::current_dir().ok()?;
    let cwd = CString::new(cwd.as_os_str().as_bytes()).ok()?;
    let prepared = match Prepared::new(spec) {
        Ok(prepared) => prepared,
        Err(e) => return Some(Err(e)),
    };
    let env = prepared.environment(spec);
    let Some(message) = request::encode(spec, env, Some(&cwd), super::shim::ignored_here()) else {
        prepared.release();
        return None;
    };
    // A request carries stdout and stderr always; an inherited one that we
    // have closed stays closed in a shim forked here.
    if prepared.child_ends()[1..].iter().any(|&fd| fd < 0) {
        prepared.release();
        return None;
    }
    // An idle shim first: no process to make. One that cannot take the
    // request is let go.
    while let Some(idle) = pool::take() {
        if send_on(&idle.channel, None, &message, &prepared).is_ok() {
            return Some(Ok(PendingShim::reused(idle, prepared.into_parent_ends())));
        }
    }
    match send(zygote, &message, &prepared) {
        Ok(channel) => Some(PendingShim::sent(channel, prepared.into_parent_ends())),
        Err(e) => {
            prepared.release();
            match e.raw_os_error() {
                Some(libc::EPIPE | libc::ECONNRESET | libc::ECONNREFUSED) => {
                    GONE.store(true, Ordering::Relaxed);
                    None
                }
                Some(libc::EMSGSIZE) => None,
                _ => Some(Err(e)),
            }
        }
    }
}

/// Whether the zygote has exited (nobody took a request): from now on
/// shims are forked here.
pub(super) fn gone() -> bool {
    let Some(Some(zygote)) = ZYGOTE.get() else {
        return false;
    };
    let gone = crate::sys::linux::pidfd::send_signal(zygote.pidfd.as_fd(), 0, 0).is_err();
    if gone {
        GONE.store(true, Ordering::Relaxed);
    }
    gone
}

/// Sends the request with the shim's end of a new socket pair and the
/// program's stdio; returns our end.
fn send(zygote: &Zygote, message: &[u8], prepared: &Prepared) -> io::Result<OwnedFd> {
    let (channel, shim_end) = socket_pair()?;
    send_on(&zygote.channel, Some(shim_end.as_fd()), message, prepared)?;
    Ok(channel)
}

/// Sends the request with the program's stdio (after `shim_end`, if any)
/// on `socket`.
fn send_on(
    socket: &OwnedFd,
    shim_end: Option<BorrowedFd<'_>>,
    message: &[u8],
    prepared: &Prepared,
) -> io::Result<()> {
    let [stdin, stdout, stderr] = prepared.child_ends();
    // SAFETY: the pipe ends stay open in `prepared` until it is consumed
    // after this call; fd 0 is borrowed only while it is open.
    let borrow = |fd| unsafe { BorrowedFd::borrow_raw(fd) };
    // An inherited stdin is ours: the zygote closed its own.
    let stdin = if stdin >= 0 {
        Some(borrow(stdin))
    } else {
        rustix::io::fcntl_getfd(borrow(0)).ok().map(|_| borrow(0))
    };
    let mut fds: Vec<BorrowedFd<'_>> = shim_end.into_iter().collect();
    fds.extend([borrow(stdout), borrow(stderr)]);
    fds.extend(stdin);
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(&fds));
    loop {
        match rustix::net::sendmsg(
            socket,
            &[IoSlice::new(message)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}
