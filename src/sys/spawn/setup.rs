//! What a child does between fork/clone and exec besides stdio, written
//! once for both spawners: join its container, start a session (and take
//! its terminal), drop privileges, enter its working directory, arm the
//! parent-death signal.

use std::ffi::{CString, c_int};
use std::io;
#[cfg(target_os = "linux")]
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
#[cfg(target_os = "linux")]
use std::sync::Arc;

use super::options::SpawnOptions;
use crate::rlimit::Rlimit;

/// How the child joins its slot before exec.
#[derive(Debug, Clone, Default)]
pub(crate) enum Join {
    /// Nothing to join.
    #[default]
    None,
    /// Become the leader of a new process group (unless `setsid` makes one).
    ProcessGroup,
    /// Enter the cgroup whose directory this is: be born there
    /// (`clone3(CLONE_INTO_CGROUP)`) or write `0` to its `cgroup.procs`.
    /// Shared so the unclaimed child can still kill the cgroup.
    #[cfg(target_os = "linux")]
    Cgroup(Arc<OwnedFd>),
    /// Be started by a shim of its own, a child subreaper that holds the
    /// tree; nothing to do in the child itself.
    #[cfg(target_os = "linux")]
    Subreaper,
}

/// The child's steps before exec, prepared by the parent: nothing in
/// `apply` allocates or looks anything up.
#[derive(Debug, Clone, Default)]
pub(crate) struct ChildSetup {
    pub(crate) join: Join,
    pub(crate) setsid: bool,
    /// Make the terminal on fd 0 the new session's controlling terminal
    /// (set with `setsid`, by a run on a pseudo-terminal).
    pub(crate) controlling_tty: bool,
    /// `Some` when privileges change: the supplementary groups (maybe empty).
    pub(crate) groups: Option<Vec<libc::gid_t>>,
    /// The group to switch to: the one asked for, or with only a user id
    /// that user's primary group (looked up by the parent).
    pub(crate) gid: Option<libc::gid_t>,
    pub(crate) uid: Option<libc::uid_t>,
    /// The working directory, entered after the privilege drop so it must
    /// be reachable by the user the child runs as.
    pub(crate) cwd: Option<CString>,
    /// Our pid, when the child must die with us.
    pub(crate) parent_death: Option<libc::pid_t>,
    pub(crate) umask: Option<libc::mode_t>,
    /// The absolute nice value.
    pub(crate) priority: Option<c_int>,
    /// `(soft, hard)` per limit, at its index in `LIMITS`.
    pub(crate) rlimits: Rlimits,
}

/// The resource limits a child sets, one optional `(soft, hard)` pair per
/// limit in `LIMITS` order: plain data, copied into a forked shim.
pub(crate) type Rlimits = [Option<(u64, u64)>; 7];

/// The step a child failed at (the clone child reports it; std's hook
/// passes on only the errno).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Step {
    None,
    Stdio,
    Chdir,
    ProcessGroup,
    JoinCgroup,
    Setsid,
    Privileges,
    ParentDeath,
    Exec,
    Rlimit,
    Priority,
    ControllingTerminal,
}

impl Step {
    /// Every step, at the index of its discriminant.
    #[cfg(target_os = "linux")]
    pub(crate) const ALL: [Step; 12] = [
        Step::None,
        Step::Stdio,
        Step::Chdir,
        Step::ProcessGroup,
        Step::JoinCgroup,
        Step::Setsid,
        Step::Privileges,
        Step::ParentDeath,
        Step::Exec,
        Step::Rlimit,
        Step::Priority,
        Step::ControllingTerminal,
    ];

    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Step::None | Step::Exec => "exec",
            Step::Stdio => "wire stdio",
            Step::Chdir => "change to the working directory",
            Step::ProcessGroup => "start a process group",
            Step::JoinCgroup => "join the cgroup",
            Step::Setsid => "start a session",
            Step::Privileges => "drop privileges",
            Step::ParentDeath => "arm the parent-death signal",
            Step::Rlimit => "set a resource limit",
            Step::Priority => "set the priority (nice value)",
            Step::ControllingTerminal => "take the terminal as the controlling terminal",
        }
    }
}

