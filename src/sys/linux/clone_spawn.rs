//! The fast spawner: a vfork-style child (`CLONE_VM | CLONE_VFORK` on a small
//! stack of its own) that joins its container, wires stdio, drops privileges
//! and execs with raw syscalls only. No address space is copied, so a spawn
//! costs the same whatever the parent's RSS; the parent gets a pidfd.

use std::ffi::{CString, c_char, c_int, c_void};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;

use super::clone3;

/// How the child's stdin is wired.
#[derive(Debug)]
pub(crate) enum StdinWiring {
    /// The parent's stdin.
    Inherit,
    /// `/dev/null`.
    Null,
    /// A new pipe whose write end the parent keeps.
    Pipe,
    /// A descriptor handed over (a pipeline's previous stage).
    Fd(OwnedFd),
}

/// How the child joins its container before exec.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Join {
    /// Be born in this open cgroup directory (`clone3(CLONE_INTO_CGROUP)`),
    /// or, where the kernel lacks that, write `0` to its `cgroup.procs`.
    Cgroup(RawFd),
    /// Become the leader of a new process group.
    ProcessGroup,
}

/// Everything the child needs, prepared by the parent before the clone.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The paths to try with execve, in order (a `PATH` search or one path).
    pub(crate) candidates: Vec<CString>,
    pub(crate) argv: Vec<CString>,
    /// `None`: the child gets this process's environment unchanged.
    pub(crate) envp: Option<Vec<CString>>,
    pub(crate) cwd: Option<CString>,
    pub(crate) stdin: StdinWiring,
    /// Keep stdout blocking and at its default size (a pipeline's inner pipe).
    pub(crate) raw_stdout: bool,
    pub(crate) join: Join,
    pub(crate) setsid: bool,
    /// `Some` when privileges change: the supplementary groups (maybe empty).
    pub(crate) groups: Option<Vec<libc::gid_t>>,
    pub(crate) gid: Option<libc::gid_t>,
    pub(crate) uid: Option<libc::uid_t>,
    /// The pid whose death must kill the child.
    pub(crate) parent_death: Option<libc::pid_t>,
}

/// A started child: its pid, a pidfd, and the parent's ends of its pipes.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) pid: u32,
    pub(crate) pidfd: OwnedFd,
    pub(crate) stdin: Option<OwnedFd>,
    pub(crate) stdout: OwnedFd,
    pub(crate) stderr: OwnedFd,
}

/// The child's stack: small, since the child only makes syscalls. One page
/// below it stays unmapped so an overflow faults instead of corrupting us.
const STACK_SIZE: usize = 64 * 1024;
const GUARD: usize = 4096;

/// What the child failed at, written into shared memory before it exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Step {
    None,
    Stdio,
    Chdir,
    ProcessGroup,
    JoinCgroup,
    Setsid,
    Privileges,
    ParentDeath,
    Exec,
}

impl Step {
    fn describe(self) -> &'static str {
        match self {
            Step::None | Step::Exec => "exec",
            Step::Stdio => "wire stdio",
            Step::Chdir => "change to the working directory",
            Step::ProcessGroup => "start a process group",
            Step::JoinCgroup => "join the cgroup",
            Step::Setsid => "start a session",
            Step::Privileges => "drop privileges",
            Step::ParentDeath => "arm the parent-death signal",
        }
    }
}

/// What the child reads (through the shared address space) and writes back.
#[repr(C)]
pub(super) struct Shared<'a> {
    plan: &'a Plan,
    argv: *const *const c_char,
    envp: *const *const c_char,
    stdio: [RawFd; 3],
    /// The kernel placed the child in its cgroup at birth.
    born_in_cgroup: bool,
    failed_step: Step,
    errno: c_int,
}

