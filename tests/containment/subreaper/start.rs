//! A start in flight: the shim's report is awaited, so another task (a
//! suspend, a drop) can come between the request and the program's start.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use super::{LIMIT, group_on, state};
use crate::common::{Cleanup, eventually_async, pids_with_token, sh_as, token};
use processkit::Mechanism;

/// Polls `start` once: `Some` if it finished then.
async fn poll_once<F: Future>(start: &mut Pin<Box<F>>) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        Poll::Ready(match start.as_mut().poll(cx) {
            Poll::Ready(output) => Some(output),
            Poll::Pending => None,
        })
    })
    .await
}

#[cfg(feature = "process-control")]
#[tokio::test]
async fn a_suspend_while_a_start_is_in_flight_stops_the_run() {
    let group = group_on(Mechanism::Subreaper);
    let token = token("inflight");
    let _cleanup = Cleanup::token(&token);
    let cmd = sh_as("sleep 1000 & wait", &token);
    let mut in_flight = 0;
    for _ in 0..5 {
        let mut start = Box::pin(group.start(&cmd));
        let early = poll_once(&mut start).await;
        in_flight += usize::from(early.is_none());
        group.suspend().unwrap();
        let mut run = match early {
            Some(run) => run,
            None => start.await,
        }
        .expect("a start that passed the gate completes");
        let pid = run.id().expect("the program's pid");
        let stopped = eventually_async(LIMIT, || {
            let tree = pids_with_token(&token);
            tree.contains(&pid) && tree.iter().all(|&p| state(p).as_deref() == Some("T"))
        });
        assert!(stopped.await, "not stopped: {:?}", states(&token));
        group.resume().unwrap();
        let running = eventually_async(LIMIT, || {
            pids_with_token(&token)
                .iter()
                .all(|&p| state(p).as_deref() != Some("T"))
        });
        assert!(running.await, "not resumed: {:?}", states(&token));
        run.kill().unwrap();
        drop(run);
        let gone = eventually_async(LIMIT, || pids_with_token(&token).is_empty());
        assert!(gone.await, "left: {:?}", states(&token));
    }
    assert!(in_flight > 0, "no start was still in flight after one poll");
}

#[tokio::test]
async fn a_start_dropped_in_flight_leaves_nothing() {
    let group = group_on(Mechanism::Subreaper);
    let token = token("dropped");
    let _cleanup = Cleanup::token(&token);
    let cmd = sh_as("sleep 1000 & wait", &token);
    let mut in_flight = 0;
    for _ in 0..5 {
        let mut start = Box::pin(group.start(&cmd));
        if poll_once(&mut start).await.is_none() {
            in_flight += 1;
        }
        drop(start);
        let gone = eventually_async(LIMIT, || pids_with_token(&token).is_empty());
        assert!(gone.await, "left: {:?}", states(&token));
    }
    assert!(in_flight > 0, "no start was still in flight after one poll");
}

fn states(token: &str) -> Vec<(u32, Option<String>)> {
    pids_with_token(token)
        .into_iter()
        .map(|p| (p, state(p)))
        .collect()
}
