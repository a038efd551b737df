//! Bad input is a typed error: no panic, and nothing left running.
#![cfg(unix)]

use crate::common;

use processkit::{Command, Error, JobRunner, Mechanism, ProcessGroup};

async fn assert_nothing_started(cmd: Command, check: impl Fn(&Error) -> bool) {
    let mut mechanisms = vec![Mechanism::CgroupV2, Mechanism::ProcessGroup];
    if cfg!(target_os = "linux") {
        mechanisms.push(Mechanism::Subreaper);
    }
    for mechanism in mechanisms {
        let err = JobRunner::with_mechanism(mechanism)
            .start(&cmd)
            .await
            .unwrap_err();
        assert!(check(&err), "{mechanism}: unexpected {err:?}");
        assert_eq!(err.program(), Some(cmd.get_program().to_str().unwrap()));
    }
}

#[tokio::test]
async fn a_missing_program_is_not_found() {
    let cmd = Command::new("processkit-no-such-program");
    assert_nothing_started(cmd, |e| matches!(e, Error::NotFound { .. })).await;
    let path = Command::new("/nonexistent/dir/tool");
    assert_nothing_started(path, |e| matches!(e, Error::NotFound { .. })).await;
    let err = processkit::run("processkit-no-such-program", ["x"])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("processkit-no-such-program"));
}

#[tokio::test]
async fn a_missing_working_directory_is_reported_as_such() {
    let token = common::token("bad-cwd");
    let cmd = Command::new("sh")
        .args(["-c", "sleep 1000", &token])
        .current_dir("/nonexistent/pk");
    assert_nothing_started(cmd, |e| matches!(e, Error::WorkingDirectory { .. })).await;
    assert!(common::pids_with_token(&token).is_empty());
}

#[tokio::test]
async fn a_nul_byte_is_an_invalid_command() {
    let cmd = Command::new("echo").arg("a\0b");
    assert_nothing_started(cmd, |e| matches!(e, Error::InvalidCommand { .. })).await;
    let env = Command::new("echo").env("KEY", "va\0lue");
    assert_nothing_started(env, |e| matches!(e, Error::InvalidCommand { .. })).await;
    let empty = Command::new("");
    assert!(matches!(
        empty.run().await,
        Err(Error::InvalidCommand { .. })
    ));
}

#[tokio::test]
async fn a_group_survives_a_failed_start() {
    let group = ProcessGroup::new().unwrap();
    assert!(
        group
            .start(&Command::new("processkit-no-such-program"))
            .await
            .is_err()
    );
    let out = group
        .start(&Command::new("true"))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(out, Some(0));
}
