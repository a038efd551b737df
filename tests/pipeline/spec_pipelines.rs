//! Acceptance: the spec's "Pipelines without a shell" examples, in the same
//! shape. The originals must compile; runnable twins use substitute programs.
// These tests drive Unix programs (sh, sleep, seq, ...); tests/windows/
// covers the same ground with Windows programs.
#![cfg(unix)]

use std::time::Duration;

use processkit::{Command, Error, Stdin};

/// The spec's example, verbatim in shape (needs a git repository; compiled only).
#[allow(dead_code)]
async fn spec_example() -> processkit::Result<()> {
    let out = Command::new("git")
        .args(["log", "--format=%an"])
        .pipe(Command::new("sort"))
        .pipe(Command::new("uniq").arg("-c"))
        .output_string()
        .await?;
    println!("{}", out.stdout());
    Ok(())
}

/// The spec's `(a | b | c).run()` sugar (compiled only).
#[allow(dead_code)]
async fn spec_bitor_sugar(a: Command, b: Command, c: Command) -> processkit::Result<String> {
    (a | b | c).run().await
}

#[tokio::test]
async fn example_counts_authors_with_a_substitute_log() {
    let out = Command::new("printf")
        .arg("bob\\nann\\nbob\\ncid\\nbob\\n")
        .pipe(Command::new("sort"))
        .pipe(Command::new("uniq").arg("-c"))
        .output_string()
        .await
        .unwrap();
    let counts: Vec<(String, String)> = out
        .stdout()
        .lines()
        .map(|l| {
            let mut parts = l.split_whitespace();
            (
                parts.next().unwrap().to_owned(),
                parts.next().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [("1", "ann"), ("3", "bob"), ("1", "cid")];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(n, w)| (n.to_string(), w.to_string()))
        .collect();
    assert_eq!(counts, expected);
}

#[tokio::test]
async fn bitor_sugar_runs_and_trims() {
    let a = Command::new("printf").arg("c\\na\\nb\\n");
    let out = spec_bitor_sugar(a, Command::new("sort"), Command::new("tail").arg("-1"))
        .await
        .unwrap();
    assert_eq!(out, "c");
}

#[tokio::test]
async fn pipefail_takes_code_stderr_and_program_from_the_failing_stage() {
    let result = (Command::new("sh").args(["-c", "echo broke >&2; exit 2"]) | Command::new("cat"))
        .output_string()
        .await
        .unwrap();
    assert_eq!((result.program(), result.code()), ("sh", Some(2)));
    assert_eq!(result.stderr().trim(), "broke");
}

#[tokio::test]
async fn producer_head_shape_needs_unchecked() {
    let out = (Command::new("yes").unchecked() | Command::new("head").arg("-1"))
        .run()
        .await
        .unwrap();
    assert_eq!(out, "y");
    // A checked failure still wins over an unchecked one.
    let err = (Command::new("yes").unchecked()
        | Command::new("sh").args(["-c", "head -1 >/dev/null; exit 4"]))
    .run()
    .await
    .unwrap_err();
    assert!(matches!(err, Error::NonZeroExit { code: 4, .. }), "{err:?}");
}

#[tokio::test]
async fn first_stage_stdin_is_honoured() {
    let out = (Command::new("tr")
        .args(["a-z", "A-Z"])
        .stdin(Stdin::from_string("shout\n"))
        | Command::new("cat"))
    .run()
    .await
    .unwrap();
    assert_eq!(out, "SHOUT");
}

#[tokio::test]
async fn timeout_bounds_the_whole_chain() {
    let chain = (Command::new("sleep").arg("30") | Command::new("cat") | Command::new("cat"))
        .timeout(Duration::from_millis(200));
    let result = chain.output_string().await.unwrap();
    assert!(result.timed_out());
    assert!(matches!(chain.run().await, Err(Error::Timeout { .. })));
}
