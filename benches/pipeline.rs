//! Throughput of a shell-free pipeline against the same chain run by `sh -c`:
//! 1 GiB from `head -c … /dev/zero` through three `cat` stages into `wc -c`.
//! Rounds are interleaved (alternating which goes first); medians and the
//! fastest rounds are compared, in wall time and in the CPU time the chain's
//! processes used (Linux: reaped children's user+system time), which a busy
//! host distorts far less than wall time.
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

fn shell(bytes: u64) -> processkit::Pipeline {
    let script = format!("head -c {bytes} /dev/zero | cat | cat | cat | wc -c");
    // A one-stage chain would not type-check as a Pipeline; `cat` passes the
    // count through so both sides pay for the same final hop.
    Command::new("sh").arg("-c").arg(script) | Command::new("cat")
}

/// User+system time of every reaped child so far (`cutime`+`cstime` of
/// /proc/self/stat, in 100 Hz ticks), or `None` off Linux.
fn children_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    let ticks: u64 = fields.get(13)?.parse::<u64>().ok()? + fields.get(14)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

#[derive(Default)]
struct Samples {
    wall: Vec<Duration>,
    cpu: Vec<Duration>,
}

impl Samples {
    async fn measure(&mut self, chain: processkit::Pipeline, bytes: u64) -> Duration {
        let cpu_before = children_cpu();
        let start = Instant::now();
        let out = chain.run().await.expect("the pipeline runs");
        let wall = start.elapsed();
        assert_eq!(out, bytes.to_string(), "every byte reached wc");
        self.wall.push(wall);
        if let (Some(before), Some(after)) = (cpu_before, children_cpu()) {
            self.cpu.push(after.saturating_sub(before));
        }
        wall
    }
}

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

fn fastest(samples: &[Duration]) -> Duration {
    samples.iter().copied().min().unwrap_or_default()
}

fn compare(what: &str, native: &[Duration], shell: &[Duration]) {
    if native.is_empty() || shell.is_empty() {
        return;
    }
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    let (nm, sm) = (median(native), median(shell));
    let (nf, sf) = (fastest(native), fastest(shell));
    println!(
        "{what}: median processkit {nm:?} / sh -c {sm:?} = {:.3}; fastest {nf:?} / {sf:?} = {:.3}",
        ratio(nm, sm),
        ratio(nf, sf)
    );
}

fn main() {
    let rounds = env_or("PIPELINE_BENCH_ROUNDS", 7).max(1);
    let bytes = env_or("PIPELINE_BENCH_BYTES", 1 << 30);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (mut ours, mut theirs) = (Samples::default(), Samples::default());
    runtime.block_on(async {
        for round in 0..rounds {
            let (n, s) = if round % 2 == 0 {
                let n = ours.measure(native(bytes), bytes).await;
                (n, theirs.measure(shell(bytes), bytes).await)
            } else {
                let s = theirs.measure(shell(bytes), bytes).await;
                (ours.measure(native(bytes), bytes).await, s)
            };
            println!("round {round}: processkit {n:?}  sh -c {s:?}");
        }
    });
    let mib = bytes as f64 / (1024.0 * 1024.0);
    let median_wall = median(&ours.wall);
    println!(
        "{mib:.0} MiB, {rounds} rounds; processkit median {:.0} MiB/s",
        mib / median_wall.as_secs_f64()
    );
    compare("wall", &ours.wall, &theirs.wall);
    compare("cpu ", &ours.cpu, &theirs.cpu);
}
