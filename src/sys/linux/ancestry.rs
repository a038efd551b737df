//! Which process a pid belongs to and whose descendant we are, from
//! `/proc/<pid>/status`: adoption must never take this process (through one
//! of its thread ids), an ancestor of it, or its guardian.

use std::fs;
use std::io::{self, ErrorKind};

/// The thread group (process) that thread or process `pid` belongs to.
pub(crate) fn thread_group(pid: u32) -> io::Result<u32> {
    status_field(pid, "Tgid:")
}

/// Whether `pid` is this process's parent, grandparent, ... up to pid 1.
pub(crate) fn is_ancestor(pid: u32) -> bool {
    let mut at = std::os::unix::process::parent_id();
    // Bounded: a pid recycled mid-walk could otherwise make a cycle.
    for _ in 0..4096 {
        if at == pid {
            return true;
        }
        if at <= 1 {
            return false;
        }
        match status_field(at, "PPid:") {
            Ok(parent) => at = parent,
            Err(_) => return false,
        }
    }
    false
}

fn status_field(pid: u32, key: &str) -> io::Result<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_field(&status, key).ok_or_else(|| {
        io::Error::new(
            ErrorKind::InvalidData,
            format!("no {key} in /proc/{pid}/status"),
        )
    })
}

fn parse_field(status: &str, key: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_our_thread_group_and_our_parent() {
        let status = "Name:\tx\nTgid:\t42\nNgid:\t0\nPid:\t43\nPPid:\t7\n";
        assert_eq!(parse_field(status, "Tgid:"), Some(42));
        assert_eq!(parse_field(status, "PPid:"), Some(7));
        assert_eq!(parse_field(status, "Uid:"), None);
        let me = std::process::id();
        assert_eq!(thread_group(me).unwrap(), me);
        assert!(is_ancestor(std::os::unix::process::parent_id()));
        assert!(!is_ancestor(me));
    }
}