impl ChildSetup {
    /// The setup `options` ask for (the slot fills in `join`). A user id
    /// without a group id is looked up here, in the parent: a uid with no
    /// user entry is an `InvalidInput` error.
    pub(crate) fn new(options: &SpawnOptions, cwd: Option<&Path>) -> io::Result<ChildSetup> {
        let drops_privileges =
            options.uid.is_some() || options.gid.is_some() || options.groups.is_some();
        let gid = match (options.uid, options.gid) {
            (Some(uid), None) => Some(primary_gid(uid)?),
            (_, gid) => gid,
        };
        Ok(ChildSetup {
            join: Join::None,
            setsid: options.setsid,
            controlling_tty: false,
            groups: drops_privileges.then(|| options.groups.clone().unwrap_or_default()),
            gid,
            uid: options.uid,
            // Validated free of NUL bytes.
            cwd: cwd.and_then(|d| CString::new(d.as_os_str().as_bytes()).ok()),
            parent_death: options
                .kill_on_parent_death
                .then(|| std::process::id() as libc::pid_t),
            umask: options.umask.map(|m| m as libc::mode_t),
            priority: options.priority,
            rlimits: rlimits(&options.rlimits),
        })
    }

    /// Whether privileges change.
    pub(crate) fn drops_privileges(&self) -> bool {
        self.groups.is_some()
    }

    /// Whether the child will lead a process group (its own, or its session's).
    pub(crate) fn leads_group(&self) -> bool {
        matches!(self.join, Join::ProcessGroup) || self.setsid
    }

    /// The cgroup directory the child joins, if any.
    #[cfg(target_os = "linux")]
    pub(crate) fn cgroup(&self) -> Option<&Arc<OwnedFd>> {
        match &self.join {
            Join::Cgroup(dir) => Some(dir),
            _ => None,
        }
    }

    /// Runs the steps in the child (see `SetupView::apply`).
    #[cfg_attr(target_os = "linux", allow(dead_code))]
    pub(crate) fn apply(&self, born_in_cgroup: bool) -> Result<(), (Step, c_int)> {
        self.view().apply(born_in_cgroup)
    }

    /// The steps as plain values and borrows.
    pub(crate) fn view(&self) -> SetupView<'_> {
        SetupView {
            join: match &self.join {
                Join::None => JoinView::None,
                #[cfg(target_os = "linux")]
                Join::Subreaper => JoinView::None,
                Join::ProcessGroup => JoinView::ProcessGroup,
                #[cfg(target_os = "linux")]
                Join::Cgroup(dir) => JoinView::Cgroup(dir.as_raw_fd()),
            },
            setsid: self.setsid,
            controlling_tty: self.controlling_tty,
            groups: self.groups.as_deref(),
            gid: self.gid,
            uid: self.uid,
            cwd: self.cwd.as_deref(),
            parent_death: self.parent_death,
            umask: self.umask,
            priority: self.priority,
            rlimits: self.rlimits,
        }
    }
}

/// Every limit, at its index in `Rlimits`.
const LIMITS: [Rlimit; 7] = [
    Rlimit::Core,
    Rlimit::Cpu,
    Rlimit::Data,
    Rlimit::FileSize,
    Rlimit::NoFile,
    Rlimit::Stack,
    Rlimit::AddressSpace,
];

/// The limits as a child applies them: the last one set for a limit wins.
fn rlimits(asked: &[(Rlimit, u64, u64)]) -> Rlimits {
    let mut out: Rlimits = [None; 7];
    for &(limit, soft, hard) in asked {
        if let Some(i) = LIMITS.iter().position(|&l| l == limit) {
            out[i] = Some((soft, hard));
        }
    }
    out
}

/// How the child joins its slot, as `apply` needs it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum JoinView {
    None,
    ProcessGroup,
    /// The cgroup directory's descriptor.
    #[cfg(target_os = "linux")]
    Cgroup(std::os::fd::RawFd),
}

/// A child's steps before exec as plain values and borrows, so a forked shim
/// can build one from a message without allocating.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SetupView<'a> {
    pub(crate) join: JoinView,
    pub(crate) setsid: bool,
    pub(crate) controlling_tty: bool,
    pub(crate) groups: Option<&'a [libc::gid_t]>,
    pub(crate) gid: Option<libc::gid_t>,
    pub(crate) uid: Option<libc::uid_t>,
    pub(crate) cwd: Option<&'a std::ffi::CStr>,
    pub(crate) parent_death: Option<libc::pid_t>,
    pub(crate) umask: Option<libc::mode_t>,
    pub(crate) priority: Option<c_int>,
    pub(crate) rlimits: Rlimits,
}

