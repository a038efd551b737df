//! `ScriptedRunner`: matching (exact, prefix, predicate), sequences, every
//! kind of reply, misses, and scripted streaming through the real pumps.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use processkit::{
    Command, Error, Match, ProcessRunner, ProcessRunnerExt, Reply, ScriptedRunner, Stdin,
};

fn git(args: &[&str]) -> Command {
    Command::new("git").args(args)
}

#[tokio::test]
async fn exact_match_needs_every_argument() {
    let runner = ScriptedRunner::new().exact("git", ["rev-parse", "HEAD"], Reply::success("abc\n"));
    assert_eq!(
        runner.run(&git(&["rev-parse", "HEAD"])).await.unwrap(),
        "abc"
    );
    let err = runner
        .run(&git(&["rev-parse", "HEAD", "--short"]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoReply { .. }), "{err}");
    let err = runner
        .run(&Command::new("jj").args(["rev-parse", "HEAD"]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoReply { .. }), "{err}");
}

#[tokio::test]
async fn prefix_and_program_matches() {
    let runner = ScriptedRunner::new()
        .prefix("git", ["log"], Reply::success("log\n"))
        .on(Match::program("jj"), Reply::success("jj\n"));
    assert_eq!(runner.run(&git(&["log", "-n", "3"])).await.unwrap(), "log");
    assert_eq!(runner.run(&git(&["log"])).await.unwrap(), "log");
    assert!(runner.run(&git(&["show"])).await.is_err());
    assert_eq!(runner.run(&Command::new("jj")).await.unwrap(), "jj");
    assert_eq!(
        runner.run(&Command::new("jj").args(["st"])).await.unwrap(),
        "jj"
    );
}

#[tokio::test]
async fn predicate_sees_the_whole_command() {
    let runner = ScriptedRunner::new().when(
        |cmd| cmd.get_current_dir() == Some("/repo".as_ref()) && cmd.has_stdin(),
        Reply::success("matched"),
    );
    let cmd = Command::new("tool")
        .current_dir("/repo")
        .stdin(Stdin::from_string("x"));
    assert_eq!(runner.run(&cmd).await.unwrap(), "matched");
    let err = runner
        .run(&Command::new("tool").current_dir("/repo"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoReply { .. }), "{err}");
}

#[tokio::test]
async fn first_matching_rule_wins() {
    let runner = ScriptedRunner::new()
        .exact("git", ["status"], Reply::success("specific"))
        .on(Match::program("git"), Reply::success("general"));
    assert_eq!(runner.run(&git(&["status"])).await.unwrap(), "specific");
    assert_eq!(runner.run(&git(&["diff"])).await.unwrap(), "general");
    assert_eq!(runner.calls(), 2);
}

#[tokio::test]
async fn miss_names_program_and_argument_count_but_no_values() {
    let runner = ScriptedRunner::new();
    let cmd = Command::new("deploy")
        .args(["--token", "argsecret-1234"])
        .env("API_KEY", "envsecret-5678");
    let err = runner.output_string(&cmd).await.unwrap_err();
    let Error::NoReply { program, detail } = &err else {
        panic!("expected NoReply, got {err}")
    };
    assert_eq!(program, "deploy");
    assert!(detail.contains("2 arguments"), "{detail}");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("argsecret"), "{text}");
    assert!(!text.contains("envsecret"), "{text}");
    assert_eq!(runner.calls(), 1);
}

#[tokio::test]
async fn sequence_serves_in_order_then_repeats_the_last() {
    let runner = ScriptedRunner::new().on_sequence(
        Match::exact("curl", ["localhost"]),
        [
            Reply::failure(7, "refused"),
            Reply::failure(7, "refused"),
            Reply::success("up"),
        ],
    );
    let cmd = Command::new("curl").arg("localhost");
    let codes = [
        runner.exit_code(&cmd).await.unwrap(),
        runner.exit_code(&cmd).await.unwrap(),
        runner.exit_code(&cmd).await.unwrap(),
        runner.exit_code(&cmd).await.unwrap(),
    ];
    assert_eq!(codes, [7, 7, 0, 0]);
    assert_eq!(runner.run(&cmd).await.unwrap(), "up");
}

#[tokio::test]
async fn empty_sequence_is_a_typed_miss() {
    let runner = ScriptedRunner::new().on_sequence(Match::program("x"), []);
    let err = runner.run(&Command::new("x")).await.unwrap_err();
    assert!(matches!(err, Error::NoReply { .. }), "{err}");
}

