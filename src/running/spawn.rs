//! The one spawn path: lower the command into a spawn spec, place the child
//! in a container slot, start the pumps and the deadline watchdog.

use std::sync::Arc;
use std::time::Instant;

use super::RunningProcess;
use super::activity::watched;
use super::child::OsProcess;
use super::pump::Capture;
use super::stdin::feed;
use super::tee::{Forward, tee};
use crate::command::Command;
use crate::error::{Error, Operation, Result};
use crate::mechanism::Mechanism;
use crate::policy::{Activity, Arbiter, Idle, Watch};
use crate::stdin::StdinSource;
use crate::stdio::{Stdio, StdioKind};
use crate::sys::Container;
use crate::sys::spawn::{self, Invalid, OutputPlan, SpawnError, SpawnSpec, StagePipe, StdinPlan};
use crate::trace::trace_event;

/// Where a new run goes.
#[derive(Debug, Clone)]
pub(crate) enum Placement {
    /// Its own container (kill-on-drop with the handle), with an optional
    /// mechanism request.
    Own(Option<Mechanism>),
    /// A slot in an existing, shared container.
    Shared(Arc<Container>),
}

/// Stdio a pipeline wires for one stage in place of the command's own.
#[derive(Debug, Default)]
pub(crate) struct StageIo {
    /// The previous stage's stdout, to read from instead of `cmd.stdin`.
    pub(crate) stdin: Option<StagePipe>,
    /// Hand stdout back raw (for the next stage) instead of to the handle.
    pub(crate) raw_stdout: bool,
    /// The run is finished straight after its start by the same task, which
    /// reads the captured streams while it waits (no pump task per stream).
    pub(crate) finished_at_once: bool,
}

/// Starts `cmd` according to `placement`.
pub(crate) async fn spawn(cmd: &Command, placement: Placement) -> Result<RunningProcess> {
    let (run, _) = spawn_with(cmd, placement, StageIo::default()).await?;
    Ok(run)
}

/// Runs `cmd` according to `placement` to its full outcome, the output
/// read by this task while it waits.
pub(crate) async fn spawn_and_finish(
    cmd: &Command,
    placement: Placement,
) -> Result<crate::result::ProcessResult<Vec<u8>>> {
    let io = StageIo {
        finished_at_once: true,
        ..StageIo::default()
    };
    let (run, _) = spawn_with(cmd, placement, io).await?;
    run.finish_output().await
}

