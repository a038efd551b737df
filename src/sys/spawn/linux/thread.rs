//! The spawner thread: one long-lived thread that starts every child asking for
//! `kill_on_parent_death`, because Linux delivers `PR_SET_PDEATHSIG` when the
//! *thread* that created the child exits, not when the whole process does.
//! A job owns everything it uses (the caller may be gone when it runs) and
//! hands back a child that is killed and reaped if nobody claims it.

use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;
use std::sync::mpsc::{self, Sender};

/// A unit of work for the spawner thread.
type Job = Box<dyn FnOnce() + Send>;

static SPAWNER: OnceLock<Result<Sender<Job>, String>> = OnceLock::new();

/// Runs `work` (a spawn) on the spawner thread and returns its result. If the
/// caller is gone by then, the result is dropped on that thread: whatever it
/// holds must clean up after itself.
pub(crate) async fn run<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        // A runtime shutting down may panic in the work; that must not end the thread.
        if let Ok(result) = std::panic::catch_unwind(AssertUnwindSafe(work)) {
            let _ = reply.send(result);
        }
    });
    sender()?
        .send(job)
        .map_err(|_| io::Error::other("the processkit spawner thread has stopped"))?;
    answer
        .await
        .map_err(|_| io::Error::other("the processkit spawner thread could not finish a spawn"))
}

fn sender() -> io::Result<&'static Sender<Job>> {
    SPAWNER
        .get_or_init(start)
        .as_ref()
        .map_err(|why| io::Error::other(why.clone()))
}

fn start() -> Result<Sender<Job>, String> {
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("processkit-spawner".into())
        .spawn(move || {
            // The sender lives in a static, so this loop (and the thread) never ends.
            for job in rx {
                job();
            }
        })
        .map_err(|e| format!("cannot start the processkit spawner thread: {e}"))?;
    Ok(tx)
}
