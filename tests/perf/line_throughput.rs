//! Line-reading throughput of `stdout_lines` next to tokio's
//! `BufReader::lines()` on the same child output. A measurement, not a
//! pass/fail check: run with
//! `cargo test --release --test perf -- --ignored --nocapture line_throughput`.

use std::time::{Duration, Instant};

use processkit::{Command, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};

const TOTAL: u64 = 200 * 1024 * 1024;

fn script(line: &str) -> String {
    format!("yes {line} | head -c {TOTAL}")
}

async fn processkit_lines(line: &str) -> (u64, Duration) {
    let begun = Instant::now();
    let mut run = Command::new("sh")
        .arg("-c")
        .arg(script(line))
        .start()
        .await
        .unwrap();
    let mut lines = run.stdout_lines();
    let mut count = 0u64;
    while let Some(l) = lines.next().await {
        count += 1;
        std::hint::black_box(l);
    }
    (count, begun.elapsed())
}

/// The measured script run by plain tokio, its stdout piped to us.
fn spawn_script(line: &str) -> tokio::process::Child {
    tokio::process::Command::new("sh")
        .arg("-c")
        .arg(script(line))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

async fn tokio_lines(line: &str) -> (u64, Duration) {
    let begun = Instant::now();
    let mut child = spawn_script(line);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut count = 0u64;
    while let Some(l) = lines.next_line().await.unwrap() {
        count += 1;
        std::hint::black_box(l);
    }
    child.wait().await.unwrap();
    (count, begun.elapsed())
}

/// Reading the child's output without splitting: the pipe's own ceiling.
async fn raw_pipe(line: &str) -> Duration {
    use tokio::io::AsyncReadExt;
    let begun = Instant::now();
    let mut child = spawn_script(line);
    let mut out = child.stdout.take().unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    while out.read(&mut buf).await.unwrap() > 0 {}
    child.wait().await.unwrap();
    begun.elapsed()
}

#[tokio::test]
#[ignore = "a measurement; run explicitly in release mode"]
async fn compare_with_tokio_lines() {
    for line in [
        "1234567",
        "0123456789012345678901234567890123456789012345678901234567890123456789",
    ] {
        // Alternate the order over a few rounds and keep each side's best,
        // since the host is shared and noisy.
        let (mut raw, mut t_pk, mut t_tk) = (Duration::MAX, Duration::MAX, Duration::MAX);
        let (mut n_pk, mut n_tk) = (0, 0);
        for round in 0..3 {
            raw = raw.min(raw_pipe(line).await);
            let (pk, tk) = if round % 2 == 0 {
                let pk = processkit_lines(line).await;
                (pk, tokio_lines(line).await)
            } else {
                let tk = tokio_lines(line).await;
                (processkit_lines(line).await, tk)
            };
            (n_pk, t_pk) = (pk.0, t_pk.min(pk.1));
            (n_tk, t_tk) = (tk.0, t_tk.min(tk.1));
        }
        assert_eq!(n_pk, n_tk);
        let mib = TOTAL as f64 / (1024.0 * 1024.0);
        eprintln!(
            "{}-byte lines, {n_pk} lines: raw pipe {:.0} MiB/s, processkit {:.0} MiB/s, tokio lines() {:.0} MiB/s, ratio {:.2}",
            line.len() + 1,
            mib / raw.as_secs_f64(),
            mib / t_pk.as_secs_f64(),
            mib / t_tk.as_secs_f64(),
            t_tk.as_secs_f64() / t_pk.as_secs_f64(),
        );
    }
}
