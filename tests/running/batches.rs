//! `output_all` and `wait_all`: results in input order, the concurrency bound
//! as the children and /proc see it, a failure that stops nothing else, a
//! dropped batch that leaves no child behind, and a cancelled run's entry.
// The children are Unix shell scripts; the mechanism loop re-runs a test
// under each Linux mechanism in a copy of this binary.
#![cfg(unix)]

use crate::common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{
    Cleanup, TempDir, eventually_async, is_alive, line_count, pids_with_token, read_pids, sh_as,
    token, wait_gone,
};
use processkit::{
    Command, Error, Mechanism, Operation, ProcessGroup, ProcessGroupOptions, output_all, wait_all,
};

/// How long a child's shell loop waits for what it expects before giving up
/// (in 20 ms steps): a generous bound so a broken batch fails instead of hanging.
const PATIENCE: &str = "1500";

/// Runs the calling test again in a copy of this binary under every other
/// mechanism this host offers (`PROCESSKIT_MECHANISM` set), after which the
/// caller runs it here under the default. Inside such a copy, or when CI
/// already set `PROCESSKIT_MECHANISM`, only the caller's own run happens.
async fn also_under_other_mechanisms(test: &str) {
    if std::env::var_os("PROCESSKIT_MECHANISM").is_some() {
        return;
    }
    let default = Command::new("true").start().await.unwrap().mechanism();
    // Elsewhere on Unix the process group is the only mechanism, and the default.
    let linux: &[Mechanism] = if cfg!(target_os = "linux") {
        &[
            Mechanism::CgroupV2,
            Mechanism::Subreaper,
            Mechanism::ProcessGroup,
        ]
    } else {
        &[]
    };
    let others = linux
        .iter()
        .copied()
        .filter(|&m| Some(m) != default)
        .filter(|&m| {
            ProcessGroup::with_options(ProcessGroupOptions::default().mechanism(m)).is_ok()
        });
    for mechanism in others {
        let test = test.to_owned();
        let rerun = move || common::run_alone(&test, &[("PROCESSKIT_MECHANISM", mechanism.name())]);
        tokio::task::spawn_blocking(rerun).await.unwrap();
    }
}

/// Under `PROCESSKIT_MECHANISM`, a fresh run really is contained by it.
async fn check_requested_mechanism() {
    let Some(wanted) = std::env::var("PROCESSKIT_MECHANISM")
        .ok()
        .and_then(|m| Mechanism::from_name(&m))
    else {
        return;
    };
    let run = Command::new("true").start().await.unwrap();
    assert_eq!(run.mechanism(), Some(wanted));
}

/// A shell loop that waits (boundedly) until `cond` holds.
fn wait_until(cond: &str) -> String {
    format!("n=0; until {cond} || [ $n -ge {PATIENCE} ]; do sleep 0.02; n=$((n+1)); done")
}

#[tokio::test]
async fn results_come_in_input_order_though_later_ones_finish_first() {
    also_under_other_mechanisms("results_come_in_input_order_though_later_ones_finish_first").await;
    check_requested_mechanism().await;
    let dir = TempDir::new("batch-order");
    let tok = token("batch-order");
    let _cleanup = Cleanup::token(&tok);
    let order = dir.file("order");
    // Child i waits for flag i, which child i+1 sets as it ends: the last
    // child finishes first and the first one last.
    const N: usize = 5;
    let commands: Vec<Command> = (0..N)
        .map(|i| {
            let flag = dir.file(&format!("flag-{i}"));
            let wait = if i + 1 < N {
                wait_until(&format!("[ -e '{flag}' ]"))
            } else {
                ":".to_owned()
            };
            let release = match i {
                0 => ":".to_owned(),
                _ => format!("touch '{}'", dir.file(&format!("flag-{}", i - 1))),
            };
            let script =
                format!("{wait}; echo {i} >> '{order}'; {release}; echo out-{i}; exit {i}");
            sh_as(&script, &tok)
        })
        .collect();

    let results = output_all(&commands, N).await.unwrap();
    let finished: Vec<String> = std::fs::read_to_string(&order)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        finished,
        ["4", "3", "2", "1", "0"],
        "the last child ended first"
    );
    assert_eq!(results.len(), N);
    for (i, result) in results.into_iter().enumerate() {
        let out = result.unwrap();
        // A non-zero exit is data in the entry, not an error.
        assert_eq!(out.code(), Some(i as i32), "entry {i}");
        assert_eq!(out.stdout().trim(), format!("out-{i}"), "entry {i}");
    }
}

