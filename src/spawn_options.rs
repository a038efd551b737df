//! The spawn options real programs sooner or later need, on `Command`:
//! `argv[0]`, umask, nice value, resource limits, a pre-exec hook, Windows
//! creation flags and raw arguments, and handing over the terminal. Each
//! exists on every platform; where one cannot be honoured the run fails
//! with `Error::Unsupported` rather than ignoring it.

use std::ffi::OsStr;
use std::io;
use std::sync::Arc;

use crate::command::Command;
use crate::rlimit::Rlimit;
use crate::sys::spawn::PreExec;

impl Command {
    /// What the child sees as its own name (`argv[0]`, `$0`), instead of the
    /// program as given; the program is still looked up and run as given
    /// (Unix; elsewhere the run fails with
    /// [`Error::Unsupported`](crate::Error::Unsupported)). Busybox-style
    /// multi-call binaries and login shells (`-bash`) read it.
    pub fn arg0(mut self, arg0: impl AsRef<OsStr>) -> Command {
        self.os.arg0 = Some(arg0.as_ref().to_owned());
        self
    }

    /// The child's file mode creation mask, e.g. `0o077` so that nothing it
    /// creates is readable by others (Unix; elsewhere
    /// [`Error::Unsupported`](crate::Error::Unsupported)).
    pub fn umask(mut self, mask: u32) -> Command {
        self.os.umask = Some(mask);
        self
    }

    /// The child's scheduling priority: on Unix its absolute nice value (-20
    /// highest to 19 lowest; going below the parent's needs privilege, and a
    /// refusal fails the spawn); on Windows the nearest priority class
    /// (below -10: high, -10 to -1: above normal, 0: normal, 1 to 10: below
    /// normal, above 10: idle; never realtime).
    pub fn priority(mut self, nice: i32) -> Command {
        self.os.priority = Some(nice);
        self
    }

    /// Sets one resource limit for the child (`setrlimit` before exec; Unix;
    /// elsewhere [`Error::Unsupported`](crate::Error::Unsupported)). Setting
    /// a limit twice keeps the last. Raising a hard limit needs privilege;
    /// the limits are set before `uid`/`gid` drop it. `u64::MAX` is
    /// "unlimited".
    ///
    /// ```no_run
    /// # async fn demo() -> processkit::Result<()> {
    /// use processkit::{Command, Rlimit};
    /// let out = Command::new("untrusted-tool")
    ///     .rlimit(Rlimit::Cpu, 10, 10)              // ten seconds of CPU
    ///     .rlimit(Rlimit::Core, 0, 0)               // no core dumps
    ///     .rlimit(Rlimit::NoFile, 256, 256)
    ///     .output_string()
    ///     .await?;
    /// # drop(out); Ok(()) }
    /// ```
    pub fn rlimit(mut self, limit: Rlimit, soft: u64, hard: u64) -> Command {
        self.os.rlimits.push((limit, soft, hard));
        self
    }

    /// Runs `hook` in the child after it joined its container and dropped
    /// privileges, just before exec (Unix; elsewhere
    /// [`Error::Unsupported`](crate::Error::Unsupported)). An error fails
    /// the spawn with it. Hooks run in the order they were added.
    ///
    /// A command with a hook is started by the std spawner (a fork), not by
    /// processkit's vfork-style clone, which shares this process's memory;
    /// under the subreaper mechanism the run fails with `Unsupported` (the
    /// child is started by another process, where the closure cannot run).
    ///
    /// # Safety
    ///
    /// The hook runs in a forked copy of a multi-threaded process: it may
    /// only make async-signal-safe calls (plain syscalls; no allocation, no
    /// locks, no `println!`), exactly as
    /// [`std::os::unix::process::CommandExt::pre_exec`] requires.
    // Declaring it is the only unsafe here: the caller's promise is what
    // makes running the hook sound, and `sys` runs it.
    #[allow(unsafe_code)]
    pub unsafe fn pre_exec<F>(mut self, hook: F) -> Command
    where
        F: Fn() -> io::Result<()> + Send + Sync + 'static,
    {
        self.os.pre_exec.push(PreExec(Arc::new(hook)));
        self
    }

    /// Windows: creation flags OR'd into the ones processkit sets
    /// (`CREATE_SUSPENDED`, `CREATE_NEW_PROCESS_GROUP`, and
    /// `CREATE_NO_WINDOW` when asked), e.g. `CREATE_NEW_CONSOLE` or
    /// `BELOW_NORMAL_PRIORITY_CLASS`. Elsewhere a non-zero value fails the
    /// run with [`Error::Unsupported`](crate::Error::Unsupported).
    pub fn creation_flags(mut self, flags: u32) -> Command {
        self.os.creation_flags |= flags;
        self
    }

    /// Windows: appends an argument to the command line as is, without the
    /// quoting [`arg`](Command::arg) applies (for programs that parse their
    /// command line their own way, such as `cmd /c`). Its place among the
    /// other arguments is kept. Elsewhere the run fails with
    /// [`Error::Unsupported`](crate::Error::Unsupported).
    pub fn raw_arg(mut self, arg: impl AsRef<OsStr>) -> Command {
        let at = self.args.len();
        self.os.raw_args.push((at, arg.as_ref().to_owned()));
        self
    }

    /// Hands this process's controlling terminal to the run while it runs,
    /// and takes it back at its exit (Unix `tcsetpgrp`; on Windows the run
    /// fails with [`Error::Unsupported`](crate::Error::Unsupported)).
    ///
    /// Where a run leads its own process group (the process-group and
    /// subreaper mechanisms, or `setsid`), the terminal's Ctrl-C no longer
    /// reaches it, and a read of the terminal stops it with SIGTTIN. With
    /// `foreground()` it becomes the terminal's foreground job, as a shell
    /// makes it: Ctrl-C and Ctrl-Z go to it (not to us), and it may read
    /// the terminal. The terminal is handed over right after the spawn: a
    /// program that touches it before that is stopped (SIGTTIN/SIGTTOU) and
    /// continued once it holds it. Under cgroup v2 a run stays in our
    /// process group and
    /// shares the terminal already, so this changes nothing; likewise when
    /// this process has no terminal or is not in its foreground. A `setsid`
    /// run has left our session, so it cannot take our terminal.
    pub fn foreground(mut self) -> Command {
        self.os.foreground = true;
        self
    }
}
