//! Stale sweep: removes sibling per-process roots whose owner is gone. An
//! owner proves it is alive by holding its root's `flock`, which works across
//! pid and time namespaces; pids and start times are never trusted for that.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;
use std::time::{Duration, Instant};

use super::files::{open_dir, remove_tree, try_lock};

/// Kills and removes every `processkit-*` sibling in `parent` whose owner no
/// longer exists. A root whose owner may be alive is never touched.
pub(crate) fn remove_stale_roots(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(root) = name.to_str().and_then(parse_root_name) else {
            continue;
        };
        let path = entry.path();
        match root {
            RootName::Locked => {
                // Held while we kill and remove, so the verdict cannot go stale.
                let Ok(dir) = open_dir(&path) else { continue };
                if try_lock(&dir).is_ok_and(|got| got) {
                    kill_and_remove(&path);
                }
            }
            RootName::Legacy { pid } if legacy_owner_gone(pid) => kill_and_remove(&path),
            RootName::Legacy { .. } => {}
        }
    }
}

fn kill_and_remove(path: &Path) {
    let _ = fs::write(path.join("cgroup.kill"), "1");
    let deadline = Instant::now() + Duration::from_secs(2);
    while remove_tree(path).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A root made before roots were locked holds no proof of life: only a
/// missing `/proc/<pid>` counts as death, any other doubt keeps it.
fn legacy_owner_gone(pid: u32) -> bool {
    pid != std::process::id()
        && fs::metadata(format!("/proc/{pid}")).is_err_and(|e| e.kind() == ErrorKind::NotFound)
}

/// The kinds of per-process root names.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RootName {
    /// `processkit-<pid>-<start>-<nonce>`: its owner holds an `flock` on it.
    Locked,
    /// `processkit-<pid>-<start>`, made by older versions: no lock.
    Legacy { pid: u32 },
}

/// Parses a per-process root name.
pub(crate) fn parse_root_name(name: &str) -> Option<RootName> {
    let mut parts = name.strip_prefix("processkit-")?.split('-');
    let pid = parts.next()?.parse().ok()?;
    let _start: u64 = parts.next()?.parse().ok()?;
    match (parts.next(), parts.next()) {
        (None, _) => Some(RootName::Legacy { pid }),
        (Some(nonce), None) if u32::from_str_radix(nonce, 16).is_ok() => Some(RootName::Locked),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_root_names() {
        assert_eq!(
            parse_root_name("processkit-12-345"),
            Some(RootName::Legacy { pid: 12 })
        );
        assert_eq!(
            parse_root_name("processkit-12-345-00ab12cd"),
            Some(RootName::Locked)
        );
        assert_eq!(parse_root_name("processkit-12-345-zz"), None);
        assert_eq!(parse_root_name("processkit-12-345-1-2"), None);
        assert_eq!(parse_root_name("processkit-x-1"), None);
        assert_eq!(parse_root_name("other-1-2"), None);
    }
}
