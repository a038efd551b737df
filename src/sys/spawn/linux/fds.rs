//! Descriptors and memory the fast spawner sets up in the parent: the child's
//! guarded stack, and the stdio pipes (close-on-exec, above fd 2, the
//! parent's ends non-blocking for tokio).

use std::cell::Cell;
use std::ffi::c_void;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::ptr;
use std::sync::OnceLock;

use rustix::fs::{Mode, OFlags};

use crate::sys::spawn::spec::{OutputPlan, SpawnSpec, StdinPlan};

/// The parent's ends of a child's stdin, stdout and stderr, where piped.
pub(crate) type ParentEnds = (Option<OwnedFd>, Option<OwnedFd>, Option<OwnedFd>);

/// The child's stack: small, since the child only makes syscalls. One page
/// below it stays unmapped so an overflow faults instead of corrupting us.
const STACK_SIZE: usize = 64 * 1024;
const GUARD: usize = 4096;

/// The child's stack: an anonymous mapping with a guard page below it.
pub(crate) struct Stack {
    base: *mut c_void,
}

thread_local! {
    /// One stack kept per spawning thread: a thread's spawns never overlap,
    /// since the clone blocks it until the child has exec'd.
    static SPARE_STACK: Cell<Option<Stack>> = const { Cell::new(None) };
}

impl Stack {
    /// This thread's spare stack, or a new one.
    pub(crate) fn take() -> io::Result<Stack> {
        match SPARE_STACK.try_with(Cell::take) {
            Ok(Some(stack)) => Ok(stack),
            _ => Stack::new(),
        }
    }

    /// Keeps the stack for this thread's next spawn.
    pub(super) fn give_back(self) {
        // During thread teardown the stack is simply unmapped.
        let _ = SPARE_STACK.try_with(|spare| spare.replace(Some(self)));
    }

    pub(crate) fn new() -> io::Result<Stack> {
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
    pub(crate) fn top(&self) -> *mut c_void {
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
    /// What becomes the child's fd 0 (`-1`: inherit ours).
    stdin_child: RawFd,
    /// Keeps a per-spawn stdin descriptor open until the child has it.
    _stdin_owned: Option<OwnedFd>,
    stdin_parent: Option<OwnedFd>,
    stdout: Output,
    stderr: Output,
}

/// One output stream: the child's descriptor, and ours when it is a pipe.
struct Output {
    child: RawFd,
    /// Keeps `child` open when it is ours (a pipe's write end, a file).
    _owned: Option<OwnedFd>,
    parent: Option<OwnedFd>,
}

impl Output {
    /// The descriptor `plan` gives the child as `target` (1 or 2); `stdout`
    /// is what stdout got, for stderr's `Stdout` plan.
    fn open(plan: &OutputPlan, target: RawFd, stdout: Option<&Output>) -> io::Result<Output> {
        let owned = |fd: OwnedFd| Output {
            child: fd.as_raw_fd(),
            _owned: Some(fd),
            parent: None,
        };
        Ok(match plan {
            OutputPlan::Pipe => {
                let (read, write) = pipe()?;
                let mut out = owned(write);
                out.parent = Some(read);
                out
            }
            // Our own descriptor, if we have one open (else the child's stays closed).
            OutputPlan::Inherit => Output {
                child: rustix::io::fcntl_getfd(stdio_fd(target)).map_or(-1, |_| target),
                _owned: None,
                parent: None,
            },
            OutputPlan::Null => Output {
                child: dev_null()?,
                _owned: None,
                parent: None,
            },
            OutputPlan::File(fd) => owned(above_stdio(fd.try_clone()?)?),
            OutputPlan::Stdout => Output {
                child: stdout.map_or(-1, |out| out.child),
                _owned: None,
                parent: None,
            },
        })
    }
}

/// Our descriptor `fd` (0-2), only to ask whether it is open.
fn stdio_fd(fd: RawFd) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: used for one fcntl(F_GETFD), which fails harmlessly (EBADF)
    // on a closed descriptor; stdio descriptors are never closed under us
    // by this crate.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

impl Pipes {
    pub(super) fn open(spec: &SpawnSpec) -> io::Result<Pipes> {
        let (stdin_owned, stdin_parent) = match &spec.stdin {
            StdinPlan::Inherit | StdinPlan::Null => (None, None),
            StdinPlan::Pipe => {
                let (read, write) = pipe()?;
                set_nonblocking(&write)?;
                (Some(read), Some(write))
            }
            StdinPlan::Stage(fd) if fd.as_raw_fd() > 2 => (None, None),
            StdinPlan::Stage(fd) => (Some(above_stdio(fd.try_clone()?)?), None),
        };
        let stdin_child = match (&spec.stdin, &stdin_owned) {
            (_, Some(owned)) => owned.as_raw_fd(),
            (StdinPlan::Stage(fd), None) => fd.as_raw_fd(),
            (StdinPlan::Null, None) => dev_null()?,
            _ => -1,
        };
        let stdout = Output::open(&spec.stdout, 1, None)?;
        if let Some(read) = &stdout.parent
            && !spec.raw_stdout
        {
            set_nonblocking(read)?;
            crate::sys::linux::pipe::enlarge(read);
        }
        let stderr = Output::open(&spec.stderr, 2, Some(&stdout))?;
        if let Some(read) = &stderr.parent {
            set_nonblocking(read)?;
        }
        Ok(Pipes {
            stdin_child,
            _stdin_owned: stdin_owned,
            stdin_parent,
            stdout,
            stderr,
        })
    }

    pub(super) fn child_ends(&self) -> [RawFd; 3] {
        [self.stdin_child, self.stdout.child, self.stderr.child]
    }

    /// Our ends: stdin's writer, and the readers of the streams that are piped.
    pub(super) fn into_parent_ends(self) -> ParentEnds {
        (self.stdin_parent, self.stdout.parent, self.stderr.parent)
    }
}

/// A close-on-exec pipe `(read, write)`, both ends numbered above stdio so
/// wiring one never overwrites another.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    Ok((above_stdio(read)?, above_stdio(write)?))
}

/// `/dev/null`, opened once (close-on-exec) and shared by every spawn.
fn dev_null() -> io::Result<RawFd> {
    static DEV_NULL: OnceLock<OwnedFd> = OnceLock::new();
    if let Some(fd) = DEV_NULL.get() {
        return Ok(fd.as_raw_fd());
    }
    let flags = OFlags::RDWR | OFlags::CLOEXEC;
    let fd = above_stdio(rustix::fs::open(c"/dev/null", flags, Mode::empty())?)?;
    // A racing spawn may have stored its own; ours then closes here.
    Ok(DEV_NULL.get_or_init(|| fd).as_raw_fd())
}

/// Moves a descriptor numbered 0-2 (possible when this process closed its
/// stdio) above 2, keeping close-on-exec; the old one closes as `fd` drops.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    Ok(rustix::io::fcntl_dupfd_cloexec(&fd, 3)?)
}

/// Makes the parent's end of a fresh pipe non-blocking (a new pipe end has
/// no other status flags to keep).
fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    Ok(rustix::fs::fcntl_setfl(fd, OFlags::NONBLOCK)?)
}