#[tokio::test]
async fn failure_is_data_until_success_is_required() {
    let runner = ScriptedRunner::new().on(
        Match::program("make"),
        Reply::failure(2, "make: *** No rule to make target").stdout("partial\n"),
    );
    let cmd = Command::new("make");
    let result = runner.output_string(&cmd).await.unwrap();
    assert_eq!(result.code(), Some(2));
    assert_eq!(result.stdout(), "partial\n");
    assert!(result.stderr().contains("No rule"));
    assert!(!result.is_success());
    let err = runner.run(&cmd).await.unwrap_err();
    match err {
        Error::NonZeroExit {
            program,
            code,
            stderr_tail,
        } => {
            assert_eq!((program.as_str(), code), ("make", 2));
            assert!(stderr_tail.contains("No rule"));
        }
        other => panic!("expected NonZeroExit, got {other}"),
    }
    assert_eq!(runner.exit_code(&cmd).await.unwrap(), 2);
    assert!(
        runner.probe(&cmd).await.is_err(),
        "exit 2 is neither yes nor no"
    );
}

#[tokio::test]
async fn probe_maps_zero_and_one() {
    let runner = ScriptedRunner::new()
        .exact("test", ["-e", "/yes"], Reply::success(""))
        .exact("test", ["-e", "/no"], Reply::failure(1, ""));
    assert!(
        runner
            .probe(&Command::new("test").args(["-e", "/yes"]))
            .await
            .unwrap()
    );
    assert!(
        !runner
            .probe(&Command::new("test").args(["-e", "/no"]))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn not_found_fails_to_start() {
    let runner = ScriptedRunner::new().on(Match::program("ghost"), Reply::not_found());
    let err = runner.start(&Command::new("ghost")).await.unwrap_err();
    assert!(
        matches!(err, Error::NotFound { ref program } if program == "ghost"),
        "{err}"
    );
    let err = runner
        .output_bytes(&Command::new("ghost"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn timeout_reply_is_captured_then_raised() {
    let runner = ScriptedRunner::new().on(Match::program("slow"), Reply::timeout().line("half"));
    let cmd = Command::new("slow").timeout(Duration::from_secs(3));
    let result = runner.output_string(&cmd).await.unwrap();
    assert!(result.timed_out());
    assert_eq!(result.code(), None);
    assert_eq!(result.stdout(), "half\n");
    let err = runner.run(&cmd).await.unwrap_err();
    assert!(
        matches!(err, Error::Timeout { timeout, .. } if timeout == Duration::from_secs(3)),
        "{err}"
    );
    assert!(matches!(
        runner.exit_code(&cmd).await.unwrap_err(),
        Error::Timeout { .. }
    ));
}

#[tokio::test]
async fn signalled_reply_reports_the_signal() {
    let runner = ScriptedRunner::new().on(Match::program("victim"), Reply::signalled(15));
    let result = runner.output_bytes(&Command::new("victim")).await.unwrap();
    assert_eq!((result.code(), result.signal()), (None, Some(15)));
    let err = runner.run(&Command::new("victim")).await.unwrap_err();
    assert!(matches!(err, Error::Signalled { signal: 15, .. }), "{err}");
}

#[tokio::test(start_paused = true)]
async fn command_timeout_cuts_a_slow_script_short() {
    let runner = ScriptedRunner::new().on(
        Match::program("server"),
        Reply::lines(["booting"])
            .line_after(Duration::from_secs(60), "never seen")
            .exit_after(Duration::from_secs(60)),
    );
    let cmd = Command::new("server").timeout(Duration::from_secs(5));
    let result = runner.output_string(&cmd).await.unwrap();
    assert!(result.timed_out());
    assert_eq!(result.stdout(), "booting\n");
}

#[tokio::test(start_paused = true)]
async fn first_line_streams_delayed_lines() {
    let runner = ScriptedRunner::new().on(
        Match::program("server"),
        Reply::lines(["booting"])
            .line_after(Duration::from_millis(200), "loading config")
            .line_after(Duration::from_millis(300), "listening on 127.0.0.1:8080")
            .line_after(Duration::from_secs(5), "shutting down"),
    );
    let cmd = Command::new("server");
    let line = runner
        .first_line(&cmd, |l| l.starts_with("listening"))
        .await
        .unwrap();
    assert_eq!(line.as_deref(), Some("listening on 127.0.0.1:8080"));
    let none = runner
        .first_line(&cmd, |l| l.contains("error"))
        .await
        .unwrap();
    assert_eq!(none, None, "stdout closed without a match");
}

#[tokio::test]
async fn first_line_answers_while_the_script_is_still_running() {
    // The script keeps "running" for an hour after the line; first_line must
    // answer without waiting for it (bounded so a regression fails, not hangs).
    let runner = ScriptedRunner::new().on(
        Match::program("server"),
        Reply::lines(["ready"]).exit_after(Duration::from_secs(3600)),
    );
    let answer = tokio::time::timeout(
        Duration::from_secs(60),
        runner.first_line(&Command::new("server"), |l| l == "ready"),
    )
    .await
    .expect("first_line waited for the scripted exit");
    assert_eq!(answer.unwrap().as_deref(), Some("ready"));
}

#[tokio::test]
async fn stdout_lines_reach_line_handlers_through_the_pumps() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen_out = Arc::clone(&seen);
    let errs = Arc::new(Mutex::new(Vec::new()));
    let errs_out = Arc::clone(&errs);
    let runner = ScriptedRunner::new().on(
        Match::program("build"),
        Reply::lines(["compiling a", "compiling b"])
            .stdout("crlf line\r\nno newline")
            .stderr("warn: one\nwarn: two\n"),
    );
    let cmd = Command::new("build")
        .on_stdout_line(move |l| seen_out.lock().unwrap().push(l.to_owned()))
        .on_stderr_line(move |l| errs_out.lock().unwrap().push(l.to_owned()));
    let result = runner.output_string(&cmd).await.unwrap();
    assert_eq!(
        result.stdout(),
        "compiling a\ncompiling b\ncrlf line\r\nno newline"
    );
    assert_eq!(
        *seen.lock().unwrap(),
        ["compiling a", "compiling b", "crlf line", "no newline"]
    );
    assert_eq!(*errs.lock().unwrap(), ["warn: one", "warn: two"]);
}

#[tokio::test]
async fn started_handle_waits_for_the_scripted_exit() {
    let runner = ScriptedRunner::new().on(Match::program("job"), Reply::failure(3, ""));
    let mut run = runner.start(&Command::new("job")).await.unwrap();
    assert_eq!(run.program(), "job");
    assert_eq!(run.id(), None, "no OS process behind a scripted run");
    assert_eq!(run.mechanism(), None);
    assert!(run.standard_input().is_none());
    assert_eq!(run.wait().await.unwrap(), Some(3));
    assert_eq!(run.wait().await.unwrap(), Some(3), "the exit is remembered");
    run.kill().unwrap();
}

#[tokio::test]
async fn large_output_is_not_lost_or_deadlocked() {
    let big: String = (0..50_000).map(|i| format!("line {i}\n")).collect();
    let runner = ScriptedRunner::new().on(Match::program("seq"), Reply::success(big.clone()));
    let result = runner.output_string(&Command::new("seq")).await.unwrap();
    assert_eq!(result.stdout().len(), big.len());
    let last = runner
        .first_line(&Command::new("seq"), |l| l == "line 49999")
        .await
        .unwrap();
    assert_eq!(last.as_deref(), Some("line 49999"));
}

#[tokio::test]
async fn works_behind_every_pointer_and_as_a_trait_object() {
    let runner = Arc::new(ScriptedRunner::new().on(Match::program("echo"), Reply::success("hi")));
    let dynamic: &dyn ProcessRunner = &runner;
    assert_eq!(dynamic.run(&Command::new("echo")).await.unwrap(), "hi");
    let boxed: Box<dyn ProcessRunner> = Box::new(Arc::clone(&runner));
    assert_eq!(boxed.run(&Command::new("echo")).await.unwrap(), "hi");
    assert_eq!(echo_through(&*runner).await, "hi");
    assert_eq!(runner.calls(), 3);
    // Spawnable: the verbs' futures are Send.
    let shared = Arc::clone(&runner);
    let task = tokio::spawn(async move { shared.run(&Command::new("echo")).await });
    assert_eq!(task.await.unwrap().unwrap(), "hi");
}

/// Uses the runner by value, so `&R` is exercised as a runner of its own.
async fn echo_through(runner: impl ProcessRunner) -> String {
    runner.run(&Command::new("echo")).await.unwrap()
}

#[cfg(feature = "cancellation")]
#[tokio::test(start_paused = true)]
async fn cancellation_ends_a_scripted_run() {
    use processkit::CancellationToken;
    let runner = ScriptedRunner::new().on(
        Match::program("long"),
        Reply::lines(["started"]).exit_after(Duration::from_secs(3600)),
    );
    let token = CancellationToken::new();
    let mut cmd = Command::new("long");
    cmd = with_cancel(cmd, token.clone());
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        token.cancel();
    });
    let err = runner.output_string(&cmd).await.unwrap_err();
    assert!(matches!(err, Error::Cancelled { .. }), "{err}");
    canceller.await.unwrap();
    let err = runner.run(&cmd).await.unwrap_err();
    assert!(
        matches!(err, Error::Cancelled { .. }),
        "a cancelled token spawns nothing: {err}"
    );
}

/// Attaches a token through a `CliClient` default, the public way available here.
#[cfg(feature = "cancellation")]
fn with_cancel(cmd: Command, token: processkit::CancellationToken) -> Command {
    let client = processkit::CliClient::new(cmd.get_program()).default_cancel_on(token);
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    client.command(args)
}

#[test]
fn a_scripted_start_outside_a_runtime_is_a_typed_error() {
    let err = Reply::success("x").start(&Command::new("x")).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    let err = Reply::not_found().start(&Command::new("x")).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}
