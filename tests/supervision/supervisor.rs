//! Supervisor logic under a paused clock with a canned runner, and real
//! incarnations sharing one `ProcessGroup`.

#[cfg(target_os = "linux")]
use crate::common;

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

#[cfg(target_os = "linux")]
use common::*;
#[cfg(target_os = "linux")]
use processkit::ProcessGroup;
use processkit::{
    BoxFuture, Command, Error, ProcessRunner, Reply, RestartPolicy, RunningProcess, StopReason,
    SupervisionOutcome, Supervisor,
};
use tokio::time::Instant;

/// Replies with canned scripted runs in order (repeating the last one) and
/// notes when each run started on tokio's clock. Never spawns.
struct CannedRunner {
    replies: Mutex<VecDeque<Reply>>,
    run_time: Duration,
    calls: Mutex<Vec<Instant>>,
}

impl CannedRunner {
    fn new(codes: &[Option<i32>]) -> CannedRunner {
        let replies = codes
            .iter()
            .map(|&code| match code {
                Some(code) => exited(code),
                None => Reply::signalled(9),
            })
            .collect();
        CannedRunner::from_results(replies)
    }

    fn from_results(replies: VecDeque<Reply>) -> CannedRunner {
        CannedRunner {
            replies: Mutex::new(replies),
            run_time: Duration::ZERO,
            calls: Mutex::new(Vec::new()),
        }
    }

    fn calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    /// The time between consecutive runs.
    fn gaps(&self) -> Vec<Duration> {
        let calls = self.calls.lock().unwrap();
        calls.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

fn exited(code: i32) -> Reply {
    Reply::failure(code, "")
}

/// The supervisor starts every incarnation with `start` (so it can watch
/// and stop it), which is what this double answers.
impl ProcessRunner for CannedRunner {
    fn start<'a>(&'a self, cmd: &'a Command) -> BoxFuture<'a, processkit::Result<RunningProcess>> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(Instant::now());
            let reply = {
                let mut replies = self.replies.lock().unwrap();
                if replies.len() > 1 {
                    replies.pop_front().unwrap()
                } else {
                    replies.front().cloned().expect("at least one reply")
                }
            };
            reply.exit_after(self.run_time).start(cmd)
        })
    }
}

fn supervisor() -> Supervisor {
    Supervisor::new(Command::new("canned"))
        .backoff(Duration::from_millis(100), 2.0)
        .jitter(false)
}

/// Supervises the canned exit `codes` under `policy` (and `max_restarts`, if
/// any); returns the outcome and how many runs the runner saw.
async fn supervise(
    codes: &[Option<i32>],
    policy: RestartPolicy,
    max_restarts: Option<u32>,
) -> (SupervisionOutcome, usize) {
    let runner = CannedRunner::new(codes);
    let mut supervisor = supervisor().with_runner(&runner).restart(policy);
    if let Some(max) = max_restarts {
        supervisor = supervisor.max_restarts(max);
    }
    let outcome = supervisor.run().await.unwrap();
    (outcome, runner.calls())
}

#[tokio::test(start_paused = true)]
async fn always_restarts_after_clean_exits_until_the_limit() {
    let (outcome, calls) = supervise(&[Some(0)], RestartPolicy::Always, Some(4)).await;
    assert_eq!(outcome.restarts, 4);
    assert_eq!(outcome.stopped, StopReason::MaxRestarts);
    assert_eq!(calls, 5);
}

#[tokio::test(start_paused = true)]
async fn on_crash_restarts_until_a_clean_exit() {
    let codes = [Some(1), None, Some(0), Some(1)];
    let (outcome, calls) = supervise(&codes, RestartPolicy::OnCrash, None).await;
    assert_eq!(outcome.restarts, 2);
    assert_eq!(outcome.stopped, StopReason::PolicyDeclined);
    assert_eq!(outcome.result.code(), Some(0));
    assert_eq!(calls, 3);
}

