//! `LineStream::next_batch` on real children: the same lines as the
//! `String` stream (line ends, invalid UTF-8, long lines, unterminated
//! tails), mixing both on one stream, leftovers surviving a dropped stream,
//! stderr and captured stdout, and a dropped handle ending the tree.
#![cfg(unix)]

use crate::common;

use std::time::Duration;

use common::{Cleanup, pids_with_token, sh, token, wait_gone};
use processkit::{Command, LineBatch, MAX_LINE, StreamExt};

/// Far longer than any of these runs needs; only reached if a pipe deadlocks.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// Every stdout line of `script`, one `String` at a time.
async fn via_next(script: &str) -> Vec<String> {
    let mut run = sh(script).start().await.unwrap();
    let lines: Vec<String> = run.stdout_lines().collect().await;
    assert_eq!(run.finish_streamed().await.unwrap().0, Some(0));
    lines
}

/// Every stdout line of `script`, batch by batch.
async fn via_batches(script: &str) -> Vec<String> {
    let mut run = sh(script).start().await.unwrap();
    let mut lines = Vec::new();
    let mut stream = run.stdout_lines();
    while let Some(batch) = stream.next_batch().await {
        lines.extend(checked(&batch));
    }
    assert!(
        stream.next_batch().await.is_none(),
        "an ended stream stays ended"
    );
    assert_eq!(run.finish_streamed().await.unwrap().0, Some(0));
    lines
}

/// The batch's lines, after checking what every batch promises.
fn checked(batch: &LineBatch) -> Vec<String> {
    assert!(!batch.is_empty(), "next_batch never returns an empty batch");
    assert_eq!(batch.len(), batch.iter().len());
    let lines: Vec<String> = batch.into_iter().map(str::to_owned).collect();
    assert_eq!(lines.len(), batch.len());
    lines
}

#[test]
fn a_batch_can_move_to_another_task() {
    fn sendable<T: Send + Sync + 'static>() {}
    sendable::<LineBatch>();
    let empty = LineBatch::default();
    assert!(empty.is_empty() && empty.iter().next().is_none());
}

/// Both ways give `expected`.
async fn assert_lines(script: &str, expected: &[&str]) {
    let strings = tokio::time::timeout(HANG_GUARD, via_next(script))
        .await
        .unwrap();
    let batches = tokio::time::timeout(HANG_GUARD, via_batches(script))
        .await
        .unwrap();
    assert_eq!(strings, expected, "String stream of {script}");
    assert_eq!(batches, expected, "batches of {script}");
}

#[tokio::test]
async fn crlf_split_across_reads_is_one_line_end() {
    // The pause makes the `\r` and the `\n` arrive in separate reads.
    assert_lines(
        r"printf 'a\r'; sleep 0.2; printf '\nb\r\n'; sleep 0.2; printf 'c\r'",
        &["a", "b", "c"],
    )
    .await;
}

#[tokio::test]
async fn invalid_utf8_becomes_replacement_characters() {
    assert_lines(
        r"printf '\377ok\n\342\202\nfine \342\202\254\n\376\r\n'",
        &["\u{fffd}ok", "\u{fffd}", "fine \u{20ac}", "\u{fffd}"],
    )
    .await;
}

#[tokio::test]
async fn empty_lines_and_a_missing_final_newline() {
    assert_lines(
        r"printf '\n\n\r\nx\n\nlast'",
        &["", "", "", "x", "", "last"],
    )
    .await;
    assert_lines("true", &[]).await;
}

#[tokio::test]
async fn lines_longer_than_max_line_arrive_in_the_same_pieces() {
    let len = 2 * MAX_LINE + MAX_LINE / 2;
    // A euro sign (three bytes) straddles the first cut of the second line.
    let script = format!(
        "head -c {len} /dev/zero | tr '\\0' x; echo; \
         head -c {} /dev/zero | tr '\\0' y; printf '\\342\\202\\254'; \
         head -c {MAX_LINE} /dev/zero | tr '\\0' z; printf '\\r\\ntail'",
        MAX_LINE - 1
    );
    let strings = via_next(&script).await;
    let batches = via_batches(&script).await;
    let sizes: Vec<usize> = batches.iter().map(String::len).collect();
    // The cut leaves the euro sign's first byte at the end of one piece and
    // its two continuation bytes at the start of the next: one replacement
    // character (3 bytes of UTF-8) for the first, two for the others.
    assert_eq!(
        sizes,
        [
            MAX_LINE,
            MAX_LINE,
            MAX_LINE / 2,
            MAX_LINE + 2,
            MAX_LINE + 4,
            2,
            4
        ]
    );
    assert!(batches[..3].iter().all(|l| l.bytes().all(|b| b == b'x')));
    assert!(batches[3].starts_with('y') && batches[3].ends_with("y\u{fffd}"));
    assert!(batches[4].starts_with("\u{fffd}\u{fffd}z") && batches[4].ends_with('z'));
    assert_eq!(batches[5..], ["zz", "tail"]);
    assert!(strings == batches, "the String stream cut the same pieces");
}

