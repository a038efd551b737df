//! Descriptors and memory the fast spawner sets up in the parent: the child's
//! guarded stack, and the stdio pipes (close-on-exec, above fd 2, the
//! parent's ends non-blocking for tokio).

use std::ffi::c_void;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;

use super::clone_spawn::{Plan, StdinWiring};

/// The child's stack: small, since the child only makes syscalls. One page
/// below it stays unmapped so an overflow faults instead of corrupting us.
const STACK_SIZE: usize = 64 * 1024;
const GUARD: usize = 4096;

/// The child's stack: an anonymous mapping with a guard page below it.
pub(super) struct Stack {
    base: *mut c_void,
}

impl Stack {
    pub(super) fn new() -> io::Result<Stack> {
        // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                STACK_SIZE + GUARD,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = Stack { base };
        // SAFETY: the lowest page of the mapping we just made.
        if unsafe { libc::mprotect(base, GUARD, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// The usable part (above the guard page): its lowest address and size.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(super) fn region(&self) -> (*mut c_void, usize) {
        // SAFETY: the guard page is the first page of the mapping.
        (
            unsafe { self.base.cast::<u8>().add(GUARD).cast() },
            STACK_SIZE,
        )
    }

    /// The stack grows down from the (16-byte aligned) end of the mapping.
    pub(super) fn top(&self) -> *mut c_void {
        // SAFETY: one past the end of the mapping, which is page aligned.
        unsafe { self.base.cast::<u8>().add(STACK_SIZE + GUARD).cast() }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `new`.
        unsafe { libc::munmap(self.base, STACK_SIZE + GUARD) };
    }
}

/// The pipes of one spawn: the child's ends (closed in the parent once the
/// child has them) and the parent's ends.
pub(super) struct Pipes {
    stdin_child: Option<OwnedFd>,
    stdin_parent: Option<OwnedFd>,
    stdout: (OwnedFd, OwnedFd),
    stderr: (OwnedFd, OwnedFd),
}

impl Pipes {
    pub(super) fn open(plan: &Plan) -> io::Result<Pipes> {
        let (stdin_child, stdin_parent) = match &plan.stdin {
            StdinWiring::Inherit => (None, None),
            StdinWiring::Null => (Some(open_dev_null()?), None),
            StdinWiring::Pipe => {
                let (read, write) = pipe()?;
                set_nonblocking(&write)?;
                (Some(read), Some(write))
            }
            StdinWiring::Fd(fd) => (Some(above_stdio(fd.try_clone()?)?), None),
        };
        let stdout = pipe()?;
        if !plan.raw_stdout {
            set_nonblocking(&stdout.0)?;
            super::pipe::enlarge(stdout.0.as_raw_fd());
        }
        let stderr = pipe()?;
        set_nonblocking(&stderr.0)?;
        Ok(Pipes {
            stdin_child,
            stdin_parent,
            stdout,
            stderr,
        })
    }

    pub(super) fn child_ends(&self) -> [RawFd; 3] {
        [
            self.stdin_child.as_ref().map_or(-1, AsRawFd::as_raw_fd),
            self.stdout.1.as_raw_fd(),
            self.stderr.1.as_raw_fd(),
        ]
    }

    pub(super) fn into_parent_ends(self) -> (Option<OwnedFd>, OwnedFd, OwnedFd) {
        (self.stdin_parent, self.stdout.0, self.stderr.0)
    }
}

/// A close-on-exec pipe `(read, write)`, both ends numbered above stdio so
/// wiring one never overwrites another.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into a two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new and ours.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((above_stdio(read)?, above_stdio(write)?))
}

fn open_dev_null() -> io::Result<OwnedFd> {
    // SAFETY: a static NUL-terminated path; open returns a new fd or -1.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor we own.
    above_stdio(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Moves a descriptor numbered 0-2 (possible when this process closed its
/// stdio) above 2, keeping close-on-exec.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor >= 3 or -1.
    let moved = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if moved < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor we own; the old one closes when `fd` drops.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
