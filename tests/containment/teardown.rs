//! Teardown reaches only what we started: never the test process, its process
//! group or its cgroup, and it leaves no cgroup directories behind.
#![cfg(target_os = "linux")]

use crate::common;
use crate::groupctl_support::on_this_host;

use std::path::PathBuf;
use std::time::Duration;

use processkit::{Command, Mechanism, ProcessGroup, ProcessGroupOptions};

/// Our own cgroup v2 directory, from mountinfo and /proc/self/cgroup.
fn own_cgroup_dir() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2").then(|| left.split_whitespace().nth(4))?
    })?;
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))?
        .to_owned();
    Some(PathBuf::from(mount).join(own.trim_start_matches('/')))
}

/// Our per-process root: `processkit-<our pid>-<start time>`.
fn own_root() -> Option<PathBuf> {
    let prefix = format!("processkit-{}-", std::process::id());
    std::fs::read_dir(own_cgroup_dir()?)
        .ok()?
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
}

fn child_dirs(dir: &PathBuf) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn teardown_spares_the_caller_and_its_siblings() {
    // A process the test started by other means, in the test's own process
    // group and cgroup: no teardown may touch it. It is a plain `sleep` (no
    // shell in between), so killing it by pid on drop leaves nothing behind.
    let mut bystander = Bystander(
        std::process::Command::new("sleep")
            .arg("1000")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let own_cgroup_before = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let mechanisms = [
        Mechanism::CgroupV2,
        Mechanism::Subreaper,
        Mechanism::ProcessGroup,
    ];
    for mechanism in mechanisms.into_iter().filter(|&m| on_this_host(m)) {
        let options = ProcessGroupOptions::default()
            .mechanism(mechanism)
            .shutdown_grace(Duration::from_millis(100));
        let group = ProcessGroup::with_options(options).unwrap();
        group
            .start(&Command::new("sleep").arg("1000"))
            .await
            .unwrap();
        group.terminate_all().unwrap();
        group
            .start(&Command::new("sleep").arg("1000"))
            .await
            .unwrap();
        group.shutdown().await.unwrap();
        drop(group);
        let run = Command::new("sleep").arg("1000").start().await.unwrap();
        drop(run);
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        bystander.0.try_wait().unwrap().is_none(),
        "a bystander in our group was killed"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/self/cgroup").unwrap(),
        own_cgroup_before
    );
}

/// Kills and reaps the bystander by pid, also when an assertion failed.
struct Bystander(std::process::Child);

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn twenty_groups_in_a_row_leave_no_cgroups_behind() {
    for _ in 0..20 {
        let group = ProcessGroup::with_options(
            ProcessGroupOptions::default().mechanism(Mechanism::CgroupV2),
        )
        .unwrap();
        let mut run = group
            .start(&Command::new("sh").args(["-c", "sleep 1000 & sleep 1000"]))
            .await
            .unwrap();
        assert!(run.id().is_some());
        drop(group);
        assert_eq!(run.wait().await.unwrap(), None);
    }
    let root = own_root().expect("the per-process root exists once a cgroup group was made");
    // Spares (`s<N>`) are cgroups kept for the next single runs: fresh ones
    // made ahead, and emptied ones whose run ended without a kill. They hold
    // no process. Every other cgroup (groups, their runs) must be gone.
    let used = || -> Vec<String> {
        child_dirs(&root)
            .into_iter()
            .filter(|name| {
                let spare = name
                    .strip_prefix('s')
                    .is_some_and(|n| n.parse::<u64>().is_ok());
                let events = std::fs::read_to_string(root.join(name).join("cgroup.events"));
                !spare || events.is_ok_and(|e| e.contains("populated 1"))
            })
            .collect()
    };
    let empty = common::eventually(Duration::from_secs(10), || used().is_empty());
    assert!(empty, "cgroups left behind: {:?}", used());
}

#[test]
fn this_cgroup_host_reports_no_fallback() {
    // The CI host has a writable cgroup2 (see docs/platform-support.md).
    assert_eq!(processkit::fallback_reason(), None);
}
