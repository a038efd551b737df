//! What a reused run cgroup's cumulative counters said when its last run
//! ended: a later run's readings subtract it, so they count that run alone.
//! Also decides whether an emptied cgroup may be reused at all.

use std::fs::File;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::OnceLock;

use super::dir::Cgroup;

/// Cumulative counters of an empty cgroup (all zero for a fresh one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Baseline {
    pub(crate) usage_usec: u64,
    pub(crate) user_usec: u64,
    pub(crate) system_usec: u64,
}

impl Baseline {
    /// The counters of `cg`, emptied by its own run, if it can serve another
    /// run with honest statistics: without a peak the kernel cannot reset
    /// (`memory.peak` at all, `pids.peak` above one process: the next run
    /// has at least one, so a peak of one stays true). `None`: remove it.
    /// Without a memory controller there are no OOM kills to carry over.
    /// `dir` is the cgroup's open directory, `cpu_stat` its open `cpu.stat`.
    pub(crate) fn of_emptied(
        cg: &Cgroup,
        dir: BorrowedFd<'_>,
        cpu_stat: &File,
    ) -> io::Result<Option<Baseline>> {
        use std::os::unix::fs::FileExt;
        // Which controllers run cgroups have is the same for all of them
        // (the root's `subtree_control`, set once): asked of the first only.
        static HAS: OnceLock<(bool, bool)> = OnceLock::new();
        let &(memory, pids) = HAS.get_or_init(|| {
            let has = |file| cg.path().join(file).exists();
            (has("memory.peak"), has("pids.peak"))
        });
        if memory {
            return Ok(None);
        }
        let mut buf = [0u8; 1024];
        if pids {
            let peak = Cgroup::read_in(dir, "pids.peak", &mut buf).ok();
            let peak = peak.and_then(|p| number(std::str::from_utf8(p).ok()?));
            if peak.is_none_or(|p| p > 1) {
                return Ok(None);
            }
        }
        // `cpu.stat` is a few short lines: one read of 1 KiB takes it whole.
        let n = cpu_stat.read_at(&mut buf, 0)?;
        let cpu = std::str::from_utf8(&buf[..n]).map_err(io::Error::other)?;
        Ok(Some(Baseline {
            usage_usec: keyed(cpu, "usage_usec").unwrap_or(0),
            user_usec: keyed(cpu, "user_usec").unwrap_or(0),
            system_usec: keyed(cpu, "system_usec").unwrap_or(0),
        }))
    }
}

/// A single number file such as `memory.current` (`max` is not a number).
pub(crate) fn number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The value of `key` in a flat-keyed file such as `cpu.stat`.
pub(crate) fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_flat_keyed_and_single_value_files() {
        let cpu = "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n";
        assert_eq!(keyed(cpu, "user_usec"), Some(1000));
        assert_eq!(keyed(cpu, "usage"), None);
        assert_eq!(keyed("low 0\noom_kill 2\n", "oom_kill"), Some(2));
        assert_eq!(number("4096\n"), Some(4096));
        assert_eq!(number("max\n"), None);
    }
}
