//! A soak of the core: N mixed runs (verbs, streams, pipelines, groups,
//! timeouts that fire, dropped futures, cancellation tokens) on 8 concurrent
//! tasks, then proof that open fds, threads, zombies, processkit cgroup
//! directories and surviving processes are back to where they started.
//!
//! ```text
//! cargo run --release --example soak --features cancellation             # 10,000 runs
//! cargo run --example soak --features cancellation -- --runs 500         # CI smoke
//! PROCESSKIT_MECHANISM=process-group cargo run --example soak --features cancellation
//! ```
//!
//! `--runs N` (or `SOAK_RUNS`) sets the number of runs, `--tasks N` (or
//! `SOAK_TASKS`) the concurrency. Exits 1 when a run misbehaved or a resource
//! did not return to its baseline (RSS fails only on growth above 64 MiB).
//! Linux only: everything is measured through /proc.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use processkit::{CancellationToken, Command, ProcessGroup, ProcessGroupOptions, StreamExt};

const KINDS: usize = 15;
const KIND_NAMES: [&str; KINDS] = [
    "output_string",
    "exit_code",
    "run (failing)",
    "probe (true, false)",
    "first_line",
    "stdout_lines",
    "wait_for_line + drop",
    "pipeline (3 stages)",
    "group 2 trees + teardown",
    "timeout fires",
    "dropped verb future",
    "CancellationToken",
    "started handle dropped",
    "start() cancelled",
    "stdin from string",
];
const RSS_SLACK_KIB: i64 = 64 * 1024;
const GRACE: Duration = Duration::from_secs(1);
/// Group shutdowns that took longer than the grace plus 2 s (reported only).
static SLOW_SHUTDOWNS: AtomicUsize = AtomicUsize::new(0);
/// Group shutdowns in all.
static SHUTDOWNS: AtomicUsize = AtomicUsize::new(0);

/// Marks every process the soak starts (env is inherited by the whole tree),
/// so survivors can be found however they were reparented.
fn token() -> String {
    format!("pk-soak-{}", std::process::id())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Snapshot {
    fds: i64,
    threads: i64,
    zombies: i64,
    cgroup_dirs: i64,
    survivors: i64,
    rss_kib: i64,
}

impl Snapshot {
    fn take() -> Snapshot {
        Snapshot {
            fds: count_dir("/proc/self/fd"),
            threads: count_dir("/proc/self/task"),
            zombies: zombie_children(),
            cgroup_dirs: cgroup_dirs(),
            survivors: survivors(),
            rss_kib: rss_kib(),
        }
    }

    /// Whether everything but RSS is back at (or below) `base`.
    fn settled(&self, base: &Snapshot) -> bool {
        self.fds <= base.fds
            && self.threads <= base.threads
            && self.zombies <= base.zombies
            && self.cgroup_dirs <= base.cgroup_dirs
            && self.survivors == 0
    }
}

fn count_dir(path: &str) -> i64 {
    std::fs::read_dir(path).map_or(-1, |d| d.count() as i64)
}

fn rss_kib() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(-1)
}

/// (state, ppid) of every process in /proc.
fn processes() -> impl Iterator<Item = (u32, char, u32)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let rest = &stat[stat.rfind(')')? + 2..];
            let mut fields = rest.split_whitespace();
            let state = fields.next()?.chars().next()?;
            let ppid = fields.next()?.parse().ok()?;
            Some((pid, state, ppid))
        })
}

fn zombie_children() -> i64 {
    let me = std::process::id();
    processes()
        .filter(|&(_, state, ppid)| state == 'Z' && ppid == me)
        .count() as i64
}

/// Live processes carrying the soak's token in their environment.
fn survivors() -> i64 {
    let needle = format!("PK_SOAK={}", token());
    processes()
        .filter(|&(_, state, _)| state != 'Z' && state != 'X')
        .filter(|&(pid, _, _)| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|var| var == needle.as_bytes()))
        })
        .count() as i64
}