impl SetupView<'_> {
    /// Runs the steps in the child, in order; on failure says which step
    /// and the errno. Async-signal-safe: plain syscalls on data prepared by
    /// the parent, no allocation, no lock. Raw `libc` rather than rustix:
    /// this runs in a `CLONE_VM` child on the parent's memory, where every
    /// call must be one we can read as exactly one syscall.
    pub(crate) fn apply(&self, born_in_cgroup: bool) -> Result<(), (Step, c_int)> {
        match self.join {
            JoinView::None => {}
            #[cfg(target_os = "linux")]
            JoinView::Cgroup(_) if born_in_cgroup => {}
            #[cfg(target_os = "linux")]
            JoinView::Cgroup(dir) => join_cgroup(dir).map_err(at(Step::JoinCgroup))?,
            // A session leader is also a group leader; setsid refuses one setpgid made.
            JoinView::ProcessGroup if self.setsid => {}
            JoinView::ProcessGroup => {
                // SAFETY: setpgid(0, 0) takes integers only.
                check(unsafe { libc::setpgid(0, 0) }).map_err(at(Step::ProcessGroup))?;
            }
        }
        let _ = born_in_cgroup;
        if self.setsid {
            // SAFETY: setsid takes no arguments.
            check(unsafe { libc::setsid() }).map_err(at(Step::Setsid))?;
        }
        if self.controlling_tty {
            take_terminal().map_err(at(Step::ControllingTerminal))?;
        }
        // Before the privilege drop: raising a hard limit or lowering the
        // nice value needs the privileges the parent may be giving up.
        self.set_rlimits().map_err(at(Step::Rlimit))?;
        if let Some(nice) = self.priority {
            // SAFETY: setpriority takes integers only.
            check(unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) })
                .map_err(at(Step::Priority))?;
        }
        if let Some(mask) = self.umask {
            // SAFETY: umask takes an integer and cannot fail.
            unsafe { libc::umask(mask) };
        }
        self.drop_privileges().map_err(at(Step::Privileges))?;
        if let Some(dir) = self.cwd {
            // SAFETY: `dir` is a NUL-terminated string the caller keeps alive.
            check(unsafe { libc::chdir(dir.as_ptr()) }).map_err(at(Step::Chdir))?;
        }
        if let Some(parent) = self.parent_death {
            arm_parent_death(parent).map_err(at(Step::ParentDeath))?;
        }
        Ok(())
    }

    fn set_rlimits(&self) -> Result<(), c_int> {
        for (i, limit) in self.rlimits.iter().enumerate() {
            let Some((soft, hard)) = *limit else { continue };
            let value = libc::rlimit {
                rlim_cur: soft as libc::rlim_t,
                rlim_max: hard as libc::rlim_t,
            };
            let resource = resource(LIMITS[i]);
            // SAFETY: `value` is a valid rlimit on our stack for the call.
            check(unsafe { libc::setrlimit(resource, &value) })?;
        }
        Ok(())
    }

    /// Groups, then the group id, then the user id: after setuid we may no
    /// longer change the others.
    fn drop_privileges(&self) -> Result<(), c_int> {
        if let Some(groups) = self.groups {
            check_long(raw::setgroups(groups))?;
        }
        if let Some(gid) = self.gid {
            check_long(raw::setgid(gid))?;
        }
        if let Some(uid) = self.uid {
            check_long(raw::setuid(uid))?;
        }
        Ok(())
    }
}

/// Credential changes as raw syscalls on Linux: glibc's wrappers would
/// broadcast the change to every thread of the parent, whose memory a
/// `CLONE_VM` child shares. 32-bit x86 and ARM need the 32-bit-id calls.
#[cfg(target_os = "linux")]
mod raw {
    #[cfg(not(any(target_arch = "x86", target_arch = "arm")))]
    use libc::{SYS_setgid as SETGID, SYS_setgroups as SETGROUPS, SYS_setuid as SETUID};
    #[cfg(any(target_arch = "x86", target_arch = "arm"))]
    use libc::{SYS_setgid32 as SETGID, SYS_setgroups32 as SETGROUPS, SYS_setuid32 as SETUID};

    pub(super) fn setgroups(groups: &[libc::gid_t]) -> libc::c_long {
        // SAFETY: pointer and length describe a live slice of gids.
        unsafe { libc::syscall(SETGROUPS, groups.len(), groups.as_ptr()) }
    }

    pub(super) fn setgid(gid: libc::gid_t) -> libc::c_long {
        // SAFETY: setgid takes an integer.
        unsafe { libc::syscall(SETGID, gid) }
    }

    pub(super) fn setuid(uid: libc::uid_t) -> libc::c_long {
        // SAFETY: setuid takes an integer.
        unsafe { libc::syscall(SETUID, uid) }
    }
}

/// Elsewhere only the std spawner's forked, single-threaded child runs these.
#[cfg(not(target_os = "linux"))]
mod raw {
    pub(super) fn setgroups(groups: &[libc::gid_t]) -> libc::c_long {
        // SAFETY: pointer and length describe a live slice of gids.
        (unsafe { libc::setgroups(groups.len() as _, groups.as_ptr()) }).into()
    }

