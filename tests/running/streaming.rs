//! Line streaming on a running child: lines arrive while it runs, line
//! endings, bounded long lines, stderr streaming, and that the run's timeout,
//! cancellation and a dropped handle all end the stream and the whole tree.
// These tests drive Unix programs (sh, sleep, seq, ...); tests/windows/
// covers the same ground with Windows programs.
#![cfg(unix)]

use crate::common;

use std::time::Duration;

use common::{
    Cleanup, KillPidOnDrop, TempDir, Tree, is_alive, pids_with_token, sh, token, wait_gone,
};
use processkit::{Command, JobRunner, MAX_LINE, Mechanism, StreamExt};

/// Far longer than any of these runs needs; only reached if a pipe deadlocks.
const HANG_GUARD: Duration = Duration::from_secs(60);

#[tokio::test]
async fn first_line_arrives_while_the_child_still_runs() {
    let scratch = TempDir::new("first-line");
    let flag = scratch.file("go");
    // The child cannot exit (or write its second line) before we create the flag.
    let script = format!(
        "echo first; echo warn >&2; while [ ! -e '{flag}' ]; do sleep 0.02; done; echo second"
    );
    let mut run = sh(&script).start().await.unwrap();
    let pid = run.id().expect("running child has a pid");
    let _guard = KillPidOnDrop(Some(pid));

    let mut lines = run.stdout_lines();
    assert_eq!(lines.next().await.as_deref(), Some("first"));
    assert!(
        is_alive(pid),
        "the first line must arrive before the child exits"
    );

    std::fs::write(&flag, b"").unwrap();
    assert_eq!(lines.next().await.as_deref(), Some("second"));
    assert_eq!(lines.next().await, None);
    assert_eq!(lines.next().await, None, "an ended stream stays ended");
    let (code, stderr) = run.finish_streamed().await.unwrap();
    assert_eq!(code, Some(0));
    assert_eq!(stderr, "warn\n");
}

#[tokio::test]
async fn crlf_and_an_unterminated_last_line() {
    let mut run = sh(r"printf 'a\r\nb\n\r\nlast'").start().await.unwrap();
    let lines: Vec<String> = run.stdout_lines().collect().await;
    assert_eq!(lines, ["a", "b", "", "last"]);
    assert_eq!(run.finish_streamed().await.unwrap().0, Some(0));
}

#[tokio::test]
async fn an_enormous_line_arrives_in_bounded_pieces() {
    let len = 2 * MAX_LINE + MAX_LINE / 2;
    let script = format!("head -c {len} /dev/zero | tr '\\0' x; echo; echo tail");
    let mut run = sh(&script).start().await.unwrap();
    let lines: Vec<String> = run.stdout_lines().collect().await;
    let sizes: Vec<usize> = lines.iter().map(String::len).collect();
    assert_eq!(sizes, [MAX_LINE, MAX_LINE, MAX_LINE / 2, 4]);
    assert_eq!(lines[3], "tail");
    assert!(lines[..3].iter().all(|l| l.bytes().all(|b| b == b'x')));
}

