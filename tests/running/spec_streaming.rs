//! Acceptance: the README's examples for "Async streaming and interactive
//! I/O", "Waiting for a child to be ready" and `wait_any` in "Inspecting the
//! tree", kept in the README's shape. Each must compile; the ones whose
//! programs exist here run (some with a substitute program) and are checked.
// These tests drive Unix programs (sh, sleep, seq, ...); tests/windows/
// covers the same ground with Windows programs.
#![cfg(unix)]
#![allow(dead_code)]

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use processkit::{Command, ProcessGroup, Stdin, StreamExt, wait_any};
use tokio_stream::iter; // any `Stream<Item = String>` works

// --- "Stream stdout line by line" -----------------------------------------

async fn stream_stdout_line_by_line() -> processkit::Result<()> {
    let mut run = Command::new("git")
        .args(["log", "--oneline", "-n", "50"])
        .start()
        .await?;
    let mut lines = run.stdout_lines();
    while let Some(line) = lines.next().await {
        println!("commit: {line}");
    }
    let (code, stderr) = run.finish_streamed().await?;
    if code != Some(0) {
        eprintln!("git exited {code:?}: {stderr}");
    }
    Ok(())
}

#[tokio::test]
async fn stream_stdout_line_by_line_runs_with_a_substitute() -> processkit::Result<()> {
    // `sh -c` stands in for `git log`: 50 lines on stdout, a note on stderr.
    let mut run = Command::new("sh")
        .args(["-c", "seq 1 50; echo 'no more commits' >&2"])
        .start()
        .await?;
    let mut seen = Vec::new();
    let mut lines = run.stdout_lines();
    while let Some(line) = lines.next().await {
        seen.push(line);
    }
    let (code, stderr) = run.finish_streamed().await?;
    assert_eq!(seen, (1..=50).map(|i| i.to_string()).collect::<Vec<_>>());
    assert_eq!(code, Some(0));
    assert_eq!(stderr, "no more commits\n");
    Ok(())
}

// --- "Interactive stdin — write requests, read responses" -----------------

async fn interactive_stdin() -> processkit::Result<Vec<String>> {
    // `bc` evaluates each stdin line and prints the result on stdout.
    let mut run = Command::new("bc").keep_stdin_open().start().await?;
    let mut stdin = run.standard_input().expect("stdin was kept open");
    stdin.write_line("2 + 2").await?;
    stdin.write_line("6 * 7").await?;
    stdin.finish().await?; // send EOF so bc finishes
    let mut said = Vec::new();
    let mut answers = run.stdout_lines();
    while let Some(answer) = answers.next().await {
        println!("bc says: {answer}");
        said.push(answer);
    }
    Ok(said)
}

#[tokio::test]
async fn interactive_stdin_runs_as_written() {
    assert_eq!(interactive_stdin().await.unwrap(), ["4", "42"]);
}

// --- "Feed stdin from an async stream, react to stdout as it's read" ------

async fn feed_stdin_from_a_stream(printed: Arc<Mutex<Vec<String>>>) -> processkit::Result<()> {
    let input = iter(vec![
        "banana".to_owned(),
        "apple".to_owned(),
        "cherry".to_owned(),
    ]);
    let result = Command::new("sort")
        .stdin(Stdin::from_lines(input))
        .on_stdout_line(move |line| {
            println!("sorted: {line}");
            printed.lock().unwrap().push(format!("sorted: {line}"));
        })
        .output_string()
        .await?;
    let _ = result; // already printed line by line above
    Ok(())
}

#[tokio::test]
async fn feed_stdin_from_a_stream_runs_as_written() {
    let printed = Arc::new(Mutex::new(Vec::new()));
    feed_stdin_from_a_stream(Arc::clone(&printed))
        .await
        .unwrap();
    assert_eq!(
        *printed.lock().unwrap(),
        ["sorted: apple", "sorted: banana", "sorted: cherry"]
    );
}

// --- "Waiting for a child to be ready" ------------------------------------

async fn wait_for_a_child_to_be_ready() -> processkit::Result<()> {
    let mut run = Command::new("my-server").start().await?;
    // Wait for the startup banner (returns the matching line)…
    let banner = run
        .wait_for_line(|l| l.contains("listening on"), Duration::from_secs(10))
        .await?;
    println!("server says: {banner}");
    // …or for the port to accept connections…
    let addr = "127.0.0.1:8080".parse().expect("valid socket address");
    run.wait_for_port(addr, Duration::from_secs(10)).await?;
    // …or for any async health check to pass.
    run.wait_for(|| async { health_check().await }, Duration::from_secs(10))
        .await?;
    // ready — use the server …
    Ok(())
}

async fn health_check() -> bool {
    // e.g. probe an HTTP /health endpoint
    true
}

#[tokio::test]
async fn wait_for_a_child_to_be_ready_runs_with_a_substitute() -> processkit::Result<()> {
    // python3 stands in for `my-server`, on a free port instead of 8080.
    let port = common::free_port();
    let server = format!(
        "import socket, time\n\
         s = socket.socket()\n\
         s.bind(('127.0.0.1', {port}))\n\
         s.listen()\n\
         print('listening on {port}', flush=True)\n\
         time.sleep(30)\n"
    );
    let mut run = Command::new("python3")
        .arg("-c")
        .arg(server)
        .start()
        .await?;
    let _guard = common::KillPidOnDrop(run.id());
    let banner = run
        .wait_for_line(|l| l.contains("listening on"), Duration::from_secs(10))
        .await?;
    assert_eq!(banner, format!("listening on {port}"));
    let addr = format!("127.0.0.1:{port}")
        .parse()
        .expect("valid socket address");
    run.wait_for_port(addr, Duration::from_secs(10)).await?;
    run.wait_for(|| async { health_check().await }, Duration::from_secs(10))
        .await?;
    assert!(run.id().is_some_and(common::is_alive));
    Ok(())
}

// --- `wait_any` in "Inspecting the tree" -----------------------------------

async fn race_two_servers() -> processkit::Result<()> {
    let group = ProcessGroup::new()?;
    let mut a = group.start(&Command::new("server-a")).await?;
    let mut b = group.start(&Command::new("server-b")).await?;
    // The README also prints `group.members()?` here; `members` belongs to
    // the process-control work and is checked by its own acceptance suite.
    // Borrows only: the loser stays usable after the race.
    let (idx, code) = wait_any(&mut [&mut a, &mut b]).await?;
    println!("contender #{idx} exited first with {code:?}");
    Ok(())
}

#[tokio::test]
async fn race_two_servers_runs_with_substitutes() -> processkit::Result<()> {
    let group = ProcessGroup::new()?;
    let mut a = group.start(&Command::new("sleep").arg("30")).await?;
    let mut b = group
        .start(&Command::new("sh").args(["-c", "sleep 0.1; exit 3"]))
        .await?;
    let (idx, code) = wait_any(&mut [&mut a, &mut b]).await?;
    assert_eq!((idx, code), (1, Some(3)));
    // The loser is still usable.
    assert!(a.id().is_some_and(common::is_alive));
    a.kill()?;
    assert_eq!(a.wait().await?, None);
    Ok(())
}
