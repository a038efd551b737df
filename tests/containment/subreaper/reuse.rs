//! Reused shims: a run that ended untouched lends its shim to the next run,
//! a signalled or killed one never does, a reused shim still holds and kills
//! its run's whole tree, and idle shims end with their owner.

use super::{LIMIT, is_shim, ppid, shim_of};
use crate::common;
use crate::groupctl_support::skip;

use std::time::Duration;

use common::privileges::{Helper, Proc, acting_as, report};
use common::{Cleanup, TempDir, eventually, eventually_async, pids_with_token, token};
use processkit::{Command, JobRunner, Mechanism, ProcessRunnerExt};

/// Other tests share the pool: a shim given back may be taken by one of
/// them first, so each property gets this many tries.
const TRIES: usize = 20;

/// Shims come from the zygote, and only its shims are reused: none with
/// `PROCESSKIT_ZYGOTE=0` (says so and returns `true`).
pub fn no_reuse_here() -> bool {
    let off = std::env::var("PROCESSKIT_ZYGOTE").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "0" | "off" | "false" | "no"
        )
    });
    if off {
        skip("PROCESSKIT_ZYGOTE is off: every shim is forked here, none reused");
    }
    off
}

fn runner() -> JobRunner {
    JobRunner::with_mechanism(Mechanism::Subreaper)
}

/// The shim that ran `sh -c 'echo $PPID'` (the program's parent), once it
/// ended by itself.
async fn shim_of_a_clean_run(token: &str) -> u32 {
    let cmd = common::sh_as("echo $PPID", token);
    let out = runner().output_string(&cmd).await.unwrap();
    assert_eq!(out.code(), Some(0), "{out:?}");
    out.stdout()
        .trim()
        .parse()
        .expect("the program's parent pid")
}

#[tokio::test]
async fn a_run_that_ended_untouched_lends_its_shim_to_the_next_run() {
    if no_reuse_here() {
        return;
    }
    let token = token("lend");
    let _cleanup = Cleanup::token(&token);
    let me = std::process::id();
    for _ in 0..TRIES {
        let first = shim_of_a_clean_run(&token).await;
        let mut run = runner()
            .start(&common::sh_as("exec sleep 1000", &token))
            .await
            .unwrap();
        let second = ppid(run.id().expect("running")).expect("the program's parent");
        let reused = first == second;
        if reused {
            assert!(is_shim(second), "{second} is not a pk-shim");
            assert!(shim_of(second, me), "{second} is not our zygote's");
        }
        run.kill().unwrap();
        drop(run);
        if reused {
            return;
        }
    }
    panic!("no run got the shim of the run before it in {TRIES} tries");
}

#[tokio::test]
async fn a_signalled_or_killed_run_never_lends_its_shim() {
    let token = token("retire");
    let _cleanup = Cleanup::token(&token);
    for kill in [false, true] {
        // The run ends with its tree empty (a signalled `sleep` has no
        // children), exactly as a clean one would but for the signal.
        let mut run = runner()
            .start(&common::sh_as("exec sleep 1000", &token))
            .await
            .unwrap();
        let shim = ppid(run.id().expect("running")).expect("the program's parent");
        let shim = Proc::of(shim).expect("the shim runs");
        if kill {
            run.kill().unwrap();
        } else {
            run.stop(Duration::from_secs(5)).await.unwrap();
        }
        drop(run);
        for _ in 0..3 {
            let next = shim_of_a_clean_run(&token).await;
            assert_ne!(
                next, shim.pid,
                "the shim of a run that was (killed: {kill}) was lent"
            );
        }
        let gone = eventually_async(LIMIT, || !shim.is_alive()).await;
        assert!(gone, "the shim of a run that was (killed: {kill}) stayed");
    }
}

