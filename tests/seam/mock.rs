//! `MockRunner` (feature `mock`): expectations on which commands run.
#![cfg(feature = "mock")]

use processkit::{Command, Error, MockRunner, ProcessResult, ProcessRunner, ProcessRunnerExt};

fn ok(stdout: &str) -> processkit::Result<ProcessResult<Vec<u8>>> {
    Ok(ProcessResult::new(
        "git",
        Some(0),
        stdout.as_bytes().to_vec(),
        Vec::new(),
    ))
}

#[tokio::test]
async fn expectation_answers_the_verbs_and_counts_calls() {
    let mut mock = MockRunner::new();
    mock.expect_output_bytes()
        .withf(|cmd| cmd.get_program() == "git" && cmd.get_args().eq(["status"]))
        .times(2)
        .returning(|_| ok(" M file\n"));
    let cmd = Command::new("git").arg("status");
    assert_eq!(mock.run(&cmd).await.unwrap(), "M file");
    assert_eq!(mock.exit_code(&cmd).await.unwrap(), 0);
    mock.checkpoint();
}

#[tokio::test]
async fn mock_is_usable_as_a_trait_object() {
    let mut mock = MockRunner::new();
    mock.expect_output_bytes().returning(|_| {
        Ok(ProcessResult::new(
            "git",
            Some(1),
            Vec::new(),
            b"nope".to_vec(),
        ))
    });
    let runner: Box<dyn ProcessRunner> = Box::new(mock);
    assert!(!runner.probe(&Command::new("git")).await.unwrap());
    let err = runner.run(&Command::new("git")).await.unwrap_err();
    assert!(matches!(err, Error::NonZeroExit { code: 1, .. }), "{err}");
}

#[tokio::test]
async fn start_expectation_can_return_an_error() {
    let mut mock = MockRunner::new();
    mock.expect_start().returning(|cmd| {
        Err(Error::NotFound {
            program: cmd.get_program().to_string_lossy().into(),
        })
    });
    let err = mock
        .first_line(&Command::new("nope"), |_| true)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotFound { ref program } if program == "nope"),
        "{err}"
    );
}

#[test]
#[should_panic]
fn unexpected_call_fails_the_test() {
    let mock = MockRunner::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _ = rt.block_on(mock.output_string(&Command::new("git")));
}

#[tokio::test]
async fn start_expectation_can_stream_a_scripted_reply() {
    use processkit::Reply;
    let mut mock = MockRunner::new();
    mock.expect_start()
        .times(1)
        .returning(|cmd| Reply::lines(["warming up", "ready on :9000"]).start(cmd));
    let line = mock
        .first_line(&Command::new("svc"), |l| l.starts_with("ready"))
        .await
        .unwrap();
    assert_eq!(line.as_deref(), Some("ready on :9000"));
}
