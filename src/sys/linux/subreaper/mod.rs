//! Subreaper containers, for Linux without a writable cgroup2: every run
//! starts under a shim of its own (`shim`), a child subreaper that every
//! orphan of the run's tree re-parents to, so nothing leaves the tree while
//! the shim lives; the shim kills the tree when its owner says so or dies.

mod child;
mod pool;
mod request;
mod shim;
mod spawn;
mod tree;
mod wire;
mod zygote;
mod zygote_process;

use std::sync::{Arc, Mutex, OnceLock};

pub(crate) use child::ShimChild;
pub(crate) use spawn::{ShimSpawn, request};

use self::spawn::Shim;
use self::tree::Member;

/// Why this kernel cannot hold a tree with a subreaper shim, if it cannot.
pub(crate) fn unavailable_reason() -> Option<&'static str> {
    static REASON: OnceLock<Option<&'static str>> = OnceLock::new();
    *REASON.get_or_init(|| {
        if !crate::sys::linux::pidfd_child::supported() {
            Some("this kernel has no pidfds to wait on (Linux 5.4+ is needed)")
        } else if !std::path::Path::new("/proc/thread-self/children").exists() {
            Some("this kernel does not list a process's children in /proc (CONFIG_PROC_CHILDREN)")
        } else {
            None
        }
    })
}

/// The shims of every run started in one container, plus adopted processes.
#[derive(Debug, Default)]
pub(crate) struct SubreaperContainer {
    /// Each run's shim, with the signal a graceful stop sends its tree.
    shims: Mutex<Vec<(Arc<Shim>, i32)>>,
    adopted: Mutex<Vec<Member>>,
    /// Whether the container is suspended, held for a whole suspend or
    /// resume: a run attached meanwhile is stopped by `attach` or by it.
    stopped: Mutex<bool>,
}

impl SubreaperContainer {
    pub(crate) fn slot(self: &Arc<Self>, stop: i32) -> SubreaperSlot {
        SubreaperSlot {
            container: Arc::clone(self),
            shim: None,
            stop,
        }
    }

    /// Sends every run's tree its own stop signal, and adopted processes
    /// (and what is below them) SIGTERM.
    pub(crate) fn ask_all_to_stop(&self) {
        for (shim, stop) in self.live_runs() {
            shim.taint();
            signal_below(shim.pid(), stop);
        }
        for adopted in lock(&self.adopted).iter() {
            if let Ok(again) = adopted.repin() {
                again.signal(libc::SIGTERM);
                signal_below(adopted.pid, libc::SIGTERM);
            }
        }
    }

    /// Every shim kills its tree; adopted processes die with what they
    /// started (as far as it is still below them).
    pub(crate) fn kill_all(&self) {
        for (shim, _) in lock(&self.shims).iter() {
            shim.kill();
        }
        for adopted in lock(&self.adopted).iter() {
            kill_below(adopted.pid);
            adopted.signal(libc::SIGKILL);
        }
    }

    /// Sends `signal` to every process of every tree (shims excluded).
    pub(crate) fn signal_all(&self, signal: i32) {
        self.taint_all();
        for member in self.members_pinned() {
            member.signal(signal);
        }
    }

    /// Stops (SIGSTOP, until no new process appears) or continues every tree.
    pub(crate) fn set_stopped(&self, stopped: bool) {
        let mut state = lock(&self.stopped);
        *state = stopped;
        self.taint_all();
        if stopped {
            tree::stop_all(&self.roots());
            for adopted in lock(&self.adopted).iter() {
                adopted.signal(libc::SIGSTOP);
            }
        } else {
            self.signal_all(libc::SIGCONT);
        }
    }

    /// Every live process of every tree, adopted ones included.
    pub(crate) fn members(&self) -> Vec<u32> {
        self.members_pinned().iter().map(|m| m.pid).collect()
    }

    /// Whether any shim (which lives as long as its tree) or adopted
    /// process is still there.
    pub(crate) fn is_populated(&self) -> bool {
        self.live_shims().iter().any(|s| s.is_alive())
            || lock(&self.adopted).iter().any(Member::is_alive)
    }

    /// Tracks an existing process: it and what is below it are signalled
    /// and killed with the container, but its orphans re-parent elsewhere.
    pub(crate) fn adopt(&self, pid: u32) -> std::io::Result<()> {
        let member = Member::pin_any(pid)?;
        lock(&self.adopted).push(member);
        Ok(())
    }

