//! Process trees whose every pid is known: `tests/fixtures/tree.sh` writes each
//! level's pids to a pidfile; a shell one-liner serves tests that only need a token.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use processkit::Command;

use super::{Cleanup, TempDir, eventually, fixture, is_alive, pids_with_token, read_pids, token};

/// A process tree `depth` levels deep (1 = just the child), built by
/// `tests/fixtures/tree.sh`; each level also runs a `sleep`.
pub struct Tree {
    pub token: String,
    pub pidfile: PathBuf,
    pub depth: usize,
    pub cleanup: Cleanup,
    _dir: TempDir,
}

impl Tree {
    pub fn new(label: &str, depth: usize) -> Tree {
        let dir = TempDir::new(label);
        let token = token(label);
        let pidfile = dir.join("pids");
        let cleanup = Cleanup::token(&token).pidfile(&pidfile);
        Tree {
            token,
            pidfile,
            depth,
            cleanup,
            _dir: dir,
        }
    }

    /// The command that builds the tree.
    pub fn command(&self) -> Command {
        Command::new("sh")
            .arg(fixture("tree.sh"))
            .arg(self.depth.to_string())
            .arg(&self.token)
            .arg(&self.pidfile)
    }

    /// Every pid of the tree, once all levels have started (panics after 10 s).
    pub fn wait_started(&self) -> Vec<u32> {
        let want = 2 * self.depth;
        assert!(
            eventually(Duration::from_secs(10), || read_pids(&self.pidfile).len()
                >= want),
            "tree {} did not start: {:?}",
            self.token,
            read_pids(&self.pidfile)
        );
        read_pids(&self.pidfile)
    }

    /// Async version of [`Tree::wait_started`], for use inside `select!`.
    pub async fn started(&self) -> Vec<u32> {
        let want = 2 * self.depth;
        let deadline = Instant::now() + Duration::from_secs(10);
        while read_pids(&self.pidfile).len() < want {
            assert!(
                Instant::now() < deadline,
                "tree {} did not start",
                self.token
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        read_pids(&self.pidfile)
    }

    /// Asserts that every process of the tree is gone (bounded poll).
    pub fn assert_gone(&self) {
        let pids = read_pids(&self.pidfile);
        assert!(!pids.is_empty(), "tree {} recorded no pids", self.token);
        let gone = eventually(Duration::from_secs(5), || {
            pids.iter().all(|&p| !is_alive(p)) && pids_with_token(&self.token).is_empty()
        });
        let alive: Vec<u32> = pids.iter().copied().filter(|&p| is_alive(p)).collect();
        assert!(gone, "tree {} left survivors: {alive:?}", self.token);
    }
}

/// A shell script whose child and grandchild both carry `token` and sleep.
pub fn tree_script(token: &str) -> String {
    format!("sh -c 'sleep 1000; : {token}' & sleep 1000; : {token}")
}
