//! Acceptance: the spec's examples for "Wrapping a CLI tool" and "Recording
//! and replaying runs", in the spec's own shape, compiled and run.
// The tests that run real programs are Unix-only; their helpers idle elsewhere.
#![cfg_attr(not(unix), allow(unused_imports, dead_code))]

use crate::common;

#[cfg(feature = "record")]
use common::TempDir;
use common::git_repo;

// --- "Wrapping a CLI tool" (verbatim) ---------------------------------------
use processkit::{ProcessRunner, Result, cli_client};
use std::path::Path;
cli_client!(pub struct Git => "git");
impl<R: ProcessRunner> Git<R> {
    async fn head(&self, dir: &Path) -> Result<String> {
        self.core
            .run(self.core.command_in(dir, ["rev-parse", "HEAD"]))
            .await
    }
}

// --- "Recording and replaying runs" (the spec's `main`, with the fixture
// path as a parameter so the test writes into a scratch directory) ---------
#[cfg(feature = "record")]
async fn record_and_replay(fixture: &Path) -> processkit::Result<String> {
    use processkit::{Command, JobRunner, ProcessRunnerExt, RecordReplayRunner};
    // Record once against the real tool (e.g. an opt-in `--record` test run):
    let runner = RecordReplayRunner::record(fixture, JobRunner::new());
    let version = runner.run(&Command::new("git").arg("--version")).await?;
    runner.save()?; // or best-effort on drop
    // Replay everywhere else — no subprocess, identical results:
    let runner = RecordReplayRunner::replay(fixture)?;
    assert_eq!(
        runner.run(&Command::new("git").arg("--version")).await?,
        version
    );
    Ok(version)
}

#[tokio::test]
async fn spec_git_wrapper_is_hermetic_with_a_scripted_runner() {
    use processkit::{Match, RecordingRunner, Reply, ScriptedRunner};
    let scripted = ScriptedRunner::new().on(
        Match::exact("git", ["rev-parse", "HEAD"]),
        Reply::success("d6cd1e2bd19e03a81132a23b2025920577f84e37\n"),
    );
    let git = Git::with_runner(RecordingRunner::new(scripted));
    let head = git.head(Path::new("/some/repo")).await.unwrap();
    assert_eq!(head, "d6cd1e2bd19e03a81132a23b2025920577f84e37");
    let seen = git.core.runner().last().unwrap();
    assert_eq!(seen.cwd.as_deref(), Some(Path::new("/some/repo")));
}

#[cfg(unix)] // drives Unix programs
#[tokio::test]
async fn spec_git_wrapper_runs_real_git() {
    use processkit::Command;
    let repo = git_repo("git").await;
    let git_in = |args: &[&str]| Command::new("git").current_dir(&repo.0).args(args);
    let head = Git::new().head(&repo.0).await.unwrap();
    assert_eq!(head, git_in(&["rev-parse", "HEAD"]).run().await.unwrap());
    assert_eq!(head.len(), 40);
}

#[cfg(unix)] // drives Unix programs
#[cfg(feature = "record")]
#[tokio::test]
async fn spec_record_then_replay_git_version() {
    let dir = TempDir::new("cassette");
    let fixture = dir.0.join("fixtures/git.json");
    let version = record_and_replay(&fixture).await.unwrap();
    assert!(version.starts_with("git version"), "{version}");
    let text = std::fs::read_to_string(&fixture).unwrap();
    assert!(text.contains("\"version\": 1"), "{text}");
}
