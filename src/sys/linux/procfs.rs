//! Per-process usage from `/proc`: CPU ticks from `/proc/<pid>/stat`, resident
//! memory from `/proc/<pid>/status`, and finding the members of a process group.
//! Used where no cgroup controller accounts for a tree.
// Without `stats` only the member count (a group stop's report) is used.
#![cfg_attr(not(feature = "stats"), allow(dead_code))]

use std::fs;
use std::time::Duration;

/// What `/proc` says about one live (non-zombie) process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ProcUsage {
    /// The process group id.
    pub(crate) pgrp: i32,
    /// User time of the process and of the children it has reaped, in ticks.
    pub(crate) user_ticks: u64,
    /// System time of the process and of the children it has reaped, in ticks.
    pub(crate) system_ticks: u64,
    /// Resident set size in bytes (`VmRSS`), if reported.
    pub(crate) rss_bytes: Option<u64>,
    /// The process's own resident high-water mark in bytes (`VmHWM`), if reported.
    pub(crate) hwm_bytes: Option<u64>,
}

/// Summed usage of a set of processes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TreeUsage {
    pub(crate) processes: u64,
    pub(crate) user: Duration,
    pub(crate) system: Duration,
    pub(crate) rss_bytes: Option<u64>,
    pub(crate) hwm_bytes: Option<u64>,
}

impl TreeUsage {
    pub(crate) fn add(&mut self, p: &ProcUsage) {
        let tick = tick_duration();
        self.processes += 1;
        self.user += tick * u32::try_from(p.user_ticks).unwrap_or(u32::MAX);
        self.system += tick * u32::try_from(p.system_ticks).unwrap_or(u32::MAX);
        self.rss_bytes = sum_opt(self.rss_bytes, p.rss_bytes);
        self.hwm_bytes = sum_opt(self.hwm_bytes, p.hwm_bytes);
    }
}

fn sum_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    }
}

/// Usage of one process, or `None` when it is gone or a zombie.
pub(crate) fn usage(pid: u32) -> Option<ProcUsage> {
    let mut usage = cpu_usage(pid)?;
    add_memory(pid, &mut usage);
    Some(usage)
}

/// `/proc/<pid>/stat` alone: its group and CPU times.
fn cpu_usage(pid: u32) -> Option<ProcUsage> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Adds the memory figures of `/proc/<pid>/status`, where it can be read.
fn add_memory(pid: u32, usage: &mut ProcUsage) {
    if let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) {
        usage.rss_bytes = status_kib(&status, "VmRSS:").map(|k| k * 1024);
        usage.hwm_bytes = status_kib(&status, "VmHWM:").map(|k| k * 1024);
    }
}

/// Summed usage of the given pids (those still alive).
pub(crate) fn tree_usage(pids: &[u32]) -> TreeUsage {
    let mut total = TreeUsage::default();
    for &pid in pids {
        if let Some(u) = usage(pid) {
            total.add(&u);
        }
    }
    total
}

/// Summed usage of every live process whose group is one of `pgids`, plus
/// the listed extra pids (adopted processes, which keep their own group).
pub(crate) fn groups_usage(pgids: &[i32], extra: &[u32]) -> TreeUsage {
    let mut total = TreeUsage::default();
    if pgids.is_empty() && extra.is_empty() {
        return total;
    }
    let Ok(entries) = fs::read_dir("/proc") else {
        return total;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // Every process on the host is looked at: only members pay for
        // their (larger) `status` file.
        let Some(mut u) = cpu_usage(pid) else {
            continue;
        };
        if pgids.contains(&u.pgrp) || extra.contains(&pid) {
            add_memory(pid, &mut u);
            total.add(&u);
        }
    }
    total
}

/// How many live processes belong to one of `pgids`, or are one of `extra`.
pub(crate) fn count_in_groups(pgids: &[i32], extra: &[u32]) -> usize {
    if pgids.is_empty() && extra.is_empty() {
        return 0;
    }
    let Ok(entries) = fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            cpu_usage(pid).is_some_and(|u| pgids.contains(&u.pgrp) || extra.contains(&pid))
        })
        .count()
}

/// Parses `/proc/<pid>/stat`; `None` for a zombie or a malformed line.
pub(crate) fn parse_stat(stat: &str) -> Option<ProcUsage> {
    // The command name may hold spaces and parentheses; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 of proc(5): state; pgrp is 5, utime..cstime are 14..17.
    if *fields.first()? == "Z" || fields[0] == "X" {
        return None;
    }
    let num = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<u64>().ok());
    Some(ProcUsage {
        pgrp: fields.get(2)?.parse().ok()?,
        user_ticks: num(14)? + num(16)?,
        system_ticks: num(15)? + num(17)?,
        rss_bytes: None,
        hwm_bytes: None,
    })
}

/// A `kB` value from `/proc/<pid>/status`, e.g. `VmRSS:    1234 kB`.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The length of one clock tick (`AT_CLKTCK`, what `sysconf(_SC_CLK_TCK)`
/// reports; almost always 10 ms).
fn tick_duration() -> Duration {
    let hz = rustix::param::clock_ticks_per_second();
    let hz = Some(hz).filter(|&h| h > 0).unwrap_or(100);
    Duration::from_nanos(1_000_000_000 / hz)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_fields_after_a_weird_name() {
        let stat = "42 (a (b) c) S 1 77 77 0 -1 4194560 0 0 0 0 5 3 2 1 20 0 1 0 98765 0 0";
        let u = parse_stat(stat).expect("parses");
        assert_eq!(u.pgrp, 77);
        assert_eq!(u.user_ticks, 5 + 2);
        assert_eq!(u.system_ticks, 3 + 1);
        assert_eq!(
            parse_stat("9 (z) Z 1 9 9 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 0 0"),
            None
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn reads_status_kib_and_own_usage() {
        let status = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(1024));
        assert_eq!(status_kib(status, "VmHWM:"), Some(2048));
        assert_eq!(status_kib(status, "VmSwap:"), None);
        let own = usage(std::process::id()).expect("this process is alive");
        assert!(own.rss_bytes.is_some_and(|b| b > 0));
    }

    #[test]
    fn sums_only_when_something_is_known() {
        assert_eq!(sum_opt(None, None), None);
        assert_eq!(sum_opt(Some(2), None), Some(2));
        assert_eq!(sum_opt(Some(2), Some(3)), Some(5));
    }
}
