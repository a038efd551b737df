//! The registry of this process's own children (processkit's runs, the
//! guardian, and children the program exempts), by pid and start time, so
//! the orphan reaper never takes their exit status. Kept only once the
//! orphan reaper is on; until then a spawn pays one uncontended read lock.

use std::cell::Cell;
use std::collections::HashMap;
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockWriteGuard};

/// Held shared by every spawn from before its fork until its child is
/// registered, and exclusively by the reaper while it decides and reaps: the
/// reaper never sees a child of ours that is not registered yet.
static SPAWNS: RwLock<()> = RwLock::new(());
/// Set (under the exclusive lock) once the orphan reaper is on.
static ENABLED: AtomicBool = AtomicBool::new(false);
/// pid → start time (`None`: unreadable when registered, matches any).
static OWN: Mutex<Option<HashMap<u32, Option<u64>>>> = Mutex::new(None);

/// Runs `spawn` (which forks at most one child of ours) so the orphan reaper
/// cannot mistake its child for an orphan: shared with other spawns, and
/// the child (named by `pid_of`) is registered before the lock is let go.
/// The lock is taken even while the reaper is off: a reaper turned on
/// during this spawn then waits for it, and finds its child in its snapshot.
/// A nested call (a spawn that starts the guardian) takes no second read
/// lock: that could wait behind the reaper's, which waits for the first.
pub(crate) fn own_spawn<T>(spawn: impl FnOnce() -> T, pid_of: impl FnOnce(&T) -> Option<u32>) -> T {
    let nested = Nested::enter();
    let _shared = (!nested.0).then(|| SPAWNS.read().unwrap_or_else(PoisonError::into_inner));
    let spawned = spawn();
    drop(nested);
    if ENABLED.load(Ordering::Acquire)
        && let Some(pid) = pid_of(&spawned)
    {
        let start = start_time(pid);
        own().get_or_insert_default().insert(pid, start);
    }
    spawned
}

thread_local! {
    /// Set while this thread is inside `own_spawn`.
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// Marks this thread inside `own_spawn` (holding whether it already was),
/// until dropped, even by a panic.
struct Nested(bool);

impl Nested {
    fn enter() -> Nested {
        Nested(INSIDE.replace(true))
    }
}

impl Drop for Nested {
    fn drop(&mut self) {
        INSIDE.set(self.0);
    }
}

/// The reaper's exclusive hold: no spawn is between fork and registration
/// while it lives.
pub(super) fn exclusive() -> RwLockWriteGuard<'static, ()> {
    SPAWNS.write().unwrap_or_else(PoisonError::into_inner)
}

/// Turns registration on, once: every child this process has at that moment
/// (`children`, listed under the exclusive lock, so no spawn is in flight)
/// is treated as our own, since nothing tells processkit's earlier runs
/// from orphans that were already there.
pub(super) fn enable(children: impl FnOnce() -> Vec<u32>) {
    let _exclusive = exclusive();
    if ENABLED.load(Ordering::Acquire) {
        return;
    }
    let mut own = own();
    let own = own.get_or_insert_default();
    for pid in children() {
        own.insert(pid, start_time(pid));
    }
    ENABLED.store(true, Ordering::Release);
}

/// Whether `pid`, started at `start`, is one of our own children.
pub(super) fn is_own(pid: u32, start: u64) -> bool {
    own()
        .as_ref()
        .and_then(|own| own.get(&pid).copied())
        .is_some_and(|known| known.is_none_or(|known| known == start))
}

/// Forgets the entries among `candidates` whose process is gone (or whose
/// pid now names another process): they can never come back.
pub(super) fn prune(candidates: impl Fn(u32) -> bool) {
    let stale: Vec<(u32, Option<u64>)> = own()
        .as_ref()
        .map(|own| {
            own.iter()
                .filter(|(pid, _)| candidates(**pid))
                .map(|(pid, start)| (*pid, *start))
                .collect()
        })
        .unwrap_or_default();
    // Read outside the lock: a spawn registering meanwhile is not held up.
    let gone: Vec<u32> = stale
        .into_iter()
        .filter(|(pid, start)| match start_time(*pid) {
            None => true,
            Some(now) => start.is_some_and(|then| then != now),
        })
        .map(|(pid, _)| pid)
        .collect();
    if gone.is_empty() {
        return;
    }
    if let Some(own) = own().as_mut() {
        for pid in gone {
            own.remove(&pid);
        }
    }
}

/// How many children are registered.
pub(super) fn len() -> usize {
    own().as_ref().map_or(0, HashMap::len)
}

fn own() -> MutexGuard<'static, Option<HashMap<u32, Option<u64>>>> {
    OWN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the reaper reads of a process in `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stat {
    /// The state letter (`Z`: a zombie).
    pub(super) state: char,
    pub(super) ppid: u32,
    /// Clock ticks since boot: with the pid, names one process for good.
    pub(super) start: u64,
}

/// `pid`'s stat; `None` once it is gone.
pub(super) fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn start_time(pid: u32) -> Option<u64> {
    stat(pid).map(|s| s.start)
}

/// Fields 3 (state), 4 (ppid) and 22 (start time) of a `stat` line.
fn parse_stat(line: &str) -> Option<Stat> {
    // The command name may hold spaces and parentheses; fields resume after the last ')'.
    let mut fields = line[line.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let start = fields.nth(17)?.parse().ok()?;
    Some(Stat { state, ppid, start })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn parses_state_and_start_time_past_a_hostile_name() {
        let line = "42 (a) b) (c) Z 1 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 \
                    123456 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0";
        let parsed = parse_stat(line);
        assert_eq!(
            parsed,
            Some(Stat {
                state: 'Z',
                ppid: 1,
                start: 123456
            })
        );
        assert_eq!(parse_stat("42 (sh"), None);
    }

    /// Killed and reaped on drop, even when an assertion fails.
    pub(in crate::sys::linux) struct Killed(pub(in crate::sys::linux) std::process::Child);

    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn a_spawn_is_registered_until_its_process_is_gone() {
        // Registration only: the reaper thread is not started here, so this
        // binary's other tests keep their children's statuses.
        enable(Vec::new);
        let mut child = Killed(
            own_spawn(
                || std::process::Command::new("sleep").arg("30").spawn(),
                |c| c.as_ref().ok().map(std::process::Child::id),
            )
            .expect("sleep"),
        );
        let pid = child.0.id();
        let start = stat(pid).expect("alive").start;
        assert!(is_own(pid, start));
        assert!(
            !is_own(pid, start + 1),
            "another process under a reused pid"
        );
        prune(|p| p == pid);
        assert!(is_own(pid, start), "a live child stays registered");
        child.0.kill().expect("kill");
        child.0.wait().expect("reaped by its owner");
        prune(|p| p == pid);
        assert!(!is_own(pid, start), "a reaped child is forgotten");
    }

    #[test]
    fn reads_this_process() {
        let own = stat(std::process::id()).expect("our own stat");
        assert_ne!(own.state, 'Z');
        assert!(own.start > 0);
        assert_eq!(
            own.ppid,
            std::os::unix::process::parent_id(),
            "the parent's pid"
        );
        assert_eq!(stat(u32::MAX), None);
    }
}
