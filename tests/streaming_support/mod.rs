//! Extra helpers for the streaming tests, on top of `tests/common`: async
//! polls for a token's processes, a guard that kills one pid, a free port.
#![allow(dead_code)]

use std::time::Duration;

use crate::common::{is_alive, pids_with_token};

/// Polls (bounded, generous) until no process carries `token`.
pub async fn gone(token: &str) -> bool {
    for _ in 0..200 {
        if pids_with_token(token).is_empty() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Kills one pid on drop, if it is still alive, so a failing test leaves
/// nothing behind.
pub struct KillPidOnDrop(pub Option<u32>);

impl Drop for KillPidOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0
            && is_alive(pid)
        {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
        }
    }
}

/// A local port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// The path of `name` inside `dir`, as text for a shell script.
pub fn file_in(dir: &crate::common::TempDir, name: &str) -> String {
    dir.path().join(name).to_string_lossy().into_owned()
}
