//! The capture path moves every byte, in order, however large the output:
//! reads land straight in the capture buffer and the pipe is enlarged.
#![cfg(unix)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use processkit::Command;

fn seq_text(n: u64) -> String {
    (1..=n).map(|i| format!("{i}\n")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_capture_is_complete_and_in_order() {
    let n = 2_000_000;
    let result = Command::new("seq")
        .arg(n.to_string())
        .output_bytes()
        .await
        .unwrap();
    assert_eq!(result.code(), Some(0));
    let expected = seq_text(n);
    assert_eq!(result.stdout().len(), expected.len());
    assert!(
        result.stdout() == expected.as_bytes(),
        "captured bytes differ"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exact_size_capture_ends_at_the_right_byte() {
    // 3 MiB: several reads of a 1 MiB pipe, ending exactly on a boundary.
    let size = 3 << 20;
    let result = Command::new("head")
        .args(["-c", &size.to_string(), "/dev/zero"])
        .output_bytes()
        .await
        .unwrap();
    assert_eq!(result.stdout().len(), size);
    assert!(result.stdout().iter().all(|&b| b == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_handler_sees_every_line_of_a_large_capture() {
    let n = 300_000u64;
    let count = Arc::new(AtomicU64::new(0));
    let sum = Arc::new(AtomicU64::new(0));
    let (c, s) = (Arc::clone(&count), Arc::clone(&sum));
    let result = Command::new("seq")
        .arg(n.to_string())
        .on_stdout_line(move |line| {
            c.fetch_add(1, Ordering::Relaxed);
            s.fetch_add(line.parse::<u64>().unwrap(), Ordering::Relaxed);
        })
        .output_string()
        .await
        .unwrap();
    assert_eq!(count.load(Ordering::Relaxed), n);
    assert_eq!(sum.load(Ordering::Relaxed), n * (n + 1) / 2);
    assert_eq!(result.stdout(), &seq_text(n));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stderr_is_captured_alongside_a_large_stdout() {
    let result = Command::new("sh")
        .args(["-c", "seq 500000; seq 1000 >&2"])
        .output_string()
        .await
        .unwrap();
    assert_eq!(result.stdout(), &seq_text(500_000));
    assert_eq!(result.stderr(), &seq_text(1000));
}

/// The child sees a 1 MiB stdout pipe (Linux grows the pipes we drain).
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stdout_pipe_is_a_mebibyte_on_linux() {
    // F_GETPIPE_SZ is 1032; python3 is the one common tool that can ask.
    let script = "import fcntl; print(fcntl.fcntl(1, 1032)); print(fcntl.fcntl(2, 1032))";
    let out = match Command::new("python3").args(["-c", script]).run().await {
        Err(processkit::Error::NotFound { .. }) => {
            eprintln!("python3 is not available: skipped");
            return;
        }
        other => other.unwrap(),
    };
    let sizes: Vec<&str> = out.lines().collect();
    assert_eq!(sizes[0], "1048576", "stdout pipe size");
    // stderr keeps the default: only the stream that carries bulk output grows.
    assert_ne!(sizes[1], "1048576", "stderr pipe size");
}