    /// Records a run that has just started. Its start was awaited outside
    /// the spawn gate, so a suspend may have come meanwhile and walked the
    /// trees without it: then it is stopped here. Either the suspend's walk
    /// (under `stopped`) lists it, or this check (under `stopped`, after
    /// the push) sees the suspend.
    fn attach(&self, shim: &Arc<Shim>, stop: i32) {
        {
            let mut shims = lock(&self.shims);
            shims.retain(|(s, _)| s.is_alive());
            shims.push((Arc::clone(shim), stop));
        }
        if *lock(&self.stopped) {
            shim.taint();
            tree::stop_all(&[shim.pid()]);
        }
    }

    /// Marks every live run as signalled: none of their shims is reused.
    fn taint_all(&self) {
        for shim in self.live_shims() {
            shim.taint();
        }
    }

    /// The live runs' shims and stop signals, forgetting those that are gone.
    fn live_runs(&self) -> Vec<(Arc<Shim>, i32)> {
        let mut shims = lock(&self.shims);
        shims.retain(|(s, _)| s.is_alive());
        shims.clone()
    }

    /// The live shims, forgetting those that are gone.
    fn live_shims(&self) -> Vec<Arc<Shim>> {
        self.live_runs().into_iter().map(|(s, _)| s).collect()
    }

    /// The shims and adopted processes: the tops of the trees.
    fn roots(&self) -> Vec<u32> {
        let adopted = lock(&self.adopted)
            .iter()
            .map(|a| a.pid)
            .collect::<Vec<_>>();
        self.live_shims()
            .iter()
            .map(|s| s.pid())
            .chain(adopted)
            .collect()
    }

    fn members_pinned(&self) -> Vec<Member> {
        let mut members: Vec<Member> = Vec::new();
        for shim in self.live_shims() {
            members.extend(tree::descendants(shim.pid()));
        }
        for adopted in lock(&self.adopted).iter() {
            if let Ok(again) = adopted.repin() {
                members.push(again);
                members.extend(tree::descendants(adopted.pid));
            }
        }
        members
    }
}

impl Drop for SubreaperContainer {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// One run's shim, once it started.
#[derive(Debug)]
pub(crate) struct SubreaperSlot {
    container: Arc<SubreaperContainer>,
    shim: Option<Arc<Shim>>,
    stop: i32,
}

impl SubreaperSlot {
    /// Records the run's shim in the slot and its container.
    pub(crate) fn attach(&mut self, spawned: &ShimSpawn) {
        self.container.attach(&spawned.shim, self.stop);
        self.shim = Some(Arc::clone(&spawned.shim));
    }

    /// Kills this run's whole tree (and nothing else in the container).
    pub(crate) fn kill(&self) {
        if let Some(shim) = &self.shim {
            shim.kill();
        }
    }

    /// Sends `signal` to every process of this run's tree.
    pub(crate) fn signal(&self, signal: i32) {
        if let Some(shim) = &self.shim {
            shim.taint();
            for member in tree::descendants(shim.pid()) {
                member.signal(signal);
            }
        }
    }

    /// The stop signal to every process of the run's tree; a `suspended`
    /// tree is continued after it, so it wakes to find the signal pending.
    pub(crate) fn ask_to_stop(&self, suspended: bool) {
        self.signal(self.stop);
        if suspended {
            self.signal(libc::SIGCONT);
        }
    }

    /// Whether the run's shim (which lives as long as its tree) is there.
    pub(crate) fn is_populated(&self) -> bool {
        self.shim.as_ref().is_some_and(|s| s.is_alive())
    }

    /// The pids of this run's tree.
    #[cfg(feature = "stats")]
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.shim.as_ref().map_or_else(Vec::new, |shim| {
            tree::descendants(shim.pid())
                .iter()
                .map(|m| m.pid)
                .collect()
        })
    }
}

/// Kills what is below `pid` now, top first (a best effort for adopted
/// processes, whose orphans are not ours to catch).
fn kill_below(pid: u32) {
    signal_below(pid, libc::SIGKILL);
}

/// Sends `signal` to every process below `pid`, top first.
fn signal_below(pid: u32, signal: i32) {
    for member in tree::descendants(pid) {
        member.signal(signal);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A new, empty subreaper container (the first one starts the zygote).
pub(crate) fn new_container() -> Arc<SubreaperContainer> {
    zygote::ensure_started();
    Arc::new(SubreaperContainer::default())
}
