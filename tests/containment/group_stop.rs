//! `ProcessGroup::stop`: the report's counts (asked, exited within the
//! grace, killed), each run's own stop signal (also through `shutdown`),
//! and a group that stays usable afterwards; under every Linux mechanism.
#![cfg(target_os = "linux")]

use std::time::Duration;

use processkit::{Command, Mechanism, ProcessGroup, ProcessGroupOptions, ProcessRunnerExt, Signal};

use crate::common::*;
use crate::groupctl_support::on_this_host;

/// Starts `sleep 1000` in the background and waits until it has exec'd (a
/// signal caught by the shell's fork before the exec would be lost).
const BG_SLEEP: &str =
    "sleep 1000 & until [ \"$(cat /proc/$!/comm 2>/dev/null)\" = sleep ]; do :; done;";

fn mechanisms() -> Vec<Mechanism> {
    [
        Mechanism::CgroupV2,
        Mechanism::Subreaper,
        Mechanism::ProcessGroup,
    ]
    .into_iter()
    .filter(|&m| on_this_host(m))
    .collect()
}

fn group_on(mechanism: Mechanism) -> ProcessGroup {
    let options = ProcessGroupOptions::default()
        .mechanism(mechanism)
        .shutdown_grace(Duration::from_secs(60));
    ProcessGroup::with_options(options).unwrap()
}

async fn start_ready(group: &ProcessGroup, cmd: &Command) -> processkit::RunningProcess {
    let mut run = group.start(cmd).await.unwrap();
    run.wait_for_line(|l| l == "ready", Duration::from_secs(20))
        .await
        .unwrap();
    run
}

#[tokio::test]
async fn the_report_counts_who_left_and_who_was_killed() {
    for mechanism in mechanisms() {
        let token = token("group-stop");
        let _cleanup = Cleanup::token(&token);
        let group = group_on(mechanism);
        // Two processes that leave on SIGTERM, two that ignore it.
        let polite = format!("trap 'kill $!; exit 0' TERM; {BG_SLEEP} echo ready; wait; : {token}");
        let stubborn = format!("trap '' TERM; {BG_SLEEP} echo ready; wait; : {token}");
        let _a = start_ready(&group, &sh(&polite)).await;
        let _b = start_ready(&group, &sh(&stubborn)).await;
        let report = group.stop(Duration::from_millis(500)).await.unwrap();
        assert_eq!(
            (report.signalled, report.exited, report.killed),
            (4, 2, 2),
            "{mechanism}: {report:?}"
        );
        assert!(!report.all_exited());
        assert!(report.elapsed >= Duration::from_millis(500), "{report:?}");
        assert!(
            wait_gone(&token).await,
            "{mechanism}: left {:?}",
            pids_with_token(&token)
        );
    }
}

#[tokio::test]
async fn a_group_whose_runs_all_leave_reports_no_kill() {
    for mechanism in mechanisms() {
        let token = token("group-stop-clean");
        let _cleanup = Cleanup::token(&token);
        let group = group_on(mechanism);
        let polite = format!("trap 'kill $!; exit 0' TERM; {BG_SLEEP} echo ready; wait; : {token}");
        let _a = start_ready(&group, &sh(&polite)).await;
        let _b = start_ready(&group, &sh(&polite)).await;
        let report = group.stop(Duration::from_secs(60)).await.unwrap();
        assert_eq!(
            (report.signalled, report.killed),
            (4, 0),
            "{mechanism}: {report:?}"
        );
        assert!(report.all_exited());
        // The group is still usable.
        let out = group
            .output_string(&Command::new("echo").arg("again"))
            .await
            .unwrap();
        assert_eq!(out.stdout().trim(), "again");
        let empty = group.stop(Duration::from_secs(1)).await.unwrap();
        assert_eq!((empty.signalled, empty.exited, empty.killed), (0, 0, 0));
    }
}

#[tokio::test]
async fn each_run_gets_its_own_stop_signal_from_stop_and_shutdown() {
    for mechanism in mechanisms() {
        for shutdown in [false, true] {
            let token = token("group-stop-signals");
            let _cleanup = Cleanup::token(&token);
            let dir = TempDir::new("group-stop-signals");
            let group = group_on(mechanism);
            let noting = |name: &str| {
                format!(
                    "trap 'echo TERM > {d}/{name}; kill $!; exit 0' TERM; \
                     trap 'echo INT > {d}/{name}; kill $!; exit 0' INT; \
                     trap 'echo HUP > {d}/{name}; kill $!; exit 0' HUP; \
                     {BG_SLEEP} echo ready; wait; : {token}",
                    d = dir.display()
                )
            };
            let _plain = start_ready(&group, &sh_trapping(&noting("plain"))).await;
            let int = sh_trapping(&noting("int")).stop_signal(Signal::Int);
            let _int = start_ready(&group, &int).await;
            let hup = sh_trapping(&noting("hup")).stop_signal(Signal::Hup);
            let _hup = start_ready(&group, &hup).await;
            if shutdown {
                group.shutdown().await.unwrap();
            } else {
                let report = group.stop(Duration::from_secs(60)).await.unwrap();
                assert_eq!(report.killed, 0, "{mechanism}: {report:?}");
            }
            let read = |name: &str| {
                std::fs::read_to_string(dir.join(name))
                    .map(|s| s.trim().to_owned())
                    .ok()
            };
            let got = (read("plain"), read("int"), read("hup"));
            assert_eq!(
                got,
                (Some("TERM".into()), Some("INT".into()), Some("HUP".into())),
                "{mechanism}, shutdown {shutdown}"
            );
            assert!(wait_gone(&token).await);
        }
    }
}
