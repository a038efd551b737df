//! One tracked process group (by its leader) or adopted process, signalled so
//! a recycled id is never hit: through pidfds on Linux (the whole group at
//! once since 6.9), elsewhere only while the leader is still our unreaped child.

use std::collections::HashMap;
#[cfg(target_os = "linux")]
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::signal::{group_signal, kill_pid, own_pgid, pid_alive, process_exists};

/// What a delivery found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// The group (or process) still exists and was signalled.
    Sent,
    /// It is gone, or its id may now name someone else: forget it.
    Gone,
}

/// Where a group's leader is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    /// Exited, not reaped yet: its pid, and so the group id, cannot be reused.
    Zombie,
    /// Reaped: the id is ours only while other members keep the group alive.
    Reaped,
}

/// The leader of one run's process group (pgid = its pid).
#[derive(Debug)]
pub(crate) struct Leader {
    pgid: i32,
    /// Pins the leader's identity: its group can be signalled as a whole.
    #[cfg(target_os = "linux")]
    pidfd: Option<OwnedFd>,
    /// Which of our children with this pid this record means (checked when
    /// there is no pidfd to ask).
    ticket: u64,
}

/// Every recorded leader's pid, with the ticket of the newest: a later child
/// that got the same pid makes an older record stale.
static BY_PID: Mutex<Option<HashMap<i32, u64>>> = Mutex::new(None);
static TICKETS: AtomicU64 = AtomicU64::new(1);

impl Leader {
    /// Records our just-started, not yet reaped child `pid` as a group leader.
    pub(crate) fn new(pid: u32) -> Leader {
        let pgid = i32::try_from(pid).unwrap_or(0);
        // Every leader takes a ticket, so a record without a pidfd never
        // mistakes a later child of ours with the same pid for its own.
        let ticket = TICKETS.fetch_add(1, Ordering::Relaxed);
        lock_by_pid()
            .get_or_insert_with(HashMap::new)
            .insert(pgid, ticket);
        Leader {
            pgid,
            #[cfg(target_os = "linux")]
            pidfd: linux::pidfd_open(pgid).ok(),
            ticket,
        }
    }

    pub(crate) fn pgid(&self) -> i32 {
        self.pgid
    }

    /// The leader's pidfd, if one could be opened.
    #[cfg(target_os = "linux")]
    pub(crate) fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.pidfd.as_ref().map(|fd| fd.as_fd())
    }

    /// Sends `sig` to every process still in this group. `Gone` means the
    /// group is empty or its id can no longer be trusted.
    pub(crate) fn signal(&self, sig: i32) -> Reach {
        // Never our own group, nor one that would broadcast.
        if self.pgid <= 1 || self.pgid == own_pgid() {
            return Reach::Gone;
        }
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.pidfd
            && let Some(reach) = linux::signal_group(fd, sig)
        {
            return reach;
        }
        match self.state() {
            // The leader still holds its pid, so the group id is ours.
            State::Running | State::Zombie => group_signal(self.pgid, sig),
            // A process with the leader's pid now is someone else: our group
            // emptied at some point, so the id was recycled.
            State::Reaped if process_exists(self.pgid) => Reach::Gone,
            // Leaderless members may remain. (Without a pidfd this trusts an
            // id that could have been recycled by a group whose leader died
            // too; there is no cheaper evidence.)
            State::Reaped => group_signal(self.pgid, sig),
        }
    }

    /// Whether any process (a zombie too) is still in the group.
    pub(crate) fn exists(&self) -> bool {
        self.signal(0) == Reach::Sent
    }

    /// Whether the leader itself is still running.
    pub(crate) fn leader_running(&self) -> bool {
        self.state() == State::Running
    }

    /// Whether a process that is not a zombie is still in the group.
    #[cfg(all(test, target_os = "linux"))]
    fn has_live_members(&self) -> bool {
        any_live_member(std::iter::once(self))
    }

    fn state(&self) -> State {
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.pidfd
            && let Some(state) = linux::leader_state(fd)
        {
            return state;
        }
        let current = lock_by_pid()
            .as_ref()
            .and_then(|m| m.get(&self.pgid).copied());
        if current != Some(self.ticket) {
            return State::Reaped;
        }
        own_child_state(self.pgid)
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        let mut by_pid = lock_by_pid();
        if let Some(map) = by_pid.as_mut()
            && map.get(&self.pgid) == Some(&self.ticket)
        {
            map.remove(&self.pgid);
        }
    }
}