/// Starts the child described by `plan`. Errors name the step that failed;
/// a failed exec keeps its OS error code (so `NotFound` stays recognisable).
/// `EINVAL`/`ENOSYS`/`EPERM` from the clone itself mean this kernel (or a
/// seccomp filter) refuses `CLONE_PIDFD`: the caller then uses the std path.
pub(crate) fn spawn(plan: &Plan) -> Result<Spawned, CloneError> {
    let pipes = Pipes::open(plan).map_err(CloneError::Other)?;
    let argv = null_terminated(&plan.argv);
    let env_storage;
    let envp = match &plan.envp {
        Some(vars) => {
            env_storage = null_terminated(vars);
            env_storage.as_ptr()
        }
        None => current_environ(),
    };
    let mut shared = Shared {
        plan,
        argv: argv.as_ptr(),
        envp,
        stdio: pipes.child_ends(),
        born_in_cgroup: false,
        failed_step: Step::None,
        errno: 0,
    };
    let stack = Stack::new().map_err(CloneError::Other)?;
    let mut pidfd: c_int = -1;

    // Block every signal so no handler of ours runs on the child's side of the
    // shared address space; the child resets dispositions before unblocking.
    let old_mask = block_all_signals();
    let mut result = Err(io::Error::from_raw_os_error(libc::ENOSYS));
    if let Join::Cgroup(dir) = plan.join
        && clone3::usable()
    {
        shared.born_in_cgroup = true;
        result = clone3::spawn(&mut shared, &stack, dir, &mut pidfd);
        if result.as_ref().is_err_and(clone3::is_refusal) {
            clone3::refused();
            shared.born_in_cgroup = false;
        }
    }
    if !shared.born_in_cgroup {
        let flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD;
        // SAFETY: `child_main` only makes async-signal-safe syscalls and never
        // returns into our frames; it runs on `stack`, which outlives the call
        // because CLONE_VFORK suspends this thread until the child execs or
        // exits. `shared` and everything it points to live in this frame.
        let pid = unsafe {
            libc::clone(
                child_main,
                stack.top(),
                flags,
                ptr::from_mut(&mut shared).cast::<c_void>(),
                ptr::from_mut(&mut pidfd),
            )
        };
        result = if pid < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(pid)
        };
    }
    restore_signals(&old_mask);
    drop(stack);
    let pid = match result {
        Ok(pid) => pid,
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EINVAL | libc::ENOSYS | libc::EPERM)
            ) =>
        {
            return Err(CloneError::Unsupported(e));
        }
        Err(e) => return Err(CloneError::Other(e)),
    };
    // SAFETY: with CLONE_PIDFD the kernel stored a new descriptor we now own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    // The child has exec'd or exited: `shared` holds its verdict.
    if shared.failed_step != Step::None {
        reap_failed(&pidfd);
        let os = io::Error::from_raw_os_error(shared.errno);
        let error = if shared.failed_step == Step::Exec {
            os
        } else {
            let what = shared.failed_step.describe();
            io::Error::new(os.kind(), format!("cannot {what}: {os}"))
        };
        return Err(CloneError::Other(error));
    }
    let (stdin, stdout, stderr) = pipes.into_parent_ends();
    Ok(Spawned {
        pid: pid as u32,
        pidfd,
        stdin,
        stdout,
        stderr,
    })
}

/// Why a clone spawn did not happen.
#[derive(Debug)]
pub(crate) enum CloneError {
    /// The kernel refuses this kind of clone: use another spawner.
    Unsupported(io::Error),
    /// The spawn itself failed.
    Other(io::Error),
}

