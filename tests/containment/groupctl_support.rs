//! What the containment tests need beyond `tests/common`: whether this host
//! provides a mechanism and delegates the limit controllers, and SKIP/NOTE lines
//! that reach the VM and container lanes' logs past the harness's capture.
#![allow(dead_code)]

use std::time::Instant;

use processkit::{Error, Mechanism, ProcessGroup, ProcessGroupOptions};

/// Whether this host provides `mechanism` (a non-root user or a container has
/// no writable cgroup v2). One it lacks gets one SKIP line per test process; any
/// other failure to make a group panics. The CI host's own lane proves its
/// cgroup is there (`teardown::this_cgroup_host_reports_no_fallback`).
pub fn on_this_host(mechanism: Mechanism) -> bool {
    static SAID: std::sync::Mutex<Vec<Mechanism>> = std::sync::Mutex::new(Vec::new());
    match ProcessGroup::with_options(ProcessGroupOptions::default().mechanism(mechanism)) {
        Ok(_) => true,
        Err(Error::Unsupported { reason, .. }) => {
            let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
            if !said.contains(&mechanism) {
                said.push(mechanism);
                skip(&format!("{mechanism} is not on this host: {reason}"));
            }
            false
        }
        Err(e) => panic!("a {mechanism} group on this host: {e:?}"),
    }
}

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
