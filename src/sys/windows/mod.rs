//! Windows containment: one kill-on-close Job Object per group, and a job
//! nested below it per run of a shared group. Children start suspended, join
//! their jobs, and only then run, so no descendant ever runs outside the job.
//! A graceful stop asks politely first (`polite`), then terminates the job.

#[cfg(feature = "stats")]
pub(crate) mod accounting;
pub(crate) mod backend;
#[cfg(feature = "pty")]
pub(crate) mod conpty;
pub(crate) mod job;
pub(crate) mod polite;
pub(crate) mod process;
pub(crate) mod threads;

#[cfg(test)]
mod tests;

use std::io;
use std::os::windows::io::{AsHandle, BorrowedHandle};
use std::sync::Arc;

use self::job::{Job, Watched};
use self::polite::{Console, Requests, Roots};
use self::threads::ThreadAction;

/// A group's (or a single run's) Job Object, with kill-on-close.
#[derive(Debug)]
pub(crate) struct JobContainer {
    job: Arc<Job>,
    single_run: bool,
    /// Every run's direct child, each leading a console process group.
    roots: Arc<Roots>,
}

impl JobContainer {
    /// A new, empty job. A `single_run` container's one run lives directly in
    /// it; a group gives each run a job of its own nested below.
    pub(crate) fn new(single_run: bool) -> io::Result<JobContainer> {
        Ok(JobContainer {
            job: Arc::new(Job::new(true)?),
            single_run,
            roots: Arc::default(),
        })
    }

    pub(crate) fn slot(&self) -> io::Result<JobSlot> {
        // The per-run job is not kill-on-close: dropping a run's handle in a
        // shared group must not kill it. The group's job still holds it.
        let run = if self.single_run {
            None
        } else {
            Some(Job::new(false)?)
        };
        Ok(JobSlot {
            group: Arc::clone(&self.job),
            run,
            child: None,
            roots: Arc::clone(&self.roots),
        })
    }

    /// Asks every run to stop: a console break to each run's process group
    /// and `WM_CLOSE` to every window of the job's processes (adopted ones
    /// included). `Unsupported` when nothing could be delivered.
    pub(crate) fn ask_all_to_stop(&self) -> io::Result<()> {
        let mut requests = Requests::default();
        let console = Console::read();
        for root in self.roots.running() {
            requests.console_break(&root, &console);
        }
        requests.close_windows(&self.job);
        requests.finish()
    }

    /// Terminates every process in the job, nested runs included.
    pub(crate) fn terminate(&self) -> io::Result<()> {
        self.job.terminate()
    }

    /// Best-effort freeze: suspends (or resumes) every thread of every member.
    /// Suspends stack per thread, so each `true` needs a matching `false`.
    pub(crate) fn set_frozen(&self, frozen: bool) -> io::Result<()> {
        let action = if frozen {
            ThreadAction::Suspend
        } else {
            ThreadAction::Resume
        };
        threads::apply(&self.job.pids()?, action).map(|_| ())
    }

    /// Every live process in the job: the whole tree, not only the children.
    pub(crate) fn members(&self) -> io::Result<Vec<u32>> {
        self.job.pids()
    }

    /// What the whole job uses (every run's nested job included).
    #[cfg(feature = "stats")]
    pub(crate) fn usage(&self) -> io::Result<crate::sys::Usage> {
        self.job.usage()
    }

    /// Caps the whole job's memory, process count and CPU rate.
    #[cfg(feature = "limits")]
    pub(crate) fn set_limits(&self, limits: &crate::sys::Limits) -> io::Result<()> {
        self.job.set_limits(limits)
    }

    /// Moves a running process (and everything it starts from now on) into the job.
    pub(crate) fn adopt(&self, pid: u32) -> io::Result<()> {
        let process = process::open_for_job(pid)?;
        self.job.assign(process.as_handle())
    }
}

impl Drop for JobContainer {
    fn drop(&mut self) {
        // Slots may still hold the job handle, so kill-on-close alone could
        // come late: terminate now.
        let _ = self.job.terminate();
    }
}

/// Where one run lives: the container's job, or its own job nested below it.
#[derive(Debug)]
pub(crate) struct JobSlot {
    group: Arc<Job>,
    run: Option<Job>,
    /// The run's direct child once attached, to tell a kill from an exit
    /// and to lead the run's console process group.
    child: Option<Arc<Watched>>,
    /// The container's list of run children, this one's joins on attach.
    roots: Arc<Roots>,
}

impl JobSlot {
    /// Places the suspended child in its job(s), then lets it run. If it cannot
    /// be contained it is terminated, never left running outside.
    pub(crate) fn attach(&mut self, process: BorrowedHandle<'_>, pid: u32) -> io::Result<()> {
        let placed = self.place(process).and_then(|()| {
            match threads::apply(&[pid], ThreadAction::Resume)? {
                0 => Err(io::Error::other("found no thread to resume in the child")),
                _ => Ok(()),
            }
        });
        if placed.is_err() {
            process::terminate(process);
        }
        placed
    }

    fn place(&mut self, process: BorrowedHandle<'_>) -> io::Result<()> {
        let child = Watched::new(process)?;
        self.group.assign_watched(process, &child)?;
        // Assigning a process that is in the group's job to an empty job nests
        // that job below the group's, so the run can be killed on its own.
        if let Some(run) = &self.run {
            run.assign_watched(process, &child)?;
        }
        self.roots.add(Arc::clone(&child));
        self.child = Some(child);
        Ok(())
    }

    /// Whether the run's direct child was running when processkit terminated
    /// its job: it was killed, and the exit code the job forced on it (1;
    /// Wine may report 0) is not an answer of the child's.
    pub(crate) fn killed_child(&self) -> bool {
        self.child.as_ref().is_some_and(|child| child.was_killed())
    }

    fn job(&self) -> &Job {
        self.run.as_ref().unwrap_or(&self.group)
    }

    /// Terminates this run's tree (its siblings in a group live on).
    pub(crate) fn kill(&self) -> io::Result<()> {
        self.job().terminate()
    }

    /// Asks this run's tree to stop: a console break to the process group
    /// its child leads and `WM_CLOSE` to its processes' windows, after
    /// resuming them (only them) if their group is `suspended`, so they can
    /// act on it. `Unsupported` when nothing could be delivered.
    pub(crate) fn ask_to_stop(&self, suspended: bool) -> io::Result<()> {
        // A freeze suspended every thread once; one resume undoes it.
        if suspended && let Ok(pids) = self.job().pids() {
            let _ = threads::apply(&pids, ThreadAction::Resume);
        }
        let mut requests = Requests::default();
        if let Some(child) = &self.child {
            requests.console_break(child, &Console::read());
        }
        requests.close_windows(self.job());
        requests.finish()
    }

    /// Whether a process of this run's tree is still there.
    pub(crate) fn is_populated(&self) -> io::Result<bool> {
        self.job().pids().map(|p| !p.is_empty())
    }

    /// What this run's tree uses.
    #[cfg(feature = "stats")]
    pub(crate) fn usage(&self) -> io::Result<crate::sys::Usage> {
        self.job().usage()
    }
}
