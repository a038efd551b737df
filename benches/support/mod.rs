//! Shared helpers for the benchmarks: quick mode, the tiny static child,
//! interleaved rounds, medians and the printed table rows.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::time::Duration;

/// `PK_BENCH_QUICK=1` shrinks every size and round count so CI can smoke-run.
pub fn quick() -> bool {
    std::env::var_os("PK_BENCH_QUICK").is_some_and(|v| v != "0" && !v.is_empty())
}

/// Picks the full-size or the quick-mode value.
pub fn size(full: usize, quick_value: usize) -> usize {
    if quick() { quick_value } else { full }
}

/// `target/` of this workspace (benches run with the package root as cwd).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// A child that does nothing but call the exit syscall: no libc start-up,
/// so the measurement is the spawn path itself. Built once into `target/`.
pub fn tiny_child() -> PathBuf {
    let dir = target_dir().join("pk-bench");
    let exe = dir.join("tiny-exit");
    if exe.exists() {
        return exe;
    }
    std::fs::create_dir_all(&dir).expect("create target/pk-bench");
    let source = dir.join("tiny-exit.c");
    std::fs::write(&source, TINY_C).expect("write tiny-exit.c");
    let status = StdCommand::new("cc")
        .args(["-nostdlib", "-static", "-O2", "-o"])
        .arg(&exe)
        .arg(&source)
        .status()
        .expect("run cc (a C compiler is needed to build the tiny child)");
    assert!(status.success(), "cc failed to build the tiny child");
    exe
}

const TINY_C: &str = r#"
void _start(void) {
#if defined(__x86_64__)
    __asm__ volatile("mov $60, %eax\n xor %edi, %edi\n syscall");
#elif defined(__aarch64__)
    __asm__ volatile("mov x8, #93\n mov x0, #0\n svc #0");
#else
#error "tiny-exit: add the exit syscall for this architecture"
#endif
    for (;;) {}
}
"#;

/// The median of `samples` (sorted in place).
pub fn median(samples: &mut [Duration]) -> Duration {
    assert!(!samples.is_empty(), "no samples");
    samples.sort();
    samples[samples.len() / 2]
}

/// Collects samples of several contenders, measured in alternating order.
pub struct Contest {
    pub title: String,
    pub names: Vec<&'static str>,
    pub samples: Vec<Vec<Duration>>,
}

impl Contest {
    pub fn new(title: impl Into<String>, names: &[&'static str]) -> Contest {
        Contest {
            title: title.into(),
            names: names.to_vec(),
            samples: vec![Vec::new(); names.len()],
        }
    }

    /// The order to run contenders in round `round`: shuffled each round
    /// (the same shuffle on every run), so none always goes first (warm
    /// caches) or last, and none always follows the same other one (whose
    /// leftover work, a reaped child's cleanup or a helper thread's, would
    /// land in its time every round, as a plain rotation does).
    pub fn order(&self, round: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.names.len()).collect();
        // A small xorshift seeded by the round: no dependency, reproducible.
        let mut state = (round as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for i in (1..order.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            order.swap(i, (state % (i as u64 + 1)) as usize);
        }
        order
    }

    pub fn record(&mut self, contender: usize, sample: Duration) {
        self.samples[contender].push(sample);
    }

    pub fn medians(&mut self) -> Vec<Duration> {
        self.samples.iter_mut().map(|s| median(s)).collect()
    }

    /// Prints one table row per contender: median, and ratio to `reference`.
    /// `bytes` turns medians into throughput.
    pub fn report(&mut self, reference: usize, bytes: Option<u64>) {
        let medians = self.medians();
        let rounds = self.samples[0].len();
        println!("\n## {} ({rounds} rounds, medians)", self.title);
        for (i, name) in self.names.iter().enumerate() {
            let time = medians[i].as_secs_f64();
            let reference_time = medians[reference].as_secs_f64();
            // Throughput rows compare speed; latency rows compare time.
            let (rate, ratio) = match bytes {
                Some(b) => (
                    format!(" {:6.2} GiB/s |", b as f64 / time / GIB),
                    format!(
                        "{:5.2}x the speed of {}",
                        reference_time / time,
                        self.names[reference]
                    ),
                ),
                None => (
                    String::new(),
                    format!(
                        "{:5.2}x the time of {}",
                        time / reference_time,
                        self.names[reference]
                    ),
                ),
            };
            println!("| {:<38} | {:>10} |{rate} {ratio} |", name, fmt(medians[i]));
        }
    }
}

pub const GIB: f64 = (1u64 << 30) as f64;

/// A duration with a unit that keeps 3-4 significant digits.
pub fn fmt(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.3} s", ns / 1e9)
    }
}

/// Allocates and touches `bytes` so the parent's RSS really is that large.
pub fn hold_memory(bytes: usize) -> Vec<u8> {
    let mut block = vec![0u8; bytes];
    for page in block.chunks_mut(4096) {
        page[0] = 1;
    }
    std::hint::black_box(&block);
    block
}

/// The current resident set size of this process, in MiB.
pub fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}

/// A multi-thread runtime like `#[tokio::main]` builds.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Prints the machine line that goes with every table.
pub fn header(bench: &str) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown cpu".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "# {bench}: {cpus} cpus, {cpu}, kernel {}, loadavg {}{}",
        kernel.trim(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        if quick() { ", QUICK MODE" } else { "" }
    );
}

/// This process's own cgroup v2 directory, if cgroup2 is mounted here.
pub fn own_cgroup_dir() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
    })?;
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = own.lines().find_map(|l| l.strip_prefix("0::"))?.to_owned();
    Some(mount.join(own.trim_start_matches('/')))
}

/// This process's cgroup v2 directory, if we may create cgroups below it
/// (root, or a delegated subtree); benches that need one skip without it.
pub fn writable_cgroup_dir() -> Option<PathBuf> {
    let dir = own_cgroup_dir()?;
    let probe = dir.join(format!("pk-bench-probe-{}", std::process::id()));
    std::fs::create_dir(&probe).ok()?;
    std::fs::remove_dir(&probe).ok()?;
    Some(dir)
}

/// The cgroup v2 directory `pid` lives in.
pub fn cgroup_of(pid: u32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let rel = text.lines().find_map(|l| l.strip_prefix("0::"))?.to_owned();
    let own = own_cgroup_dir()?;
    let own_rel = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let own_rel = own_rel
        .lines()
        .find_map(|l| l.strip_prefix("0::"))?
        .to_owned();
    let mount = own
        .to_str()?
        .strip_suffix(own_rel.trim_end_matches('/'))?
        .to_owned();
    Some(PathBuf::from(mount.trim_end_matches('/')).join(rel.trim_start_matches('/')))
}
