//! Run cgroups are reused: a single run whose tree ended on its own hands its
//! cgroup to a later run, which still counts only its own usage; a cgroup
//! whose run had to be killed is removed, never reused.

use std::time::Duration;

use crate::common;
use crate::groupctl_support::on_this_host;

use processkit::{Command, Mechanism};

/// Prints the run's cgroup v2 path with shell builtins only (no extra process).
const PRINT_CGROUP: &str =
    r#"while read -r l; do case $l in 0::*) echo "${l#0::}";; esac; done < /proc/self/cgroup"#;

fn cgroup_of(script: &str) -> Command {
    Command::new("sh").args(["-c", &format!("{PRINT_CGROUP}; {script}")])
}

/// The cgroup a finished run printed first.
fn printed_cgroup(stdout: &str) -> String {
    stdout.lines().next().unwrap_or_default().to_owned()
}

fn cgroup_dir(path: &str) -> std::path::PathBuf {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mount = mountinfo
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            (right.split_whitespace().next()? == "cgroup2")
                .then(|| left.split_whitespace().nth(4))?
        })
        .expect("a cgroup2 mount");
    std::path::Path::new(mount).join(path.trim_start_matches('/'))
}

fn on_cgroups() -> bool {
    std::env::var_os("PROCESSKIT_MECHANISM").is_none() && on_this_host(Mechanism::CgroupV2)
}

#[tokio::test]
async fn a_run_that_ends_on_its_own_hands_its_cgroup_to_a_later_run() {
    if !on_cgroups() {
        return;
    }
    let mut seen = Vec::new();
    for _ in 0..100 {
        let out = cgroup_of("exit 0").output_string().await.unwrap();
        assert_eq!(out.code(), Some(0));
        let cgroup = printed_cgroup(out.stdout());
        assert!(cgroup.contains("/processkit-"), "not contained: {cgroup:?}");
        if seen.contains(&cgroup) {
            return;
        }
        seen.push(cgroup);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("100 runs that left nothing behind never shared a cgroup: {seen:?}");
}

#[tokio::test]
async fn a_run_whose_tree_had_to_be_killed_never_lends_its_cgroup() {
    if !on_cgroups() {
        return;
    }
    let token = format!("pk-reuse-killed-{}", std::process::id());
    // The shell exits at once and leaves a shell (named by the token) and
    // its sleep behind: the run's end kills them.
    let out = cgroup_of(&format!(
        "sh -c 'sleep 1000; :' {token} >/dev/null & exit 0"
    ))
    .output_string()
    .await
    .unwrap();
    let killed = printed_cgroup(out.stdout());
    assert!(
        common::eventually(Duration::from_secs(10), || common::pids_with_token(&token)
            .is_empty()),
        "what the run left behind outlived it"
    );
    for _ in 0..40 {
        let out = cgroup_of("exit 0").output_string().await.unwrap();
        assert_ne!(
            printed_cgroup(out.stdout()),
            killed,
            "a killed cgroup was reused"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let dir = cgroup_dir(&killed);
    assert!(
        common::eventually(Duration::from_secs(10), || !dir.exists()),
        "the killed run's cgroup {} was kept",
        dir.display()
    );
}

#[cfg(feature = "stats")]
#[tokio::test]
async fn a_reused_cgroup_counts_only_the_cpu_time_of_its_own_run() {
    if !on_cgroups() {
        return;
    }
    // About 0.2-0.5 s of CPU in one shell process, then gone: its cgroup is reusable.
    let burner = cgroup_of("i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done")
        .start()
        .await
        .unwrap()
        .profile(Duration::from_millis(20))
        .await
        .unwrap();
    let burnt = burner.cpu_time.expect("cgroup CPU time");
    let burner_cgroup = printed_cgroup(burner.output.stdout());
    assert!(burnt > Duration::from_millis(50), "burnt only {burnt:?}");
    // Spares are handed out last-returned first, and other tests return
    // theirs too: each round holds runs open until one lands in the burner's
    // cgroup or the ones on top of it are used up.
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut held = Vec::new();
        for _ in 0..16 {
            let mut run = cgroup_of("exec sleep 0.3").start().await.unwrap();
            let cgroup = run
                .wait_for_line(|_| true, Duration::from_secs(10))
                .await
                .unwrap();
            if cgroup == burner_cgroup {
                let cpu = run
                    .profile(Duration::from_millis(10))
                    .await
                    .unwrap()
                    .cpu_time
                    .expect("cgroup CPU time");
                assert!(
                    cpu < burnt / 2,
                    "a run in the reused cgroup reports {cpu:?}, its predecessor burnt {burnt:?}"
                );
                return;
            }
            held.push(run);
        }
        for mut run in held {
            run.wait().await.unwrap();
        }
    }
    panic!("the burner's cgroup {burner_cgroup} was never reused");
}
