//! Starting a pipeline: every stage goes through the one spawn path into one
//! shared container, each stage's stdout wired straight into the next's stdin.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::outcome::Stages;
use super::{Pipeline, watch};
use crate::command::Command;
use crate::error::{Error, Result};
use crate::policy::Arbiter;
use crate::running::{Placement, RunningProcess, StageIo, spawn_with};
use crate::stdin::StdinSource;
use crate::sys::Container;

/// How long a failed start waits for the stages it already killed to be reaped.
const REAP_AFTER_FAILED_START: Duration = Duration::from_secs(5);

/// Starts every stage of `pipeline` and returns one handle on the whole chain.
/// If any stage cannot start, the stages already running are killed and reaped.
pub(crate) async fn start(pipeline: &Pipeline) -> Result<RunningProcess> {
    check_stages(&pipeline.stages)?;
    let program = pipeline.stages.last().map(Command::display_name);
    crate::running::check_runtime(program.as_deref().unwrap_or("pipeline"))?;
    let container = Arc::new(Container::new(None, false)?);
    let started = Instant::now();
    let mut runs = Vec::with_capacity(pipeline.stages.len());
    if let Err(error) = spawn_stages(&pipeline.stages, &container, &mut runs).await {
        let _ = container.kill_all();
        for run in &mut runs {
            let _ = tokio::time::timeout(REAP_AFTER_FAILED_START, run.wait_exit()).await;
        }
        return Err(error);
    }
    Ok(assemble(pipeline, runs, container, started))
}

/// Rejects stage settings a pipeline would otherwise silently ignore.
fn check_stages(stages: &[Command]) -> Result<()> {
    let invalid = |cmd: &Command, reason: &str| Error::InvalidCommand {
        program: cmd.display_name(),
        reason: reason.to_owned(),
    };
    let last = stages.len().saturating_sub(1);
    for (i, cmd) in stages.iter().enumerate() {
        let own_stdin = cmd.keep_stdin_open || !matches!(cmd.stdin.0, StdinSource::Null);
        if i > 0 && own_stdin {
            return Err(invalid(
                cmd,
                "an inner pipeline stage reads the previous stage's output; only the first stage's stdin can be set",
            ));
        }
        if i < last && !cmd.stdout.is_captured() {
            return Err(invalid(
                cmd,
                "an inner pipeline stage's stdout feeds the next stage; only the last stage's stdout can be routed",
            ));
        }
        if i < last && cmd.idle_timeout.is_some() {
            return Err(invalid(
                cmd,
                "an inner pipeline stage's stdout feeds the next stage, not processkit; only the last stage can have an idle timeout",
            ));
        }
        if i < last && cmd.stdout_handler.is_some() {
            return Err(invalid(
                cmd,
                "only the last pipeline stage's stdout reaches the parent, so only it can have a stdout line handler",
            ));
        }
    }
    Ok(())
}

/// Spawns the stages in order, pushing each onto `runs` as it starts.
async fn spawn_stages(
    stages: &[Command],
    container: &Arc<Container>,
    runs: &mut Vec<RunningProcess>,
) -> Result<()> {
    let mut upstream = None;
    for (i, cmd) in stages.iter().enumerate() {
        let io = StageIo {
            stdin: upstream.take(),
            raw_stdout: i + 1 < stages.len(),
            finished_at_once: false,
        };
        let (run, stdout) = spawn_with(cmd, Placement::Shared(Arc::clone(container)), io).await?;
        runs.push(run);
        upstream = stdout;
    }
    Ok(())
}

/// One handle for the chain: the first stage's stdin, the last stage's stdout,
/// a watchdog for the chain's timeout and a waiter over every stage.
fn assemble(
    pipeline: &Pipeline,
    mut runs: Vec<RunningProcess>,
    container: Arc<Container>,
    started: Instant,
) -> RunningProcess {
    let stdin = runs.first_mut().and_then(|first| first.stdin.take());
    let last = runs.last_mut().expect("a pipeline has at least two stages");
    let stdout = last.stdout.take();
    let (program, pid) = (last.program.clone(), last.pid);
    let arbiter = Arc::new(Arbiter::default());
    // A deadline too far away to represent is no deadline.
    let deadline = pipeline
        .timeout
        .and_then(|timeout| tokio::time::Instant::from_std(started).checked_add(timeout));
    let watchdog = watch::start(
        deadline,
        &pipeline.stages,
        (program.clone(), pid),
        Arc::clone(&container),
        Arc::clone(&arbiter),
    );
    let checked = pipeline.stages.iter().map(|c| !c.unchecked).collect();
    let stages = Stages::new(runs, checked, Arc::clone(&container));
    RunningProcess {
        program,
        child: Box::new(stages),
        pid,
        container: Some(container),
        started,
        timeout: pipeline.timeout,
        idle_timeout: None,
        arbiter,
        watchdog,
        stdout,
        stderr: None,
        stdin,
        exit: None,
        finished_off: false,
    }
}
