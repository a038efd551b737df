//! The verb table: what each verb returns, and which outcomes are data and
//! which are typed errors.
#![cfg(unix)]

use crate::common;

use std::time::Duration;

use common::sh;
use processkit::{Command, Error, Stdin};

#[tokio::test]
async fn run_returns_trimmed_stdout() {
    assert_eq!(sh("printf '  hello \\n\\n'").run().await.unwrap(), "hello");
}

#[tokio::test]
async fn run_turns_a_non_zero_exit_into_an_error_with_a_stderr_tail() {
    let err = sh("echo broken >&2; exit 3").run().await.unwrap_err();
    match &err {
        Error::NonZeroExit {
            program,
            code,
            stderr_tail,
        } => {
            assert_eq!((program.as_str(), *code), ("sh", 3));
            assert_eq!(stderr_tail.trim(), "broken");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("sh") && err.to_string().contains("broken"));
}

#[tokio::test]
async fn run_reports_timeout_and_signal_as_errors() {
    let err = Command::new("sleep")
        .arg("5")
        .timeout(Duration::from_millis(100))
        .run()
        .await;
    assert!(
        matches!(err, Err(Error::Timeout { ref program, .. }) if program == "sleep"),
        "{err:?}"
    );
    let err = sh("kill -TERM $$").run().await;
    assert!(
        matches!(err, Err(Error::Signalled { signal: 15, .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn output_string_keeps_failure_as_data() {
    let result = sh("echo out; echo err >&2; exit 7")
        .output_string()
        .await
        .unwrap();
    assert_eq!(result.code(), Some(7));
    assert_eq!(result.stdout(), "out\n");
    assert_eq!(result.stderr(), "err\n");
    assert!(!result.is_success() && !result.timed_out());
    assert_eq!(result.program(), "sh");
    assert!(result.duration() > Duration::ZERO);
}

#[tokio::test]
async fn output_string_captures_a_timeout() {
    let result = Command::new("sleep")
        .arg("5")
        .timeout(Duration::from_millis(100))
        .output_string()
        .await
        .unwrap();
    assert!(result.timed_out());
    assert_eq!(result.code(), None);
    assert!(!result.is_success());
}

#[tokio::test]
async fn output_string_decodes_invalid_utf8_lossily() {
    let result = sh("printf 'a\\377b'").output_string().await.unwrap();
    assert_eq!(result.stdout(), "a\u{FFFD}b");
    let bytes = sh("printf 'a\\377b'").output_bytes().await.unwrap();
    assert_eq!(bytes.stdout(), b"a\xffb");
}

#[tokio::test]
async fn output_reports_the_signal_that_ended_a_child() {
    let result = sh("kill -KILL $$").output_string().await.unwrap();
    assert_eq!((result.code(), result.signal()), (None, Some(9)));
}

#[tokio::test]
async fn exit_code_is_the_code_or_an_error_never_an_invented_value() {
    assert_eq!(sh("exit 42").exit_code().await.unwrap(), 42);
    let timed_out = Command::new("sleep")
        .arg("5")
        .timeout(Duration::from_millis(100));
    assert!(matches!(
        timed_out.exit_code().await,
        Err(Error::Timeout { .. })
    ));
    assert!(matches!(
        sh("kill -KILL $$").exit_code().await,
        Err(Error::Signalled { .. })
    ));
}

#[tokio::test]
async fn probe_maps_zero_and_one_and_rejects_the_rest() {
    assert!(sh("exit 0").probe().await.unwrap());
    assert!(!sh("exit 1").probe().await.unwrap());
    assert!(matches!(
        sh("exit 2").probe().await,
        Err(Error::NonZeroExit { code: 2, .. })
    ));
}

#[tokio::test]
async fn first_line_returns_the_first_match_or_none() {
    let cmd = sh("echo one; echo two; echo three");
    let line = cmd.first_line(|l| l.starts_with("tw")).await.unwrap();
    assert_eq!(line.as_deref(), Some("two"));
    let none = sh("echo a; echo b").first_line(|l| l == "z").await.unwrap();
    assert_eq!(none, None);
}

#[tokio::test]
async fn first_line_kills_a_child_that_would_run_forever() {
    let token = common::token("first-line-forever");
    let _cleanup = common::Cleanup::token(&token);
    let cmd = Command::new("sh").args(["-c", "echo ready; while :; do sleep 1; done", &token]);
    let line = tokio::time::timeout(Duration::from_secs(20), cmd.first_line(|l| l == "ready"))
        .await
        .expect("first_line returned once it had its answer")
        .unwrap();
    assert_eq!(line.as_deref(), Some("ready"));
    assert!(common::eventually(Duration::from_secs(5), || {
        common::pids_with_token(&token).is_empty()
    }));
}

#[tokio::test]
async fn one_liners_run_and_output() {
    assert_eq!(processkit::run("echo", ["a", "b"]).await.unwrap(), "a b");
    let out = processkit::output("sh", ["-c", "exit 4"]).await.unwrap();
    assert_eq!(out.code(), Some(4));
}

#[tokio::test]
async fn stdin_sources_reach_the_child() {
    let sorted = Command::new("sort")
        .stdin(Stdin::from_string("b\na\n"))
        .run()
        .await
        .unwrap();
    assert_eq!(sorted, "a\nb");
    let bytes = Command::new("wc")
        .arg("-c")
        .stdin(Stdin::from_bytes(vec![0u8; 1000]));
    assert_eq!(bytes.run().await.unwrap(), "1000");
    assert_eq!(
        Command::new("cat")
            .stdin(Stdin::null())
            .run()
            .await
            .unwrap(),
        ""
    );
}

#[tokio::test]
async fn a_child_that_ignores_its_stdin_is_not_an_error() {
    // head stops reading after one line; the feeder sees EPIPE and simply stops.
    let big = "line\n".repeat(200_000);
    let out = Command::new("head")
        .arg("-1")
        .stdin(Stdin::from_string(big))
        .run()
        .await
        .unwrap();
    assert_eq!(out, "line");
}

#[tokio::test]
async fn environment_plans_apply_in_order() {
    // SAFETY: set once, before any child reads it; no other test uses this name.
    unsafe { std::env::set_var("PK_TEST_INHERITED", "from-parent") };
    let cmd = Command::new("sh")
        .args([
            "-c",
            "echo ${PK_TEST_INHERITED:-unset} ${PK_EXTRA:-unset} ${HOME:-unset}",
        ])
        .inherit_env(["PATH", "PK_TEST_INHERITED"])
        .env("PK_EXTRA", "explicit");
    assert_eq!(cmd.run().await.unwrap(), "from-parent explicit unset");
    let cleared = Command::new("/usr/bin/env").env_clear().env("ONLY", "1");
    assert_eq!(cleared.run().await.unwrap(), "ONLY=1");
    let removed = sh("echo ${PK_TEST_INHERITED:-gone}").env_remove("PK_TEST_INHERITED");
    assert_eq!(removed.run().await.unwrap(), "gone");
}

#[tokio::test]
async fn debug_never_prints_env_values() {
    let cmd = Command::new("tool")
        .arg("--flag")
        .env("API_TOKEN", "s3cr3t-value");
    let text = format!("{cmd:?}");
    assert!(text.contains("API_TOKEN") && text.contains("--flag"));
    assert!(!text.contains("s3cr3t-value"));
    let err = Command::new("definitely-missing-tool")
        .env("API_TOKEN", "s3cr3t-value")
        .run()
        .await;
    assert!(!format!("{err:?} {}", err.as_ref().unwrap_err()).contains("s3cr3t-value"));
}

#[tokio::test]
async fn current_dir_is_applied() {
    let dir = common::TempDir::new("cwd");
    let out = Command::new("pwd")
        .current_dir(dir.path())
        .run()
        .await
        .unwrap();
    assert_eq!(
        std::fs::canonicalize(out).unwrap(),
        std::fs::canonicalize(dir.path()).unwrap()
    );
}

#[tokio::test]
async fn eight_mib_on_both_pipes_at_once_does_not_deadlock() {
    let script = "head -c 8388608 /dev/zero & head -c 8388608 /dev/zero >&2; wait";
    let result = tokio::time::timeout(Duration::from_secs(60), sh(script).output_bytes())
        .await
        .expect("no deadlock")
        .unwrap();
    assert_eq!(
        (result.stdout().len(), result.stderr().len()),
        (8 << 20, 8 << 20)
    );
}

#[tokio::test]
async fn a_grandchild_holding_stdout_does_not_hang_a_verb() {
    let token = common::token("holds-stdout");
    let _cleanup = common::Cleanup::token(&token);
    let script = "sh -c 'sleep 1000' \"$0\" & echo done";
    let cmd = Command::new("sh").args(["-c", script, &token]);
    let out = tokio::time::timeout(Duration::from_secs(20), cmd.run())
        .await
        .expect("the verb returns once the child exits")
        .unwrap();
    assert_eq!(out, "done");
    assert!(common::eventually(Duration::from_secs(5), || {
        common::pids_with_token(&token).is_empty()
    }));
}

#[tokio::test]
async fn wait_drains_output_nobody_reads() {
    let mut run = sh("head -c 4000000 /dev/zero; exit 5")
        .start()
        .await
        .unwrap();
    let pid = run.id();
    assert!(pid.is_some());
    let code = tokio::time::timeout(Duration::from_secs(30), run.wait())
        .await
        .expect("no block");
    assert_eq!(code.unwrap(), Some(5));
    assert_eq!(run.id(), None, "a reaped child has no pid");
    run.kill().expect("kill after exit is harmless");
}

#[tokio::test]
async fn wait_reports_none_for_a_killed_child() {
    let mut run = Command::new("sleep").arg("1000").start().await.unwrap();
    run.kill().unwrap();
    assert_eq!(run.wait().await.unwrap(), None);
}

#[tokio::test]
async fn exit_code_and_probe_do_not_pipe_a_stdout_nobody_reads() {
    // The child's stdout is the null device, not a pipe to drain.
    let is_null = r#"[ "$(readlink /proc/$$/fd/1)" = /dev/null ]"#;
    assert_eq!(sh(is_null).exit_code().await.unwrap(), 0);
    assert!(sh(is_null).probe().await.unwrap());
}

#[tokio::test]
async fn exit_code_does_not_pipe_a_stderr_nobody_reads_but_probe_does() {
    let stderr_is =
        |what| format!(r#"case "$(readlink /proc/$$/fd/2)" in {what}) exit 0;; esac; exit 1"#);
    // No error of exit_code() quotes stderr: it goes to the null device.
    assert_eq!(sh(&stderr_is("/dev/null")).exit_code().await.unwrap(), 0);
    // probe()'s NonZeroExit quotes the stderr tail, so it still reads it.
    assert!(sh(&stderr_is("pipe:*")).probe().await.unwrap());
    let Err(Error::NonZeroExit { stderr_tail, .. }) = sh("echo why >&2; exit 2").probe().await
    else {
        panic!("exit 2 is not a yes/no answer");
    };
    assert_eq!(stderr_tail.trim(), "why");
    // A stderr that something watches is still piped.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let watched = sh("echo oops >&2; exit 4")
        .on_stderr_line(move |line| sink.lock().unwrap().push(line.to_owned()));
    assert_eq!(watched.exit_code().await.unwrap(), 4);
    assert_eq!(*seen.lock().unwrap(), ["oops"]);
    let idle = sh(&stderr_is("pipe:*")).idle_timeout(Duration::from_secs(30));
    assert_eq!(idle.exit_code().await.unwrap(), 0);
}

#[tokio::test]
async fn exit_code_still_pipes_a_stdout_that_is_watched() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let cmd = sh("echo one; echo two; exit 3")
        .on_stdout_line(move |line| sink.lock().unwrap().push(line.to_owned()));
    assert_eq!(cmd.exit_code().await.unwrap(), 3);
    assert_eq!(*seen.lock().unwrap(), ["one", "two"]);
    let is_pipe = r#"case "$(readlink /proc/$$/fd/1)" in pipe:*) exit 0;; esac; exit 1"#;
    let teed = sh(is_pipe).stdout(processkit::Stdio::capture().tee_inherit());
    assert_eq!(teed.exit_code().await.unwrap(), 0);
    let merged = sh(is_pipe).stderr_to_stdout();
    assert_eq!(merged.exit_code().await.unwrap(), 0);
}

/// A verb's run is read by the verb's own task while it waits: no task per
/// output stream (a task each costs wake-ups and a hand-over per run), yet
/// both streams come back whole.
#[tokio::test(flavor = "current_thread")]
async fn a_verb_reads_its_output_on_its_own_task() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let cmd = sh("echo out; echo err >&2; sleep 0.3; echo more; echo again >&2");
    let run = cmd.output_string();
    let sample = async {
        let mut most = 0;
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            most = most.max(metrics.num_alive_tasks());
        }
        most
    };
    let (result, most) = tokio::join!(run, sample);
    let result = result.unwrap();
    assert_eq!(result.stdout(), "out\nmore\n");
    assert_eq!(result.stderr(), "err\nagain\n");
    assert_eq!(most, 0, "tasks were spawned to read the output");
}
