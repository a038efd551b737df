//! Runs on a pseudo-terminal (`Command::pty`): the child sees a terminal of
//! the asked size that follows `resize_pty`, output and raw bytes arrive as
//! the terminal gives them, prompts are found with `wait_for_output`, stdin
//! ends with the EOF character, and containment, timeouts and graceful stops
//! hold under every Linux mechanism. `wait_for_output` is also tested on a
//! plain pipe here.
#![cfg(all(unix, feature = "pty"))]

use std::time::Duration;

use processkit::{Command, Error, NotReadyReason, Operation, Stdin, Stdio};
use tokio::io::AsyncReadExt;

use crate::common::*;

const LONG: Duration = Duration::from_secs(20);

/// Whether `text` ends with `prompt`, ignoring trailing escape sequences (a
/// line editor may switch modes right after printing its prompt).
fn ends_with_prompt(text: &str, prompt: &str) -> bool {
    let mut text = text;
    while let Some(at) = text.rfind('\u{1b}') {
        let tail = &text[at..];
        let is_sequence = tail.len() > 2 && tail[1..].starts_with('[');
        let ends_it = tail.chars().last().is_some_and(|c| c.is_ascii_alphabetic());
        if !(is_sequence && ends_it && text.ends_with(tail)) {
            break;
        }
        text = &text[..at];
    }
    text.ends_with(prompt)
}

#[tokio::test]
async fn the_child_sees_a_terminal_only_under_pty() {
    let script = "test -t 0 && test -t 1 && test -t 2 && echo tty || echo pipe";
    let on_pty = sh(script).pty().output_string().await.unwrap();
    assert_eq!(
        on_pty.stdout(),
        "tty\r\n",
        "the terminal ends lines with CRLF"
    );
    assert_eq!(on_pty.code(), Some(0));
    let plain = sh(script).output_string().await.unwrap();
    assert_eq!(plain.stdout(), "pipe\n");
}

#[tokio::test]
async fn the_terminal_is_the_controlling_terminal_of_a_new_session() {
    // `tty` names the terminal; /dev/tty opens only with a controlling
    // terminal; the shell leads its session (its pid is the session id).
    let script = "tty; exec 3</dev/tty && echo ctty; \
                  [ \"$(ps -o sid= -p $$ | tr -d ' ')\" = $$ ] && echo leader";
    let out = sh(script).pty().output_string().await.unwrap();
    let lines: Vec<&str> = out.stdout().lines().map(str::trim_end).collect();
    assert!(lines[0].starts_with("/dev/"), "{lines:?}");
    assert_eq!(&lines[1..], ["ctty", "leader"], "{lines:?}");
}

#[tokio::test]
async fn stdout_and_stderr_merge_into_stdout() {
    let out = sh("echo out; echo err >&2")
        .pty()
        .output_string()
        .await
        .unwrap();
    assert_eq!(out.stdout(), "out\r\nerr\r\n");
    assert_eq!(out.stderr(), "");
}

#[tokio::test]
async fn line_streams_drop_the_terminal_carriage_returns() {
    let mut run = sh("printf 'a\\nb\\n'").pty().start().await.unwrap();
    let lines: Vec<String> = processkit::StreamExt::collect(run.stdout_lines()).await;
    assert_eq!(lines, ["a", "b"]);
    assert_eq!(run.wait().await.unwrap(), Some(0));
}

#[tokio::test]
async fn raw_bytes_keep_escape_sequences() {
    let mut run = sh("printf '\\033[31mred\\033[0m'")
        .pty()
        .start()
        .await
        .unwrap();
    let mut bytes = Vec::new();
    run.stdout_reader()
        .expect("stdout")
        .read_to_end(&mut bytes)
        .await
        .unwrap();
    assert_eq!(bytes, b"\x1b[31mred\x1b[0m");
    assert_eq!(run.wait().await.unwrap(), Some(0));
}

#[tokio::test]
async fn stty_reports_the_size_asked_for_and_follows_resize() {
    let default = Command::new("stty")
        .arg("size")
        .pty()
        .output_string()
        .await
        .unwrap();
    assert_eq!(default.stdout().trim_end(), "24 80");

    let script = "trap 'stty size' WINCH; stty size; while :; do sleep 0.05; done";
    let mut run = sh(script).pty_size(30, 100).start().await.unwrap();
    let first = run.wait_for_line(|l| !l.is_empty(), LONG).await.unwrap();
    assert_eq!(first, "30 100");
    run.resize_pty(40, 120).unwrap();
    let resized = run.wait_for_line(|l| !l.is_empty(), LONG).await.unwrap();
    assert_eq!(resized, "40 120", "SIGWINCH reached the child");
    run.kill().unwrap();
}

