//! Reliability of the run layer: deadlines judged at the exit, stdin feeders
//! that end with their run, bounded line handlers, far deadlines, `first_line`
//! with a handler, pipeline profiles and stderr streams, and runtimes
//! without a time driver.
#![cfg(target_os = "linux")]
// Some imports serve only the tests of optional features.
#![cfg_attr(
    not(all(feature = "stats", feature = "process-control")),
    allow(unused_imports)
)]

use crate::common;

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use common::*;
use processkit::{
    Command, Error, JobRunner, MAX_LINE, ProcessGroup, ProcessRunnerExt, Stdin, Stream, StreamExt,
};

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Lines an `on_*_line` handler received, shared with the test.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn handler(&self) -> impl Fn(&str) + Send + Sync + 'static {
        let seen = self.0.clone();
        move |line: &str| seen.lock().unwrap().push(line.to_owned())
    }

    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

// ---- an exit observed after the deadline is a timeout ----

#[test]
fn an_exit_seen_only_after_the_deadline_is_a_timeout() {
    current_thread_runtime().block_on(async {
        let mut run = Command::new("true")
            .timeout(Duration::from_millis(100))
            .start()
            .await
            .unwrap();
        // The only worker is blocked past the deadline: the watchdog cannot
        // run, while the child exits 0 long before anyone looks.
        std::thread::sleep(Duration::from_millis(400));
        let code = run.wait().await.unwrap();
        assert!(
            run.timed_out(),
            "exit seen after the deadline, code {code:?}"
        );
        assert_eq!(code, None, "a timed-out run reports no exit code");
        let (code, _) = run.finish_streamed().await.unwrap();
        assert_eq!(code, None);
    });
}

#[test]
fn a_pipeline_exit_seen_only_after_its_deadline_is_a_timeout() {
    current_thread_runtime().block_on(async {
        let chain = (Command::new("echo").arg("x") | Command::new("cat"))
            .timeout(Duration::from_millis(100));
        let run = chain.start().await.unwrap();
        std::thread::sleep(Duration::from_millis(400));
        let (code, _) = run.finish_streamed().await.unwrap();
        assert_eq!(code, None, "the chain's exit came after its deadline");
    });
}

#[test]
fn an_exit_before_the_deadline_is_not_a_timeout_even_if_seen_late() {
    current_thread_runtime().block_on(async {
        let mut run = Command::new("true")
            .timeout(Duration::from_secs(600))
            .start()
            .await
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(run.wait().await.unwrap(), Some(0));
        assert!(!run.timed_out());
    });
}

// ---- the stdin feeder ends with its run ----

static STREAMS_DROPPED: AtomicUsize = AtomicUsize::new(0);

/// A line stream that never yields, and counts its drops.
struct Idle;

impl Stream for Idle {
    type Item = String;
    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<String>> {
        Poll::Pending
    }
}

impl Drop for Idle {
    fn drop(&mut self) {
        STREAMS_DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

const FEEDER_TEST: &str = "a_lines_feeder_ends_with_its_run_and_drops_the_stream";
const FEEDER_CHILD: &str = "PK_RELIABILITY_FEEDER_CHILD";

/// Counting fds needs a process where no other test opens any: the check
/// runs in a re-executed copy of this test binary.
#[test]
fn a_lines_feeder_ends_with_its_run_and_drops_the_stream() {
    if std::env::var_os(FEEDER_CHILD).is_some() {
        return feeder_runs_in_child();
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &crate::common::test_named(FEEDER_TEST),
            "--nocapture",
            "--test-threads=1",
        ])
        .env(FEEDER_CHILD, "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}\n{errors}");
    assert!(text.contains("feeders ended"), "{text}\n{errors}");
}

fn feeder_runs_in_child() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // Warm up: the first run creates process-wide state (spawner, roots).
        let warm = Command::new("true").stdin(Stdin::from_lines(Idle));
        warm.output_string().await.unwrap();
        eventually_async(Duration::from_secs(5), || {
            STREAMS_DROPPED.load(Ordering::SeqCst) == 1
        })
        .await;
        let base = STREAMS_DROPPED.load(Ordering::SeqCst);
        let before = open_fds();
        for _ in 0..20 {
            let result = Command::new("true")
                .stdin(Stdin::from_lines(Idle))
                .output_string()
                .await
                .unwrap();
            assert_eq!(result.code(), Some(0));
        }
        let dropped = eventually_async(Duration::from_secs(10), || {
            STREAMS_DROPPED.load(Ordering::SeqCst) == base + 20
        })
        .await;
        let settled = eventually_async(Duration::from_secs(10), || open_fds() <= before).await;
        let (dropped_n, after) = (STREAMS_DROPPED.load(Ordering::SeqCst) - base, open_fds());
        assert!(
            dropped && settled,
            "{dropped_n} of 20 line streams were dropped; open fds went from {before} to {after}"
        );
        println!("feeders ended: {dropped_n} streams dropped, fds {before} -> {after}");
    });
}

