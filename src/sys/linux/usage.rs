//! Resource usage of a cgroup: `cpu.stat` (always there), `memory.*` and
//! `pids.peak` when those controllers are enabled, `/proc` sums otherwise.

use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

use super::cgroup::{Baseline, Cgroup, keyed, number};
use super::procfs;
use crate::sys::Usage;

/// Stats of everything in `cg` and below; cumulative counters count from
/// `baseline` (what a reused cgroup had counted before this run).
pub(crate) fn cgroup_stats(cg: &Cgroup, baseline: &Baseline) -> io::Result<Usage> {
    let pids = cg.pids()?;
    let mut stats = Usage {
        active_process_count: pids.len() as u64,
        ..Usage::default()
    };
    if let Ok(cpu) = cg.read("cpu.stat") {
        let usec = |key, since: u64| {
            keyed(&cpu, key).map(|now| Duration::from_micros(now.saturating_sub(since)))
        };
        stats.cpu_time = usec("usage_usec", baseline.usage_usec);
        stats.user_cpu_time = usec("user_usec", baseline.user_usec);
        stats.system_cpu_time = usec("system_usec", baseline.system_usec);
    }
    stats.memory_bytes = cg.read("memory.current").ok().and_then(|t| number(&t));
    stats.peak_memory_bytes = cg.read("memory.peak").ok().and_then(|t| number(&t));
    stats.oom_kills = cg
        .read("memory.events")
        .ok()
        .and_then(|t| keyed(&t, "oom_kill"));
    stats.peak_process_count = cg.read("pids.peak").ok().and_then(|t| number(&t));
    if stats.memory_bytes.is_none() {
        // No memory controller here: sum what the live members report.
        let tree = procfs::tree_usage(&pids);
        stats.memory_bytes = tree.rss_bytes;
        stats.peak_memory_bytes = stats.peak_memory_bytes.or(tree.hwm_bytes);
    }
    Ok(stats)
}

/// Controllers that only account (no limit is set by enabling them).
const ACCOUNTING: [&str; 2] = ["memory", "pids"];

/// Best effort: where the per-process root has been delegated the memory and
/// pids controllers, switch them on for its children, so every new container
/// reports `memory.current`/`memory.peak`/`pids.peak` from its first process
/// (charges made before a controller is enabled are never attributed). The
/// root holds no processes, so the no-internal-process rule cannot object;
/// `cpu` is left alone because enabling it changes scheduling between groups.
/// Done once per process (the root is made once): every container used to
/// read both files again.
pub(crate) fn enable_accounting(root: &Path) {
    static DONE: std::sync::Once = std::sync::Once::new();
    DONE.call_once(|| enable_accounting_now(root));
}

fn enable_accounting_now(root: &Path) {
    let offered = fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    let enabled = fs::read_to_string(root.join("cgroup.subtree_control")).unwrap_or_default();
    for controller in ACCOUNTING {
        let has = |list: &str| list.split_whitespace().any(|c| c == controller);
        if has(&offered) && !has(&enabled) {
            let _ = fs::write(
                root.join("cgroup.subtree_control"),
                format!("+{controller}"),
            );
        }
    }
}

/// Stats summed from `/proc` over process groups `pgids` and extra pids.
pub(crate) fn pgroup_stats(pgids: &[i32], extra: &[u32]) -> Usage {
    from_tree(procfs::groups_usage(pgids, extra))
}

/// Stats summed from `/proc` over the listed processes.
pub(crate) fn pid_stats(pids: &[u32]) -> Usage {
    from_tree(procfs::tree_usage(pids))
}

fn from_tree(tree: procfs::TreeUsage) -> Usage {
    let any = tree.processes > 0;
    Usage {
        active_process_count: tree.processes,
        cpu_time: any.then(|| tree.user + tree.system),
        user_cpu_time: any.then_some(tree.user),
        system_cpu_time: any.then_some(tree.system),
        memory_bytes: tree.rss_bytes,
        peak_memory_bytes: tree.hwm_bytes,
        ..Usage::default()
    }
}
