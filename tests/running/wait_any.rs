//! `wait_any`: reports whichever child exits first, by index, and only
//! borrows, so the others keep running and stay usable.
// These tests drive Unix programs (sh, sleep, seq, ...); tests/windows/
// covers the same ground with Windows programs.
#![cfg(unix)]

use crate::common;

use std::time::Duration;

use common::{KillPidOnDrop, TempDir, is_alive};
use processkit::{Command, Error, ProcessGroup, RunningProcess, wait_any};

/// A child that exits with `code` once `flag` exists.
fn exits_on(flag: &str, code: i32) -> Command {
    let script = format!("while [ ! -e '{flag}' ]; do sleep 0.02; done; exit {code}");
    Command::new("sh").arg("-c").arg(script)
}

async fn start(cmd: &Command) -> (RunningProcess, KillPidOnDrop) {
    let run = cmd.start().await.unwrap();
    let guard = KillPidOnDrop(run.id());
    (run, guard)
}

#[tokio::test]
async fn reports_children_in_the_order_they_exit() {
    let scratch = TempDir::new("wait-any");
    let flags: Vec<String> = (0..3).map(|i| scratch.file(&format!("go-{i}"))).collect();
    let (mut a, _ga) = start(&exits_on(&flags[0], 10)).await;
    let (mut b, _gb) = start(&exits_on(&flags[1], 11)).await;
    let (mut c, _gc) = start(&exits_on(&flags[2], 12)).await;

    std::fs::write(&flags[2], b"").unwrap();
    assert_eq!(
        wait_any(&mut [&mut a, &mut b, &mut c]).await.unwrap(),
        (2, Some(12))
    );
    // The losers were only borrowed: still running, still usable.
    let (pa, pb) = (a.id().unwrap(), b.id().unwrap());
    assert!(is_alive(pa) && is_alive(pb));

    std::fs::write(&flags[1], b"").unwrap();
    assert_eq!(
        wait_any(&mut [&mut a, &mut b]).await.unwrap(),
        (1, Some(11))
    );
    assert!(is_alive(pa));

    std::fs::write(&flags[0], b"").unwrap();
    assert_eq!(wait_any(&mut [&mut a]).await.unwrap(), (0, Some(10)));
    assert_eq!(a.wait().await.unwrap(), Some(10));
}

#[tokio::test]
async fn an_already_exited_child_wins_at_once() {
    let (mut sleeper, _g) = start(&Command::new("sleep").arg("30")).await;
    let (mut done, _gd) = start(&Command::new("true")).await;
    assert_eq!(done.wait().await.unwrap(), Some(0));
    assert_eq!(
        wait_any(&mut [&mut sleeper, &mut done]).await.unwrap(),
        (1, Some(0))
    );
    assert!(sleeper.id().is_some_and(is_alive));
}

#[tokio::test]
async fn a_killed_or_timed_out_child_has_no_code() {
    let (mut sleeper, _g) = start(&Command::new("sleep").arg("30")).await;
    let timed = Command::new("sleep")
        .arg("30")
        .timeout(Duration::from_millis(200));
    let (mut timed, _gt) = start(&timed).await;
    assert_eq!(
        wait_any(&mut [&mut sleeper, &mut timed]).await.unwrap(),
        (1, None)
    );
    assert!(timed.timed_out());
    sleeper.kill().unwrap();
    assert_eq!(wait_any(&mut [&mut sleeper]).await.unwrap(), (0, None));
}

#[tokio::test]
async fn the_race_can_be_bounded_and_retried() {
    let (mut a, _ga) = start(&Command::new("sleep").arg("30")).await;
    let (mut b, _gb) = start(&Command::new("sleep").arg("30")).await;
    let raced =
        tokio::time::timeout(Duration::from_millis(200), wait_any(&mut [&mut a, &mut b])).await;
    assert!(raced.is_err(), "neither child exits on its own");
    // Abandoning the race left both handles intact.
    b.kill().unwrap();
    assert_eq!(wait_any(&mut [&mut a, &mut b]).await.unwrap(), (1, None));
    assert!(a.id().is_some_and(is_alive));
}

#[tokio::test]
async fn works_on_children_of_a_shared_group() {
    let group = ProcessGroup::new().unwrap();
    let mut a = group.start(&Command::new("sleep").arg("30")).await.unwrap();
    let mut b = group
        .start(&Command::new("sh").args(["-c", "exit 7"]))
        .await
        .unwrap();
    assert_eq!(wait_any(&mut [&mut a, &mut b]).await.unwrap(), (1, Some(7)));
    assert!(a.id().is_some_and(is_alive));
    group.terminate_all().unwrap();
    assert_eq!(a.wait().await.unwrap(), None);
}

#[tokio::test]
async fn an_empty_race_is_a_typed_error() {
    let err = wait_any(&mut []).await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
}