#[tokio::test]
async fn the_command_timeout_ends_the_stream_and_the_tree() {
    let tok = token("stream-timeout");
    let _cleanup = Cleanup::token(&tok);
    let script = "while :; do echo tick; sleep 0.05; done";
    let mut run = sh(script)
        .arg(&tok)
        .timeout(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    let mut lines = run.stdout_lines();
    let mut ticks = 0;
    while let Some(line) = lines.next().await {
        assert_eq!(line, "tick");
        ticks += 1;
    }
    assert!(ticks > 0, "the child wrote before its deadline");
    assert!(run.timed_out());
    let (code, _stderr) = run.finish_streamed().await.unwrap();
    assert_eq!(code, None, "a timed-out run has no exit code");
    assert!(
        wait_gone(&tok).await,
        "timeout left {:?}",
        pids_with_token(&tok)
    );
}

#[tokio::test]
async fn the_command_timeout_ends_a_stream_held_open_by_grandchildren() {
    // Every level of the tree shares stdout, so the stream can only end once
    // the whole tree is dead.
    let tree = Tree::new("stream-timeout-tree", 3);
    let cmd = tree.command().timeout(Duration::from_secs(1));
    let mut run = cmd.start().await.unwrap();
    let mut lines: Vec<String> = run.stdout_lines().collect().await;
    lines.sort();
    assert_eq!(lines, ["ready 1", "ready 2", "ready 3"]);
    assert!(run.timed_out());
    tree.assert_gone();
}

async fn drop_mid_stream_leaves_nothing(runner: JobRunner, label: &str) {
    let tree = Tree::new(label, 3);
    let mut run = runner.start(&tree.command()).await.unwrap();
    let mut lines = run.stdout_lines();
    for _ in 0..3 {
        let line = lines.next().await.expect("a ready line from each level");
        assert!(line.starts_with("ready "), "{line}");
    }
    let pids = tree.started().await;
    assert!(pids.iter().all(|&p| is_alive(p)));
    drop(run);
    tree.assert_gone();
}

#[tokio::test]
async fn dropping_the_handle_mid_stream_kills_the_tree() {
    drop_mid_stream_leaves_nothing(JobRunner::new(), "stream-drop").await;
}

#[tokio::test]
async fn dropping_the_handle_mid_stream_kills_the_tree_under_process_groups() {
    let runner = JobRunner::with_mechanism(Mechanism::ProcessGroup);
    drop_mid_stream_leaves_nothing(runner, "stream-drop-pg").await;
}

#[tokio::test]
async fn stderr_streams_while_a_large_stdout_is_drained() {
    // 1 MB of stdout first: if nobody drained stdout, the child would block
    // before ever writing to stderr.
    let script = "yes x | head -c 1000000; echo e1 >&2; echo e2 >&2; echo out-tail";
    let mut run = sh(script).start().await.unwrap();
    let errors: Vec<String> = run.stderr_lines().collect().await;
    assert_eq!(errors, ["e1", "e2"]);
    let out: Vec<String> = run.stdout_lines().collect().await;
    assert_eq!(out.len(), 500_001, "all of stdout is still there");
    assert!(out[..500_000].iter().all(|l| l == "x"));
    assert_eq!(out[500_000], "out-tail");
    let (code, stderr) = run.finish_streamed().await.unwrap();
    assert_eq!(code, Some(0));
    assert_eq!(stderr, "", "streamed stderr is not repeated");
}

#[tokio::test]
async fn stderr_stream_starts_with_what_was_captured_before() {
    let scratch = TempDir::new("stderr-early");
    let flag = scratch.file("go");
    let script = format!(
        "echo early >&2; echo ready; while [ ! -e '{flag}' ]; do sleep 0.02; done; echo late >&2"
    );
    let mut run = sh(&script).start().await.unwrap();
    let _guard = KillPidOnDrop(run.id());
    run.wait_for_line(|l| l == "ready", Duration::from_secs(30))
        .await
        .unwrap();
    let mut errors = run.stderr_lines();
    assert_eq!(errors.next().await.as_deref(), Some("early"));
    std::fs::write(&flag, b"").unwrap();
    assert_eq!(errors.next().await.as_deref(), Some("late"));
    assert_eq!(errors.next().await, None);
    assert_eq!(
        run.finish_streamed().await.unwrap(),
        (Some(0), String::new())
    );
}

#[tokio::test]
async fn finish_streamed_reports_no_code_for_a_killed_run() {
    let mut run = Command::new("sleep").arg("30").start().await.unwrap();
    run.kill().unwrap();
    assert_eq!(run.stdout_lines().next().await, None);
    assert_eq!(run.finish_streamed().await.unwrap().0, None);
}

#[tokio::test]
async fn finish_streamed_reports_a_non_zero_exit_as_data() {
    let mut run = sh("echo out; echo bad >&2; exit 3").start().await.unwrap();
    let lines: Vec<String> = run.stdout_lines().collect().await;
    assert_eq!(lines, ["out"]);
    assert_eq!(
        run.finish_streamed().await.unwrap(),
        (Some(3), "bad\n".to_owned())
    );
}

#[tokio::test]
async fn waiting_after_a_partial_stderr_stream_keeps_stderr_drained() {
    // After the first stderr line nobody streams stderr any more; 1 MB more
    // of it must not block the child while we wait for its exit.
    let script = "echo first >&2; yes e | head -c 1000000 >&2; echo out";
    let mut run = sh(script).start().await.unwrap();
    let _guard = KillPidOnDrop(run.id());
    assert_eq!(run.stderr_lines().next().await.as_deref(), Some("first"));
    let exit = tokio::time::timeout(HANG_GUARD, run.wait()).await;
    assert_eq!(
        exit.expect("a full stderr pipe blocked the child").unwrap(),
        Some(0)
    );
    let (code, stderr) = run.finish_streamed().await.unwrap();
    assert_eq!(code, Some(0));
    assert_eq!(stderr.len(), 1_000_000);
}

#[tokio::test]
async fn waiting_after_a_partial_stdout_stream_with_a_handler_keeps_stdout_drained() {
    let handled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&handled);
    let script = "echo first; yes o | head -c 1000000";
    let mut run = sh(script)
        .on_stdout_line(move |_| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })
        .start()
        .await
        .unwrap();
    let _guard = KillPidOnDrop(run.id());
    assert_eq!(run.stdout_lines().next().await.as_deref(), Some("first"));
    let exit = tokio::time::timeout(HANG_GUARD, run.wait()).await;
    assert_eq!(
        exit.expect("a full stdout pipe blocked the child").unwrap(),
        Some(0)
    );
}

#[tokio::test]
async fn probing_stdout_after_a_partial_stderr_stream_keeps_stderr_drained() {
    let script = "echo first >&2; yes e | head -c 1000000 >&2; echo ready; exec sleep 30";
    let mut run = sh(script).start().await.unwrap();
    let _guard = KillPidOnDrop(run.id());
    assert_eq!(run.stderr_lines().next().await.as_deref(), Some("first"));
    let line = run.wait_for_line(|l| l == "ready", HANG_GUARD).await;
    assert_eq!(line.expect("a full stderr pipe blocked the child"), "ready");
}

#[tokio::test]
async fn streams_probes_and_races_run_inside_spawned_tasks() {
    // Everything here must be `Send` to move into `tokio::spawn`.
    let task = tokio::spawn(async {
        let mut run = sh("echo ready; echo a; echo b").start().await?;
        run.wait_for_line(|l| l == "ready", HANG_GUARD).await?;
        run.wait_for(|| async { true }, HANG_GUARD).await?;
        let lines: Vec<String> = run.stdout_lines().collect().await;
        let mut other = Command::new("true").start().await?;
        let raced = processkit::wait_any(&mut [&mut run, &mut other]).await?;
        let finished = run.finish_streamed().await?;
        Ok::<_, processkit::Error>((lines, raced.1, finished))
    });
    let (lines, code, finished) = task.await.unwrap().unwrap();
    assert_eq!(lines, ["a", "b"]);
    assert_eq!(code, Some(0));
    assert_eq!(finished, (Some(0), String::new()));
}