/// Whether a process that is not a zombie is still in one of `leaders`'
/// groups: a running leader, or (Linux, one `/proc` scan for all groups whose
/// leader has exited) any other member.
pub(crate) fn any_live_member<'a>(leaders: impl Iterator<Item = &'a Leader>) -> bool {
    let mut exited = Vec::new();
    for leader in leaders {
        match leader.state() {
            State::Running => return true,
            // Best effort: there is no cheap way to list a group here, so a
            // group whose leader has exited counts as empty for waiting.
            #[cfg(not(target_os = "linux"))]
            State::Zombie => {}
            _ if leader.exists() => exited.push(leader.pgid),
            _ => {}
        }
    }
    #[cfg(target_os = "linux")]
    return !exited.is_empty() && linux::live_member_in(&exited);
    #[cfg(not(target_os = "linux"))]
    return !exited.is_empty();
}

/// An existing process tracked by pid.
#[derive(Debug)]
pub(crate) struct Adopted {
    pid: u32,
    /// Pins the process's identity from the moment it was adopted.
    #[cfg(target_os = "linux")]
    pidfd: Option<OwnedFd>,
}

impl Adopted {
    pub(crate) fn new(pid: u32) -> Adopted {
        Adopted {
            pid,
            #[cfg(target_os = "linux")]
            pidfd: i32::try_from(pid)
                .ok()
                .and_then(|p| linux::pidfd_open(p).ok()),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `sig` to the process; `Gone` once it no longer exists.
    pub(crate) fn signal(&self, sig: i32) -> Reach {
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.pidfd
            && let Some(reach) = linux::signal_process(fd, sig)
        {
            return reach;
        }
        // Best effort without a pidfd: a pid that is gone is dropped at once,
        // which leaves only the instant between this check and the kill.
        if !pid_alive(self.pid) {
            return Reach::Gone;
        }
        kill_pid(self.pid, sig);
        Reach::Sent
    }

    /// Whether the process still runs (a zombie does not).
    pub(crate) fn running(&self) -> bool {
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.pidfd {
            return !linux::has_exited(fd);
        }
        pid_alive(self.pid)
    }
}

fn lock_by_pid() -> std::sync::MutexGuard<'static, Option<HashMap<i32, u64>>> {
    BY_PID.lock().unwrap_or_else(|e| e.into_inner())
}

/// Our child `pid`'s state, read without reaping it.
fn own_child_state(pid: i32) -> State {
    use rustix::process::{Pid, WaitId, WaitIdOptions};
    let Some(pid) = Pid::from_raw(pid.max(0)) else {
        return State::Reaped;
    };
    // WNOWAIT | WNOHANG: neither blocks nor reaps.
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOWAIT | WaitIdOptions::NOHANG;
    loop {
        match rustix::process::waitid(WaitId::Pid(pid), options) {
            Ok(None) => return State::Running,
            Ok(Some(_)) => return State::Zombie,
            Err(rustix::io::Errno::INTR) => {}
            // ECHILD: not (or no longer) a child of ours.
            Err(_) => return State::Reaped,
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::fs;
    use std::io;
    use std::os::fd::{AsFd, OwnedFd};
    use std::sync::atomic::{AtomicU8, Ordering};

    use rustix::event::{PollFd, PollFlags, Timespec};
    use rustix::process::{Pid, PidfdFlags};

    use super::{Reach, State};
    use crate::sys::linux::pidfd::{PIDFD_SIGNAL_PROCESS_GROUP, send_signal};

    /// Whether the kernel takes `PIDFD_SIGNAL_PROCESS_GROUP`: 0 unknown, 1 yes, 2 no.
    static GROUP_FLAG: AtomicU8 = AtomicU8::new(0);

    pub(super) fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
        let Some(pid) = Pid::from_raw(pid).filter(|_| pid > 1) else {
            return Err(io::ErrorKind::InvalidInput.into());
        };
        // Close-on-exec, as every pidfd is.
        Ok(rustix::process::pidfd_open(pid, PidfdFlags::empty())?)
    }

    pub(super) fn send(fd: &OwnedFd, sig: i32, flags: libc::c_uint) -> io::Result<()> {
        send_signal(fd.as_fd(), sig, flags)
    }

    /// Signals the group the pidfd's process leads, exactly: the kernel
    /// follows the leader's pid object, which a recycled id never shares.
    /// `None` on kernels before 6.9.
    pub(super) fn signal_group(fd: &OwnedFd, sig: i32) -> Option<Reach> {
        if GROUP_FLAG.load(Ordering::Relaxed) == 0 {
            // Probe with signal 0 so an invalid signal number cannot mislead.
            let known = match send(fd, 0, PIDFD_SIGNAL_PROCESS_GROUP) {
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => 2,
                _ => 1,
            };
            GROUP_FLAG.store(known, Ordering::Relaxed);
        }
        if GROUP_FLAG.load(Ordering::Relaxed) != 1 {
            return None;
        }
        Some(match send(fd, sig, PIDFD_SIGNAL_PROCESS_GROUP) {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Reach::Gone,
            _ => Reach::Sent,
        })
    }

    /// Signals the one process behind the pidfd; `None` if pidfds cannot signal.
    pub(super) fn signal_process(fd: &OwnedFd, sig: i32) -> Option<Reach> {
        match send(fd, sig, 0) {
            Ok(()) => Some(Reach::Sent),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Some(Reach::Gone),
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => None,
            Err(_) => Some(Reach::Sent),
        }
    }

    /// Whether the process behind the pidfd has exited (zombie or reaped).
    pub(super) fn has_exited(fd: &OwnedFd) -> bool {
        let mut poll = [PollFd::new(fd, PollFlags::IN)];
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let ready = rustix::event::poll(&mut poll, Some(&now));
        matches!(ready, Ok(n) if n > 0) && poll[0].revents().contains(PollFlags::IN)
    }

    /// The leader's state: a pidfd polls readable once it exited, and still
    /// takes signal 0 until it is reaped.
    pub(super) fn leader_state(fd: &OwnedFd) -> Option<State> {
        if !has_exited(fd) {
            return Some(State::Running);
        }
        match send(fd, 0, 0) {
            Ok(()) => Some(State::Zombie),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Some(State::Reaped),
            Err(_) => None,
        }
    }

    /// Whether `/proc` lists a process in one of `pgids` that is not a
    /// zombie. Unreadable `/proc` answers yes: waiting too long beats not waiting.
    pub(super) fn live_member_in(pgids: &[i32]) -> bool {
        let Ok(dir) = fs::read_dir("/proc") else {
            return true;
        };
        for entry in dir {
            let Ok(entry) = entry else {
                return true;
            };
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            // A process gone since the listing is simply not a member.
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            if let Some((state, group)) = state_and_pgid(&stat)
                && pgids.contains(&group)
                && !matches!(state, 'Z' | 'X' | 'x')
            {
                return true;
            }
        }
        false
    }

    /// The state letter and pgid from a `/proc/<pid>/stat` line (the command
    /// name, in parentheses, may itself hold spaces and parentheses).
    pub(super) fn state_and_pgid(stat: &str) -> Option<(char, i32)> {
        let rest = &stat[stat.rfind(')')? + 1..];
        let mut fields = rest.split_ascii_whitespace();
        let state = fields.next()?.chars().next()?;
        let _ppid = fields.next()?;
        let pgid = fields.next()?.parse().ok()?;
        Some((state, pgid))
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn reads_state_and_group_from_a_stat_line() {
        let line = "42 (a) b (c)) Z 1 40 40 0 -1 4194560";
        assert_eq!(linux::state_and_pgid(line), Some(('Z', 40)));
        assert_eq!(linux::state_and_pgid("42 (x"), None);
    }

    #[test]
    fn a_reaped_leader_without_a_pidfd_is_not_trusted() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let mut leader = Leader::new(child.id());
        leader.pidfd = None;
        assert_ne!(leader.state(), State::Reaped, "our unreaped child");
        child.wait().unwrap();
        assert_eq!(leader.state(), State::Reaped);
        assert!(!leader.has_live_members());
    }

    #[test]
    fn an_unreaped_leader_is_a_zombie_until_waited_for() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let leader = Leader::new(child.id());
        let fd = leader.pidfd.as_ref().expect("pidfd");
        let mut poll = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
        let limit = rustix::event::Timespec {
            tv_sec: 10,
            tv_nsec: 0,
        };
        let _ = rustix::event::poll(&mut poll, Some(&limit));
        assert_eq!(leader.state(), State::Zombie);
        assert!(!leader.has_live_members(), "a lone zombie is no member");
        child.wait().unwrap();
        assert_eq!(leader.state(), State::Reaped);
        assert_eq!(leader.signal(0), Reach::Gone);
    }
}
