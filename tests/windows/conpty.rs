//! Runs on a ConPTY pseudo console (`Command::pty`): a conversation with a
//! console client (prompt found with `wait_for_output`, typed input, the
//! end-of-input keys), output of an ordinary program, resizing, timeouts,
//! and the Job Object still holding the tree.
//!
//! Wine 8 runs pseudo consoles but gives their clients no standard handles
//! (what `cmd /c echo` writes is lost) and does not implement
//! `ResizePseudoConsole`; the tests that need either say so and skip there.
//! The conversation uses this binary as a client that opens `CONIN$` and
//! `CONOUT$` itself, so it runs under Wine too.

use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use processkit::{Command, Error, Mechanism, Operation};

use super::{GENEROUS, HELPER_ENV, PidFile, Watched, bounded, cmd_with_grandchild, helper_args};

/// Set in a child's environment: the helper talks to its console.
const CONSOLE_HELPER_ENV: &str = "PROCESSKIT_WINDOWS_TEST_CONSOLE_HELPER";

/// Not a test of its own: started on a pseudo console with
/// `CONSOLE_HELPER_ENV` set, it prints a prompt to `CONOUT$`, answers one
/// line read from `CONIN$`, then exits 0 once it reads the end-of-input
/// keys (Ctrl+Z at the start of a line), else 3.
#[test]
fn helper_console_entry_point() {
    if std::env::var_os(CONSOLE_HELPER_ENV).is_none() {
        return;
    }
    let open = |name: &str| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(name)
            .unwrap_or_else(|e| panic!("open {name}: {e}"))
    };
    let mut out = open("CONOUT$");
    let mut input = BufReader::new(open("CONIN$"));
    out.write_all(b"name? ").unwrap();
    let mut line = String::new();
    input.read_line(&mut line).unwrap();
    let answer = format!("\r\ngot [{}]\r\n", line.trim_end());
    out.write_all(answer.as_bytes()).unwrap();
    line.clear();
    input.read_line(&mut line).unwrap();
    let code = if line.is_empty() || line.starts_with('\u{1a}') {
        0
    } else {
        3
    };
    std::process::exit(code);
}