#[tokio::test(start_paused = true)]
async fn on_crash_treats_a_timeout_as_a_crash() {
    let replies = VecDeque::from([Reply::timeout(), exited(0)]);
    let runner = CannedRunner::from_results(replies);
    let outcome = supervisor().with_runner(&runner).run().await.unwrap();
    assert_eq!(outcome.restarts, 1);
    assert!(outcome.result.is_success());
}

#[tokio::test(start_paused = true)]
async fn never_runs_exactly_once_even_after_a_crash() {
    let (outcome, calls) = supervise(&[Some(1)], RestartPolicy::Never, None).await;
    assert_eq!(outcome.restarts, 0);
    assert_eq!(outcome.stopped, StopReason::PolicyDeclined);
    assert_eq!(outcome.result.code(), Some(1));
    assert_eq!(calls, 1);
}

#[tokio::test(start_paused = true)]
async fn stop_when_ends_supervision_whatever_the_policy() {
    let runner = CannedRunner::new(&[Some(0), Some(0), Some(3), Some(0)]);
    let outcome = supervisor()
        .with_runner(&runner)
        .restart(RestartPolicy::Always)
        .stop_when(|res| res.code() == Some(3))
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.stopped, StopReason::StopCondition);
    assert_eq!(outcome.result.code(), Some(3));
    assert_eq!(outcome.restarts, 2);
}

#[tokio::test(start_paused = true)]
async fn max_restarts_bounds_a_crash_loop() {
    let runner = CannedRunner::new(&[Some(1)]);
    let outcome = supervisor()
        .with_runner(&runner)
        .max_restarts(3)
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.stopped, StopReason::MaxRestarts);
    assert_eq!(outcome.restarts, 3);
    assert_eq!(runner.calls(), 4);
    assert_eq!(outcome.result.code(), Some(1));
}

#[tokio::test(start_paused = true)]
async fn backoff_grows_by_the_multiplier_and_stops_at_max_backoff() {
    let runner = CannedRunner::new(&[Some(1)]);
    supervisor()
        .with_runner(&runner)
        .max_backoff(Duration::from_millis(500))
        .max_restarts(5)
        .run()
        .await
        .unwrap();
    let ms: Vec<u128> = runner.gaps().iter().map(Duration::as_millis).collect();
    assert_eq!(ms, [100, 200, 400, 500, 500]);
}

#[tokio::test(start_paused = true)]
async fn jitter_is_on_by_default_and_stays_within_half_to_full_delay() {
    let runner = CannedRunner::new(&[Some(1)]);
    Supervisor::new(Command::new("canned"))
        .with_runner(&runner)
        .backoff(Duration::from_secs(1), 1.0)
        .max_restarts(8)
        .run()
        .await
        .unwrap();
    let gaps = runner.gaps();
    assert_eq!(gaps.len(), 8);
    for gap in &gaps {
        assert!(
            *gap >= Duration::from_millis(500) && *gap <= Duration::from_secs(1),
            "{gap:?}"
        );
    }
    assert!(gaps.iter().any(|g| *g != gaps[0]), "no jitter: {gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn storm_guard_takes_one_pause_then_returns_to_backoff() {
    let runner = CannedRunner::new(&[Some(1)]);
    let outcome = Supervisor::new(Command::new("canned"))
        .with_runner(&runner)
        .restart(RestartPolicy::Always)
        .backoff(Duration::from_secs(1), 1.0)
        .jitter(false)
        .failure_threshold(3)
        .failure_decay(Duration::from_secs(60))
        .storm_pause(Duration::from_secs(100))
        .max_restarts(7)
        .run()
        .await
        .unwrap();
    // Failures 1s apart with a 60 s half-life: the score passes 3 at the
    // fourth failure; after the pause it starts over.
    let secs: Vec<u64> = runner.gaps().iter().map(Duration::as_secs).collect();
    assert_eq!(secs, [1, 1, 1, 100, 1, 1, 1]);
    assert_eq!(outcome.storms, 1);
    assert_eq!(outcome.restarts, 7);
}

#[tokio::test(start_paused = true)]
async fn storm_guard_ignores_failures_spread_out_by_the_decay() {
    let mut runner = CannedRunner::new(&[Some(1)]);
    runner.run_time = Duration::from_secs(30);
    let outcome = Supervisor::new(Command::new("canned"))
        .with_runner(&runner)
        .backoff(Duration::from_secs(1), 1.0)
        .jitter(false)
        .failure_threshold(2)
        .failure_decay(Duration::from_secs(5))
        .storm_pause(Duration::from_secs(600))
        .max_restarts(10)
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.storms, 0);
    assert!(runner.gaps().iter().all(|g| *g == Duration::from_secs(31)));
}

