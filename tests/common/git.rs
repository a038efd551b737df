//! A scratch git repository for the tests that wrap the real `git`: one empty
//! commit, an identity given per command so no global config is needed.

use processkit::Command;

use super::TempDir;

/// A fresh repository (removed on drop) holding one empty commit.
pub async fn git_repo(label: &str) -> TempDir {
    let repo = TempDir::new(label);
    let git_in = |args: &[&str]| Command::new("git").current_dir(&repo.0).args(args);
    git_in(&["init", "-q"]).run().await.expect("git init");
    let commit = [
        "-c",
        "user.name=pk",
        "-c",
        "user.email=pk@example.invalid",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "first",
    ];
    git_in(&commit).run().await.expect("git commit");
    repo
}
