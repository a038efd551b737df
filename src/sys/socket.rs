//! Whether a Unix domain socket accepts connections, for the
//! `wait_for_socket` probe; Windows has no such probe here.

use std::io;
use std::path::Path;

/// `Ok(true)` once a connection to the socket at `path` succeeds; an
/// `Unsupported` error where the platform has no Unix sockets to probe.
pub(crate) async fn accepts(path: &Path) -> io::Result<bool> {
    #[cfg(unix)]
    return Ok(tokio::net::UnixStream::connect(path).await.is_ok());
    #[cfg(not(unix))]
    {
        let _ = path;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "Unix domain sockets are not probed on this platform",
        ))
    }
}

/// Whether this platform can probe Unix domain sockets.
pub(crate) const PROBES_UNIX_SOCKETS: bool = cfg!(unix);
