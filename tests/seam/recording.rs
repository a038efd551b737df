//! `RecordingRunner`: every invocation is kept for assertions, whatever the
//! inner runner answers, and environment values are never kept.
// The tests that run real programs are Unix-only; their helpers idle elsewhere.
#![cfg_attr(not(unix), allow(unused_imports, dead_code))]

use processkit::{
    Command, Error, Invocation, JobRunner, Match, ProcessRunner, ProcessRunnerExt, RecordingRunner,
    Reply, ScriptedRunner, Stdin,
};

fn scripted() -> ScriptedRunner {
    ScriptedRunner::new()
        .on(Match::program("git"), Reply::success("ok\n"))
        .on(Match::program("streamer"), Reply::lines(["a", "b"]))
}

#[tokio::test]
async fn keeps_program_args_cwd_env_names_and_stdin_presence() {
    let runner = RecordingRunner::new(scripted());
    let cmd = Command::new("git")
        .args(["commit", "-m", "msg"])
        .current_dir("/repo")
        .env("GIT_AUTHOR_NAME", "value-one")
        .env("A_TOKEN", "value-two")
        .env_remove("PAGER")
        .stdin(Stdin::from_string("input"));
    assert_eq!(runner.run(&cmd).await.unwrap(), "ok");
    runner
        .run(&Command::new("git").arg("status"))
        .await
        .unwrap();

    let all = runner.invocations();
    assert_eq!(all.len(), 2);
    let first = &all[0];
    assert_eq!(first.program, "git");
    assert_eq!(first.args, ["commit", "-m", "msg"]);
    assert_eq!(first.cwd.as_deref(), Some("/repo".as_ref()));
    assert_eq!(first.env_names, ["A_TOKEN", "GIT_AUTHOR_NAME", "PAGER"]);
    assert!(first.has_stdin);
    assert_eq!(first.argv(), ["git", "commit", "-m", "msg"]);
    let debug = format!("{all:?}");
    assert!(
        !debug.contains("value-one") && !debug.contains("value-two"),
        "{debug}"
    );

    let last = runner.last().unwrap();
    assert_eq!(
        (last.args.as_slice(), last.cwd.as_ref(), last.has_stdin),
        (&["status".to_owned()][..], None, false)
    );
    assert_eq!(runner.count_of("git"), 2);
    assert_eq!(runner.count_of("jj"), 0);
    assert_eq!(last, Invocation::of(&Command::new("git").arg("status")));
}

#[tokio::test]
async fn records_streaming_starts_and_keep_stdin_open() {
    let runner = RecordingRunner::new(scripted());
    let cmd = Command::new("streamer").keep_stdin_open();
    let line = runner.first_line(&cmd, |l| l == "b").await.unwrap();
    assert_eq!(line.as_deref(), Some("b"));
    let _run = runner.start(&Command::new("streamer")).await.unwrap();
    let log = runner.invocations();
    assert_eq!(log.len(), 2);
    assert!(log[0].has_stdin, "keep_stdin_open counts as stdin");
    assert!(!log[1].has_stdin);
}

#[tokio::test]
async fn misses_are_recorded_and_the_inner_error_passes_through() {
    let runner = RecordingRunner::new(scripted());
    assert!(runner.is_empty());
    let err = runner
        .run(&Command::new("unknown").arg("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoReply { .. }), "{err}");
    assert_eq!(runner.len(), 1);
    assert_eq!(runner.last().unwrap().program, "unknown");
    runner.clear();
    assert!(runner.is_empty());
    assert_eq!(runner.inner().calls(), 1);
}

#[cfg(unix)] // drives Unix programs
#[tokio::test]
async fn wraps_a_real_runner() {
    let runner = RecordingRunner::new(JobRunner::new());
    let out = runner
        .run(
            &Command::new("sh")
                .args(["-c", "echo \"$GREETING\""])
                .env("GREETING", "hello"),
        )
        .await
        .unwrap();
    assert_eq!(out, "hello");
    assert_eq!(runner.count_of("sh"), 1);
    assert_eq!(runner.last().unwrap().env_names, ["GREETING"]);
    let dynamic: &dyn ProcessRunner = &runner;
    assert_eq!(
        dynamic
            .exit_code(&Command::new("sh").args(["-c", "exit 4"]))
            .await
            .unwrap(),
        4
    );
    assert_eq!(
        runner
            .into_inner()
            .start(&Command::new("true"))
            .await
            .unwrap()
            .wait()
            .await
            .unwrap(),
        Some(0)
    );
}
