//! Where a child's standard input comes from.

use std::fmt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncRead;
use tokio_stream::Stream;

/// A boxed stream of lines fed to a child's stdin.
pub(crate) type LineSource = Pin<Box<dyn Stream<Item = String> + Send>>;
/// A boxed reader copied to a child's stdin.
pub(crate) type ReaderSource = Pin<Box<dyn AsyncRead + Send>>;

/// The source of a child's standard input. The default is [`Stdin::null`].
#[derive(Clone, Default)]
pub struct Stdin(pub(crate) StdinSource);

#[derive(Clone, Default)]
pub(crate) enum StdinSource {
    #[default]
    Null,
    Inherit,
    Bytes(Arc<[u8]>),
    /// Shared so `Command` stays `Clone`; the first run to start takes the stream.
    Lines(Arc<Mutex<Option<LineSource>>>),
    /// Opened at each start; the file itself is the child's stdin.
    File(Arc<Path>),
    /// Like `Lines`: the first run to start takes the reader.
    Reader(Arc<Mutex<Option<ReaderSource>>>),
}

impl Stdin {
    /// Reads from the null device: the child sees end-of-file at once.
    pub fn null() -> Stdin {
        Stdin(StdinSource::Null)
    }

    /// Shares this process's own stdin with the child.
    pub fn inherit() -> Stdin {
        Stdin(StdinSource::Inherit)
    }

    /// Writes `text` to the child's stdin, then closes it.
    pub fn from_string(text: impl Into<String>) -> Stdin {
        Stdin(StdinSource::Bytes(text.into().into_bytes().into()))
    }

    /// Writes `bytes` to the child's stdin, then closes it.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Stdin {
        Stdin(StdinSource::Bytes(bytes.into().into()))
    }

    /// Writes each item of `lines` followed by `\n`, then closes stdin when the
    /// stream ends. A stream can feed one run only: clones of the command share it.
    pub fn from_lines<S>(lines: S) -> Stdin
    where
        S: Stream<Item = String> + Send + 'static,
    {
        Stdin(StdinSource::Lines(Arc::new(Mutex::new(Some(Box::pin(
            lines,
        ))))))
    }

    /// Makes the file at `path` the child's stdin: the child reads it
    /// directly (nothing is copied through this process), from its start.
    /// The file is opened each time the command starts; a file that cannot
    /// be opened fails that start with [`Error::Io`](crate::Error::Io)
    /// (operation [`OpenStdin`](crate::Operation::OpenStdin)), before
    /// anything runs.
    pub fn from_file(path: impl Into<PathBuf>) -> Stdin {
        Stdin(StdinSource::File(path.into().into()))
    }

    /// Copies everything `reader` yields to the child's stdin, then closes
    /// it. Like [`from_lines`](Stdin::from_lines), a reader feeds one run
    /// only: clones of the command share it, and later runs get end-of-file.
    pub fn from_reader<R>(reader: R) -> Stdin
    where
        R: AsyncRead + Send + 'static,
    {
        Stdin(StdinSource::Reader(Arc::new(Mutex::new(Some(Box::pin(
            reader,
        ))))))
    }

    /// Whether the child reads something we give it (not null, not ours).
    pub(crate) fn is_fed(&self) -> bool {
        !matches!(self.0, StdinSource::Null | StdinSource::Inherit)
    }
}

impl fmt::Debug for Stdin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            StdinSource::Null => f.write_str("Stdin::null"),
            StdinSource::Inherit => f.write_str("Stdin::inherit"),
            StdinSource::Bytes(b) => write!(f, "Stdin::from_bytes({} bytes)", b.len()),
            StdinSource::Lines(_) => f.write_str("Stdin::from_lines(..)"),
            StdinSource::File(path) => write!(f, "Stdin::from_file({path:?})"),
            StdinSource::Reader(_) => f.write_str("Stdin::from_reader(..)"),
        }
    }
}
