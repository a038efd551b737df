//! Stale sweep: removes per-process roots whose owner (pid + start time) is gone.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use super::cgroup::{remove_tree, start_time};

/// Kills and removes every `processkit-<pid>-<start>` sibling in `parent`
/// whose owner no longer exists. A live owner's root is never touched.
pub(crate) fn remove_stale_roots(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((pid, start)) = name.to_str().and_then(parse_root_name) else {
            continue;
        };
        if pid == std::process::id() || owner_alive(pid, start) {
            continue;
        }
        let path = entry.path();
        let _ = fs::write(path.join("cgroup.kill"), "1");
        let deadline = Instant::now() + Duration::from_secs(2);
        while remove_tree(&path).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

fn owner_alive(pid: u32, start: u64) -> bool {
    start_time(pid).is_ok_and(|s| s == start)
}

/// Parses `processkit-<pid>-<starttime>`.
pub(crate) fn parse_root_name(name: &str) -> Option<(u32, u64)> {
    let rest = name.strip_prefix("processkit-")?;
    let (pid, start) = rest.split_once('-')?;
    Some((pid.parse().ok()?, start.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_root_names() {
        assert_eq!(parse_root_name("processkit-12-345"), Some((12, 345)));
        assert_eq!(parse_root_name("processkit-x-1"), None);
        assert_eq!(parse_root_name("other-1-2"), None);
    }
}
