//! `Stdio` for stdout and stderr: inherit really reaches the parent's own
//! descriptors, null, files (append mode kept), `stderr_to_stdout` in write
//! order, streams that are not captured coming back empty, and pipelines.
// The children are Unix shell tools; Windows has its own test binary.
#![cfg(unix)]

use std::io::{Read, Seek, Write};

use processkit::{Command, Error, JobRunner, Mechanism, ProcessRunnerExt, Stdio, StreamExt};

use crate::common::TempDir;

fn runners() -> Vec<(&'static str, JobRunner)> {
    let mut runners = vec![("default", JobRunner::new())];
    if cfg!(target_os = "linux") {
        runners.push(("subreaper", JobRunner::with_mechanism(Mechanism::Subreaper)));
    }
    runners
}

const HELPER: &str = "PK_STDIO_INHERIT_HELPER";

/// Helper: runs a child with inherited stdout and stderr under each
/// mechanism; this process's own stdout and stderr are files the test reads.
#[test]
#[ignore = "helper process for the inherit test"]
fn helper_inherit() {
    if std::env::var_os(HELPER).is_none() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for (name, runner) in runners() {
        let script = format!("echo out-{name}; echo err-{name} >&2");
        let cmd = Command::new("sh")
            .args(["-c", &script])
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit());
        let result = runtime.block_on(runner.output_string(&cmd)).unwrap();
        assert!(result.stdout().is_empty() && result.stderr().is_empty());
        // Tee: in the result and on our own streams.
        let script = format!("echo tee-out-{name}; echo tee-err-{name} >&2");
        let cmd = Command::new("sh")
            .args(["-c", &script])
            .stdout(Stdio::capture().tee_inherit())
            .stderr(Stdio::capture().tee_inherit());
        let result = runtime.block_on(runner.output_string(&cmd)).unwrap();
        assert_eq!(result.stdout(), &format!("tee-out-{name}\n"));
        assert_eq!(result.stderr(), &format!("tee-err-{name}\n"));
    }
}

#[test]
fn inherit_and_tee_write_to_the_parents_own_descriptors() {
    let dir = TempDir::new("stdioinherit");
    let (out, err) = (dir.join("out"), dir.join("err"));
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "stdio_routing::helper_inherit",
            "--ignored",
            "--test-threads=1",
        ])
        .env(HELPER, "1")
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .status()
        .unwrap();
    let (out, err) = (
        std::fs::read_to_string(out).unwrap(),
        std::fs::read_to_string(err).unwrap(),
    );
    assert!(status.success(), "helper failed:\n{out}\n{err}");
    for (name, _) in runners() {
        // libtest's own "test … " may share the line.
        assert!(out.contains(&format!("out-{name}\n")), "{out}");
        assert!(err.contains(&format!("err-{name}\n")), "{err}");
        assert!(!out.contains(&format!("err-{name}")), "{out}");
        assert!(out.contains(&format!("tee-out-{name}\n")), "{out}");
        assert!(err.contains(&format!("tee-err-{name}\n")), "{err}");
    }
}

#[tokio::test]
async fn null_discards_and_the_other_stream_is_still_captured() {
    for (_, runner) in runners() {
        let cmd = Command::new("sh").args(["-c", "echo x; echo y >&2"]);
        let quiet = runner
            .output_string(&cmd.clone().stdout(Stdio::null()))
            .await
            .unwrap();
        assert_eq!(
            (quiet.stdout().as_str(), quiet.stderr().as_str()),
            ("", "y\n")
        );
        let quiet = runner
            .output_string(&cmd.stderr(Stdio::null()))
            .await
            .unwrap();
        assert_eq!(
            (quiet.stdout().as_str(), quiet.stderr().as_str()),
            ("x\n", "")
        );
    }
}

