//! Bounded polling, sync and async: a condition, or the set of processes
//! carrying a token reaching a count, settling, or emptying. Limits are generous.

use std::time::{Duration, Instant};

use super::pids_with_token;

/// Polls `cond` every 10 ms until it holds (true) or `limit` passes (false).
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// [`eventually`] for async tests: sleeps on the runtime between polls.
pub async fn eventually_async(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls (up to 10 s) until no process carries `token`; true if so.
pub async fn wait_gone(token: &str) -> bool {
    eventually_async(Duration::from_secs(10), || {
        pids_with_token(token).is_empty()
    })
    .await
}

/// Polls (up to 10 s) until at least `count` processes carry `token`.
pub async fn wait_for_count(token: &str, count: usize) -> Vec<u32> {
    let mut pids = Vec::new();
    let found = eventually_async(Duration::from_secs(10), || {
        pids = pids_with_token(token);
        pids.len() >= count
    })
    .await;
    assert!(found, "never saw {count} processes carrying {token}");
    pids
}

/// Polls (up to 40 s) until exactly `count` processes carry `token` and the
/// set stays the same for ten polls: a shell's fork carries its argv until it
/// execs, so counts overshoot briefly while a tree is forming.
pub async fn wait_for_settled(token: &str, count: usize) -> Vec<u32> {
    let mut last = Vec::new();
    let mut stable = 0;
    for _ in 0..2000 {
        let mut pids = pids_with_token(token);
        pids.sort();
        if pids.len() == count && pids == last {
            stable += 1;
            if stable >= 10 {
                return pids;
            }
        } else {
            stable = 0;
        }
        last = pids;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never saw {count} settled processes carrying {token}");
}
