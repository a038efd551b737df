//! A spawner fallback is said in tracing. The test re-runs this test binary
//! with `PROCESSKIT_SPAWNER=std` set from the start (so no spawn happened
//! before): contained runs still work, and one event names the reason.
#![cfg(all(feature = "tracing", target_os = "linux"))]

use crate::common;

use common::CapturingSubscriber;
use processkit::Command;

const TEST: &str = "the_std_spawner_fallback_is_said_once_in_tracing";
const IN_CHILD: &str = "PK_SPAWNER_FALLBACK_CHILD";

#[test]
fn the_std_spawner_fallback_is_said_once_in_tracing() {
    if std::env::var_os(IN_CHILD).is_some() {
        return runs_and_prints_events();
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &crate::common::test_named(TEST),
            "--nocapture",
            "--test-threads=1",
        ])
        .env(IN_CHILD, "1")
        .env("PROCESSKIT_SPAWNER", "std")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}\n{errors}");
    let said: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .any(|w| w == "message=spawner_fallback")
        })
        .collect();
    assert_eq!(said.len(), 1, "{text}");
    assert!(said[0].contains("PROCESSKIT_SPAWNER=std"), "{text}");
}

fn runs_and_prints_events() {
    // The global default itself (not `default()`, which installs another).
    let capture = CapturingSubscriber(std::sync::Arc::default());
    tracing::subscriber::set_global_default(capture.clone()).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        for _ in 0..3 {
            let out = Command::new("sh")
                .args(["-c", "cat /proc/self/cgroup"])
                .output_string()
                .await
                .unwrap();
            // Still contained: in a cgroup of ours, or (without cgroup v2, or
            // with process groups asked for) run at all.
            let pgroups_asked = std::env::var("PROCESSKIT_MECHANISM")
                .is_ok_and(|m| m.trim() == processkit::Mechanism::ProcessGroup.name());
            assert!(
                out.stdout().contains("processkit-")
                    || processkit::fallback_reason().is_some()
                    || pgroups_asked
            );
        }
    });
    println!("{}", capture.log());
}

#[tokio::test]
async fn by_default_a_contained_child_is_born_in_its_cgroup() {
    let chosen = ["PROCESSKIT_SPAWNER", "PROCESSKIT_MECHANISM"];
    if std::env::var_os(IN_CHILD).is_some() || chosen.iter().any(|v| std::env::var_os(v).is_some())
    {
        return;
    }
    let capture = CapturingSubscriber::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    Command::new("true").exit_code().await.unwrap();
    let log = capture.log();
    let spawn = log
        .lines()
        .find(|l| l.split_whitespace().any(|w| w == "message=spawn"))
        .unwrap_or_else(|| panic!("no spawn event in {log}"));
    // This host: x86_64, Linux 6.x, a writable cgroup2 (see docs/platform-support.md).
    let expected = match (cfg!(target_arch = "x86_64"), processkit::fallback_reason()) {
        (true, None) => "spawner=clone3",
        _ => "spawner=clone",
    };
    assert!(spawn.contains(expected), "{spawn}");
}
