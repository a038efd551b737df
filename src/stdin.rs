//! Where a child's standard input comes from.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio_stream::Stream;

/// A boxed stream of lines fed to a child's stdin.
pub(crate) type LineSource = Pin<Box<dyn Stream<Item = String> + Send>>;

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

    pub(crate) fn is_piped(&self) -> bool {
        matches!(self.0, StdinSource::Bytes(_) | StdinSource::Lines(_))
    }
}

impl fmt::Debug for Stdin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            StdinSource::Null => f.write_str("Stdin::null"),
            StdinSource::Inherit => f.write_str("Stdin::inherit"),
            StdinSource::Bytes(b) => write!(f, "Stdin::from_bytes({} bytes)", b.len()),
            StdinSource::Lines(_) => f.write_str("Stdin::from_lines(..)"),
        }
    }
}
