//! The spawn options as the command asks for them (`SpawnOptions`), and
//! which of them this platform refuses rather than ignores.

use std::ffi::OsString;
use std::io;

use super::spec::SpawnError;
use crate::rlimit::Rlimit;

/// Spawn-time OS controls as the command asks for them: privileges,
/// sessions, limits, priority, window and parent-death flags, and the raw
/// escape hatches (a pre-exec hook, creation flags, raw arguments).
#[derive(Clone, Default, Debug)]
pub(crate) struct SpawnOptions {
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
    pub(crate) groups: Option<Vec<u32>>,
    pub(crate) setsid: bool,
    pub(crate) create_no_window: bool,
    pub(crate) kill_on_parent_death: bool,
    /// What the child sees as `argv[0]` (Unix).
    pub(crate) arg0: Option<OsString>,
    pub(crate) umask: Option<u32>,
    /// The absolute nice value (Unix), or the nearest priority class (Windows).
    pub(crate) priority: Option<i32>,
    /// `(limit, soft, hard)`, the last one set for a limit winning.
    pub(crate) rlimits: Vec<(Rlimit, u64, u64)>,
    /// Caller hooks run in the child just before exec (Unix, std spawner).
    pub(crate) pre_exec: Vec<PreExec>,
    /// OR'd into the creation flags processkit sets (Windows).
    pub(crate) creation_flags: u32,
    /// Arguments passed to the command line unquoted (Windows): each with
    /// the number of ordinary arguments before it.
    pub(crate) raw_args: Vec<(usize, OsString)>,
    /// Hand the terminal to the run's process group while it runs (Unix).
    pub(crate) foreground: bool,
}

/// A caller's pre-exec hook: runs in the forked child, so it must be
/// async-signal-safe (the caller promised so through an `unsafe` call).
#[derive(Clone)]
#[cfg_attr(windows, allow(dead_code))]
pub(crate) struct PreExec(pub(crate) std::sync::Arc<dyn Fn() -> io::Result<()> + Send + Sync>);

impl std::fmt::Debug for PreExec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PreExec")
    }
}

/// Windows has no user/group ids or sessions to set at spawn.
#[cfg(windows)]
pub(super) fn refuse_posix_only(options: &SpawnOptions) -> Result<(), SpawnError> {
    let posix_only = [
        ("uid", options.uid.is_some()),
        ("gid", options.gid.is_some()),
        ("groups", options.groups.is_some()),
        ("setsid", options.setsid),
        ("arg0", options.arg0.is_some()),
        ("umask", options.umask.is_some()),
        ("rlimit", !options.rlimits.is_empty()),
        ("pre_exec", !options.pre_exec.is_empty()),
        ("foreground", options.foreground),
    ];
    match posix_only.iter().find(|(_, asked)| *asked) {
        Some((option, _)) => Err(SpawnError::Unsupported(option)),
        None => Ok(()),
    }
}

/// The Windows priority class nearest to a Unix nice value (REALTIME is
/// never chosen: it can starve the system).
#[cfg(windows)]
pub(super) fn priority_class(nice: i32) -> u32 {
    use windows_sys::Win32::System::Threading::{
        ABOVE_NORMAL_PRIORITY_CLASS, BELOW_NORMAL_PRIORITY_CLASS, HIGH_PRIORITY_CLASS,
        IDLE_PRIORITY_CLASS, NORMAL_PRIORITY_CLASS,
    };
    match nice {
        i32::MIN..=-11 => HIGH_PRIORITY_CLASS,
        -10..=-1 => ABOVE_NORMAL_PRIORITY_CLASS,
        0 => NORMAL_PRIORITY_CLASS,
        1..=10 => BELOW_NORMAL_PRIORITY_CLASS,
        _ => IDLE_PRIORITY_CLASS,
    }
}

/// The Windows-only options, refused elsewhere rather than ignored.
#[cfg(unix)]
pub(super) fn refuse_windows_only(options: &SpawnOptions) -> Result<(), SpawnError> {
    if options.creation_flags != 0 {
        return Err(SpawnError::Unsupported("creation_flags"));
    }
    if !options.raw_args.is_empty() {
        return Err(SpawnError::Unsupported("raw_arg"));
    }
    Ok(())
}
