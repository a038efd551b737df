//! The public surface added by the architecture work: `ExitStatus` from
//! `wait_status`, typed error subjects and operations, `unchecked()` on a
//! single command, `CliClient` verbs taking `&Command`, `processkit::testing`.

use processkit::testing::{Reply, ScriptedRunner};
use processkit::{CliClient, Command, Error, Operation, ProcessRunner, Subject, wait_any};

#[tokio::test]
async fn wait_status_reports_a_scripted_exit_code() {
    let fake = ScriptedRunner::new().exact("tool", ["x"], Reply::failure(3, "bad"));
    let mut run = fake.start(&Command::new("tool").arg("x")).await.unwrap();
    let status = run.wait_status().await.unwrap();
    assert_eq!(status.code(), Some(3));
    assert!(!status.success() && !status.timed_out());
    assert_eq!(status.to_string(), "exited with code 3");
    // The status is plain data: copied, compared, and stable across waits.
    let again = run.wait_status().await.unwrap();
    assert_eq!(status, again);
}

#[tokio::test]
async fn wait_status_reports_a_scripted_timeout_without_a_code() {
    let fake = ScriptedRunner::new().exact("tool", ["x"], Reply::timeout());
    let mut run = fake.start(&Command::new("tool").arg("x")).await.unwrap();
    let status = run.wait_status().await.unwrap();
    assert!(status.timed_out() && !status.success());
    assert_eq!(status.code(), None);
}

#[tokio::test]
async fn an_empty_race_is_an_invalid_argument_of_wait_any() {
    let err = wait_any(&mut []).await.unwrap_err();
    match &err {
        Error::InvalidArgument { operation, .. } => assert_eq!(*operation, Operation::WaitAny),
        other => panic!("{other:?}"),
    }
    assert_eq!(err.program(), None, "no sentinel program");
}

#[test]
fn a_typed_io_error_keeps_its_message() {
    let source = std::io::Error::other("boom");
    let err = Error::Io {
        subject: Subject::Group,
        operation: Operation::Kill,
        source,
    };
    assert_eq!(err.to_string(), "`process group`: kill: boom");
    assert_eq!(err.program(), None);
    let err = Error::Io {
        subject: Subject::Program("cargo".into()),
        operation: Operation::Wait,
        source: std::io::Error::other("gone"),
    };
    assert_eq!(err.to_string(), "`cargo`: wait: gone");
    assert_eq!(err.program(), Some("cargo"));
}

#[cfg(feature = "record")]
#[test]
fn a_missing_cassette_names_the_file_and_the_read() {
    let path = std::path::Path::new("/nonexistent/processkit/cassette.json");
    let err = processkit::testing::RecordReplayRunner::replay(path).unwrap_err();
    match &err {
        Error::Io {
            subject: Subject::Cassette(file),
            operation: Operation::ReadCassette,
            ..
        } => assert_eq!(file, path),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn cli_client_verbs_take_the_command_by_reference_or_by_value() {
    let fake = ScriptedRunner::new().exact("git", ["status"], Reply::success("clean\n"));
    let git = CliClient::new("git").with_runner(fake);
    let status = git.command(["status"]);
    assert_eq!(git.run(&status).await.unwrap(), "clean");
    assert_eq!(git.exit_code(&status).await.unwrap(), 0);
    assert!(git.probe(&status).await.unwrap());
    assert_eq!(git.run(status).await.unwrap(), "clean");
    assert_eq!(git.runner().calls(), 4);
}

#[tokio::test]
async fn an_unchecked_single_command_runs_despite_its_exit() {
    let fake =
        ScriptedRunner::new().exact("grep", ["x"], Reply::failure(1, "").stdout("partial\n"));
    let client = CliClient::new("grep").with_runner(fake);
    let checked = client.command(["x"]);
    assert!(matches!(
        client.run(&checked).await,
        Err(Error::NonZeroExit { code: 1, .. })
    ));
    let unchecked = client.command(["x"]).unchecked();
    assert_eq!(client.run(&unchecked).await.unwrap(), "partial");
}

#[tokio::test]
async fn an_unchecked_command_still_fails_on_its_timeout() {
    let fake = ScriptedRunner::new().exact("slow", [] as [&str; 0], Reply::timeout());
    let client = CliClient::new("slow").with_runner(fake);
    let err = client
        .run(client.command([] as [&str; 0]).unchecked())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
}

#[cfg(unix)]
mod unix {
    use std::time::Duration;

    use super::*;

    fn sh(script: &str) -> Command {
        Command::new("sh").args(["-c", script])
    }

    #[tokio::test]
    async fn wait_status_reports_a_real_exit_code() {
        let mut run = sh("exit 7").start().await.unwrap();
        let status = run.wait_status().await.unwrap();
        assert_eq!((status.code(), status.signal()), (Some(7), None));
        assert!(!status.success());
        let mut run = sh("true").start().await.unwrap();
        assert!(run.wait_status().await.unwrap().success());
    }

    #[tokio::test]
    async fn wait_status_reports_the_signal_that_ended_the_child() {
        let mut run = sh("kill -TERM $$").start().await.unwrap();
        let status = run.wait_status().await.unwrap();
        assert_eq!((status.code(), status.signal()), (None, Some(15)));
        assert!(!status.timed_out());
        assert_eq!(status.to_string(), "was killed by signal 15");
    }

    #[tokio::test]
    async fn wait_status_reports_a_timeout() {
        let mut run = sh("sleep 30")
            .timeout(Duration::from_millis(100))
            .start()
            .await
            .unwrap();
        let status = run.wait_status().await.unwrap();
        assert!(status.timed_out() && !status.success());
        assert_eq!(status.code(), None);
        assert_eq!(status.signal(), Some(9), "the tree is killed with SIGKILL");
    }

    #[tokio::test]
    async fn unchecked_applies_to_a_single_real_command() {
        let out = sh("echo partial; exit 1").unchecked().run().await.unwrap();
        assert_eq!(out, "partial");
        let out = sh("echo half; kill -TERM $$")
            .unchecked()
            .run()
            .await
            .unwrap();
        assert_eq!(out, "half");
        // Checked, the same run is an error.
        assert!(sh("echo partial; exit 1").run().await.is_err());
    }

    #[tokio::test]
    async fn an_all_unchecked_pipeline_runs_despite_the_blamed_exit() {
        let out = (sh("echo a; exit 2").unchecked() | sh("cat; exit 3").unchecked())
            .run()
            .await
            .unwrap();
        assert_eq!(out, "a");
        // One checked stage keeps pipefail strict.
        let err = (sh("echo a; exit 2").unchecked() | sh("cat; exit 3"))
            .run()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NonZeroExit { code: 3, .. }), "{err:?}");
    }

    #[tokio::test]
    async fn cli_client_runs_a_borrowed_command_for_real() {
        let printf = CliClient::new("printf");
        let cmd = printf.command(["hi"]);
        assert_eq!(printf.run(&cmd).await.unwrap(), "hi");
        assert_eq!(printf.run(&cmd).await.unwrap(), "hi", "reusable");
    }
}