#[tokio::test]
async fn resize_is_refused_without_a_terminal_and_for_a_zero_size() {
    let mut run = Command::new("sleep").arg("30").start().await.unwrap();
    match run.resize_pty(40, 120) {
        Err(Error::Unsupported { operation, .. }) => assert_eq!(operation, "resize_pty"),
        other => panic!("{other:?}"),
    }
    run.kill().unwrap();
    let mut run = Command::new("sleep").arg("30").pty().start().await.unwrap();
    match run.resize_pty(0, 80) {
        Err(Error::InvalidArgument { operation, .. }) => {
            assert_eq!(operation, Operation::ResizePty)
        }
        other => panic!("{other:?}"),
    }
    run.kill().unwrap();
}

#[tokio::test]
async fn commands_a_terminal_cannot_honour_are_refused_before_starting() {
    let refused = [
        Command::new("true").pty_size(0, 80),
        Command::new("true").pty().stdout(Stdio::null()),
        Command::new("true").pty().stdin(Stdin::inherit()),
        Command::new("true")
            .pty()
            .stdin(Stdin::from_file("/dev/null")),
    ];
    for cmd in refused {
        match cmd.start().await {
            Err(Error::InvalidCommand { reason, .. }) => eprintln!("refused: {reason}"),
            other => panic!("{cmd:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn finishing_stdin_sends_the_eof_character() {
    let mut run = Command::new("cat")
        .pty()
        .keep_stdin_open()
        .start()
        .await
        .unwrap();
    let mut stdin = run.standard_input().unwrap();
    stdin.write_line("hello").await.unwrap();
    // The terminal echoes the line, then cat writes it back.
    let echoed = run.wait_for_line(|l| l == "hello", LONG).await.unwrap();
    assert_eq!(echoed, "hello");
    stdin.finish().await.unwrap();
    let (code, _) = run.finish_streamed().await.unwrap();
    assert_eq!(code, Some(0), "cat read end-of-file and exited");
}

#[tokio::test]
async fn dropping_the_stdin_writer_ends_input_too() {
    let mut run = Command::new("cat")
        .pty()
        .keep_stdin_open()
        .timeout(LONG)
        .start()
        .await
        .unwrap();
    let mut stdin = run.standard_input().unwrap();
    stdin.write_line("bye").await.unwrap();
    drop(stdin);
    assert_eq!(run.wait().await.unwrap(), Some(0), "cat saw end-of-file");
}

#[tokio::test]
async fn an_idle_timeout_counts_the_terminal_output() {
    let out = sh("echo hi; sleep 30")
        .pty()
        .idle_timeout(Duration::from_millis(500))
        .output_string()
        .await
        .unwrap();
    assert!(out.idle_timed_out(), "{out:?}");
    assert_eq!(out.stdout(), "hi\r\n");
}

#[tokio::test]
async fn fed_and_null_stdin_end_with_the_eof_character() {
    let fed = Command::new("cat")
        .pty()
        .stdin(Stdin::from_string("abc\n"))
        .timeout(LONG)
        .output_string()
        .await
        .unwrap();
    assert_eq!(fed.code(), Some(0));
    assert_eq!(fed.stdout(), "abc\r\nabc\r\n", "the echo, then cat's copy");
    let null = Command::new("cat")
        .pty()
        .timeout(LONG)
        .output_string()
        .await
        .unwrap();
    assert_eq!(null.code(), Some(0), "null stdin: end-of-file at once");
}

#[tokio::test]
async fn an_interactive_shell_is_driven_by_its_prompt() {
    let mut run = Command::new("sh")
        .arg("-i")
        .env("PS1", "pk$ ")
        .env("ENV", "/dev/null")
        .pty()
        .keep_stdin_open()
        .timeout(Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    let mut stdin = run.standard_input().unwrap();
    let prompt = |t: &str| ends_with_prompt(t, "pk$ ");
    run.wait_for_output(prompt, LONG).await.unwrap();
    stdin.write_line("echo $((6 * 7))").await.unwrap();
    let answer = run.wait_for_output(prompt, LONG).await.unwrap();
    assert!(answer.contains("\r\n42\r\n"), "{answer:?}");
    stdin.write_line("exit 5").await.unwrap();
    assert_eq!(run.wait().await.unwrap(), Some(5));
}

#[tokio::test]
async fn a_python_conversation_is_driven_by_its_prompt() {
    if std::process::Command::new("python3")
        .arg("-c")
        .arg("")
        .status()
        .is_err()
    {
        eprintln!("SKIP: no python3 on this host");
        return;
    }
    let mut run = Command::new("python3")
        .args(["-q", "-i"])
        .env("TERM", "dumb")
        .env("PYTHON_BASIC_REPL", "1")
        .env_remove("PYTHONSTARTUP")
        .pty()
        .keep_stdin_open()
        .timeout(Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    let mut stdin = run.standard_input().unwrap();
    let prompt = |t: &str| ends_with_prompt(t, ">>> ");
    run.wait_for_output(prompt, LONG).await.unwrap();
    stdin.write_line("print(6 * 7)").await.unwrap();
    let answer = run.wait_for_output(prompt, LONG).await.unwrap();
    assert!(answer.contains("42\r\n"), "{answer:?}");
    stdin.finish().await.unwrap(); // ^D at an empty prompt ends the REPL
    assert_eq!(run.wait().await.unwrap(), Some(0));
}

#[tokio::test]
async fn wait_for_output_sees_a_prompt_without_a_newline() {
    for pty in [false, true] {
        let script = "printf 'name? '; read name; echo \"hi $name\"; printf 'bye> '";
        let mut cmd = sh(script).keep_stdin_open();
        if pty {
            cmd = cmd.pty();
        }
        let mut run = cmd.start().await.unwrap();
        let mut stdin = run.standard_input().unwrap();
        let asked = run
            .wait_for_output(|t| t.ends_with("name? "), LONG)
            .await
            .unwrap();
        assert_eq!(asked, "name? ", "pty: {pty}");
        stdin.write_line("bob").await.unwrap();
        let rest = run
            .wait_for_output(|t| t.ends_with("bye> "), LONG)
            .await
            .unwrap();
        let expected = if pty {
            "bob\r\nhi bob\r\nbye> "
        } else {
            "hi bob\nbye> "
        };
        assert_eq!(rest, expected, "pty: {pty}");
        assert_eq!(run.wait().await.unwrap(), Some(0));
    }
}

#[tokio::test]
async fn wait_for_output_leaves_what_follows_for_the_lines() {
    let mut run = sh("printf 'ready> one\\ntwo\\n'").start().await.unwrap();
    let seen = run
        .wait_for_output(|t| t.contains("ready> "), LONG)
        .await
        .unwrap();
    assert!(seen.starts_with("ready> "), "{seen:?}");
    let rest: Vec<String> = processkit::StreamExt::collect(run.stdout_lines()).await;
    let all = format!("{seen}{}", rest.join("\n"));
    assert_eq!(all.trim_end(), "ready> one\ntwo");
}

#[tokio::test]
async fn wait_for_output_reports_its_deadline_and_leaves_the_child_running() {
    for pty in [false, true] {
        let mut cmd = sh("printf 'not yet'; sleep 30");
        if pty {
            cmd = cmd.pty();
        }
        let mut run = cmd.start().await.unwrap();
        let _guard = KillPidOnDrop(run.id());
        let mut shown = Vec::new();
        let err = run
            .wait_for_output(
                |t| {
                    shown.push(t.to_owned());
                    false
                },
                Duration::from_millis(300),
            )
            .await
            .unwrap_err();
        match err {
            Error::NotReady { reason, .. } => {
                assert_eq!(reason, NotReadyReason::DeadlineExpired, "pty: {pty}")
            }
            other => panic!("pty: {pty}: {other:?}"),
        }
        assert!(shown.iter().any(|t| t == "not yet"), "{shown:?}");
        assert!(run.id().is_some(), "the probe killed nothing");
        run.kill().unwrap();
    }
}

#[tokio::test]
async fn wait_for_output_reports_stdout_closed() {
    for pty in [false, true] {
        let mut cmd = sh("printf 'abc'");
        if pty {
            cmd = cmd.pty();
        }
        let mut run = cmd.start().await.unwrap();
        let mut last = String::new();
        let err = run
            .wait_for_output(
                |t| {
                    last = t.to_owned();
                    false
                },
                LONG,
            )
            .await
            .unwrap_err();
        match err {
            Error::NotReady { reason, .. } => {
                assert_eq!(reason, NotReadyReason::StdoutClosed, "pty: {pty}")
            }
            other => panic!("pty: {pty}: {other:?}"),
        }
        assert_eq!(last, "abc", "pty: {pty}");
        assert_eq!(run.wait().await.unwrap(), Some(0));
    }
}

#[tokio::test]
async fn a_timeout_ends_a_pty_run() {
    let out = Command::new("sleep")
        .arg("30")
        .pty()
        .timeout(Duration::from_millis(300))
        .output_string()
        .await
        .unwrap();
    assert!(out.timed_out());
}

#[cfg(target_os = "linux")]
mod every_mechanism {
    use super::*;
    use processkit::{JobRunner, Mechanism, ProcessGroup, ProcessGroupOptions, ProcessRunner};

    /// Every Linux mechanism (cgroup v2 only where this host can).
    fn mechanisms() -> Vec<Mechanism> {
        let mut all = vec![Mechanism::Subreaper, Mechanism::ProcessGroup];
        let options = ProcessGroupOptions::default().mechanism(Mechanism::CgroupV2);
        if ProcessGroup::with_options(options).is_ok() {
            all.insert(0, Mechanism::CgroupV2);
        }
        all
    }

    /// A shell on the terminal with a grandchild named by `token`.
    fn with_grandchild(token: &str) -> Command {
        sh(&format!(
            "sh -c 'sleep 300; : {token}' & echo started; wait"
        ))
        .pty()
    }

    #[tokio::test]
    async fn a_pty_run_and_its_grandchild_die_with_the_handle() {
        for mechanism in mechanisms() {
            let token = token("pty-drop");
            let _cleanup = Cleanup::token(&token);
            let runner = JobRunner::with_mechanism(mechanism);
            eprintln!("mechanism: {mechanism}");
            let mut run = runner.start(&with_grandchild(&token)).await.unwrap();
            assert_eq!(run.mechanism(), Some(mechanism));
            run.wait_for_line(|l| l == "started", LONG).await.unwrap();
            wait_for_count(&token, 1).await;
            drop(run);
            assert!(
                wait_gone(&token).await,
                "{mechanism}: left {:?}",
                pids_with_token(&token)
            );
        }
    }

    #[tokio::test]
    async fn a_pty_run_answers_and_resizes_under_every_mechanism() {
        for mechanism in mechanisms() {
            let runner = JobRunner::with_mechanism(mechanism);
            let script = "trap 'stty size' WINCH; test -t 0 && stty size; \
                          while :; do sleep 0.05; done";
            let mut run = runner.start(&sh(script).pty_size(12, 34)).await.unwrap();
            let first = run.wait_for_line(|l| !l.is_empty(), LONG).await.unwrap();
            assert_eq!(first, "12 34", "{mechanism}");
            run.resize_pty(56, 78).unwrap();
            let resized = run.wait_for_line(|l| !l.is_empty(), LONG).await.unwrap();
            assert_eq!(resized, "56 78", "{mechanism}");
        }
    }

    /// The subreaper's shim comes from the zygote unless `PROCESSKIT_ZYGOTE=0`
    /// (then it is forked here, as when the zygote cannot take a spawn): the
    /// terminal and its flag must travel both ways. Re-runs two tests of this
    /// binary with the zygote off from the start.
    #[test]
    fn without_the_zygote_the_shim_still_gives_the_terminal() {
        for test in [
            "a_pty_run_and_its_grandchild_die_with_the_handle",
            "a_pty_run_answers_and_resizes_under_every_mechanism",
        ] {
            run_alone(test, &[("PROCESSKIT_ZYGOTE", "0")]);
        }
    }

    #[tokio::test]
    async fn stop_sends_the_stop_signal_to_the_session() {
        for mechanism in mechanisms() {
            let token = token("pty-stop");
            let _cleanup = Cleanup::token(&token);
            let script = format!(
                "trap 'echo got TERM; exit 3' TERM; \
                 sh -c 'trap \"exit 0\" TERM; sleep 300 & wait; : {token}' & \
                 echo ready; while :; do sleep 0.05; done"
            );
            let runner = JobRunner::with_mechanism(mechanism);
            let mut run = runner.start(&sh(&script).pty()).await.unwrap();
            run.wait_for_line(|l| l == "ready", LONG).await.unwrap();
            wait_for_count(&token, 1).await;
            let status = run.stop(Duration::from_secs(30)).await.unwrap();
            assert_eq!(status.code(), Some(3), "{mechanism}: {status}");
            assert!(
                wait_gone(&token).await,
                "{mechanism}: left {:?}",
                pids_with_token(&token)
            );
        }
    }

    #[tokio::test]
    async fn a_timeout_kills_the_pty_tree() {
        for mechanism in mechanisms() {
            let token = token("pty-timeout");
            let _cleanup = Cleanup::token(&token);
            let runner = JobRunner::with_mechanism(mechanism);
            let cmd = with_grandchild(&token).timeout(Duration::from_millis(500));
            let out = runner.output_bytes(&cmd).await.unwrap();
            assert!(out.timed_out(), "{mechanism}");
            assert!(
                wait_gone(&token).await,
                "{mechanism}: left {:?}",
                pids_with_token(&token)
            );
        }
    }
}
