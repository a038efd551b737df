//! In-memory line reading against tokio's `lines()`: a measurement, not a check.
use super::*;
use std::time::Instant;
use tokio::io::AsyncBufReadExt;

#[tokio::test]
#[ignore = "a measurement; run in release mode"]
async fn in_memory_against_tokio_lines() {
    for width in [2usize, 8, 71] {
        let line = "x".repeat(width - 1) + "\n";
        let text = line.repeat((200 << 20) / width);
        let begun = Instant::now();
        let mut reader = LineReader::new(text.as_bytes());
        let mut n = 0u64;
        while let Some(l) = reader.next_line().await.unwrap() {
            n += 1;
            std::hint::black_box(l);
        }
        let ours = begun.elapsed();
        let begun = Instant::now();
        let mut lines = tokio::io::BufReader::new(text.as_bytes()).lines();
        let mut m = 0u64;
        while let Some(l) = lines.next_line().await.unwrap() {
            m += 1;
            std::hint::black_box(l);
        }
        let theirs = begun.elapsed();
        let begun = Instant::now();
        let mut reader = LineReader::new(text.as_bytes());
        let mut k = 0u64;
        while let Some(batch) = std::future::poll_fn(|cx| reader.poll_next_batch(cx))
            .await
            .unwrap()
        {
            for l in &batch {
                k += 1;
                std::hint::black_box(l);
            }
        }
        let batched = begun.elapsed();
        assert_eq!(n, m);
        assert_eq!(k, m);
        eprintln!(
            "{width}-byte lines: ours {ours:?}, batches {batched:?}, tokio {theirs:?}, \
             ratios {:.2} and {:.2}",
            theirs.as_secs_f64() / ours.as_secs_f64(),
            theirs.as_secs_f64() / batched.as_secs_f64()
        );
    }
}