#[tokio::test]
async fn many_short_lines_through_a_full_pipe() {
    let count = 300_000;
    let mut run = sh(&format!("yes | head -n {count}")).start().await.unwrap();
    let (mut lines, mut batches) = (0, 0);
    let mut stream = run.stdout_lines();
    while let Some(batch) = stream.next_batch().await {
        // One read's worth at most: a batch does not buffer the whole output.
        assert!(batch.len() <= 64 * 1024 / 2, "{} lines", batch.len());
        assert!(batch.iter().all(|l| l == "y"));
        lines += batch.len();
        batches += 1;
    }
    assert_eq!(lines, count);
    assert!(
        batches >= 10,
        "{count} lines came in only {batches} batches"
    );
    assert_eq!(run.finish_streamed().await.unwrap().0, Some(0));
    let numbers = via_batches("seq 1 200000").await;
    let expected: Vec<String> = (1..=200_000).map(|n| n.to_string()).collect();
    assert!(numbers == expected, "seq's lines, in order, once each");
}

#[tokio::test]
async fn mixing_next_and_next_batch_loses_and_repeats_nothing() {
    let mut run = sh("seq 1 150000").start().await.unwrap();
    let mut got = Vec::new();
    let mut stream = run.stdout_lines();
    let mut turn = 0usize;
    loop {
        turn += 1;
        if turn.is_multiple_of(3) {
            match stream.next().await {
                Some(line) => got.push(line),
                None => break,
            }
        } else {
            match stream.next_batch().await {
                Some(batch) => got.extend(checked(&batch)),
                None => break,
            }
        }
    }
    assert!(turn > 3, "both kinds of call were made");
    let expected: Vec<String> = (1..=150_000).map(|n| n.to_string()).collect();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected);
    assert_eq!(run.finish_streamed().await.unwrap().0, Some(0));
}

#[tokio::test]
async fn a_partial_line_survives_a_dropped_stream() {
    let mut run = sh(r"printf 'one\ntw'; sleep 0.3; printf 'o\nthree\nfour'")
        .start()
        .await
        .unwrap();
    {
        let mut stream = run.stdout_lines();
        let first = stream.next_batch().await.unwrap();
        assert_eq!(checked(&first), ["one"], "`tw` is not a line yet");
    }
    // A probe after the dropped stream starts with the buffered `tw`.
    let two = run
        .wait_for_line(|l| l.starts_with("tw"), HANG_GUARD)
        .await
        .unwrap();
    assert_eq!(two, "two");
    {
        let mut stream = run.stdout_lines();
        let next = stream.next_batch().await.unwrap();
        assert_eq!(checked(&next), ["three"], "`four` has no newline yet");
    }
    let rest: Vec<String> = run.stdout_lines().collect().await;
    assert_eq!(rest, ["four"]);
    assert_eq!(run.finish_streamed().await.unwrap().0, Some(0));
}

#[tokio::test]
async fn stdout_captured_in_the_background_comes_out_in_batches() {
    let mut run = sh(r"printf 'a\r\nb\n\377\nc'").start().await.unwrap();
    // Waiting drains stdout into the background capture.
    assert_eq!(run.wait().await.unwrap(), Some(0));
    let mut stream = run.stdout_lines();
    let mut got = Vec::new();
    while let Some(batch) = stream.next_batch().await {
        got.extend(checked(&batch));
    }
    assert_eq!(got, ["a", "b", "\u{fffd}", "c"]);
}

#[tokio::test]
async fn stderr_streams_in_batches_too() {
    let script = r"printf 'e1\r\ne2\n' >&2; echo out; sleep 0.2; printf '\nlast' >&2";
    let mut run = sh(script).start().await.unwrap();
    let mut errors = Vec::new();
    let mut stream = run.stderr_lines();
    while let Some(batch) = stream.next_batch().await {
        errors.extend(checked(&batch));
    }
    assert_eq!(errors, ["e1", "e2", "", "last"]);
    let out: Vec<String> = run.stdout_lines().collect().await;
    assert_eq!(out, ["out"], "stdout was kept while stderr streamed");
    let (code, stderr) = run.finish_streamed().await.unwrap();
    assert_eq!((code, stderr.as_str()), (Some(0), ""));
}

#[tokio::test]
async fn dropping_the_handle_mid_batches_ends_the_whole_tree() {
    let token = token("batches-drop");
    let _cleanup = Cleanup::token(&token);
    // `yes` never stops on its own; the token marks it in /proc.
    let mut run = sh(&format!("yes {token} | cat; exit 0"))
        .start()
        .await
        .unwrap();
    let mut seen = 0usize;
    {
        let mut stream = run.stdout_lines();
        while seen < 10_000 {
            let batch = stream.next_batch().await.expect("yes keeps writing");
            assert!(batch.iter().all(|l| l == token));
            seen += batch.len();
        }
    }
    assert!(!pids_with_token(&token).is_empty(), "yes is running");
    drop(run);
    assert!(wait_gone(&token).await, "yes and cat outlived the handle");
}

#[tokio::test(start_paused = true)]
async fn a_scripted_double_streams_in_batches_too() {
    use processkit::{Match, ProcessRunner, Reply, ScriptedRunner};
    let runner = ScriptedRunner::new().on(
        Match::program("chatty"),
        Reply::lines(["one", "two"])
            .line_after(Duration::from_millis(100), "three")
            .exit_after(Duration::from_millis(100)),
    );
    let mut run = runner.start(&Command::new("chatty")).await.unwrap();
    let mut got = Vec::new();
    let mut stream = run.stdout_lines();
    while let Some(batch) = stream.next_batch().await {
        got.extend(checked(&batch));
    }
    assert_eq!(got, ["one", "two", "three"]);
    assert_eq!(run.finish_streamed().await.unwrap().0, Some(0));
}
