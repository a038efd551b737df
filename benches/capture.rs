//! Capturing 1 GiB of stdout from `head -c 1G /dev/zero`: processkit's
//! `output_bytes` against tokio's `output()` and a blocking `read_to_end`
//! on the same kind of pipe, into a growing and into a pre-sized buffer.
//! A last row writes a fresh buffer of the same size without any pipe: what
//! the page faults of a new gigabyte cost on this machine, which every
//! contender pays too.

mod support;

use std::io::Read;
use std::process::Stdio;
use std::time::Instant;

use processkit::Command;
use support::{Contest, size};

const NAMES: [&str; 5] = [
    "blocking read_to_end (std pipe)",
    "processkit output_bytes",
    "tokio::process output",
    "blocking read_to_end, pre-sized buffer",
    "fresh buffer filled, no pipe (memory)",
];

async fn once(which: usize, count: &str, expected: usize) {
    let len = match which {
        0 => {
            let mut child = std::process::Command::new("head")
                .args(["-c", count, "/dev/zero"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut out = Vec::new();
            child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
            assert!(child.wait().unwrap().success());
            out.len()
        }
        1 => {
            let result = Command::new("head")
                .args(["-c", count, "/dev/zero"])
                .output_bytes()
                .await
                .unwrap();
            assert_eq!(result.code(), Some(0));
            result.stdout().len()
        }
        3 => {
            let mut child = std::process::Command::new("head")
                .args(["-c", count, "/dev/zero"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            // Knows the size up front, which a capture cannot.
            let mut out = Vec::with_capacity(expected);
            child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
            assert!(child.wait().unwrap().success());
            out.len()
        }
        4 => {
            // Written byte by byte, as a reader fills it: `vec![0; n]` would
            // map zero pages lazily and fault nothing in.
            let mut out: Vec<u8> = Vec::with_capacity(expected);
            out.resize(expected, 0xa5);
            std::hint::black_box(&mut out);
            out.len()
        }
        _ => {
            let out = tokio::process::Command::new("head")
                .args(["-c", count, "/dev/zero"])
                .output()
                .await
                .unwrap();
            assert!(out.status.success());
            out.stdout.len()
        }
    };
    assert_eq!(len, expected);
}

fn main() {
    support::header("capture");
    let bytes = size(1 << 30, 64 << 20);
    let count = bytes.to_string();
    let rounds = size(15, 3);
    let rt = support::runtime();
    rt.block_on(async {
        let mut contest = Contest::new(
            format!("capture {} MiB of head -c /dev/zero", bytes >> 20),
            &NAMES,
        );
        for round in 0..rounds {
            for which in contest.order(round) {
                let begun = Instant::now();
                once(which, &count, bytes).await;
                contest.record(which, begun.elapsed());
            }
        }
        contest.report(0, Some(bytes as u64));
    });
}