#[tokio::test]
async fn owned_commands_and_iterators_are_accepted() {
    let commands = vec![
        Command::new("sh").args(["-c", "echo one"]),
        Command::new("sh").args(["-c", "echo two"]),
    ];
    let by_ref: Vec<String> = output_all(commands.iter(), 1)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap().stdout().trim().to_owned())
        .collect();
    assert_eq!(by_ref, ["one", "two"]);
    let owned = output_all(commands, 2).await.unwrap();
    assert_eq!(owned[1].as_ref().unwrap().stdout().trim(), "two");
    assert!(
        output_all(Vec::<Command>::new(), 3)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The parent pid of `pid`, from /proc.
fn ppid_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// How many of the batch's shells were alive at one instant: those carrying
/// `tok` whose parent does not (a shell's forks carry its argv too), kept
/// only if still alive after the whole scan, so every one counted was alive
/// when the scan ended.
fn live_shells(tok: &str) -> usize {
    let pids: HashSet<u32> = pids_with_token(tok).into_iter().collect();
    let shells: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|pid| ppid_of(*pid).is_some_and(|parent| !pids.contains(&parent)))
        .collect();
    shells.into_iter().filter(|&pid| is_alive(pid)).count()
}

#[tokio::test]
async fn no_more_than_concurrency_children_live_at_once_and_the_bound_is_reached() {
    also_under_other_mechanisms(
        "no_more_than_concurrency_children_live_at_once_and_the_bound_is_reached",
    )
    .await;
    check_requested_mechanism().await;
    const N: usize = 8;
    const LIMIT: usize = 3;
    let dir = TempDir::new("batch-bound");
    let tok = token("batch-bound");
    let _cleanup = Cleanup::token(&tok);
    let log = dir.file("log");
    // Each child logs "+" as it starts and "-" just before it exits. The
    // first LIMIT wait until LIMIT have started, so the bound is reached
    // whatever the machine's load; each then lingers, so an unbounded batch
    // would overlap more than LIMIT in the log.
    let wait = wait_until(&format!("[ \"$(grep -c + '{log}')\" -ge {LIMIT} ]"));
    let script = format!("echo + >> '{log}'; {wait}; sleep 0.2; echo - >> '{log}'");
    let commands: Vec<Command> = (0..N).map(|_| sh_as(&script, &tok)).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, tok) = (stop.clone(), tok.clone());
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(live_shells(&tok));
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        })
    };
    let results = output_all(&commands, LIMIT).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let sampled_peak = sampler.join().unwrap();

    for result in results {
        assert!(result.unwrap().is_success());
    }
    let mut live = 0;
    let mut peak = 0;
    let text = std::fs::read_to_string(&log).unwrap();
    for line in text.lines() {
        live = if line == "+" { live + 1 } else { live - 1 };
        peak = peak.max(live);
    }
    assert_eq!(text.lines().count(), 2 * N, "every child ran once: {text}");
    assert_eq!(peak, LIMIT, "children's own log:\n{text}");
    assert!(
        sampled_peak <= LIMIT,
        "/proc saw {sampled_peak} children alive at once"
    );
}

#[tokio::test]
async fn a_missing_program_is_its_own_entry_and_the_others_still_run() {
    let commands = [
        Command::new("sh").args(["-c", "echo first"]),
        Command::new("pk-no-such-program-batches"),
        Command::new("sh").args(["-c", "echo third; exit 3"]),
    ];
    let results = output_all(&commands, 1).await.unwrap();
    assert_eq!(results[0].as_ref().unwrap().stdout().trim(), "first");
    assert!(
        matches!(&results[1], Err(Error::NotFound { program }) if program == "pk-no-such-program-batches"),
        "{:?}",
        results[1]
    );
    let third = results[2].as_ref().unwrap();
    assert_eq!((third.code(), third.stdout().trim()), (Some(3), "third"));
}

#[tokio::test]
async fn a_concurrency_of_zero_is_a_typed_error_and_starts_nothing() {
    let dir = TempDir::new("batch-zero");
    let marker = dir.file("ran");
    let commands = [Command::new("touch").arg(&marker)];
    let err = output_all(&commands, 0).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                operation: Operation::OutputAll,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("output_all"), "{err}");
    assert!(!std::path::Path::new(&marker).exists());
}