/// The child: runs on its own stack in our address space, until exec.
pub(super) extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Shared` the parent passed to clone; the parent is
    // suspended (CLONE_VFORK) so nothing else touches it meanwhile.
    let shared = unsafe { &mut *arg.cast::<Shared<'_>>() };
    let Err((step, errno)) = prepare_and_exec(shared);
    shared.failed_step = step;
    shared.errno = errno;
    // SAFETY: _exit ends the child without running any of our destructors.
    unsafe { libc::_exit(127) }
}

/// Only returns on failure. Every call below is a plain syscall: nothing
/// allocates, locks, or touches thread-shared libc state.
fn prepare_and_exec(shared: &Shared<'_>) -> Result<std::convert::Infallible, (Step, c_int)> {
    let plan = shared.plan;
    for (target, &fd) in shared.stdio.iter().enumerate() {
        wire(fd, target as RawFd).map_err(|e| (Step::Stdio, e))?;
    }
    if let Some(dir) = &plan.cwd {
        // SAFETY: `dir` is a NUL-terminated string owned by the plan.
        check(unsafe { libc::chdir(dir.as_ptr()) }).map_err(|e| (Step::Chdir, e))?;
    }
    reset_signals();
    match plan.join {
        Join::Cgroup(_) if shared.born_in_cgroup => {}
        Join::Cgroup(dir) => join_cgroup(dir).map_err(|e| (Step::JoinCgroup, e))?,
        // A session leader is also a group leader; setsid refuses one setpgid made.
        Join::ProcessGroup if !plan.setsid => {
            // SAFETY: setpgid(0, 0) takes integers only.
            check(unsafe { libc::setpgid(0, 0) }).map_err(|e| (Step::ProcessGroup, e))?;
        }
        Join::ProcessGroup => {}
    }
    if plan.setsid {
        // SAFETY: setsid takes no arguments.
        check(unsafe { libc::setsid() }).map_err(|e| (Step::Setsid, e))?;
    }
    drop_privileges(plan).map_err(|e| (Step::Privileges, e))?;
    if let Some(parent) = plan.parent_death {
        arm_parent_death(parent).map_err(|e| (Step::ParentDeath, e))?;
    }
    unblock_all_signals();
    Err((Step::Exec, exec(shared)))
}

/// Moves the calling process into the cgroup whose directory is `dir`.
fn join_cgroup(dir: RawFd) -> Result<(), c_int> {
    // SAFETY: openat on the slot's open directory with a static name.
    let procs = unsafe {
        libc::openat(
            dir,
            c"cgroup.procs".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        )
    };
    check(procs)?;
    // Writing "0" to cgroup.procs moves the writer itself.
    // SAFETY: `procs` was just opened; the buffer is a static byte.
    let written = unsafe { libc::write(procs, b"0".as_ptr().cast(), 1) };
    let error = errno();
    // SAFETY: closing the descriptor opened above, once.
    unsafe { libc::close(procs) };
    if written != 1 {
        return Err(error);
    }
    Ok(())
}

/// Tries every candidate path like `execvp`: keep searching past missing
/// files, remember a permission error, stop at any other failure.
fn exec(shared: &Shared<'_>) -> c_int {
    let mut denied = false;
    let mut last = libc::ENOENT;
    for path in &shared.plan.candidates {
        // SAFETY: path, argv and envp are NUL-terminated and live in the
        // parent's suspended frame.
        unsafe { libc::execve(path.as_ptr(), shared.argv, shared.envp) };
        last = errno();
        match last {
            libc::EACCES => denied = true,
            libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
            _ => return last,
        }
    }
    if denied { libc::EACCES } else { last }
}

/// Puts `fd` at `target` (0, 1 or 2) without close-on-exec; `-1` leaves it.
fn wire(fd: RawFd, target: RawFd) -> Result<(), c_int> {
    if fd < 0 {
        return Ok(());
    }
    if fd == target {
        // SAFETY: clearing FD_CLOEXEC on an open descriptor.
        return check(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) });
    }
    // SAFETY: dup2 on two descriptor numbers; the target is replaced atomically.
    check(unsafe { libc::dup2(fd, target) })
}

fn drop_privileges(plan: &Plan) -> Result<(), c_int> {
    // Raw syscalls: glibc's wrappers would broadcast the change to every
    // thread of the parent, whose memory the child shares.
    if let Some(groups) = &plan.groups {
        // SAFETY: pointer and length describe a Vec in the plan.
        let r = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
        check_long(r)?;
    }
    // Group first: after setuid we may no longer change it.
    if let Some(gid) = plan.gid {
        // SAFETY: setgid takes an integer.
        check_long(unsafe { libc::syscall(libc::SYS_setgid, gid) })?;
    }
    if let Some(uid) = plan.uid {
        // SAFETY: setuid takes an integer.
        check_long(unsafe { libc::syscall(libc::SYS_setuid, uid) })?;
    }
    Ok(())
}

fn arm_parent_death(parent: libc::pid_t) -> Result<(), c_int> {
    // SAFETY: prctl(PR_SET_PDEATHSIG, SIGKILL) takes integers only.
    check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) })?;
    // The parent may have died before the signal was armed: check again.
    // SAFETY: getppid takes no arguments.
    if unsafe { libc::syscall(libc::SYS_getppid) } as libc::pid_t != parent {
        return Err(libc::ESRCH);
    }
    Ok(())
}

/// Handlers installed by this process must not run in the exec'd program's
/// place: reset every handled signal (and SIGPIPE, which Rust ignores) to
/// the default, as std does for its children.
fn reset_signals() {
    for signal in 1..=libc::SIGRTMAX() {
        // SAFETY: sigaction with a zeroed struct and a valid signal number;
        // it only fails for signals that cannot be changed.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, ptr::null(), &mut old) != 0 {
                continue;
            }
            let handled = old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN;
            if handled || signal == libc::SIGPIPE {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &default, ptr::null_mut());
            }
        }
    }
}

fn unblock_all_signals() {
    // SAFETY: an empty set on the stack; sigprocmask only changes our mask.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, ptr::null_mut());
    }
}

fn block_all_signals() -> libc::sigset_t {
    // SAFETY: both sets live on the stack; pthread_sigmask changes this
    // thread's mask only and writes the old one into `old`.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        old
    }
}

fn restore_signals(old: &libc::sigset_t) {
    // SAFETY: `old` is the mask saved by block_all_signals.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old, ptr::null_mut()) };
}

fn errno() -> c_int {
    // SAFETY: __errno_location returns this thread's errno slot (shared with
    // the suspended parent thread, which does not read it meanwhile).
    unsafe { *libc::__errno_location() }
}

fn check(r: c_int) -> Result<(), c_int> {
    if r < 0 { Err(errno()) } else { Ok(()) }
}

fn check_long(r: libc::c_long) -> Result<(), c_int> {
    if r < 0 { Err(errno()) } else { Ok(()) }
}

fn null_terminated(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(ptr::null()))
        .collect()
}

fn current_environ() -> *const *const c_char {
    unsafe extern "C" {
        static environ: *const *const c_char;
    }
    // SAFETY: reading the pointer value of libc's `environ`; like std's own
    // spawn, a concurrent `set_var` (itself `unsafe`) is the caller's concern.
    unsafe { environ }
}

/// Reaps a child that failed before exec (it has exited or is exiting).
fn reap_failed(pidfd: &OwnedFd) {
    // SAFETY: waitid on our own pidfd with a zeroed siginfo to fill.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(
            libc::P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            &mut info,
            libc::WEXITED,
        );
    }
}

/// The child's stack: an anonymous mapping with a guard page below it.
pub(super) struct Stack {
    base: *mut c_void,
}

impl Stack {
    fn new() -> io::Result<Stack> {
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
struct Pipes {
    stdin_child: Option<OwnedFd>,
    stdin_parent: Option<OwnedFd>,
    stdout: (OwnedFd, OwnedFd),
    stderr: (OwnedFd, OwnedFd),
}

impl Pipes {
    fn open(plan: &Plan) -> io::Result<Pipes> {
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

    fn child_ends(&self) -> [RawFd; 3] {
        [
            self.stdin_child.as_ref().map_or(-1, AsRawFd::as_raw_fd),
            self.stdout.1.as_raw_fd(),
            self.stderr.1.as_raw_fd(),
        ]
    }

    fn into_parent_ends(self) -> (Option<OwnedFd>, OwnedFd, OwnedFd) {
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