// ---- line handlers are bounded ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_handler_gets_a_newline_free_flood_in_max_line_pieces() {
    const TOTAL: usize = 32 * 1024 * 1024;
    let longest = Arc::new(AtomicUsize::new(0));
    let (items, bytes) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let handler = {
        let (longest, items, bytes) = (longest.clone(), items.clone(), bytes.clone());
        move |line: &str| {
            longest.fetch_max(line.len(), Ordering::SeqCst);
            items.fetch_add(1, Ordering::SeqCst);
            bytes.fetch_add(line.len(), Ordering::SeqCst);
        }
    };
    let script = format!("head -c {TOTAL} /dev/zero | tr '\\0' x");
    let result = Command::new("sh")
        .args(["-c", &script])
        .on_stdout_line(handler.clone())
        .output_bytes()
        .await
        .unwrap();
    assert_eq!(result.code(), Some(0));
    let longest = longest.load(Ordering::SeqCst);
    assert!(longest <= MAX_LINE, "the handler got a {longest}-byte line");
    assert_eq!(
        bytes.load(Ordering::SeqCst),
        TOTAL,
        "every byte reached the handler"
    );
    assert_eq!(items.load(Ordering::SeqCst), TOTAL / MAX_LINE);
}

#[tokio::test]
async fn a_stderr_handler_cuts_long_lines_like_the_line_reader() {
    let seen = Seen::default();
    // 2.5 MiB, a newline, then a short unterminated tail, all on stderr.
    let script = format!(
        "{{ head -c {} /dev/zero | tr '\\0' y; echo; printf 'tail\\r\\nend'; }} >&2",
        MAX_LINE * 5 / 2
    );
    let result = Command::new("sh")
        .args(["-c", &script])
        .on_stderr_line(seen.handler())
        .output_bytes()
        .await
        .unwrap();
    assert_eq!(result.code(), Some(0));
    let lens: Vec<usize> = seen.lines().iter().map(String::len).collect();
    assert_eq!(lens, [MAX_LINE, MAX_LINE, MAX_LINE / 2, 4, 3]);
    assert_eq!(seen.lines()[3..], ["tail", "end"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_line_handler_still_sees_every_line() {
    let handled = Arc::new(AtomicUsize::new(0));
    let counter = handled.clone();
    // About 1.2 s of handling, long after the child exited.
    let result = Command::new("seq")
        .arg("600")
        .on_stdout_line(move |_| {
            std::thread::sleep(Duration::from_millis(2));
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .output_string()
        .await
        .unwrap();
    assert_eq!(result.code(), Some(0));
    assert_eq!(
        handled.load(Ordering::SeqCst),
        600,
        "lines never reached the handler"
    );
    assert_eq!(result.stdout().lines().count(), 600);
}

// ---- a deadline too far away is none ----

#[tokio::test]
async fn duration_max_is_no_deadline_for_a_command() {
    let result = Command::new("true")
        .timeout(Duration::MAX)
        .output_string()
        .await
        .unwrap();
    assert_eq!(result.code(), Some(0));
    assert!(!result.timed_out());
}

#[tokio::test]
async fn duration_max_is_no_deadline_for_a_pipeline() {
    let chain = (Command::new("echo").arg("hi") | Command::new("cat")).timeout(Duration::MAX);
    assert_eq!(chain.run().await.unwrap(), "hi");
}

#[cfg(feature = "stats")]
#[tokio::test]
async fn duration_max_is_a_valid_sampling_interval() {
    let token = token("far-sample");
    let _cleanup = Cleanup::token(&token);
    let group = ProcessGroup::new().unwrap();
    let _run = group
        .start(&Command::new("sh").args(["-c", &format!("sleep 600; : {token}")]))
        .await
        .unwrap();
    let mut samples = group.sample_stats(Duration::MAX);
    let first = tokio::time::timeout(Duration::from_secs(30), samples.next()).await;
    assert!(first.expect("the first sample comes at once").is_some());
    // The next sample is a year away: polling it once must not panic.
    let second = tokio::time::timeout(Duration::from_millis(50), samples.next()).await;
    assert!(second.is_err());
    group.shutdown().await.ok();
}

#[cfg(feature = "stats")]
#[tokio::test]
async fn duration_max_is_a_valid_profile_interval() {
    let run = Command::new("true").start().await.unwrap();
    let profile = run.profile(Duration::MAX).await.unwrap();
    assert_eq!(profile.exit_code, Some(0));
}

// ---- first_line with a line handler ----

#[tokio::test]
async fn first_line_finds_its_line_with_a_stdout_handler() {
    let seen = Seen::default();
    let cmd = Command::new("sh")
        .args(["-c", "echo a; echo b; echo c"])
        .on_stdout_line(seen.handler());
    let found = cmd.first_line(|l| l == "b").await.unwrap();
    assert_eq!(found.as_deref(), Some("b"));
    let lines = seen.lines();
    assert!(lines.starts_with(&["a".into(), "b".into()]), "{lines:?}");
    assert!(
        lines.len() <= 3,
        "a line reached the handler twice: {lines:?}"
    );
}

#[tokio::test]
async fn first_line_without_a_match_hands_every_line_to_the_handler_once() {
    let seen = Seen::default();
    let cmd = Command::new("seq")
        .args(["1", "5000"])
        .on_stdout_line(seen.handler());
    assert_eq!(cmd.first_line(|_| false).await.unwrap(), None);
    let expected: Vec<String> = (1..=5000).map(|i| i.to_string()).collect();
    assert!(seen.lines() == expected, "lines lost or repeated");
}

#[tokio::test]
async fn first_line_with_a_handler_through_a_runner_and_a_pipeline() {
    let seen = Seen::default();
    let cmd = Command::new("sh")
        .args(["-c", "echo a; echo b; echo c"])
        .on_stdout_line(seen.handler());
    let found = JobRunner::new()
        .first_line(&cmd, |l| l == "b")
        .await
        .unwrap();
    assert_eq!(found.as_deref(), Some("b"));
    assert_eq!(seen.lines()[..2], ["a", "b"]);

    let seen = Seen::default();
    let chain = Command::new("sh").args(["-c", "echo a; echo b; echo c"])
        | Command::new("cat").on_stdout_line(seen.handler());
    let found = chain.first_line(|l| l == "b").await.unwrap();
    assert_eq!(found.as_deref(), Some("b"));
    assert_eq!(seen.lines()[..2], ["a", "b"]);
}

// ---- a pipeline's profile covers every stage ----

#[cfg(feature = "stats")]
#[tokio::test]
async fn a_pipeline_profile_counts_the_cpu_of_every_stage() {
    // A busy shell loop feeding an idle `cat`: nearly all the CPU is the first stage's.
    let burn = "i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done; echo done";
    let chain = Command::new("sh").args(["-c", burn]) | Command::new("cat");
    let profile = chain
        .start()
        .await
        .unwrap()
        .profile(Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(profile.exit_code, Some(0));
    assert_eq!(profile.output.stdout().trim(), "done");
    let cpu = profile.cpu_time.expect("CPU time is measured on Linux");
    assert!(
        cpu > Duration::from_millis(100),
        "the chain used {cpu:?} of CPU"
    );
}

// ---- stderr streams on a pipeline ----

#[tokio::test]
async fn a_pipeline_streams_the_stderr_of_its_stages() {
    let chain = Command::new("sh").args(["-c", "echo first-err >&2; echo out"])
        | Command::new("sh").args(["-c", "cat >/dev/null; echo last-err >&2; exit 3"]);
    let mut run = chain.start().await.unwrap();
    let lines: Vec<String> =
        tokio::time::timeout(Duration::from_secs(30), run.stderr_lines().collect())
            .await
            .expect("the stream ends when every stage's stderr closes");
    assert!(lines.contains(&"first-err".to_owned()), "{lines:?}");
    assert!(lines.contains(&"last-err".to_owned()), "{lines:?}");
    let (code, rest) = run.finish_streamed().await.unwrap();
    assert_eq!(code, Some(3), "the failing last stage is attributed");
    assert_eq!(rest, "", "streamed lines are not repeated");
}

#[tokio::test]
async fn a_pipeline_that_is_not_streamed_still_reports_the_attributed_stderr() {
    let chain = Command::new("sh").args(["-c", "echo boom >&2; exit 2"])
        | Command::new("sh").args(["-c", "cat; echo fine >&2"]);
    let run = chain.start().await.unwrap();
    let (code, stderr) = run.finish_streamed().await.unwrap();
    assert_eq!(code, Some(2));
    assert_eq!(stderr.trim(), "boom");
}

// ---- a runtime without a time driver ----

#[test]
fn a_runtime_without_timers_gets_a_typed_error_and_nothing_runs() {
    let token = token("no-timers");
    let _cleanup = Cleanup::token(&token);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let script = format!("sleep 600; : {token}");
    let cmd = Command::new("sh").args(["-c", &script]);
    let outcomes = runtime.block_on(async {
        vec![
            cmd.output_string().await.map(|_| ()),
            cmd.start().await.map(|_| ()),
            cmd.clone()
                .timeout(Duration::from_secs(5))
                .run()
                .await
                .map(|_| ()),
            (cmd.clone() | Command::new("cat"))
                .start()
                .await
                .map(|_| ()),
        ]
    });
    for outcome in outcomes {
        match outcome {
            Err(Error::Io { source, .. }) => {
                assert!(source.to_string().contains("time driver"), "{source}")
            }
            other => panic!("expected a typed error, got {other:?}"),
        }
    }
    assert!(pids_with_token(&token).is_empty(), "a child was started");
}

// ---- a runtime without an IO driver ----

#[test]
fn waiting_on_a_runtime_without_io_is_a_typed_error_and_the_handle_still_works() {
    let io = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bare = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut run = io
        .block_on(Command::new("sh").args(["-c", "sleep 0.2; exit 3"]).start())
        .unwrap();
    let error = bare
        .block_on(run.wait())
        .expect_err("waited on a runtime without an IO driver");
    assert!(error.to_string().contains("enable_io"), "{error}");
    // The child is still ours and still waitable where there is a driver.
    assert_eq!(io.block_on(run.wait()).unwrap(), Some(3));
}