#[tokio::test]
async fn a_reused_shims_run_is_killed_whole_on_drop() {
    if no_reuse_here() {
        return;
    }
    let token = token("reused-tree");
    let _cleanup = Cleanup::token(&token);
    // The run's grandchild leaves its session: only the shim holds it. Both
    // shells carry the token in their argv.
    let script = "setsid sh -c 'while :; do sleep 1; done' \"$0\" & while :; do sleep 1; done";
    for _ in 0..TRIES {
        let first = shim_of_a_clean_run(&token).await;
        let run = runner()
            .start(&common::sh_as(script, &token))
            .await
            .unwrap();
        let program = run.id().expect("running");
        if ppid(program) != Some(first) {
            drop(run);
            let gone = eventually_async(LIMIT, || pids_with_token(&token).is_empty()).await;
            assert!(gone, "left: {:?}", pids_with_token(&token));
            continue;
        }
        let formed = eventually_async(LIMIT, || pids_with_token(&token).len() >= 2).await;
        assert!(formed, "the tree: {:?}", pids_with_token(&token));
        drop(run);
        let gone = eventually_async(LIMIT, || pids_with_token(&token).is_empty()).await;
        assert!(gone, "left after drop: {:?}", pids_with_token(&token));
        return;
    }
    panic!("no run got the shim of the run before it in {TRIES} tries");
}

const OWNER: &str = "helper_owner_with_idle_shims";

/// Helper: three runs at once end by themselves, leaving three idle shims;
/// reports them, waits for `PK_DIR/go`, and exits.
#[test]
#[ignore = "helper process for the idle-shims test"]
fn helper_owner_with_idle_shims() {
    if !acting_as(OWNER) {
        return;
    }
    let dir = std::path::PathBuf::from(std::env::var("PK_DIR").expect("PK_DIR"));
    let token = std::env::var("PK_TOKEN").expect("PK_TOKEN");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let shims: Vec<u32> = runtime.block_on(async {
        let runs: Vec<_> = (0..3)
            .map(|_| {
                let cmd = Command::new("sh").args(["-c", "sleep 0.3; echo $PPID", &token]);
                tokio::spawn(async move { runner().output_string(&cmd).await.expect("run") })
            })
            .collect();
        let mut shims = Vec::new();
        for run in runs {
            let out = run.await.expect("the run's task");
            shims.push(out.stdout().trim().parse().expect("a pid"));
        }
        shims
    });
    let list: Vec<String> = shims.iter().map(u32::to_string).collect();
    report("SHIMS", list.join(","));
    let go = dir.join("go");
    while !go.exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn idle_shims_end_with_their_owner() {
    if no_reuse_here() {
        return;
    }
    let scratch = TempDir::new("idle");
    let token = token("idle");
    let _cleanup = Cleanup::token(&token);
    let dir = scratch.0.to_string_lossy().into_owned();
    let env = [("PK_DIR", dir.as_str()), ("PK_TOKEN", token.as_str())];
    let owner = Helper::start(OWNER, &env);
    let shims: Vec<Proc> = owner
        .value("SHIMS")
        .split(',')
        .map(|p| p.parse().expect("a pid"))
        .filter_map(Proc::of)
        .collect();
    // Idle in the owner's pool, not ended: the owner still runs.
    assert_eq!(shims.len(), 3, "three idle shims: {shims:?}");
    assert!(
        shims
            .iter()
            .all(|s| is_shim(s.pid) && shim_of(s.pid, owner.proc.pid)),
        "{shims:?} are not the owner's idle shims"
    );
    std::fs::write(scratch.join("go"), "").expect("write go");
    let exited = eventually(LIMIT, || !owner.proc.is_alive());
    assert!(exited, "the owner did not exit");
    // Well before an idle shim would end by itself (10 s).
    let gone = eventually(Duration::from_secs(5), || {
        shims.iter().all(|s| !s.is_alive())
    });
    let left: Vec<_> = shims.iter().filter(|s| s.is_alive()).collect();
    assert!(gone, "idle shims outlived their owner: {left:?}");
}
