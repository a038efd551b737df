//! What the group-control, stats and limits tests need beyond `tests/common`:
//! whether this host delegates the limit controllers, and SKIP/NOTE lines that
//! reach the VM lane's log past the harness's capture.
#![allow(dead_code)]

use std::time::Instant;

/// Whether our own cgroup v2 offers every controller limits need.
pub fn host_delegates_limits() -> bool {
    let membership = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let Some(own) = membership.lines().find_map(|l| l.strip_prefix("0::")) else {
        return false;
    };
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let Some(mount) = mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2").then(|| left.split_whitespace().nth(4))?
    }) else {
        return false;
    };
    let dir = std::path::Path::new(mount).join(own.trim_start_matches('/'));
    let controllers = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    ["memory", "pids", "cpu"]
        .iter()
        .all(|c| controllers.split_whitespace().any(|x| x == *c))
}

/// Prints a SKIP line straight to stderr, past the test harness's capture,
/// so a skipped proof is visible in every run.
pub fn skip(reason: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIP: {reason}");
}

/// Prints a measurement straight to stderr, past the harness's capture.
pub fn note(line: &str) {
    use std::io::Write;
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let at = START.get_or_init(Instant::now).elapsed();
    let _ = writeln!(std::io::stderr(), "NOTE [{:.1}s]: {line}", at.as_secs_f64());
}
