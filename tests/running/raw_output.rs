//! `stdout_reader` / `stderr_reader`: the exact bytes (`\r`, NUL, invalid
//! UTF-8), whatever was captured before the call included, and the line
//! streams of a taken stream ending at once.
// The children are Unix shell tools; Windows has its own test binary.
#![cfg(unix)]

use processkit::{Command, JobRunner, Mechanism, StreamExt};
use tokio::io::AsyncReadExt;

/// The bytes `printf` writes below, on both streams.
const PAYLOAD: &[u8] = b"a\r\0b\xff\n\xfe\r\nz";
const PRINTF: &str = r"printf 'a\r\000b\377\n\376\r\nz'";

fn runners() -> Vec<JobRunner> {
    let mut runners = vec![JobRunner::new()];
    if cfg!(target_os = "linux") {
        runners.push(JobRunner::with_mechanism(Mechanism::Subreaper));
    }
    runners
}

#[tokio::test]
async fn the_readers_give_the_exact_bytes_of_each_stream() {
    for runner in runners() {
        let script = format!("{PRINTF}; {PRINTF} >&2");
        let mut run = runner
            .start(&Command::new("sh").args(["-c", &script]))
            .await
            .unwrap();
        let mut stdout = run.stdout_reader().expect("stdout");
        let mut stderr = run.stderr_reader().expect("stderr");
        assert!(run.stdout_reader().is_none(), "stdout is taken once");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        stdout.read_to_end(&mut out).await.unwrap();
        stderr.read_to_end(&mut err).await.unwrap();
        assert_eq!(out, PAYLOAD);
        assert_eq!(err, PAYLOAD);
        assert!(
            run.stdout_lines().next().await.is_none(),
            "stdout lines end"
        );
        let (code, stderr) = run.finish_streamed().await.unwrap();
        assert_eq!(code, Some(0));
        assert!(stderr.is_empty(), "the finisher's stderr: {stderr:?}");
    }
}

#[tokio::test]
async fn a_reader_starts_with_what_was_captured_and_lines_end_once_it_is_taken() {
    // stderr is captured from the start: the reader gets it all, even when
    // taken after the child has written and exited.
    let mut run = Command::new("sh")
        .args(["-c", "seq 1 20000 >&2; echo out"])
        .start()
        .await
        .unwrap();
    let mut first = run.stdout_lines();
    assert_eq!(first.next().await.as_deref(), Some("out"));
    let mut stderr = run.stderr_reader().expect("stderr");
    let mut err = String::new();
    stderr.read_to_string(&mut err).await.unwrap();
    let want: String = (1..=20000).map(|n| format!("{n}\n")).collect();
    assert_eq!(err, want);
    assert!(
        run.stderr_lines().next().await.is_none(),
        "stderr lines end"
    );
    // A partly streamed stdout: the reader gets what lines did not deliver.
    let mut run = Command::new("printf")
        .arg("one\\ntwo\\nthree")
        .start()
        .await
        .unwrap();
    assert_eq!(run.stdout_lines().next().await.as_deref(), Some("one"));
    let mut rest = Vec::new();
    run.stdout_reader()
        .expect("stdout")
        .read_to_end(&mut rest)
        .await
        .unwrap();
    assert_eq!(rest, b"two\nthree");
    assert!(
        run.stdout_lines().next().await.is_none(),
        "stdout lines end"
    );
}

#[tokio::test]
async fn a_large_binary_stream_arrives_whole() {
    for runner in runners() {
        let mut run = runner
            .start(&Command::new("head").args(["-c", "16777216", "/dev/urandom"]))
            .await
            .unwrap();
        let mut bytes = Vec::new();
        run.stdout_reader()
            .expect("stdout")
            .read_to_end(&mut bytes)
            .await
            .unwrap();
        assert_eq!(bytes.len(), 16 << 20);
        assert_eq!(run.wait().await.unwrap(), Some(0));
    }
}
