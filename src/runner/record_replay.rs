//! `RecordReplayRunner` (feature `record`): records real runs into a
//! cassette file once, then replays them without spawning anything.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::cassette::{self, Entry, Key};
use super::script::start_scripted;
use super::scripted::no_reply;
use super::{BoxFuture, ProcessRunner};
use crate::command::Command;
use crate::error::{Error, Result};
use crate::result::ProcessResult;
use crate::running::RunningProcess;

enum Mode {
    Record(Box<dyn ProcessRunner>),
    Replay,
}

#[derive(Default)]
struct State {
    entries: Vec<Entry>,
    /// Replay: the entries of each invocation (indices, capture order) and
    /// how many of them were served.
    by_key: HashMap<Key, (Vec<usize>, usize)>,
    /// Record: entries captured since the last save.
    unsaved: bool,
}

/// A [`ProcessRunner`] that records runs into a JSON cassette, or replays
/// a cassette without spawning any process (feature `record`).
///
/// Replay matches a command by program, arguments, working directory and
/// whether it feeds stdin. When one invocation was recorded several times,
/// replay serves the recordings in capture order and then keeps repeating
/// the last. A command that is not in the cassette fails with
/// [`Error::NoReply`]; replay never falls back to a real run.
///
/// The file never contains environment values: each entry keeps only the
/// sorted names of the variables the command set or removed. Arguments and
/// output are stored as they are, so keep secrets out of argv.
///
/// ```no_run
/// # async fn demo() -> processkit::Result<()> {
/// use processkit::{Command, JobRunner, ProcessRunnerExt, RecordReplayRunner};
/// let runner = RecordReplayRunner::record("fixtures/uname.json", JobRunner::new());
/// let kernel = runner.run(&Command::new("uname").arg("-s")).await?;
/// runner.save()?;
///
/// let replay = RecordReplayRunner::replay("fixtures/uname.json")?;
/// assert_eq!(replay.run(&Command::new("uname").arg("-s")).await?, kernel);
/// # Ok(()) }
/// ```
///
/// In record mode, [`start`](ProcessRunner::start) runs the command to
/// completion (so the whole run can be stored) and hands back a handle that
/// replays it; use it for commands that end on their own.
pub struct RecordReplayRunner {
    path: PathBuf,
    mode: Mode,
    state: Mutex<State>,
}

impl RecordReplayRunner {
    /// Runs commands through `inner` and records each outcome for `path`.
    /// Nothing is written until [`save`](RecordReplayRunner::save) (or, best
    /// effort, drop); the file is then replaced with this session's runs.
    pub fn record(path: impl AsRef<Path>, inner: impl ProcessRunner + 'static) -> Self {
        RecordReplayRunner {
            path: path.as_ref().to_owned(),
            mode: Mode::Record(Box::new(inner)),
            state: Mutex::new(State::default()),
        }
    }

    /// Loads the cassette at `path` for replay. A missing or malformed file,
    /// or one with another format version, is an [`Error::Io`].
    pub fn replay(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_owned();
        let entries = cassette::load(&path)?;
        let mut by_key: HashMap<Key, (Vec<usize>, usize)> = HashMap::new();
        for (i, entry) in entries.iter().enumerate() {
            by_key.entry(entry.key()).or_default().0.push(i);
        }
        Ok(RecordReplayRunner {
            path,
            mode: Mode::Replay,
            state: Mutex::new(State {
                entries,
                by_key,
                unsaved: false,
            }),
        })
    }

    /// Writes the recorded runs to the cassette file. Does nothing when
    /// replaying.
    pub fn save(&self) -> Result<()> {
        if let Mode::Replay = self.mode {
            return Ok(());
        }
        let mut state = self.state();
        cassette::save(&self.path, &state.entries)?;
        state.unsaved = false;
        Ok(())
    }

    /// The cassette file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this runner replays (rather than records).
    pub fn is_replaying(&self) -> bool {
        matches!(self.mode, Mode::Replay)
    }

    /// How many runs the cassette holds (recorded so far, or loaded).
    pub fn len(&self) -> usize {
        self.state().entries.len()
    }

    /// Whether the cassette holds no runs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replay: the next recorded entry for `cmd`, repeating the last one.
    fn next_entry(&self, cmd: &Command) -> Result<Entry> {
        cmd.cancel.check(&cmd.display_name())?;
        let mut state = self.state();
        let State {
            entries, by_key, ..
        } = &mut *state;
        let Some((indices, served)) = by_key.get_mut(&Key::of(cmd)) else {
            let why = format!("not recorded in cassette {}", self.path.display());
            return Err(no_reply(cmd, &why));
        };
        let index = indices[(*served).min(indices.len() - 1)];
        *served += 1;
        Ok(entries[index].clone())
    }

    /// Record: runs `cmd` for real and keeps its outcome.
    async fn record_run(
        &self,
        inner: &dyn ProcessRunner,
        cmd: &Command,
    ) -> Result<ProcessResult<Vec<u8>>> {
        let outcome = inner.output_bytes(cmd).await;
        let entry = match &outcome {
            Ok(result) => Entry::finished(cmd, result),
            Err(Error::NotFound { .. }) => Entry::not_found(cmd),
            Err(_) => return outcome,
        };
        let mut state = self.state();
        state.entries.push(entry);
        state.unsaved = true;
        outcome
    }
}

impl ProcessRunner for RecordReplayRunner {
    fn start<'a>(&'a self, cmd: &'a Command) -> BoxFuture<'a, Result<RunningProcess>> {
        Box::pin(async move {
            let entry = match &self.mode {
                Mode::Record(inner) => {
                    let result = self.record_run(inner.as_ref(), cmd).await?;
                    Entry::finished(cmd, &result)
                }
                Mode::Replay => self.next_entry(cmd)?,
            };
            entry.result(cmd.display_name())?;
            start_scripted(cmd, entry.script())
        })
    }

    fn output_bytes<'a>(
        &'a self,
        cmd: &'a Command,
    ) -> BoxFuture<'a, Result<ProcessResult<Vec<u8>>>> {
        Box::pin(async move {
            match &self.mode {
                Mode::Record(inner) => self.record_run(inner.as_ref(), cmd).await,
                Mode::Replay => self.next_entry(cmd)?.result(cmd.display_name()),
            }
        })
    }
}

impl std::fmt::Debug for RecordReplayRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordReplayRunner")
            .field("path", &self.path)
            .field("replaying", &self.is_replaying())
            .field("entries", &self.len())
            .finish()
    }
}

impl Drop for RecordReplayRunner {
    fn drop(&mut self) {
        // Best effort: a recording that was never saved is not lost.
        if self.state().unsaved {
            let _ = self.save();
        }
    }
}
