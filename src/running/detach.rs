//! `Command::spawn_detached`: the one way to start a child that outlives
//! this process. It is lowered like every run, then started outside every
//! container; nothing of processkit watches, captures or kills it.

use super::spawn::{lower, open_stdin, output_plan, spawn_error};
use crate::command::Command;
use crate::error::{Error, Result};
use crate::stdin::StdinSource;
use crate::stdio::{Stdio, StdioKind};
use crate::sys::spawn::{self, OutputPlan, StdinPlan};

impl Command {
    /// Starts the program **outside every container** and returns its pid:
    /// a GUI application, or a daemon the user asked for, that must outlive
    /// this process. It is the one documented way to do so; nothing else
    /// in processkit leaves a process behind.
    ///
    /// The child is nobody's to reap here and nothing of processkit holds
    /// it: no cgroup, process group, shim or guardian, no parent-death
    /// signal, no kill on drop.
    ///
    /// - **Unix**: an intermediate child starts a new session and forks the
    ///   program, then exits and is reaped before this returns; the program
    ///   is re-parented to init (or to the nearest subreaper above this
    ///   process: a container's init, or this process when it is PID 1,
    ///   where [`reap_orphans`](crate::reap_orphans) reaps it). It leads no
    ///   process group and has no controlling terminal. A program that
    ///   cannot be executed fails here, as for [`start`](Command::start).
    /// - **Windows**: `DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP`, breaking
    ///   away from any job this process is in. When such a job forbids
    ///   breakaway, the child starts inside it instead: none of processkit's,
    ///   so it still outlives this process unless that job's owner ends it.
    /// - A container that holds this very process (a parent's cgroup, Job
    ///   Object or process group) may still hold the child: only its owner
    ///   can let it go.
    ///
    /// Its stdio defaults to the null device: stdout and stderr go to
    /// `/dev/null` (`NUL`) unless set to [`Stdio::inherit`](crate::Stdio::inherit) or [`Stdio::file`](crate::Stdio::file), and
    /// stdin is null unless inherited or [`Stdin::from_file`](crate::Stdin::from_file).
    /// Data fed to stdin, `keep_stdin_open`, a timeout, an idle timeout and
    /// `kill_on_parent_death` cannot apply to a child nobody watches: each
    /// is an [`Error::InvalidCommand`]. Line handlers, retries and
    /// `max_output` are not used. The environment, working directory, PATH
    /// lookup and (Unix) `uid`/`gid`/`groups` apply as for any run.
    ///
    /// The pid is the caller's to track; it may be reused once the program
    /// exits.
    ///
    /// ```no_run
    /// # fn demo() -> processkit::Result<()> {
    /// use processkit::Command;
    /// let pid = Command::new("firefox").arg("https://example.com").spawn_detached()?;
    /// println!("started firefox as {pid}; it outlives us");
    /// # Ok(()) }
    /// ```
    pub fn spawn_detached(&self) -> Result<u32> {
        let program = self.display_name();
        self.cancel.check(&program)?;
        let refuse = |reason: &str| {
            Err(Error::InvalidCommand {
                program: program.clone(),
                reason: format!("a detached child {reason}"),
            })
        };
        if self.timeout.is_some() || self.idle_timeout.is_some() {
            return refuse("has no timeout: nothing of processkit watches it");
        }
        if self.os.kill_on_parent_death {
            return refuse("outlives this process by design: kill_on_parent_death contradicts it");
        }
        let stdin = match (&self.stdin.0, self.keep_stdin_open) {
            (StdinSource::Null, false) => StdinPlan::Null,
            (StdinSource::Inherit, false) => StdinPlan::Inherit,
            (StdinSource::File(path), false) => StdinPlan::Stage(open_stdin(path, &program)?),
            _ => return refuse("gets no stdin from processkit: use a file, null or inherit"),
        };
        let mut spec = lower(self, stdin, false).map_err(|e| spawn_error(e, &program))?;
        spec.stdout = detached_output(&self.stdout, &program)?;
        spec.stderr = if self.stderr_to_stdout {
            OutputPlan::Stdout
        } else {
            detached_output(&self.stderr, &program)?
        };
        spawn::detach::spawn(spec).map_err(|e| spawn_error(e, &program))
    }
}

/// A captured stream has nobody to read it: it goes to the null device.
fn detached_output(stdio: &Stdio, program: &str) -> Result<OutputPlan> {
    match stdio.0 {
        StdioKind::Capture { .. } => Ok(OutputPlan::Null),
        _ => output_plan(stdio, program),
    }
}
