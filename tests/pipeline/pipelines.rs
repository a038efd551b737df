//! Shell-free pipelines: wiring, pipefail attribution, stdin, chain timeouts,
//! throughput-sized streams and teardown when a stage cannot start.
// These tests drive Unix programs (sh, sleep, seq, ...); tests/windows/
// covers the same ground with Windows programs.
#![cfg(unix)]

use crate::common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Cleanup, pids_with_token_or_zombie, sh};
use processkit::{Command, Error, Stdin};

/// A number no other process on the host has in its argv: used as the
/// fractional part of `sleep` durations so the stages can be found in /proc.
fn unique_token() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}{:09}", std::process::id(), nanos)
}

/// Polls (bounded) until the scan for `token` (zombies included) satisfies
/// `done`; returns the last scan.
fn poll_until(token: &str, done: impl Fn(&[u32]) -> bool) -> Vec<u32> {
    let mut pids = pids_with_token_or_zombie(token);
    for _ in 0..200 {
        if done(&pids) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        pids = pids_with_token_or_zombie(token);
    }
    pids
}

#[tokio::test]
async fn three_stages_count_through_native_pipes() {
    let out = Command::new("seq")
        .args(["1", "1000"])
        .pipe(Command::new("grep").arg("7"))
        .pipe(Command::new("wc").arg("-l"))
        .run()
        .await
        .unwrap();
    // 1..=1000 minus the 729 numbers without a 7.
    assert_eq!(out, "271");
}

#[tokio::test]
async fn bitor_is_sugar_for_pipe() {
    let sugar =
        (Command::new("seq").arg("5") | Command::new("tac") | Command::new("head").arg("-2"))
            .run()
            .await
            .unwrap();
    let method = Command::new("seq")
        .arg("5")
        .pipe(Command::new("tac"))
        .pipe(Command::new("head").arg("-2"))
        .run()
        .await
        .unwrap();
    assert_eq!(sugar, "5\n4");
    assert_eq!(sugar, method);
}

#[tokio::test]
async fn pipefail_reports_the_first_failing_stage() {
    let result = (sh("echo first-err >&2; exit 3") | Command::new("false") | Command::new("cat"))
        .output_string()
        .await
        .unwrap();
    assert_eq!(result.program(), "sh");
    assert_eq!(result.code(), Some(3));
    assert_eq!(result.stderr().trim(), "first-err");

    let result = (Command::new("false") | sh("cat >/dev/null; echo later-err >&2; exit 3"))
        .output_string()
        .await
        .unwrap();
    assert_eq!(result.program(), "false");
    assert_eq!(result.code(), Some(1));
    assert_eq!(
        result.stderr(),
        "",
        "only the blamed stage's stderr is reported"
    );
}

#[tokio::test]
async fn pipefail_skips_clean_stages_and_reports_a_middle_failure() {
    let chain = sh("echo up; echo up-err >&2")
        | sh("cat >/dev/null; echo mid-err >&2; exit 5")
        | Command::new("cat");
    let result = chain.output_string().await.unwrap();
    assert_eq!((result.program(), result.code()), ("sh", Some(5)));
    assert_eq!(result.stderr().trim(), "mid-err");
    match chain.run().await {
        Err(Error::NonZeroExit {
            program,
            code,
            stderr_tail,
        }) => {
            assert_eq!((program.as_str(), code), ("sh", 5));
            assert!(stderr_tail.contains("mid-err"), "{stderr_tail:?}");
        }
        other => panic!("expected NonZeroExit, got {other:?}"),
    }
    assert_eq!(chain.exit_code().await.unwrap(), 5);
}

#[tokio::test]
async fn all_success_reports_the_last_stage() {
    let result = (sh("echo hi; echo noise >&2") | Command::new("cat"))
        .output_string()
        .await
        .unwrap();
    assert!(result.is_success());
    assert_eq!(result.program(), "cat");
    assert_eq!(result.stdout(), "hi\n");
    assert_eq!(result.stderr(), "", "stderr comes from the last stage");
}

#[tokio::test]
async fn a_checked_failure_wins_over_an_unchecked_one() {
    let result = (Command::new("false").unchecked() | sh("exit 6") | Command::new("cat"))
        .output_string()
        .await
        .unwrap();
    assert_eq!((result.program(), result.code()), ("sh", Some(6)));

    let out = (Command::new("false").unchecked() | sh("echo fine"))
        .run()
        .await
        .unwrap();
    assert_eq!(out, "fine");
}

#[tokio::test]
async fn unchecked_producer_with_head_succeeds() {
    let first = (Command::new("yes").unchecked() | Command::new("head").arg("-1"))
        .run()
        .await
        .unwrap();
    assert_eq!(first, "y");

    // Checked, the producer's SIGPIPE death is the outcome, as with pipefail.
    let checked = (Command::new("yes") | Command::new("head").arg("-1"))
        .run()
        .await;
    match checked {
        Err(Error::Signalled { program, signal }) => {
            assert_eq!(program, "yes");
            assert_eq!(signal, libc_sigpipe());
        }
        other => panic!("expected the producer's SIGPIPE, got {other:?}"),
    }
}

