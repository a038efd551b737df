//! Line streaming of `yes` output (`y\n` lines): processkit's `stdout_lines`,
//! one `String` per line and in batches (`next_batch`), against tokio's
//! `BufReader::lines()` on the same child's pipe. A second table has both
//! `String` streams consumed by a loop that reads each line's length instead
//! of handing the whole `String` to `black_box`: how the loop moves the
//! returned `String` changes the cost per line by several nanoseconds.
//! A last row of the first table splits the same lines out of memory in a
//! plain loop, one `String` each, with no pipe and no stream: the least any
//! `String`-per-line reader can cost on this machine.

mod support;

use std::process::Stdio;
use std::time::Instant;

use processkit::{Command, StreamExt};
use support::{Contest, size};
use tokio::io::AsyncBufReadExt;

const NAMES: [&str; 5] = [
    "tokio BufReader::lines",
    "processkit stdout_lines",
    "processkit stdout_lines, next_batch",
    "raw pipe read, no splitting (ceiling)",
    "String per line from memory (floor)",
];

/// `sh -c script` started by processkit, stdout unread so far.
async fn start(script: &str) -> processkit::RunningProcess {
    Command::new("sh")
        .args(["-c", script])
        .start()
        .await
        .unwrap()
}

/// The contenders of the second table: 0 is tokio, 1 is processkit.
const LEN_NAMES: [&str; 2] = [
    "tokio BufReader::lines, line.len()",
    "processkit stdout_lines, line.len()",
];

/// One run of a `String`-per-line stream whose consumer reads each line's
/// length (the sum is checked, so no line can be skipped).
async fn once_len(which: usize, count: &str, expected_lines: u64) {
    let script = format!("yes | head -c {count}");
    let mut total = 0usize;
    let mut n = 0u64;
    if which == 0 {
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", &script])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        while let Some(line) = lines.next_line().await.unwrap() {
            total += line.len();
            n += 1;
        }
        assert!(child.wait().await.unwrap().success());
    } else {
        let mut run = start(&script).await;
        let mut lines = run.stdout_lines();
        while let Some(line) = lines.next().await {
            total += line.len();
            n += 1;
        }
        assert_eq!(run.finish_streamed().await.unwrap().0, Some(0));
    }
    assert_eq!(
        (n, std::hint::black_box(total) as u64),
        (expected_lines, expected_lines)
    );
}

/// `expected_lines` lines of `y`, split out of a 64 KiB chunk of `y\n`
/// (checked as UTF-8 once, like a read) one `String` each.
fn in_memory(expected_lines: u64) -> u64 {
    let chunk = "y\n".repeat(32 * 1024);
    let mut n = 0u64;
    while n < expected_lines {
        let text = std::str::from_utf8(std::hint::black_box(chunk.as_bytes())).unwrap();
        for line in text.lines() {
            std::hint::black_box(line.to_owned());
            n += 1;
        }
    }
    n
}

async fn once(which: usize, count: &str, expected_lines: u64) {
    let script = format!("yes | head -c {count}");
    let lines = match which {
        0 => {
            let mut child = tokio::process::Command::new("sh")
                .args(["-c", &script])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
            let mut n = 0u64;
            while let Some(line) = lines.next_line().await.unwrap() {
                std::hint::black_box(line);
                n += 1;
            }
            assert!(child.wait().await.unwrap().success());
            n
        }
        1 => {
            let mut run = start(&script).await;
            let mut n = 0u64;
            let mut lines = run.stdout_lines();
            while let Some(line) = lines.next().await {
                std::hint::black_box(line);
                n += 1;
            }
            assert_eq!(run.finish_streamed().await.unwrap().0, Some(0));
            n
        }
        2 => {
            let mut run = start(&script).await;
            let mut n = 0u64;
            let mut lines = run.stdout_lines();
            while let Some(batch) = lines.next_batch().await {
                // Every line is visited, as a consumer would.
                for line in &batch {
                    std::hint::black_box(line);
                    n += 1;
                }
            }
            assert_eq!(run.finish_streamed().await.unwrap().0, Some(0));
            n
        }
        4 => in_memory(expected_lines),
        _ => {
            use tokio::io::AsyncReadExt;
            let mut child = tokio::process::Command::new("sh")
                .args(["-c", &script])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut pipe = child.stdout.take().unwrap();
            let mut chunk = vec![0u8; 64 * 1024];
            let mut total = 0u64;
            loop {
                let n = pipe.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            assert!(child.wait().await.unwrap().success());
            total / 2
        }
    };
    assert_eq!(lines, expected_lines);
}

fn main() {
    support::header("lines");
    let bytes = size(1 << 30, 32 << 20);
    let count = bytes.to_string();
    let rounds = size(3, 2);
    let rt = support::runtime();
    rt.block_on(async {
        let mut contest = Contest::new(
            format!("stream {} MiB of `yes` line by line", bytes >> 20),
            &NAMES,
        );
        for round in 0..rounds {
            for which in contest.order(round) {
                let begun = Instant::now();
                once(which, &count, bytes as u64 / 2).await;
                contest.record(which, begun.elapsed());
            }
        }
        contest.report(0, Some(bytes as u64));
        let mut contest = Contest::new(
            format!(
                "stream {} MiB of `yes` line by line, the loop reads each line's length",
                bytes >> 20
            ),
            &LEN_NAMES,
        );
        for round in 0..rounds {
            for which in contest.order(round) {
                let begun = Instant::now();
                once_len(which, &count, bytes as u64 / 2).await;
                contest.record(which, begun.elapsed());
            }
        }
        contest.report(0, Some(bytes as u64));
    });
}