/// The text of a console's output without its escape sequences: the
/// console repaints its screen, so cursor moves and mode switches may fall
/// between any two characters (and a blank may come as a cursor move).
fn visible(output: &str) -> String {
    let mut text = String::new();
    let mut chars = output.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            text.push(c);
            continue;
        }
        match chars.next() {
            // CSI: parameters, then one final byte in '@'..='~'.
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // OSC: up to BEL or ST.
            Some(']') => {
                for c in chars.by_ref() {
                    if c == '\u{7}' || c == '\\' {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    text
}

#[test]
fn escape_sequences_are_not_visible() {
    let painted = "\u{1b}[2J\u{1b}[m\u{1b}[Hname?\u{1b}[K\u{1b}[1C got [\u{1b}[?25hbob]";
    assert_eq!(visible(painted), "name? got [bob]");
    assert_eq!(visible("\u{1b}]0;title\u{7}x"), "x");
}

fn console_helper() -> Command {
    let exe = std::env::current_exe().expect("test binary path");
    Command::new(exe)
        .args(helper_args("conpty::helper_console_entry_point"))
        .env(CONSOLE_HELPER_ENV, "1")
}

/// Whether what a client writes to its standard output reaches the pseudo
/// console (not under Wine 8); `Err` says what came through instead.
async fn std_handles_reach_the_console() -> Result<(), String> {
    let out = Command::new("cmd")
        .args(["/c", "echo", "pk-conpty-ok"])
        .pty()
        .timeout(GENEROUS)
        .output_string()
        .await
        .map_err(|e| format!("cmd on a pseudo console: {e}"))?;
    if visible(out.stdout()).contains("pk-conpty-ok") {
        return Ok(());
    }
    Err(format!(
        "cmd ran (exit {:?}) but what it wrote to its standard output did not \
         reach the console's output: {:?}",
        out.code(),
        out.stdout()
    ))
}

#[tokio::test]
async fn a_console_client_converses_through_the_pseudo_console() {
    let mut run = console_helper()
        .pty()
        .keep_stdin_open()
        .timeout(GENEROUS)
        .start()
        .await
        .unwrap();
    assert_eq!(run.mechanism(), Some(Mechanism::JobObject));
    let mut stdin = run.standard_input().unwrap();
    run.wait_for_output(|t| visible(t).contains("name?"), GENEROUS)
        .await
        .unwrap();
    // A console takes Enter as a carriage return.
    stdin.write(b"bob\r").await.unwrap();
    stdin.flush().await.unwrap();
    let answer = run
        .wait_for_output(|t| visible(t).contains("got [bob]"), GENEROUS)
        .await
        .unwrap();
    assert!(visible(&answer).contains("got [bob]"), "{answer:?}");
    // Ends the input: Ctrl+Z and Enter.
    stdin.finish().await.unwrap();
    assert_eq!(bounded(run.wait()).await.unwrap(), Some(0));
    let (_, stderr) = run.finish_streamed().await.unwrap();
    assert_eq!(stderr, "", "a console merges the streams");
}

#[tokio::test]
async fn standard_output_arrives_through_the_pseudo_console() {
    if let Err(why) = std_handles_reach_the_console().await {
        eprintln!("SKIP: {why}");
        return;
    }
    let out = Command::new("cmd")
        .args(["/c", "echo one& echo two"])
        .pty()
        .timeout(GENEROUS)
        .output_string()
        .await
        .unwrap();
    assert_eq!(out.code(), Some(0));
    let text = visible(out.stdout());
    let one = text.find("one").expect("one");
    let two = text.find("two").expect("two");
    assert!(one < two, "{text:?}");
    assert_eq!(out.stderr(), "");
}

#[tokio::test]
async fn the_pseudo_console_resizes_while_the_child_runs() {
    let run = Command::new("cmd")
        .args(["/c", "ping -n 30 127.0.0.1 > nul"])
        .pty_size(30, 100)
        .start()
        .await
        .unwrap();
    match run.resize_pty(40, 120) {
        Ok(()) => {}
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::Unsupported => {
            eprintln!("SKIP: this pseudo console cannot resize: {source}");
        }
        Err(other) => panic!("{other:?}"),
    }
    match run.resize_pty(0, 120) {
        Err(Error::InvalidArgument { operation, .. }) => {
            assert_eq!(operation, Operation::ResizePty)
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn resize_is_refused_without_a_pseudo_console() {
    let run = Command::new("cmd")
        .args(["/c", "ping -n 30 127.0.0.1 > nul"])
        .start()
        .await
        .unwrap();
    assert!(matches!(
        run.resize_pty(40, 120),
        Err(Error::Unsupported { .. })
    ));
}

#[tokio::test]
async fn dropping_a_pty_run_kills_child_and_grandchild() {
    let pidfile = PidFile::new("conpty-drop");
    let run = cmd_with_grandchild(&pidfile).pty().start().await.unwrap();
    assert_eq!(run.mechanism(), Some(Mechanism::JobObject));
    let child = Watched::open(run.id().expect("pid"));
    let grandchild = pidfile.grandchild().await;
    drop(run);
    child.assert_gone("the child").await;
    grandchild.assert_gone("the grandchild").await;
}

#[tokio::test]
async fn a_timeout_ends_a_pty_run() {
    // This binary as a child that sleeps for minutes once it has started.
    let pidfile = PidFile::new("conpty-timeout");
    let exe = std::env::current_exe().expect("test binary path");
    let sleeper = Command::new(exe)
        .args(helper_args("helper_grandchild_entry_point"))
        .env(HELPER_ENV, &pidfile.0);
    let out = bounded(
        sleeper
            .pty()
            .timeout(Duration::from_secs(3))
            .output_string(),
    )
    .await
    .unwrap();
    assert!(out.timed_out(), "{out:?}");
}