#[tokio::test]
async fn a_file_receives_the_output_and_append_mode_is_kept() {
    let dir = TempDir::new("stdiofile");
    let path = dir.join("log");
    std::fs::write(&path, "first\n").unwrap();
    for (name, runner) in runners() {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        let cmd = Command::new("sh")
            .args(["-c", &format!("echo {name}")])
            .stdout(Stdio::file(file));
        // Twice, through one command: both land after what was there.
        for _ in 0..2 {
            let result = runner.output_string(&cmd).await.unwrap();
            assert!(result.stdout().is_empty());
        }
    }
    let mut want = String::from("first\n");
    for (name, _) in runners() {
        want.push_str(&format!("{name}\n{name}\n"));
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), want);
    // A file opened for writing (not appending) is written from its offset.
    let mut file = std::fs::File::create(dir.join("plain")).unwrap();
    file.write_all(b"0123456789").unwrap();
    file.rewind().unwrap();
    let cmd = Command::new("printf")
        .arg("ab")
        .stdout(Stdio::file(file.try_clone().unwrap()));
    cmd.run().await.unwrap();
    let mut text = String::new();
    std::fs::File::open(dir.join("plain"))
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "ab23456789");
}

#[tokio::test]
async fn stderr_to_stdout_keeps_the_write_order() {
    let script = "for i in 1 2 3 4 5; do echo o$i; echo e$i >&2; done";
    let want: String = (1..=5).map(|i| format!("o{i}\ne{i}\n")).collect();
    for (_, runner) in runners() {
        let cmd = Command::new("sh").args(["-c", script]).stderr_to_stdout();
        let result = runner.output_string(&cmd).await.unwrap();
        assert_eq!(result.stdout(), &want);
        assert!(result.stderr().is_empty());
        // With stdout sent elsewhere, stderr follows it.
        let quiet = runner
            .output_string(&cmd.stdout(Stdio::null()))
            .await
            .unwrap();
        assert!(quiet.stdout().is_empty() && quiet.stderr().is_empty());
    }
}

#[tokio::test]
async fn a_stream_not_captured_ends_at_once_and_errors_keep_the_stderr_tail() {
    let mut run = Command::new("sh")
        .args(["-c", "echo hidden; sleep 0.2; echo shown >&2"])
        .stdout(Stdio::null())
        .start()
        .await
        .unwrap();
    assert!(
        run.stdout_lines().next().await.is_none(),
        "no stdout to stream"
    );
    assert_eq!(run.stderr_lines().next().await.as_deref(), Some("shown"));
    let mut run = Command::new("sh")
        .args(["-c", "echo shown; echo hidden >&2"])
        .stderr(Stdio::null())
        .start()
        .await
        .unwrap();
    assert!(
        run.stderr_lines().next().await.is_none(),
        "no stderr to stream"
    );
    assert_eq!(run.stdout_lines().next().await.as_deref(), Some("shown"));
    let failing = Command::new("sh")
        .args(["-c", "echo noise; echo oops >&2; exit 3"])
        .stdout(Stdio::null());
    match failing.run().await {
        Err(Error::NonZeroExit { stderr_tail, .. }) => assert!(stderr_tail.contains("oops")),
        other => panic!("expected NonZeroExit, got {other:?}"),
    }
}

#[tokio::test]
async fn pipelines_route_the_last_stage_and_merge_any_stage() {
    let dir = TempDir::new("stdiopipe");
    let path = dir.join("out");
    let merged = Command::new("sh")
        .args(["-c", "echo a; echo b >&2"])
        .stderr_to_stdout()
        | Command::new("wc").arg("-l");
    assert_eq!(merged.run().await.unwrap().trim(), "2");
    let to_file = Command::new("echo").arg("piped")
        | Command::new("cat").stdout(Stdio::file(std::fs::File::create(&path).unwrap()));
    assert_eq!(to_file.run().await.unwrap(), "");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "piped\n");
    let inner = Command::new("echo").arg("x").stdout(Stdio::null()) | Command::new("cat");
    match inner.run().await {
        Err(Error::InvalidCommand { program, .. }) => assert_eq!(program, "echo"),
        other => panic!("expected InvalidCommand, got {other:?}"),
    }
}
