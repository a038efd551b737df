//! A big plain capture moves to a reader thread of its own (Linux): whoever
//! takes the stream over from it gets every byte once, in order, and the
//! thread never outlives what it reads for, even with the pipe still open.
#![cfg(unix)]

use processkit::StreamExt;
use tokio::io::AsyncReadExt;

use crate::common::sh;

/// 8.1 MB of numbered lines (past the point where the thread takes over),
/// then a mark on stderr, then more lines after a pause.
const SCRIPT: &str = "seq 1200000; echo mark >&2; sleep 0.3; seq 1200001 1300000";
const LINES: usize = 1_300_000;

fn seq_text(n: usize) -> String {
    (1..=n).map(|i| format!("{i}\n")).collect()
}

/// Starts `script` and streams stderr up to its mark, which drains stdout in
/// the background meanwhile.
async fn drained_past_the_mark(script: &str) -> processkit::RunningProcess {
    let mut run = sh(script).start().await.unwrap();
    let mut errs = run.stderr_lines();
    assert_eq!(errs.next().await.as_deref(), Some("mark"));
    drop(errs);
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_stream_takes_a_big_capture_over_without_a_gap() {
    let mut run = drained_past_the_mark(SCRIPT).await;
    let lines: Vec<String> = run.stdout_lines().collect().await;
    assert_eq!(lines.len(), LINES);
    let wrong = lines
        .iter()
        .enumerate()
        .find(|(i, line)| **line != (i + 1).to_string());
    assert_eq!(wrong, None, "lines lost, repeated or out of order");
    assert_eq!(run.finish_streamed().await.unwrap().0, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_reader_takes_a_big_capture_over_byte_for_byte() {
    let mut run = drained_past_the_mark(SCRIPT).await;
    let mut bytes = Vec::new();
    let mut reader = run.stdout_reader().expect("stdout not taken yet");
    reader.read_to_end(&mut bytes).await.unwrap();
    assert!(bytes == seq_text(LINES).as_bytes(), "captured bytes differ");
    assert_eq!(run.wait().await.unwrap(), Some(0));
}

#[tokio::test(flavor = "current_thread")]
async fn a_big_capture_is_whole_on_a_current_thread_runtime() {
    let result = sh(SCRIPT).output_bytes().await.unwrap();
    assert!(result.stdout() == seq_text(LINES).as_bytes());
    assert_eq!(result.stderr(), b"mark\n");
}

/// Our reader threads (`processkit-drain`, cut to 15 bytes by the kernel).
#[cfg(target_os = "linux")]
fn drain_threads() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|comm| comm.trim_end() == "processkit-drai")
        })
        .count()
}

/// Runs in a re-executed copy of this binary, alone: other tests' captures
/// would have reader threads of their own.
#[cfg(target_os = "linux")]
#[test]
fn the_reader_thread_ends_with_its_runtime_while_the_pipe_stays_open() {
    const TEST: &str = "the_reader_thread_ends_with_its_runtime_while_the_pipe_stays_open";
    const IN_CHILD: &str = "PK_READER_THREAD_CHILD";
    use crate::common::eventually;
    use std::time::Duration;
    if std::env::var_os(IN_CHILD).is_none() {
        crate::common::run_alone(TEST, &[(IN_CHILD, "1")]);
        return;
    }
    if std::env::var("PROCESSKIT_SPAWNER").as_deref() == Ok("std") {
        eprintln!("the std spawner's pipes are read through tokio: skipped");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The child keeps its stdout open after the big write.
    let run = runtime.block_on(drained_past_the_mark(
        "seq 1200000; echo mark >&2; exec sleep 30",
    ));
    let started = eventually(Duration::from_secs(20), || drain_threads() == 1);
    assert!(started, "no reader thread took the big capture over");
    drop(runtime);
    assert!(
        eventually(Duration::from_secs(10), || drain_threads() == 0),
        "the reader thread outlived its runtime"
    );
    drop(run);
}
