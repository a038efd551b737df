//! Conversational stdin (`keep_stdin_open` + `standard_input`), stdin fed
//! from a line stream, per-line output handlers, and writing to a child that
//! has already exited.
// These tests drive Unix programs (sh, sleep, seq, ...); tests/windows/
// covers the same ground with Windows programs.
#![cfg(unix)]

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use processkit::{Command, Error, Stdin, StreamExt};

#[tokio::test]
async fn a_bc_conversation_interleaves_requests_and_answers() {
    let mut run = Command::new("bc").keep_stdin_open().start().await.unwrap();
    let _guard = common::KillPidOnDrop(run.id());
    let mut stdin = run.standard_input().expect("stdin was kept open");
    assert!(
        run.standard_input().is_none(),
        "the writer is handed out once"
    );

    let mut answers = run.stdout_lines();
    stdin.write_line("2 + 2").await.unwrap();
    assert_eq!(answers.next().await.as_deref(), Some("4"));
    // The second question is only asked after the first answer arrived.
    stdin.write_line("6 * 7").await.unwrap();
    assert_eq!(answers.next().await.as_deref(), Some("42"));
    stdin.write(b"10 / 4\nscale = 2\n").await.unwrap();
    stdin.write_line("10 / 4").await.unwrap();
    assert_eq!(answers.next().await.as_deref(), Some("2"));
    assert_eq!(answers.next().await.as_deref(), Some("2.50"));
    stdin.finish().await.unwrap();
    assert_eq!(answers.next().await, None, "EOF on stdin ends bc");
    assert_eq!(
        run.finish_streamed().await.unwrap(),
        (Some(0), String::new())
    );
}

#[tokio::test]
async fn without_keep_stdin_open_there_is_no_writer() {
    let mut run = Command::new("cat").start().await.unwrap();
    assert!(run.standard_input().is_none());
    assert_eq!(run.finish_streamed().await.unwrap().0, Some(0));
}

#[tokio::test]
async fn from_lines_feeds_sort_and_handlers_see_each_line() {
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(4);
    let input = tokio_stream::wrappers::ReceiverStream::new(rx);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen_in_handler = Arc::clone(&seen);
    let sort = Command::new("sort")
        .stdin(Stdin::from_lines(input))
        .on_stdout_line(move |line| seen_in_handler.lock().unwrap().push(line.to_owned()));
    let sorting = tokio::spawn(async move { sort.output_string().await });
    for fruit in ["banana", "apple", "cherry"] {
        tx.send(fruit.to_owned()).await.unwrap();
    }
    drop(tx); // the stream ends, stdin closes, sort prints
    let result = sorting.await.unwrap().unwrap();
    assert_eq!(result.code(), Some(0));
    assert_eq!(result.stdout(), "apple\nbanana\ncherry\n");
    assert_eq!(*seen.lock().unwrap(), ["apple", "banana", "cherry"]);
}

#[tokio::test]
async fn on_stderr_line_runs_in_addition_to_capture() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen_in_handler = Arc::clone(&seen);
    let result = Command::new("sh")
        .args(["-c", "echo one >&2; printf 'two\\r\\nthree' >&2"])
        .on_stderr_line(move |line| seen_in_handler.lock().unwrap().push(line.to_owned()))
        .output_string()
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), ["one", "two", "three"]);
    assert_eq!(result.stderr(), "one\ntwo\r\nthree");
}

#[tokio::test]
async fn writing_to_an_exited_child_is_stdin_closed_not_a_hang() {
    let mut run = Command::new("true")
        .keep_stdin_open()
        .start()
        .await
        .unwrap();
    let mut stdin = run.standard_input().unwrap();
    assert_eq!(run.wait().await.unwrap(), Some(0));
    // Larger than any pipe buffer, so a write cannot just vanish into it.
    let big = vec![b'x'; 4 * 1024 * 1024];
    let write = tokio::time::timeout(Duration::from_secs(30), stdin.write(&big)).await;
    let err = write
        .expect("writing to an exited child must not hang")
        .unwrap_err();
    assert!(matches!(err, Error::StdinClosed { .. }), "{err:?}");
    // Once closed, it stays closed.
    let again = stdin.write_line("more").await.unwrap_err();
    assert!(matches!(again, Error::StdinClosed { .. }), "{again:?}");
    assert!(stdin.finish().await.is_ok());
}

#[tokio::test]
async fn a_child_that_stops_reading_closes_stdin() {
    // `head -n 1` exits after one line; later writes must fail, not block.
    let mut run = Command::new("head")
        .args(["-n", "1"])
        .keep_stdin_open()
        .start()
        .await
        .unwrap();
    let mut stdin = run.standard_input().unwrap();
    stdin.write_line("only").await.unwrap();
    let mut lines = run.stdout_lines();
    assert_eq!(lines.next().await.as_deref(), Some("only"));
    assert_eq!(lines.next().await, None);
    let line = vec![b'y'; 64 * 1024];
    let mut outcome = Ok(());
    for _ in 0..64 {
        outcome = stdin.write(&line).await;
        if outcome.is_err() {
            break;
        }
    }
    assert!(
        matches!(outcome, Err(Error::StdinClosed { .. })),
        "{outcome:?}"
    );
}