fn libc_sigpipe() -> i32 {
    13
}

#[tokio::test]
async fn stdin_feeds_the_first_stage() {
    let out = Command::new("sort")
        .stdin(Stdin::from_string("pear\napple\nfig\n"))
        .pipe(Command::new("head").arg("-2"))
        .run()
        .await
        .unwrap();
    assert_eq!(out, "apple\nfig");
}

#[tokio::test]
async fn kept_open_stdin_writes_into_the_first_stage() {
    let chain = Command::new("cat").keep_stdin_open() | sh(r#"read line; test "$line" = hello"#);
    let mut run = chain.start().await.unwrap();
    let mut stdin = run
        .standard_input()
        .expect("the first stage's stdin is kept open");
    stdin.write_line("hello").await.unwrap();
    stdin.finish().await.unwrap();
    assert_eq!(run.wait().await.unwrap(), Some(0));
}

#[tokio::test]
async fn an_inner_stage_with_its_own_stdin_is_rejected() {
    let chain = Command::new("seq").arg("3") | Command::new("cat").stdin(Stdin::from_string("x"));
    match chain.run().await {
        Err(Error::InvalidCommand { program, .. }) => assert_eq!(program, "cat"),
        other => panic!("expected InvalidCommand, got {other:?}"),
    }
}

#[tokio::test]
async fn chain_timeout_kills_every_stage_and_their_grandchildren() {
    let token = unique_token();
    let _guard = Cleanup::token(&token);
    let chain = sh(&format!("sleep 3001.{token} & sleep 3002.{token}"))
        | sh(&format!("sleep 3003.{token} & cat; sleep 3004.{token}"))
        | sh(&format!("cat; sleep 3005.{token}"));
    let mut run = chain.timeout(Duration::from_secs(1)).start().await.unwrap();

    // Stage 1's background sleep and stage 2's are grandchildren of the run;
    // stage 3's shell is waiting in `cat`.
    let expected = [
        format!("sleep 3001.{token}"),
        format!("sleep 3003.{token}"),
        format!("3005.{token}"),
    ];
    let found = |_: &[u32]| {
        expected
            .iter()
            .all(|e| !pids_with_token_or_zombie(e).is_empty())
    };
    let before = poll_until(&token, found);
    assert!(
        found(&before),
        "expected every stage and grandchild, saw {before:?}"
    );

    assert_eq!(
        run.wait().await.unwrap(),
        None,
        "a timed-out chain has no exit code"
    );
    assert!(run.timed_out());
    let after = poll_until(&token, |p| p.is_empty());
    assert!(
        after.is_empty(),
        "survivors after the chain timeout: {after:?}"
    );
}

#[tokio::test]
async fn chain_timeout_is_captured_in_the_result() {
    let result = (Command::new("sleep").arg("30") | Command::new("cat"))
        .timeout(Duration::from_millis(300))
        .output_string()
        .await
        .unwrap();
    assert!(result.timed_out());
    assert_eq!(result.code(), None);
    let err = (Command::new("sleep").arg("30") | Command::new("cat"))
        .timeout(Duration::from_millis(300))
        .run()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
}

#[tokio::test]
async fn thirty_two_mib_pass_through_three_stages_intact() {
    const SIZE: usize = 32 * 1024 * 1024;
    let result = (Command::new("head").args(["-c", &SIZE.to_string(), "/dev/zero"])
        | Command::new("tr").args(["\\0", "x"])
        | Command::new("cat"))
    .output_bytes()
    .await
    .unwrap();
    assert!(result.is_success());
    assert_eq!(result.stdout().len(), SIZE);
    assert!(result.stdout().iter().all(|&b| b == b'x'));
}

#[tokio::test]
async fn a_missing_middle_program_is_not_found_and_leaves_nothing_running() {
    let token = unique_token();
    let _guard = Cleanup::token(&token);
    let missing = format!("processkit-no-such-program-{token}");
    let chain = sh(&format!("sleep 3006.{token}")) | Command::new(&missing) | Command::new("cat");
    match chain.run().await {
        Err(Error::NotFound { program }) => assert_eq!(program, missing),
        other => panic!("expected NotFound, got {other:?}"),
    }
    // The missing program's name carries the token too; nothing may match.
    let survivors = poll_until(&token, |p| p.is_empty());
    assert!(survivors.is_empty(), "survivors: {survivors:?}");
}

#[tokio::test]
async fn dropping_a_started_chain_kills_every_stage() {
    let token = unique_token();
    let _guard = Cleanup::token(&token);
    let chain = sh(&format!("sleep 3007.{token} & sleep 3008.{token}"))
        | Command::new("sleep").arg(format!("3009.{token}"));
    let run = chain.start().await.unwrap();
    let before = poll_until(&token, |p| p.len() >= 3);
    assert!(before.len() >= 3, "saw {before:?}");
    drop(run);
    let after = poll_until(&token, |p| p.is_empty());
    assert!(after.is_empty(), "survivors after drop: {after:?}");
}

#[tokio::test]
async fn first_line_and_probe_work_on_pipelines() {
    let line = (Command::new("seq").args(["1", "100000"]) | Command::new("grep").arg("77"))
        .first_line(|l| l.starts_with('7'))
        .await
        .unwrap();
    assert_eq!(line.as_deref(), Some("77"));

    let found = Command::new("printf").arg("a\\nb\\n") | Command::new("grep").args(["-q", "b"]);
    assert!(found.probe().await.unwrap());
    let absent = Command::new("printf").arg("a\\n") | Command::new("grep").args(["-q", "z"]);
    assert!(!absent.probe().await.unwrap());
}

#[tokio::test]
async fn a_stage_timeout_ends_that_stage_and_is_reported() {
    let chain = sh("sleep 30").timeout(Duration::from_millis(300)) | Command::new("cat");
    let result = chain.output_string().await.unwrap();
    assert!(result.timed_out());
    assert_eq!(result.program(), "sh");
    match chain.run().await {
        Err(Error::Timeout { program, timeout }) => {
            assert_eq!(program, "sh");
            assert_eq!(timeout, Duration::from_millis(300));
        }
        other => panic!("expected the stage's Timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn a_started_chain_reports_the_attributed_stage_after_wait() {
    let mut run = (Command::new("false") | Command::new("cat"))
        .start()
        .await
        .unwrap();
    assert_eq!(run.program(), "cat", "before the wait: the last stage");
    assert_eq!(run.wait().await.unwrap(), Some(1));
    assert_eq!(run.program(), "false");
}

#[tokio::test]
async fn every_stage_lives_in_the_pipeline_container() {
    let token = unique_token();
    let _guard = Cleanup::token(&token);
    let chain = Command::new("sleep").arg(format!("3012.{token}"))
        | Command::new("sleep").arg(format!("3013.{token}"))
        | Command::new("sleep").arg(format!("3014.{token}"));
    let run = chain.start().await.unwrap();
    let pids = poll_until(&token, |p| p.len() >= 3);
    assert_eq!(pids.len(), 3, "saw {pids:?}");
    match run.mechanism() {
        Some(processkit::Mechanism::CgroupV2) => {
            // One cgroup per stage, all below the pipeline's own cgroup.
            let parents: Vec<String> = pids
                .iter()
                .map(|pid| {
                    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
                    let own = text.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
                    own.rsplit_once('/').unwrap().0.to_owned()
                })
                .collect();
            assert!(parents.iter().all(|p| p == &parents[0]), "{parents:?}");
            assert!(parents[0].contains("processkit-"), "{parents:?}");
        }
        Some(processkit::Mechanism::ProcessGroup) => {
            // Each stage leads its own process group, tracked by the container.
            for pid in &pids {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
                let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
                let pgrp: u32 = after_comm
                    .split_whitespace()
                    .nth(2)
                    .unwrap()
                    .parse()
                    .unwrap();
                assert_eq!(pgrp, *pid, "stage {pid} leads its own group");
            }
        }
        Some(processkit::Mechanism::Subreaper) => {
            // Each stage is the child of a shim of its own.
            let mut shims = Vec::new();
            for pid in &pids {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
                let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
                let ppid: u32 = after_comm
                    .split_whitespace()
                    .nth(1)
                    .unwrap()
                    .parse()
                    .unwrap();
                let comm = std::fs::read_to_string(format!("/proc/{ppid}/comm")).unwrap();
                assert_eq!(comm.trim(), "pk-shim", "stage {pid}'s parent {ppid}");
                shims.push(ppid);
            }
            shims.sort_unstable();
            shims.dedup();
            assert_eq!(shims.len(), 3, "one shim per stage: {shims:?}");
        }
        other => panic!("unexpected mechanism {other:?}"),
    }
    drop(run);
    let after = poll_until(&token, |p| p.is_empty());
    assert!(after.is_empty(), "survivors after drop: {after:?}");
}

#[tokio::test]
async fn stdout_line_handlers_belong_on_the_last_stage() {
    let inner = Command::new("seq").arg("3").on_stdout_line(|_| {}) | Command::new("cat");
    match inner.run().await {
        Err(Error::InvalidCommand { program, .. }) => assert_eq!(program, "seq"),
        other => panic!("expected InvalidCommand, got {other:?}"),
    }

    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = std::sync::Arc::clone(&seen);
    let last = Command::new("seq").arg("3")
        | Command::new("cat").on_stdout_line(move |l| sink.lock().unwrap().push(l.to_owned()));
    assert_eq!(last.run().await.unwrap(), "1\n2\n3");
    assert_eq!(*seen.lock().unwrap(), ["1", "2", "3"]);
}
