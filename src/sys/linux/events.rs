//! Waiting for a cgroup to empty: inotify on `cgroup.events` wakes us as soon
//! as the kernel flips `populated`, so teardown neither oversleeps nor spins.

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

use rustix::fs::inotify;
use tokio::io::unix::AsyncFd;

use super::cgroup::Cgroup;

/// Re-check at least this often, in case a notification is never delivered.
const RECHECK: Duration = Duration::from_millis(100);

/// Without inotify (or outside a runtime with I/O), poll this often.
const POLL: Duration = Duration::from_millis(1);

/// An inotify watch on one cgroup's `cgroup.events`.
struct EventsWatch {
    fd: AsyncFd<OwnedFd>,
}

impl EventsWatch {
    fn new(dir: &Path) -> io::Result<EventsWatch> {
        let fd = inotify::init(inotify::CreateFlags::NONBLOCK | inotify::CreateFlags::CLOEXEC)?;
        inotify::add_watch(&fd, dir.join("cgroup.events"), inotify::WatchFlags::MODIFY)?;
        // `AsyncFd::new` is deprecated in newer tokio for descriptors it does
        // not own; this one it owns outright (an `OwnedFd`), and its
        // replacement, `register`, is missing from the oldest tokio we support.
        // A runtime without I/O makes it panic: fall back to polling then.
        #[allow(deprecated)]
        let registered =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| AsyncFd::new(fd)))
                .map_err(|_| io::Error::other("the tokio runtime has I/O disabled"))?;
        Ok(EventsWatch { fd: registered? })
    }

    /// Waits for the next notification (a wake-up may be spurious: re-check).
    async fn changed(&self) -> io::Result<()> {
        loop {
            let mut guard = self.fd.readable().await?;
            let drained = guard.try_io(|fd| {
                let mut events = [0u8; 1024];
                rustix::io::read(fd.get_ref(), &mut events)?;
                Ok(())
            });
            match drained {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }
}

/// Waits until `cg` holds no process, at most `limit`; `true` once empty.
pub(crate) async fn wait_empty(cg: &Cgroup, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    // Watch before the first check, so a change in between is not missed.
    let watch = EventsWatch::new(cg.path()).ok();
    loop {
        if !cg.is_populated().unwrap_or(false) {
            return true;
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return false;
        }
        let pause = match &watch {
            Some(_) => RECHECK,
            None => POLL,
        };
        let until = deadline.min(now + pause);
        match &watch {
            Some(watch) => {
                let _ = tokio::time::timeout_at(until, watch.changed()).await;
            }
            None => tokio::time::sleep_until(until).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_empty_cgroup_is_reported_at_once_and_a_full_one_times_out() {
        let Ok(root) = super::super::cgroup::root() else {
            eprintln!("no cgroup v2 here");
            return;
        };
        let cg = root.create_child('t').unwrap();
        assert!(wait_empty(&cg, Duration::ZERO).await);
        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let mut child = Reaped(child);
        cg.add_pid(child.0.id()).unwrap();
        assert!(!wait_empty(&cg, Duration::from_millis(50)).await);
        cg.kill().unwrap();
        assert!(wait_empty(&cg, Duration::from_secs(10)).await);
        assert!(child.0.wait().is_ok());
        std::fs::remove_dir(cg.path()).unwrap();
    }

    /// Kills and reaps the test's child even when an assertion fails.
    struct Reaped(std::process::Child);

    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