/// Our processkit roots: `processkit-<pid>-*` next to our own cgroup v2.
fn own_roots() -> Vec<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let Some(mount) = mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
    }) else {
        return Vec::new();
    };
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let Some(own) = cgroup.lines().find_map(|l| l.strip_prefix("0::")) else {
        return Vec::new();
    };
    let prefix = format!("processkit-{}-", std::process::id());
    std::fs::read_dir(mount.join(own.trim_start_matches('/')))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

/// Every directory below our roots (the roots themselves not counted).
fn cgroup_dirs() -> i64 {
    fn below(dir: &std::path::Path) -> i64 {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| 1 + below(&e.path()))
            .sum()
    }
    own_roots().iter().map(|r| below(r)).sum()
}

fn arg_or_env(flag: &str, env: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    let from_args = args
        .iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok());
    from_args
        .or_else(|| std::env::var(env).ok().and_then(|v| v.parse().ok()))
        .unwrap_or(default)
}

fn sh(script: &str) -> Command {
    Command::new("sh")
        .args(["-c", script, "pk-soak"])
        .env("PK_SOAK", token())
}

/// A tiny deterministic generator: cancel points vary without a dependency.
fn next_random(state: &AtomicU64) -> u64 {
    let mut x = state.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x
}

/// One run of kind `kind`; `Err` describes a misbehaviour.
async fn one_run(kind: usize, random: u64) -> Result<(), String> {
    let fail = |what: &str, got: &dyn std::fmt::Debug| Err(format!("{what}: got {got:?}"));
    match kind {
        0 => match sh("echo out; echo err >&2").output_string().await {
            Ok(r) if r.stdout().trim() == "out" && r.stderr().trim() == "err" => Ok(()),
            other => fail("output_string", &other),
        },
        1 => match sh("exit 3").exit_code().await {
            Ok(3) => Ok(()),
            other => fail("exit_code", &other),
        },
        2 => match sh("echo nope >&2; exit 1").run().await {
            Err(_) => Ok(()),
            other => fail("run of a failing command", &other),
        },
        3 => match (sh("exit 0").probe().await, sh("exit 1").probe().await) {
            (Ok(true), Ok(false)) => Ok(()),
            other => fail("probe", &other),
        },
        4 => {
            let got = sh("echo a; echo b; exec sleep 30")
                .first_line(|l| l == "b")
                .await;
            match got {
                Ok(Some(line)) if line == "b" => Ok(()),
                other => fail("first_line", &other),
            }
        }
        5 => {
            let mut run = sh("for i in 1 2 3 4 5; do echo $i; done")
                .start()
                .await
                .map_err(|e| format!("start: {e}"))?;
            let lines: Vec<String> = run.stdout_lines().collect().await;
            let code = run.wait().await;
            match (lines.len(), code) {
                (5, Ok(Some(0))) => Ok(()),
                other => fail("stdout_lines", &other),
            }
        }
        6 => {
            let mut run = sh("echo warming; echo ready; exec sleep 30")
                .start()
                .await
                .map_err(|e| format!("start: {e}"))?;
            let ready = run
                .wait_for_line(|l| l == "ready", Duration::from_secs(20))
                .await;
            drop(run); // the sleep must die with the handle
            match ready {
                Ok(line) if line == "ready" => Ok(()),
                other => fail("wait_for_line", &other),
            }
        }
        7 => {
            let pipeline = sh("printf 'c\\na\\nb\\n'") | sh("sort") | sh("head -n 2");
            match pipeline.run().await {
                Ok(out) if out == "a\nb" => Ok(()),
                other => fail("pipeline", &other),
            }
        }
        8 => {
            let options = ProcessGroupOptions::default().shutdown_grace(GRACE);
            let group = ProcessGroup::with_options(options).map_err(|e| format!("group: {e}"))?;
            let tree = sh("sleep 30 & sleep 30 & wait");
            let _a = group
                .start(&tree)
                .await
                .map_err(|e| format!("start: {e}"))?;
            let _b = group
                .start(&tree)
                .await
                .map_err(|e| format!("start: {e}"))?;
            let ended = if random.is_multiple_of(2) {
                group.terminate_all()
            } else {
                let at = Instant::now();
                let ended = group.shutdown().await;
                SHUTDOWNS.fetch_add(1, Ordering::Relaxed);
                // SIGTERM ends every member at once: waiting much past the
                // grace means the group was not seen empty.
                if at.elapsed() > GRACE + Duration::from_secs(2) {
                    SLOW_SHUTDOWNS.fetch_add(1, Ordering::Relaxed);
                }
                ended
            };
            ended.map_err(|e| format!("group teardown: {e}"))
        }
        9 => match sh("exec sleep 30")
            .timeout(Duration::from_millis(random % 20 + 1))
            .output_string()
            .await
        {
            Ok(r) if r.timed_out() => Ok(()),
            other => fail("timeout", &other),
        },
        10 => {
            let cut = Duration::from_micros(random % 5000);
            let cmd = sh("echo x; exec sleep 30");
            match tokio::time::timeout(cut, cmd.output_string()).await {
                Err(_) => Ok(()), // the dropped future must take its tree along
                other => fail("a verb that should not finish", &other),
            }
        }
        11 => {
            let token = CancellationToken::new();
            let cancel = token.clone();
            let delay = Duration::from_micros(random % 5000);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                cancel.cancel();
            });
            match sh("exec sleep 30").cancel_on(token).output_string().await {
                Err(_) => Ok(()),
                other => fail("a cancelled run", &other),
            }
        }
        12 => {
            let run = sh("sleep 30 & sleep 30 & wait").start().await;
            run.map(drop).map_err(|e| format!("start: {e}"))
        }
        13 => {
            let started = tokio::time::timeout(
                Duration::from_micros(random % 3000),
                sh("exec sleep 30").start(),
            )
            .await;
            drop(started); // cancelled inside start, or a handle dropped at once
            Ok(())
        }
        _ => match sh("cat")
            .stdin(processkit::Stdin::from_string("fed\n"))
            .run()
            .await
        {
            Ok(out) if out == "fed" => Ok(()),
            other => fail("stdin", &other),
        },
    }
}

