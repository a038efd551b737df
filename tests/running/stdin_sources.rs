//! `Stdin::from_file` and `Stdin::from_reader`: 64 MiB through each, the
//! file as the child's own descriptor, a missing file as a typed error with
//! nothing started, and both as a pipeline's first stage.
// The children are Unix shell tools; Windows has its own test binary.
#![cfg(unix)]

use crate::common::TempDir;

use processkit::{Command, Error, JobRunner, Mechanism, Operation, ProcessRunnerExt, Stdin};
use tokio::io::AsyncReadExt;

const SIZE: u64 = 64 << 20;

/// The mechanisms to try: the default, and the subreaper where it exists
/// (it passes the file to its shim).
fn runners() -> Vec<JobRunner> {
    let mut runners = vec![JobRunner::new()];
    if cfg!(target_os = "linux") {
        runners.push(JobRunner::with_mechanism(Mechanism::Subreaper));
    }
    runners
}

fn big_file(dir: &TempDir) -> std::path::PathBuf {
    let path = dir.join("input");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(SIZE).unwrap();
    path
}

#[tokio::test]
async fn a_file_is_the_childs_stdin_whole() {
    let dir = TempDir::new("stdinfile");
    let path = big_file(&dir);
    for runner in runners() {
        let cmd = Command::new("wc").arg("-c").stdin(Stdin::from_file(&path));
        let out = runner.output_string(&cmd).await.unwrap();
        assert_eq!(out.stdout().trim(), SIZE.to_string());
        // Nothing is copied through us: the child's fd 0 is the file itself.
        let cmd = Command::new("sh")
            .args(["-c", "readlink /proc/$$/fd/0"])
            .stdin(Stdin::from_file(&path));
        if cfg!(target_os = "linux") {
            let out = runner.output_string(&cmd).await.unwrap();
            assert_eq!(out.stdout().trim(), path.to_str().unwrap());
        }
    }
}

#[tokio::test]
async fn a_missing_stdin_file_fails_the_start_and_runs_nothing() {
    let dir = TempDir::new("stdinmissing");
    let marker = dir.join("ran");
    let cmd = Command::new("sh")
        .args(["-c", "touch \"$1\"", "sh"])
        .arg(&marker)
        .stdin(Stdin::from_file(dir.join("absent")));
    for runner in runners() {
        match runner.output_string(&cmd).await {
            Err(Error::Io {
                operation: Operation::OpenStdin,
                source,
                ..
            }) => assert_eq!(source.kind(), std::io::ErrorKind::NotFound),
            other => panic!("expected an OpenStdin error, got {other:?}"),
        }
        assert!(!marker.exists(), "the program ran");
    }
}

#[tokio::test]
async fn a_reader_is_copied_to_stdin_whole() {
    for runner in runners() {
        let reader = tokio::io::repeat(b'x').take(SIZE);
        let cmd = Command::new("wc")
            .arg("-c")
            .stdin(Stdin::from_reader(reader));
        let out = runner.output_string(&cmd).await.unwrap();
        assert_eq!(out.stdout().trim(), SIZE.to_string());
        // One reader feeds one run: a second run of the same command reads
        // end-of-file.
        let again = runner.output_string(&cmd).await.unwrap();
        assert_eq!(again.stdout().trim(), "0");
    }
}

#[tokio::test]
async fn a_pipelines_first_stage_reads_a_file_or_a_reader() {
    let dir = TempDir::new("stdinpipe");
    let path = big_file(&dir);
    let from_file =
        Command::new("cat").stdin(Stdin::from_file(&path)) | Command::new("wc").arg("-c");
    assert_eq!(from_file.run().await.unwrap().trim(), SIZE.to_string());
    let reader = tokio::io::repeat(b'y').take(SIZE);
    let from_reader =
        Command::new("cat").stdin(Stdin::from_reader(reader)) | Command::new("wc").arg("-c");
    assert_eq!(from_reader.run().await.unwrap().trim(), SIZE.to_string());
}