/// Starts `cmd` with its stdio partly wired by a pipeline; also returns the
/// raw stdout when `io.raw_stdout` asked for it.
pub(crate) async fn spawn_with(
    cmd: &Command,
    placement: Placement,
    io: StageIo,
) -> Result<(RunningProcess, Option<StagePipe>)> {
    let program = cmd.display_name();
    // A token cancelled before the run starts wins over any other outcome.
    cmd.cancel.check(&program)?;
    #[cfg(feature = "pty")]
    super::pty::check(cmd, &io)?;
    let stdin = match (io.stdin, &cmd.stdin.0, cmd.keep_stdin_open) {
        (Some(upstream), _, _) => StdinPlan::Stage(upstream),
        (None, _, true)
        | (None, StdinSource::Bytes(_) | StdinSource::Lines(_) | StdinSource::Reader(_), _) => {
            StdinPlan::Pipe
        }
        (None, StdinSource::File(path), false) => StdinPlan::Stage(open_stdin(path, &program)?),
        (None, StdinSource::Inherit, false) => StdinPlan::Inherit,
        (None, StdinSource::Null, false) => StdinPlan::Null,
    };
    let mut spec = lower(cmd, stdin, io.raw_stdout).map_err(|e| spawn_error(e, &program))?;
    spec.stdout = output_plan(&cmd.stdout, &program)?;
    spec.stderr = if cmd.stderr_to_stdout {
        OutputPlan::Stdout
    } else {
        output_plan(&cmd.stderr, &program)?
    };
    check_idle(cmd, &spec, io.raw_stdout)?;
    super::check_runtime(&program)?;
    #[cfg(feature = "pty")]
    let terminal = super::pty::attach(cmd, &mut spec, &program)?;
    let (container, owned) = match placement {
        Placement::Own(mechanism) => (Arc::new(Container::new(mechanism, true)?), true),
        Placement::Shared(container) => (container, false),
    };
    let mut slot = container
        .slot(cmd.stop_signal)
        .map_err(|e| Error::io(&program, crate::error::Operation::PrepareContainer, e))?;

    let started = Instant::now();
    #[allow(unused_mut)]
    let mut child = spawn::start(spec, &mut slot)
        .await
        .map_err(|e| spawn_error(e, &program))?;
    #[cfg(feature = "pty")]
    let pty = super::pty::wire(&mut child, terminal);
    let slot = Arc::new(slot);
    let pid = child.child.id();

    let arbiter = Arc::new(Arbiter::default());
    let mut stdin = child.stdin;
    if !cmd.keep_stdin_open
        && let Some(pipe) = stdin.take()
    {
        #[cfg(feature = "pty")]
        let source = &super::pty::input(&cmd.stdin.0, pty.is_some());
        #[cfg(not(feature = "pty"))]
        let source = &cmd.stdin.0;
        feed(source, pipe, arbiter.ended());
    }
    let activity = cmd.idle_timeout.map(|_| Activity::new());
    let stdout_tee = cmd.stdout.tees();
    let stderr_tee = cmd.stderr.tees() && !cmd.stderr_to_stdout;
    // Drained from the start: a child nobody reads never blocks on a full
    // pipe, and a later line stream starts with what was kept.
    let capture = |pipe, handler: &Option<_>| {
        if io.finished_at_once {
            Capture::start_for_finisher(pipe, handler.clone(), cmd.max_output)
        } else {
            Capture::start_bounded(Vec::new(), pipe, handler.clone(), cmd.max_output)
        }
    };
    let stdout = child
        .stdout
        .map(|pipe| watched(tee(pipe, stdout_tee, Forward::Stdout), activity.as_ref()))
        .map_or_else(Capture::closed, |pipe| capture(pipe, &cmd.stdout_handler));
    let stderr = child.stderr.map(|pipe| {
        let pipe = watched(tee(pipe, stderr_tee, Forward::Stderr), activity.as_ref());
        capture(pipe, &cmd.stderr_handler)
    });

    let watch = Watch {
        // A deadline too far away to represent is no deadline.
        deadline: cmd
            .timeout
            .and_then(|t| tokio::time::Instant::from_std(started).checked_add(t)),
        grace: cmd.timeout_grace,
        idle: cmd
            .idle_timeout
            .zip(activity)
            .map(|(limit, activity)| Idle { limit, activity }),
        cancel: cmd.cancel.clone(),
        cancel_grace: cmd.cancel_grace,
        program: program.clone(),
        pid,
    };
    let watchdog = watch.spawn(Arc::clone(&slot), Arc::clone(&arbiter));
    trace_event!(
        debug,
        "spawn",
        program = %program,
        pid = ?pid,
        mechanism = %container.mechanism(),
        spawner = %child.spawner,
        shared_group = %!owned,
    );
    let run = RunningProcess {
        child: Box::new(OsProcess {
            child: child.child,
            slot: Arc::clone(&slot),
            program: program.clone(),
            foreground: child.foreground,
            #[cfg(feature = "pty")]
            pty,
        }),
        program,
        pid,
        container: owned.then_some(container),
        started,
        timeout: cmd.timeout,
        idle_timeout: cmd.idle_timeout,
        arbiter,
        watchdog,
        stdout,
        stderr,
        stdin,
        exit: None,
        finished_off: false,
    };
    Ok((run, child.stage_stdout))
}

/// Why a spawn option cannot be honoured here.
fn unsupported_reason(option: &str) -> &'static str {
    match option {
        "creation_flags" | "raw_arg" => {
            "Windows-only: Unix has no creation flags or raw command line"
        }
        "pre_exec under the subreaper mechanism" => {
            "a subreaper run is started by its shim, another process, where a pre_exec closure of \
             this process cannot run; use the cgroup or process-group mechanism"
        }
        _ if cfg!(windows) => {
            "POSIX-only: Windows has no user/group ids, sessions, argv[0], umask, resource \
             limits, pre-exec hooks or terminal process groups to set at spawn"
        }
        _ => "not available on this platform",
    }
}