async fn settle(base: &Snapshot, limit: Duration) -> (Snapshot, Duration) {
    let begun = Instant::now();
    loop {
        let now = Snapshot::take();
        if now.settled(base) || begun.elapsed() > limit {
            return (now, begun.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn print_row(name: &str, s: &Snapshot) {
    println!(
        "{name:<9} fds {:>4}  threads {:>3}  zombies {:>3}  cgroup dirs {:>4}  survivors {:>3}  RSS {:>7} KiB",
        s.fds, s.threads, s.zombies, s.cgroup_dirs, s.survivors, s.rss_kib
    );
}

fn main() {
    let runs = arg_or_env("--runs", "SOAK_RUNS", 10_000);
    let tasks = arg_or_env("--tasks", "SOAK_TASKS", 8).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Idle blocking threads go away quickly, so the thread count can settle.
        .thread_keep_alive(Duration::from_millis(500))
        .build()
        .expect("tokio runtime");
    let failed = runtime.block_on(soak(runs, tasks));
    drop(runtime);
    std::process::exit(i32::from(failed));
}

async fn soak(runs: usize, tasks: usize) -> bool {
    let cold = Snapshot::take();
    // Warm up once per kind: the cgroup root, the spare cgroups, the spawner,
    // reaper and guardian are created lazily and are meant to stay.
    let mut failed = false;
    for kind in 0..KINDS {
        if let Err(e) = one_run(kind, 7).await {
            println!("FAIL: the warm-up run of kind {kind} misbehaved: {e}");
            failed = true;
        }
    }
    let (base, _) = settle(&cold, Duration::from_secs(3)).await;
    let mechanism = ProcessGroup::new().map(|g| g.mechanism().to_string());
    println!(
        "soak: {runs} runs on {tasks} tasks, mechanism {}",
        mechanism.unwrap_or_else(|e| format!("none ({e})"))
    );

    let next = Arc::new(AtomicUsize::new(0));
    let random = Arc::new(AtomicU64::new(0x5eed));
    let errors: Arc<Mutex<HashMap<usize, Vec<String>>>> = Arc::default();
    let timings: Arc<Mutex<[(u32, Duration, Duration); KINDS]>> = Arc::default();
    let begun = Instant::now();
    let workers: Vec<_> = (0..tasks)
        .map(|_| {
            let (next, random) = (next.clone(), random.clone());
            let (errors, timings) = (errors.clone(), timings.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= runs {
                        return;
                    }
                    let r = next_random(&random);
                    let kind = (r as usize ^ i) % KINDS;
                    let at = Instant::now();
                    let outcome = one_run(kind, r >> 8).await;
                    let took = at.elapsed();
                    let (n, total, max) = &mut timings.lock().unwrap()[kind];
                    (*n, *total, *max) = (*n + 1, *total + took, (*max).max(took));
                    if let Err(e) = outcome {
                        errors.lock().unwrap().entry(kind).or_default().push(e);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        if let Err(e) = worker.await {
            errors
                .lock()
                .unwrap()
                .entry(usize::MAX)
                .or_default()
                .push(e.to_string());
        }
    }
    let elapsed = begun.elapsed();
    let right_after = Snapshot::take();
    let (after, took) = settle(&base, Duration::from_secs(10)).await;

    println!(
        "{runs} runs in {:.1} s: {:.0} runs/s",
        elapsed.as_secs_f64(),
        runs as f64 / elapsed.as_secs_f64()
    );
    print_row("cold", &cold);
    print_row("baseline", &base);
    print_row("at end", &right_after);
    print_row("settled", &after);
    println!("settled within {:.1} s", took.as_secs_f64());
    for (kind, (n, total, max)) in timings.lock().unwrap().iter().enumerate() {
        let mean = total.as_secs_f64() * 1e3 / f64::from((*n).max(1));
        println!(
            "kind {kind:>2} {:<26} {n:>5} runs, mean {mean:>7.1} ms, max {:>7.1} ms",
            KIND_NAMES[kind],
            max.as_secs_f64() * 1e3
        );
    }

    println!(
        "group shutdowns slower than grace ({} s) + 2 s: {} of {}",
        GRACE.as_secs(),
        SLOW_SHUTDOWNS.load(Ordering::Relaxed),
        SHUTDOWNS.load(Ordering::Relaxed)
    );
    let errors = errors.lock().unwrap();
    for (kind, list) in errors.iter() {
        failed = true;
        println!(
            "FAIL: {} misbehaving runs of kind {kind}, first: {}",
            list.len(),
            list[0]
        );
    }
    let checks = [
        ("open fds", after.fds, base.fds),
        ("threads", after.threads, base.threads),
        ("zombie children", after.zombies, base.zombies),
        (
            "processkit cgroup dirs",
            after.cgroup_dirs,
            base.cgroup_dirs,
        ),
        ("surviving processes", after.survivors, 0),
    ];
    for (what, now, then) in checks {
        if now > then {
            failed = true;
            println!("FAIL: {what} did not return to baseline: {then} -> {now}");
        }
    }
    let growth = after.rss_kib - base.rss_kib;
    if growth > RSS_SLACK_KIB {
        failed = true;
        println!("FAIL: RSS grew by {growth} KiB (limit {RSS_SLACK_KIB} KiB)");
    }
    println!("{}", if failed { "soak: FAILED" } else { "soak: ok" });
    failed
}
