//! The one spawn path: validate the command, place the child in a container
//! slot, start the pumps and the deadline watchdog.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::arbiter::{self, Arbiter, Watch};
use super::pump::Capture;
use super::stdin::feed;
use super::{RunningProcess, StdoutState, Waiter};
use crate::command::Command;
use crate::error::{Error, Result};
use crate::mechanism::Mechanism;
use crate::stdin::StdinSource;
use crate::sys::Container;
use crate::sys::spawn::stdio::StagePipe;
use crate::sys::spawn::{self as child, StartError, StdinPlan};
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
}

/// Starts `cmd` according to `placement`.
pub(crate) async fn spawn(cmd: &Command, placement: Placement) -> Result<RunningProcess> {
    let (run, _) = spawn_with(cmd, placement, StageIo::default()).await?;
    Ok(run)
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
    #[cfg(feature = "cancellation")]
    if cmd.cancel.as_ref().is_some_and(|t| t.is_cancelled()) {
        return Err(Error::Cancelled { program });
    }
    validate(cmd, &program)?;
    super::check_runtime(&program)?;
    let (container, owned) = match placement {
        Placement::Own(mechanism) => (Arc::new(Container::new(mechanism, true)?), true),
        Placement::Shared(container) => (container, false),
    };
    let mut slot = container
        .slot()
        .map_err(|e| Error::io(&program, "prepare container", e))?;

    let stdin = match (io.stdin, &cmd.stdin.0, cmd.keep_stdin_open) {
        (Some(upstream), _, _) => StdinPlan::Stage(upstream),
        (None, _, true) | (None, StdinSource::Bytes(_) | StdinSource::Lines(_), _) => {
            StdinPlan::Pipe
        }
        (None, StdinSource::Inherit, false) => StdinPlan::Inherit,
        (None, StdinSource::Null, false) => StdinPlan::Null,
    };
    let started = Instant::now();
    let child = child::start(cmd, stdin, io.raw_stdout, &mut slot)
        .await
        .map_err(|e| match e {
            StartError::Refused(e) => e,
            StartError::Spawn(e) => spawn_error(cmd, &program, e),
            StartError::Contain(e) => Error::io(&program, "place child in container", e),
        })?;
    let slot = Arc::new(slot);
    let pid = child.child.id();

    let arbiter = Arc::new(Arbiter::default());
    let mut stdin = child.stdin;
    if !cmd.keep_stdin_open
        && let Some(pipe) = stdin.take()
    {
        feed(&cmd.stdin.0, pipe, arbiter.ended());
    }
    let stdout = child
        .stdout
        .map_or(StdoutState::Taken, |pipe| match &cmd.stdout_handler {
            Some(handler) => {
                StdoutState::Capturing(Capture::start(Vec::new(), pipe, Some(handler.clone())))
            }
            None => StdoutState::Pipe(pipe),
        });
    let stderr = child
        .stderr
        .map(|pipe| Capture::start(Vec::new(), pipe, cmd.stderr_handler.clone()));

    let watch = Watch {
        // A deadline too far away to represent is no deadline.
        deadline: cmd
            .timeout
            .and_then(|t| tokio::time::Instant::from_std(started).checked_add(t)),
        grace: cmd.timeout_grace,
        #[cfg(feature = "cancellation")]
        cancel: cmd.cancel.clone(),
        program: program.clone(),
        pid,
    };
    let watchdog = arbiter::start(watch, Arc::clone(&slot), Arc::clone(&arbiter));
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
        program,
        pid,
        child: Waiter::Os(child.child),
        slot: Some(slot),
        container: owned.then_some(container),
        started,
        timeout: cmd.timeout,
        arbiter,
        watchdog,
        stdout,
        stderr,
        stdin,
        exit: None,
    };
    Ok((run, child.stage_stdout))
}

/// Rejects what the OS would reject less clearly: NUL bytes and a missing
/// working directory. A missing program is recognised from the spawn error
/// (`spawn_error`), so a successful spawn pays for no `PATH` search of ours.
fn validate(cmd: &Command, program: &str) -> Result<()> {
    let has_nul = |s: &OsStr| s.as_encoded_bytes().contains(&0);
    let invalid = |reason: &str| Error::InvalidCommand {
        program: program.to_owned(),
        reason: reason.to_owned(),
    };
    if cmd.program.is_empty() {
        return Err(invalid("the program name is empty"));
    }
    if has_nul(&cmd.program) {
        return Err(invalid("the program name contains a NUL byte"));
    }
    if let Some(i) = cmd.args.iter().position(|a| has_nul(a)) {
        return Err(invalid(&format!("argument {i} contains a NUL byte")));
    }
    let env_nul = cmd.env.overrides.iter().any(|(k, v)| {
        has_nul(k)
            || k.is_empty()
            || k.as_encoded_bytes().contains(&b'=')
            || v.as_deref().is_some_and(has_nul)
    });
    if env_nul {
        return Err(invalid(
            "an environment variable name or value contains a NUL byte or '='",
        ));
    }
    if let Some(dir) = &cmd.cwd
        && !dir.is_dir()
    {
        return Err(Error::WorkingDirectory {
            program: program.to_owned(),
            dir: dir.clone(),
        });
    }
    Ok(())
}

/// Resolves the program the way the OS will: a path is taken as is (relative
/// to the working directory), a bare name is searched on the child's `PATH`.
fn find_program(cmd: &Command) -> Option<PathBuf> {
    let program = Path::new(&cmd.program);
    if program.components().count() > 1 || program.is_absolute() {
        let full = match &cmd.cwd {
            Some(dir) if program.is_relative() => dir.join(program),
            _ => program.to_owned(),
        };
        return is_executable_file(&full).then_some(full);
    }
    let path: Option<OsString> = match cmd.env.overrides.iter().rev().find(|(k, _)| k == "PATH") {
        Some((_, value)) => value.clone(),
        None if cmd.env.starts_from_parent() => std::env::var_os("PATH"),
        None => cmd.env.resolve().remove(OsStr::new("PATH")),
    };
    // Without PATH, exec searches libc's default list (glibc and macOS alike).
    let path = path.unwrap_or_else(|| OsString::from("/usr/bin:/bin"));
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .chain(windows_candidates(program, &path))
        .find(|p| is_executable_file(p))
}

/// On Windows a bare name may omit `.exe`.
fn windows_candidates(program: &Path, path: &OsStr) -> Vec<PathBuf> {
    if !cfg!(windows) || program.extension().is_some() {
        return Vec::new();
    }
    let mut with_ext = program.as_os_str().to_owned();
    with_ext.push(".exe");
    let mut out: Vec<PathBuf> = std::env::split_paths(path)
        .map(|dir| dir.join(&with_ext))
        .collect();
    if let Some(system) = std::env::var_os("SystemRoot") {
        out.push(Path::new(&system).join("System32").join(&with_ext));
    }
    out
}

fn is_executable_file(path: &Path) -> bool {
    path.metadata().is_ok_and(|m| m.is_file())
}

fn spawn_error(cmd: &Command, program: &str, source: std::io::Error) -> Error {
    if source.kind() == std::io::ErrorKind::NotFound && find_program(cmd).is_none() {
        return Error::NotFound {
            program: program.to_owned(),
        };
    }
    Error::Spawn {
        program: program.to_owned(),
        source,
    }
}
