//! The cassette file format (feature `record`): a versioned JSON list of
//! recorded runs. Entries carry environment variable names, never values.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::script::{Script, ScriptedEnd};
use crate::command::Command;
use crate::error::{Error, Operation, Result, Subject};
use crate::result::ProcessResult;

/// The format version this build writes and reads.
pub(crate) const VERSION: u32 = 1;

/// What identifies an invocation on replay: program, arguments, working
/// directory and whether stdin is fed. Environment differences never cause a miss.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    program: String,
    args: Vec<String>,
    cwd: Option<String>,
    has_stdin: bool,
}

impl Key {
    pub(crate) fn of(cmd: &Command) -> Key {
        Key {
            program: lossy(cmd.get_program()),
            args: cmd.get_args().map(lossy).collect(),
            cwd: cmd.get_current_dir().map(|d| lossy(d.as_os_str())),
            has_stdin: cmd.has_stdin(),
        }
    }
}

fn lossy(s: &std::ffi::OsStr) -> String {
    s.to_string_lossy().into_owned()
}

/// Output as text when it is UTF-8 (readable diffs), else as a byte array.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum Blob {
    Text(String),
    Bytes(Vec<u8>),
}

impl Blob {
    fn new(bytes: &[u8]) -> Blob {
        match std::str::from_utf8(bytes) {
            Ok(text) => Blob::Text(text.to_owned()),
            Err(_) => Blob::Bytes(bytes.to_vec()),
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        match self {
            Blob::Text(text) => text.as_bytes().to_vec(),
            Blob::Bytes(bytes) => bytes.clone(),
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One recorded run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Entry {
    program: String,
    args: Vec<String>,
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    has_stdin: bool,
    /// Sorted names of the variables the command set or removed; no values.
    #[serde(default)]
    env_names: Vec<String>,
    /// The program could not be found when recorded.
    #[serde(default, skip_serializing_if = "is_false")]
    not_found: bool,
    #[serde(default)]
    code: Option<i32>,
    #[serde(default)]
    signal: Option<i32>,
    #[serde(default)]
    timed_out: bool,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    duration_ms: u64,
    stdout: Blob,
    stderr: Blob,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Entry {
    /// A run that finished with `result`.
    pub(crate) fn finished(cmd: &Command, result: &ProcessResult<Vec<u8>>) -> Entry {
        Entry {
            code: result.code,
            signal: result.signal,
            timed_out: result.timed_out,
            timeout_ms: result.timeout.map(millis),
            duration_ms: millis(result.duration),
            stdout: Blob::new(&result.stdout),
            stderr: Blob::new(&result.stderr),
            ..Entry::bare(cmd)
        }
    }

    /// A run whose program was not found.
    pub(crate) fn not_found(cmd: &Command) -> Entry {
        Entry {
            not_found: true,
            ..Entry::bare(cmd)
        }
    }

    fn bare(cmd: &Command) -> Entry {
        let key = Key::of(cmd);
        Entry {
            program: key.program,
            args: key.args,
            cwd: key.cwd,
            has_stdin: key.has_stdin,
            env_names: cmd.get_env_names(),
            not_found: false,
            code: None,
            signal: None,
            timed_out: false,
            timeout_ms: None,
            duration_ms: 0,
            stdout: Blob::Text(String::new()),
            stderr: Blob::Text(String::new()),
        }
    }

    pub(crate) fn key(&self) -> Key {
        Key {
            program: self.program.clone(),
            args: self.args.clone(),
            cwd: self.cwd.clone(),
            has_stdin: self.has_stdin,
        }
    }

    /// `Err(NotFound)` for a run that could not start, else the full result.
    pub(crate) fn result(&self, program: String) -> Result<ProcessResult<Vec<u8>>> {
        if self.not_found {
            return Err(Error::NotFound { program });
        }
        Ok(ProcessResult {
            program,
            code: if self.timed_out { None } else { self.code },
            signal: self.signal,
            stdout: self.stdout.to_bytes(),
            stderr: self.stderr.to_bytes(),
            timed_out: self.timed_out,
            idle_timed_out: false,
            duration: Duration::from_millis(self.duration_ms),
            timeout: self.timeout_ms.map(Duration::from_millis),
            truncated: false,
        })
    }

    /// The recorded run as a script for a live (scripted) handle.
    pub(crate) fn script(&self) -> Script {
        let end = match (self.timed_out, self.code, self.signal) {
            (true, _, _) => ScriptedEnd::TimedOut,
            (false, Some(code), _) => ScriptedEnd::Code(code),
            (false, None, Some(signal)) => ScriptedEnd::Signal(signal),
            // Killed with no signal (a Windows job terminated): replay it as
            // such rather than invent a Unix SIGKILL.
            (false, None, None) => ScriptedEnd::Killed,
        };
        Script {
            stdout: vec![(Duration::ZERO, self.stdout.to_bytes())],
            stderr: self.stderr.to_bytes(),
            exit_delay: Duration::ZERO,
            end,
        }
    }
}

/// The file: a format version and the entries in capture order.
#[derive(Debug, Serialize, Deserialize)]
struct File {
    version: u32,
    entries: Vec<Entry>,
}

fn file_error(path: &Path, operation: Operation, source: std::io::Error) -> Error {
    Error::Io {
        subject: Subject::Cassette(path.to_owned()),
        operation,
        source,
    }
}

fn invalid(path: &Path, message: String) -> Error {
    let source = std::io::Error::new(std::io::ErrorKind::InvalidData, message);
    file_error(path, Operation::ReadCassette, source)
}

/// Reads a cassette; another format version is an error, never a guess.
pub(crate) fn load(path: &Path) -> Result<Vec<Entry>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| file_error(path, Operation::ReadCassette, e))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| invalid(path, format!("not a JSON cassette: {e}")))?;
    match value.get("version").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(VERSION) => {}
        Some(v) => {
            return Err(invalid(
                path,
                format!(
                    "cassette format version {v} is not supported (this processkit reads \
                     version {VERSION}); re-record it"
                ),
            ));
        }
        None => return Err(invalid(path, "the cassette has no format `version`".into())),
    }
    let file: File = serde_json::from_value(value)
        .map_err(|e| invalid(path, format!("malformed cassette entry: {e}")))?;
    Ok(file.entries)
}

/// Writes `entries` to `path` (creating its directory), replacing the file
/// atomically so a crash never leaves half a cassette.
pub(crate) fn save(path: &Path, entries: &[Entry]) -> Result<()> {
    let write_error = |e| file_error(path, Operation::WriteCassette, e);
    let file = File {
        version: VERSION,
        entries: entries.to_vec(),
    };
    let mut json =
        serde_json::to_string_pretty(&file).map_err(|e| write_error(std::io::Error::other(e)))?;
    json.push('\n');
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(write_error)?;
    }
    let tmp = temp_path(path);
    std::fs::write(&tmp, json).map_err(write_error)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        write_error(e)
    })
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}
