//! Runs on a pseudo-terminal: which commands can (`check`), the terminal
//! opened by `sys` while the spawn is lowered, its master put where the
//! child's pipes would be, and `RunningProcess::resize_pty`.

use super::RunningProcess;
use super::spawn::StageIo;
use crate::command::Command;
use crate::error::{Error, Operation, Result};
use crate::stdin::StdinSource;
use crate::sys::pty::Control;
use crate::sys::spawn::{InputPipe, ReadPipe, SpawnSpec, StartedChild};

/// The parent's ends of a run's terminal, all made before the spawn so that
/// nothing can fail once the child runs.
pub(crate) struct PtyIo {
    reader: ReadPipe,
    writer: InputPipe,
    control: Control,
}

/// Refuses what a run on a terminal cannot honour, before anything is opened.
pub(crate) fn check(cmd: &Command, io: &StageIo) -> Result<()> {
    let Some((rows, cols)) = cmd.pty else {
        return Ok(());
    };
    let reason = if rows == 0 || cols == 0 {
        "pty_size needs at least one row and one column"
    } else if io.stdin.is_some() || io.raw_stdout {
        "a pipeline stage cannot run on a pseudo-terminal"
    } else if matches!(cmd.stdin.0, StdinSource::Inherit | StdinSource::File(_)) {
        "on a pseudo-terminal stdin is the terminal: feed it data, lines or a reader, \
         or keep it open"
    } else if !cmd.stdout.is_captured() {
        "on a pseudo-terminal stdout must be captured: the terminal's output comes to processkit"
    } else {
        return Ok(());
    };
    Err(Error::InvalidCommand {
        program: cmd.display_name(),
        reason: reason.to_owned(),
    })
}

/// Opens the command's terminal, if it asks for one, and gives `spec` the
/// child's side of it.
pub(crate) fn attach(cmd: &Command, spec: &mut SpawnSpec, program: &str) -> Result<Option<PtyIo>> {
    let Some((rows, cols)) = cmd.pty else {
        return Ok(None);
    };
    open(spec, rows, cols)
        .map(Some)
        .map_err(|e| Error::io(program, Operation::OpenPty, e))
}

fn open(spec: &mut SpawnSpec, rows: u16, cols: u16) -> std::io::Result<PtyIo> {
    let terminal = crate::sys::pty::attach(spec, rows, cols)?;
    Ok(PtyIo {
        reader: terminal.reader()?,
        writer: terminal.writer()?,
        control: terminal.control(),
    })
}

/// Puts the terminal where the child's stdout and stdin pipes would be;
/// returns the resize control.
pub(crate) fn wire(child: &mut StartedChild, io: Option<PtyIo>) -> Option<Control> {
    let io = io?;
    child.stdout = Some(io.reader);
    child.stdin = Some(io.writer);
    Some(io.control)
}

/// What feeds the child's input when stdin is not kept open: on a terminal
/// a null stdin is the end-of-file character, sent at once.
pub(crate) fn input(source: &StdinSource, on_pty: bool) -> StdinSource {
    match source {
        StdinSource::Null if on_pty => StdinSource::Bytes(Vec::new().into()),
        other => other.clone(),
    }
}

impl RunningProcess {
    /// Sets the size of the run's pseudo-terminal, in rows and columns.
    /// On Unix the terminal's foreground process group gets `SIGWINCH`
    /// (a full-screen program redraws); on Windows the pseudo console is
    /// resized.
    ///
    /// Fails with [`Error::Unsupported`] on a run not started with
    /// [`Command::pty`], with [`Error::InvalidArgument`] for a zero size,
    /// and with [`Error::Io`] once the terminal is gone (on Windows, after
    /// the child exited).
    ///
    /// ```no_run
    /// # async fn demo() -> processkit::Result<()> {
    /// use processkit::Command;
    /// let mut run = Command::new("top").pty().start().await?;
    /// run.resize_pty(50, 132)?;
    /// # Ok(()) }
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "pty")))]
    pub fn resize_pty(&self, rows: u16, cols: u16) -> Result<()> {
        if rows == 0 || cols == 0 {
            return Err(Error::InvalidArgument {
                operation: Operation::ResizePty,
                reason: format!(
                    "a terminal needs at least one row and one column, not {rows}x{cols}"
                ),
            });
        }
        let Some(control) = self.child.pty() else {
            return Err(Error::Unsupported {
                operation: "resize_pty",
                reason: format!("{} was not started with Command::pty()", self.program),
            });
        };
        control
            .resize(rows, cols)
            .map_err(|e| Error::io(&self.program, Operation::ResizePty, e))
    }
}