#[tokio::test]
async fn dropping_the_batch_kills_every_child_and_starts_no_more() {
    also_under_other_mechanisms("dropping_the_batch_kills_every_child_and_starts_no_more").await;
    check_requested_mechanism().await;
    let dir = TempDir::new("batch-drop");
    let tok = token("batch-drop");
    let pids = dir.path().join("pids");
    let _cleanup = Cleanup::token(&tok).pidfile(&pids);
    // Each child records its own pid and its sleeping child's, then waits.
    let script = format!(
        "sleep 60 & echo $! >> '{0}'; echo $$ >> '{0}'; wait",
        pids.display()
    );
    let commands: Vec<Command> = (0..6).map(|_| sh_as(&script, &tok)).collect();

    let batch = output_all(&commands, 2);
    tokio::select! {
        _ = batch => panic!("the children sleep for a minute"),
        started = eventually_async(Duration::from_secs(30), || line_count(&pids) >= 4) => {
            assert!(started, "two children never started");
        }
    }
    // `select!` dropped the batch mid-run.
    let recorded = read_pids(&pids);
    assert_eq!(recorded.len(), 4, "only two children start: {recorded:?}");
    assert!(
        wait_gone(&tok).await,
        "left alive: {:?}",
        pids_with_token(&tok)
    );
    let gone = eventually_async(Duration::from_secs(10), || {
        recorded.iter().all(|&pid| !is_alive(pid))
    })
    .await;
    assert!(
        gone,
        "a child or grandchild survived the drop: {recorded:?}"
    );
    // No slot frees after the drop, so nothing else starts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(line_count(&pids), 4);
}

#[tokio::test]
async fn wait_all_reports_each_run_in_order() {
    also_under_other_mechanisms("wait_all_reports_each_run_in_order").await;
    check_requested_mechanism().await;
    let mut slow = Command::new("sh")
        .args(["-c", "sleep 0.3; exit 3"])
        .start()
        .await
        .unwrap();
    let mut quick = Command::new("sh")
        .args(["-c", "exit 0"])
        .start()
        .await
        .unwrap();
    // More than a pipe holds: this one ends only if its stdout is drained.
    let mut chatty = Command::new("sh")
        .args(["-c", "head -c 1000000 /dev/zero; exit 5"])
        .start()
        .await
        .unwrap();
    let mut killed = Command::new("sleep").arg("30").start().await.unwrap();
    killed.kill().unwrap();

    let statuses = wait_all(&mut [&mut slow, &mut quick, &mut chatty, &mut killed]).await;
    let statuses: Vec<_> = statuses.into_iter().map(Result::unwrap).collect();
    let codes: Vec<Option<i32>> = statuses.iter().map(|s| s.code()).collect();
    assert_eq!(codes, [Some(3), Some(0), Some(5), None]);
    assert_eq!(statuses[3].signal(), Some(9));
    // The handles were only borrowed and stay usable.
    assert_eq!(slow.wait().await.unwrap(), Some(3));
}

#[tokio::test]
async fn wait_all_on_nothing_is_empty() {
    assert!(wait_all(&mut []).await.is_empty());
}

#[tokio::test]
async fn the_batch_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let commands = vec![Command::new("true")];
    let batch = output_all(commands.clone(), 1);
    assert_send(&batch);
    let mut run = Command::new("true").start().await.unwrap();
    let mut procs = [&mut run];
    let waits = wait_all(&mut procs);
    assert_send(&waits);
    assert!(waits.await[0].as_ref().unwrap().success());
    assert!(batch.await.unwrap()[0].is_ok());
}

#[cfg(feature = "cancellation")]
#[tokio::test]
async fn wait_all_gives_a_cancelled_run_its_own_error() {
    use processkit::CancellationToken;
    let cancel = CancellationToken::new();
    let mut cancelled = Command::new("sleep")
        .arg("30")
        .cancel_on(cancel.clone())
        .start()
        .await
        .unwrap();
    let mut fine = Command::new("sh")
        .args(["-c", "sleep 0.2; exit 4"])
        .start()
        .await
        .unwrap();
    cancel.cancel();
    let statuses = wait_all(&mut [&mut cancelled, &mut fine]).await;
    assert!(
        matches!(&statuses[0], Err(Error::Cancelled { program }) if program == "sleep"),
        "{:?}",
        statuses[0]
    );
    assert_eq!(statuses[1].as_ref().unwrap().code(), Some(4));
}
