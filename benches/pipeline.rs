//! Throughput of a shell-free pipeline against the same chain run by `sh -c`:
//! 1 GiB from `head -c … /dev/zero` through three `cat` stages into `wc -c`.
//! Rounds are interleaved (alternating which goes first) and medians compared.
//!
//! `cargo bench --bench pipeline`; `PIPELINE_BENCH_ROUNDS` (default 7) and
//! `PIPELINE_BENCH_BYTES` (default 1 GiB) override the defaults.

use std::time::{Duration, Instant};

use processkit::Command;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn native(bytes: u64) -> processkit::Pipeline {
    Command::new("head").args(["-c", &bytes.to_string(), "/dev/zero"])
        | Command::new("cat")
        | Command::new("cat")
        | Command::new("cat")
        | Command::new("wc").arg("-c")
}

fn shell(bytes: u64) -> Command {
    let script = format!("head -c {bytes} /dev/zero | cat | cat | cat | wc -c");
    Command::new("sh").arg("-c").arg(script)
}

async fn time_native(bytes: u64) -> Duration {
    let start = Instant::now();
    let out = native(bytes).run().await.expect("native pipeline runs");
    let took = start.elapsed();
    assert_eq!(out, bytes.to_string(), "every byte reached wc");
    took
}

async fn time_shell(bytes: u64) -> Duration {
    let start = Instant::now();
    let out = shell(bytes).run().await.expect("sh -c pipeline runs");
    let took = start.elapsed();
    assert_eq!(out, bytes.to_string(), "every byte reached wc");
    took
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn min(samples: &[Duration]) -> Duration {
    samples.iter().copied().min().unwrap_or_default()
}

fn main() {
    let rounds = env_or("PIPELINE_BENCH_ROUNDS", 7).max(1);
    let bytes = env_or("PIPELINE_BENCH_BYTES", 1 << 30);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (mut native_times, mut shell_times) = (Vec::new(), Vec::new());
    runtime.block_on(async {
        for round in 0..rounds {
            let (n, s) = if round % 2 == 0 {
                let n = time_native(bytes).await;
                (n, time_shell(bytes).await)
            } else {
                let s = time_shell(bytes).await;
                (time_native(bytes).await, s)
            };
            println!("round {round}: processkit {n:?}  sh -c {s:?}");
            native_times.push(n);
            shell_times.push(s);
        }
    });
    let (n_min, s_min) = (min(&native_times), min(&shell_times));
    let (n, s) = (median(native_times), median(shell_times));
    let mib = bytes as f64 / (1024.0 * 1024.0);
    println!(
        "median over {rounds} rounds, {mib:.0} MiB: processkit {n:?} ({:.0} MiB/s), sh -c {s:?} ({:.0} MiB/s), ratio processkit/sh = {:.3}",
        mib / n.as_secs_f64(),
        mib / s.as_secs_f64(),
        n.as_secs_f64() / s.as_secs_f64()
    );
    println!(
        "fastest: processkit {n_min:?}, sh -c {s_min:?}, ratio {:.3} (less sensitive to a busy host)",
        n_min.as_secs_f64() / s_min.as_secs_f64()
    );
}