    pub(super) fn setgid(gid: libc::gid_t) -> libc::c_long {
        // SAFETY: setgid takes an integer.
        (unsafe { libc::setgid(gid) }).into()
    }

    pub(super) fn setuid(uid: libc::uid_t) -> libc::c_long {
        // SAFETY: setuid takes an integer.
        (unsafe { libc::setuid(uid) }).into()
    }
}

/// The platform's number for `limit` (its type differs between libcs).
fn resource(limit: Rlimit) -> RlimitResource {
    match limit {
        Rlimit::Core => libc::RLIMIT_CORE,
        Rlimit::Cpu => libc::RLIMIT_CPU,
        Rlimit::Data => libc::RLIMIT_DATA,
        Rlimit::FileSize => libc::RLIMIT_FSIZE,
        Rlimit::NoFile => libc::RLIMIT_NOFILE,
        Rlimit::Stack => libc::RLIMIT_STACK,
        Rlimit::AddressSpace => libc::RLIMIT_AS,
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
type RlimitResource = libc::__rlimit_resource_t;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
type RlimitResource = c_int;

/// Makes the terminal the spawner wired to fd 0 the controlling terminal of
/// the session this child just started: one `ioctl(TIOCSCTTY)` (rustix's
/// wrapper makes exactly that syscall, with no allocation).
fn take_terminal() -> Result<(), c_int> {
    // SAFETY: fd 0 is open: the spawner wired the terminal there before the
    // setup runs, and nothing closes it before exec.
    let stdin = unsafe { std::os::fd::BorrowedFd::borrow_raw(0) };
    rustix::process::ioctl_tiocsctty(stdin).map_err(|e| e.raw_os_error())
}

/// Moves the calling process into the cgroup whose directory is `dir`.
#[cfg(target_os = "linux")]
fn join_cgroup(dir: std::os::fd::RawFd) -> Result<(), c_int> {
    // SAFETY: openat on the spec's open directory with a static name.
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

/// Arms `PR_SET_PDEATHSIG`. If the parent died before that, the child is
/// killed here, exactly as the signal would have done had it been armed in
/// time (the parent, gone, hears of no error either way).
#[cfg(target_os = "linux")]
fn arm_parent_death(parent: libc::pid_t) -> Result<(), c_int> {
    // SAFETY: prctl(PR_SET_PDEATHSIG, SIGKILL) takes integers only.
    check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) })?;
    // SAFETY: getppid, getpid and kill take integers only (raw syscalls: no
    // libc cache of our pid, which a CLONE_VM child would share).
    unsafe {
        if libc::syscall(libc::SYS_getppid) as libc::pid_t != parent {
            let me = libc::syscall(libc::SYS_getpid);
            libc::syscall(libc::SYS_kill, me, libc::SIGKILL);
        }
    }
    Ok(())
}

/// No equivalent on macOS/BSD: a documented no-op.
#[cfg(not(target_os = "linux"))]
fn arm_parent_death(_parent: libc::pid_t) -> Result<(), c_int> {
    Ok(())
}

/// The primary group of `uid` from the user database (NSS), for a child
/// given a user id without a group id. Called in the parent, never between
/// fork and exec. A uid without an entry is an `InvalidInput` error.
fn primary_gid(uid: libc::uid_t) -> io::Result<libc::gid_t> {
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        // SAFETY: a zeroed passwd for getpwuid_r to fill; every pointer in it
        // points into `buf`, which outlives its use here.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: all pointers are valid for the sizes given.
        let rc =
            unsafe { libc::getpwuid_r(uid, &mut entry, buf.as_mut_ptr(), buf.len(), &mut found) };
        match rc {
            0 if !found.is_null() => return Ok(entry.pw_gid),
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            libc::EINTR => {}
            // "Not found" is 0 with no result in glibc; other libcs use these.
            0 | libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "uid {uid} has no entry in the user database, so it has no \
                         primary group: set gid() explicitly"
                    ),
                ));
            }
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

fn at(step: Step) -> impl Fn(c_int) -> (Step, c_int) {
    move |errno| (step, errno)
}

/// This thread's errno (in a `CLONE_VM` child: the suspended parent
/// thread's slot, which it does not read meanwhile). Allocates nothing.
pub(crate) fn errno() -> c_int {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

pub(crate) fn check(r: c_int) -> Result<(), c_int> {
    if r < 0 { Err(errno()) } else { Ok(()) }
}

fn check_long(r: libc::c_long) -> Result<(), c_int> {
    if r < 0 { Err(errno()) } else { Ok(()) }
}
