//! Host resources a test borrows: scratch directories removed on drop, files
//! read back (line counts, pidfiles), fixtures and a free local port.

use std::ops::Deref;
use std::path::{Path, PathBuf};

use super::token;

/// A scratch directory removed on drop, even when the test fails. Derefs to
/// its path, so `dir.join("file")` names a file inside it.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh, empty directory under the system temp dir.
    pub fn new(label: &str) -> TempDir {
        let dir = std::env::temp_dir().join(token(label));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        TempDir(dir)
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The path of `name` inside the directory, as text for a shell script.
    pub fn file(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Lines in a file (0 when it does not exist yet).
pub fn line_count(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

/// Every pid in a pidfile (one a line; none when it does not exist yet).
pub fn read_pids(file: &Path) -> Vec<u32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Path of a file in `tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A local port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}
