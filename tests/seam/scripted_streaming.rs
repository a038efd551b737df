//! Scripted runs through the streaming API: `wait_for_line`, `stdout_lines`,
//! `finish_streamed`, with no process behind them.

use std::time::Duration;

use processkit::{Command, Error, Match, ProcessRunner, Reply, ScriptedRunner, StreamExt};

fn server() -> ScriptedRunner {
    ScriptedRunner::new().on(
        Match::program("my-server"),
        Reply::lines(["booting"])
            .line_after(Duration::from_millis(100), "listening on 127.0.0.1:8080")
            .line_after(Duration::from_millis(100), "request 1")
            .line_after(Duration::from_millis(100), "request 2")
            .stderr("a warning\n")
            .exit_after(Duration::from_millis(100)),
    )
}

#[tokio::test(start_paused = true)]
async fn wait_for_line_then_stream_the_rest() {
    let runner = server();
    let mut run = runner.start(&Command::new("my-server")).await.unwrap();
    let ready = run
        .wait_for_line(|l| l.starts_with("listening"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(ready, "listening on 127.0.0.1:8080");
    let mut rest = Vec::new();
    let mut lines = run.stdout_lines();
    while let Some(line) = lines.next().await {
        rest.push(line);
    }
    assert_eq!(rest, ["request 1", "request 2"]);
    let (code, stderr) = run.finish_streamed().await.unwrap();
    assert_eq!((code, stderr.as_str()), (Some(0), "a warning\n"));
}

#[tokio::test(start_paused = true)]
async fn wait_for_line_deadline_on_a_slow_script() {
    let runner = ScriptedRunner::new().on(
        Match::program("slow"),
        Reply::lines(["starting"]).line_after(Duration::from_secs(60), "ready"),
    );
    let mut run = runner.start(&Command::new("slow")).await.unwrap();
    let err = run
        .wait_for_line(|l| l == "ready", Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotReady { .. }), "{err}");
    let later = run
        .wait_for_line(|l| l == "ready", Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(later, "ready");
}

#[tokio::test(start_paused = true)]
async fn wait_for_line_sees_the_scripted_exit() {
    let runner = ScriptedRunner::new().on(
        Match::program("crashy"),
        Reply::failure(2, "boom").line("starting"),
    );
    let mut run = runner.start(&Command::new("crashy")).await.unwrap();
    let err = run
        .wait_for_line(|l| l == "ready", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotReady { .. }), "{err}");
}

#[tokio::test(start_paused = true)]
async fn stream_ends_at_the_command_timeout() {
    let runner = ScriptedRunner::new().on(
        Match::program("forever"),
        Reply::lines(["tick"]).line_after(Duration::from_secs(3600), "never"),
    );
    let cmd = Command::new("forever").timeout(Duration::from_secs(2));
    let mut run = runner.start(&cmd).await.unwrap();
    let lines: Vec<String> = run.stdout_lines().collect().await;
    assert_eq!(lines, ["tick"]);
    assert!(run.timed_out());
}