#[tokio::test(start_paused = true)]
async fn storm_guard_is_off_by_default() {
    let runner = CannedRunner::new(&[Some(1)]);
    let outcome = supervisor()
        .with_runner(&runner)
        .backoff(Duration::from_millis(10), 1.0)
        .max_restarts(50)
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.storms, 0);
    assert!(
        runner
            .gaps()
            .iter()
            .all(|g| *g == Duration::from_millis(10))
    );
}

#[tokio::test(start_paused = true)]
async fn a_bad_multiplier_is_a_typed_error_and_runs_nothing() {
    let runner = CannedRunner::new(&[Some(1)]);
    let err = supervisor()
        .with_runner(&runner)
        .backoff(Duration::from_millis(10), 0.5)
        .run()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidCommand { .. }), "{err:?}");
    assert_eq!(runner.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn supervises_through_a_scripted_runner() {
    use processkit::{Match, Reply, ScriptedRunner};
    let runner = ScriptedRunner::new().on_sequence(
        Match::program("worker"),
        [
            Reply::failure(1, "boom"),
            Reply::signalled(9),
            Reply::success("ok"),
        ],
    );
    let outcome = Supervisor::new(Command::new("worker"))
        .with_runner(&runner)
        .restart(RestartPolicy::OnCrash)
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.restarts, 2);
    assert_eq!(outcome.result.stdout(), "ok");
    assert_eq!(runner.calls(), 3);
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_missing_program_ends_supervision_with_not_found() {
    let err = Supervisor::new(Command::new("processkit-no-such-program"))
        .restart(RestartPolicy::Always)
        .run()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn real_runs_restart_on_crash_until_one_succeeds() {
    let dir = TempDir::new("sv-real");
    let count = dir.join("runs");
    let script = format!("echo run >> {0}; [ $(wc -l < {0}) -ge 3 ]", count.display());
    let outcome = Supervisor::new(Command::new("sh").args(["-c", &script]))
        .restart(RestartPolicy::OnCrash)
        .backoff(Duration::from_millis(5), 2.0)
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.restarts, 2);
    assert_eq!(line_count(&count), 3);
    assert_eq!(outcome.stopped, StopReason::PolicyDeclined);
}

/// Every incarnation runs in the caller's group: the last one outlives the
/// supervisor future (the group owns it) and dies with the group.
#[cfg(target_os = "linux")]
async fn incarnations_share_the_group(group: ProcessGroup) {
    let token = token("sv-group");
    let _reaper = Cleanup::token(&token);
    let dir = TempDir::new("sv-group");
    let count = dir.join("runs");
    // Runs 1 and 2 leave a grandchild behind and crash; run 3 stays up.
    let script = format!(
        "echo run >> {count}; sh -c 'sleep 1000; : {token}' & \
         if [ $(wc -l < {count}) -lt 3 ]; then exit 1; fi; sleep 1000; : {token}",
        count = count.display()
    );
    let supervision = Supervisor::new(Command::new("sh").args(["-c", &script]))
        .with_runner(&group)
        .restart(RestartPolicy::OnCrash)
        .backoff(Duration::from_millis(5), 1.0)
        .run();
    tokio::select! {
        outcome = supervision => panic!("supervision ended early: {outcome:?}"),
        _ = async {
            while line_count(&count) < 3 || pids_with_token(&token).len() < 2 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        } => {}
    }
    // The supervisor is gone, but the group still holds run 3 and its grandchild
    // (earlier runs' grandchildren died when their run ended).
    assert_eq!(line_count(&count), 3);
    let alive = pids_with_token(&token);
    assert!(
        alive.len() >= 2,
        "last incarnation should outlive the supervisor: {alive:?}"
    );
    drop(group);
    assert!(
        wait_gone(&token).await,
        "survivors: {:?}",
        pids_with_token(&token)
    );
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn incarnations_sharing_a_cgroup_group_die_with_it() {
    incarnations_share_the_group(ProcessGroup::new().unwrap()).await;
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn incarnations_sharing_a_process_group_die_with_it() {
    let options =
        processkit::ProcessGroupOptions::default().mechanism(processkit::Mechanism::ProcessGroup);
    incarnations_share_the_group(ProcessGroup::with_options(options).unwrap()).await;
}

#[cfg(feature = "cancellation")]
mod cancellation {
    use super::*;
    use processkit::CancellationToken;

    #[tokio::test(start_paused = true)]
    async fn cancelling_during_backoff_stops_supervision_for_good() {
        let runner = CannedRunner::new(&[Some(1)]);
        let token = CancellationToken::new();
        let canceller = {
            let token = token.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(5)).await;
                token.cancel();
            })
        };
        let err = Supervisor::new(Command::new("canned").cancel_on(token))
            .with_runner(&runner)
            .restart(RestartPolicy::Always)
            .backoff(Duration::from_secs(60), 1.0)
            .run()
            .await
            .unwrap_err();
        canceller.await.unwrap();
        assert!(matches!(err, Error::Cancelled { .. }), "{err:?}");
        assert_eq!(runner.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pre_cancelled_token_runs_nothing() {
        let runner = CannedRunner::new(&[Some(0)]);
        let token = CancellationToken::new();
        token.cancel();
        let err = Supervisor::new(Command::new("canned").cancel_on(token))
            .with_runner(&runner)
            .run()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Cancelled { .. }));
        assert_eq!(runner.calls(), 0);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn cancelling_a_real_incarnation_ends_supervision_and_its_tree() {
        let token_str = token("sv-cancel");
        let _reaper = Cleanup::token(&token_str);
        let cancel = CancellationToken::new();
        let cmd = Command::new("sh")
            .args(["-c", &tree_script(&token_str)])
            .cancel_on(cancel.clone());
        let supervision = tokio::spawn(
            Supervisor::new(cmd)
                .restart(RestartPolicy::Always)
                .backoff(Duration::from_millis(1), 1.0)
                .run(),
        );
        wait_for_count(&token_str, 2).await;
        cancel.cancel();
        let err = supervision.await.unwrap().unwrap_err();
        assert!(matches!(err, Error::Cancelled { .. }), "{err:?}");
        assert!(wait_gone(&token_str).await);
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_supervised_incarnation_keeps_a_bounded_output() {
    let flood = Command::new("head").args(["-c", "8388608", "/dev/zero"]);
    let outcome = Supervisor::new(flood.clone())
        .restart(RestartPolicy::Never)
        .run()
        .await
        .unwrap();
    assert!(outcome.result.truncated());
    assert!(outcome.result.stdout().len() < 3 * processkit::SUPERVISED_OUTPUT);
    // A bound of the command's own wins.
    let outcome = Supervisor::new(flood.max_output(16 << 20))
        .restart(RestartPolicy::Never)
        .run()
        .await
        .unwrap();
    assert!(!outcome.result.truncated());
    assert_eq!(outcome.result.stdout().len(), 8 << 20);
}