/// Refuses an idle timeout nothing could measure: it counts the bytes
/// processkit reads, so at least one stream must come to us.
fn check_idle(cmd: &Command, spec: &SpawnSpec, raw_stdout: bool) -> Result<()> {
    let Some(idle) = cmd.idle_timeout else {
        return Ok(());
    };
    let reason = if idle.is_zero() {
        "an idle timeout must be longer than zero"
    } else if (raw_stdout || !matches!(spec.stdout, OutputPlan::Pipe))
        && !matches!(spec.stderr, OutputPlan::Pipe)
    {
        "an idle timeout needs stdout or stderr captured: it counts the bytes processkit reads"
    } else {
        return Ok(());
    };
    Err(Error::InvalidCommand {
        program: cmd.display_name(),
        reason: reason.to_owned(),
    })
}

/// Where `stdio` sends a stream, for the spawner (a file is duplicated:
/// the command keeps its own).
pub(super) fn output_plan(stdio: &Stdio, program: &str) -> Result<OutputPlan> {
    Ok(match &stdio.0 {
        StdioKind::Capture { .. } => OutputPlan::Pipe,
        StdioKind::Inherit => OutputPlan::Inherit,
        StdioKind::Null => OutputPlan::Null,
        StdioKind::File(file) => OutputPlan::File(
            file.try_clone()
                .map(StagePipe::from)
                .map_err(|e| Error::io(program, crate::error::Operation::Start, e))?,
        ),
    })
}

/// Opens the file a command reads as its stdin (close-on-exec: only the
/// child's own stdin keeps it open).
pub(super) fn open_stdin(path: &std::path::Path, program: &str) -> Result<StagePipe> {
    std::fs::File::open(path)
        .map(StagePipe::from)
        .map_err(|e| Error::io(program, crate::error::Operation::OpenStdin, e))
}

/// Lowers `cmd` into the spec both spawners consume; sys validates it
/// (NUL bytes, an empty program, a missing working directory, what this
/// platform cannot do) and resolves its environment and `PATH` once.
pub(super) fn lower(
    cmd: &Command,
    stdin: StdinPlan,
    raw_stdout: bool,
) -> std::result::Result<SpawnSpec, SpawnError> {
    SpawnSpec::new(
        &cmd.program,
        &cmd.args,
        &cmd.env,
        cmd.cwd.as_deref(),
        stdin,
        raw_stdout,
        &cmd.os,
    )
}

/// The user-facing error for a spawn that did not happen.
pub(super) fn spawn_error(error: SpawnError, program: &str) -> Error {
    let invalid = |reason: String| Error::InvalidCommand {
        program: program.to_owned(),
        reason,
    };
    match error {
        SpawnError::Invalid(Invalid::EmptyProgram) => {
            invalid("the program name is empty".to_owned())
        }
        SpawnError::Invalid(Invalid::NulInProgram) => {
            invalid("the program name contains a NUL byte".to_owned())
        }
        SpawnError::Invalid(Invalid::NulInArg0) => invalid("arg0 contains a NUL byte".to_owned()),
        SpawnError::Invalid(Invalid::NulInArgument(i)) => {
            invalid(format!("argument {i} contains a NUL byte"))
        }
        SpawnError::Invalid(Invalid::Environment) => {
            invalid("an environment variable name or value contains a NUL byte or '='".to_owned())
        }
        SpawnError::Invalid(Invalid::BatchArgument(i)) => invalid(format!(
            "argument {i} contains a line break, which cannot be passed safely to a batch \
             file (.bat/.cmd): cmd.exe would end the command there"
        )),
        SpawnError::WorkingDirectory(dir) => Error::WorkingDirectory {
            program: program.to_owned(),
            dir,
        },
        SpawnError::Unsupported(operation) => Error::Unsupported {
            operation,
            reason: unsupported_reason(operation).into(),
        },
        SpawnError::Prepare(e) => Error::group_io(Operation::OpenCgroupProcs, e),
        SpawnError::NotFound => Error::NotFound {
            program: program.to_owned(),
        },
        SpawnError::Spawn(source) => Error::Spawn {
            program: program.to_owned(),
            source,
        },
        SpawnError::Contain(e) => Error::io(program, Operation::PlaceInContainer, e),
    }
}
