//! 100 MiB of short lines through `stdout_lines` keeps our own memory far
//! below 100 MiB: the stream reads the pipe only as fast as it is consumed.
//! The only test the `perf` binary runs by default, so no other test's
//! allocations blur VmHWM.
// These tests drive Unix programs (sh, sleep, seq, ...); tests/windows/
// covers the same ground with Windows programs.
#![cfg(unix)]

use processkit::{Command, StreamExt};

const TOTAL: u64 = 100 * 1024 * 1024;
/// "0123456789" * 7 plus the newline: 71 bytes per line.
const LINE: &str = "0123456789012345678901234567890123456789012345678901234567890123456789";

fn own_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_100_mib_line_stream_keeps_memory_bounded() {
    let script = format!("yes {LINE} | head -c {TOTAL}");
    let mut run = Command::new("sh")
        .arg("-c")
        .arg(script)
        .start()
        .await
        .unwrap();
    let mut lines = run.stdout_lines();
    let (mut count, mut bytes, mut peak_rss) = (0u64, 0u64, 0u64);
    while let Some(line) = lines.next().await {
        bytes += line.len() as u64 + 1;
        count += 1;
        assert!(
            line.len() == LINE.len() || bytes == TOTAL + 1,
            "line {count}: {line:?}"
        );
        if count % 100_000 == 0 {
            peak_rss = peak_rss.max(own_kib("VmRSS"));
        }
    }
    let (code, _) = run.finish_streamed().await.unwrap();
    assert_eq!(code, Some(0));
    // The last line is cut short by `head` and has no newline of its own.
    assert_eq!(bytes, TOTAL + 1);
    assert_eq!(count, TOTAL.div_ceil(LINE.len() as u64 + 1));
    let hwm = own_kib("VmHWM");
    eprintln!("lines={count} peak VmRSS={peak_rss} KiB VmHWM={hwm} KiB");
    assert!(hwm < 48 * 1024, "VmHWM {hwm} KiB is not well below 100 MiB");
}
