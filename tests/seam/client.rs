//! `CliClient` and `cli_client!`: a typed wrapper tested hermetically with a
//! `ScriptedRunner` and run for real with `JobRunner`.
// The tests that run real programs are Unix-only; their helpers idle elsewhere.
#![cfg_attr(not(unix), allow(unused_imports, dead_code))]

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::{KillPidOnDrop, TempDir, eventually_async, git_repo, is_alive, read_pids};
use processkit::{
    CliClient, Command, Error, JobRunner, Match, ProcessRunner, RecordingRunner, Reply, Result,
    ScriptedRunner, cli_client,
};

cli_client!(pub struct Git => "git");

impl<R: ProcessRunner> Git<R> {
    async fn head(&self, dir: &Path) -> Result<String> {
        self.core
            .run(self.core.command_in(dir, ["rev-parse", "HEAD"]))
            .await
    }

    async fn is_clean(&self, dir: &Path) -> Result<bool> {
        let status = self
            .core
            .run(self.core.command_in(dir, ["status", "--porcelain"]))
            .await?;
        Ok(status.is_empty())
    }
}

cli_client!(
    /// A client for the POSIX shell, declared with docs and a derive.
    #[derive(Debug)]
    struct Shell => "sh"
);

#[tokio::test]
async fn wrapper_is_hermetic_with_a_scripted_runner() {
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let runner = RecordingRunner::new(
        ScriptedRunner::new()
            .exact(
                "git",
                ["rev-parse", "HEAD"],
                Reply::success(format!("{sha}\n")),
            )
            .exact(
                "git",
                ["status", "--porcelain"],
                Reply::success(" M src/lib.rs\n"),
            ),
    );
    let git = Git::with_runner(runner);
    assert_eq!(git.head(Path::new("/work/repo")).await.unwrap(), sha);
    assert!(!git.is_clean(Path::new("/work/repo")).await.unwrap());
    let calls = git.core.runner().invocations();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].argv(), ["git", "rev-parse", "HEAD"]);
    assert_eq!(calls[0].cwd.as_deref(), Some(Path::new("/work/repo")));
}

#[tokio::test]
async fn wrapper_surfaces_scripted_failures() {
    let git = Git::with_runner(ScriptedRunner::new().on(
        Match::prefix("git", ["rev-parse"]),
        Reply::failure(128, "fatal: not a git repository"),
    ));
    let err = git.head(Path::new("/nowhere")).await.unwrap_err();
    match err {
        Error::NonZeroExit {
            code, stderr_tail, ..
        } => {
            assert_eq!(code, 128);
            assert!(stderr_tail.contains("not a git repository"));
        }
        other => panic!("expected NonZeroExit, got {other}"),
    }
}

#[cfg(unix)] // drives Unix programs
#[tokio::test]
async fn wrapper_runs_the_real_program() {
    let repo = git_repo("git").await;
    let git_in = |args: &[&str]| Command::new("git").current_dir(&repo.0).args(args);
    let expected = git_in(&["rev-parse", "HEAD"]).run().await.unwrap();

    let git = Git::new();
    let head = git.head(&repo.0).await.unwrap();
    assert_eq!(head, expected);
    assert_eq!(head.len(), 40);
    assert!(head.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(git.is_clean(&repo.0).await.unwrap());
    std::fs::write(repo.0.join("new.txt"), "x").unwrap();
    assert!(!Git::default().is_clean(&repo.0).await.unwrap());
    let on_jobs: Git<JobRunner> = Git::with_runner(JobRunner::new());
    assert_eq!(on_jobs.head(&repo.0).await.unwrap(), expected);
}

#[cfg(unix)] // drives Unix programs
#[tokio::test]
async fn client_defaults_reach_every_command() {
    let client = CliClient::new("sh")
        .default_timeout(Duration::from_secs(7))
        .default_env("GREETING", "hello")
        .default_env("OTHER", "x");
    let cmd = client.command(["-c", "echo \"$GREETING\""]);
    assert_eq!(cmd.get_program(), "sh");
    assert_eq!(cmd.get_timeout(), Some(Duration::from_secs(7)));
    assert_eq!(cmd.get_env_names(), ["GREETING", "OTHER"]);
    assert_eq!(
        client.command_in("/tmp", ["x"]).get_current_dir(),
        Some(Path::new("/tmp"))
    );
    assert_eq!(client.run(cmd).await.unwrap(), "hello");
    assert_eq!(client.program(), "sh");
}

#[cfg(unix)] // drives Unix programs
#[tokio::test]
async fn client_default_timeout_applies_to_real_runs() {
    let sh = Shell::new();
    let sh = Shell {
        core: sh.core.default_timeout(Duration::from_millis(300)),
    };
    let result = sh
        .core
        .output_string(sh.core.command(["-c", "sleep 30"]))
        .await
        .unwrap();
    assert!(result.timed_out());
    let err = sh
        .core
        .run(sh.core.command(["-c", "sleep 30"]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(format!("{sh:?}").contains("sh"));
}

#[tokio::test]
async fn client_has_every_verb() {
    let scripted = ScriptedRunner::new()
        .exact("tool", ["ok"], Reply::success("out\n"))
        .exact("tool", ["no"], Reply::failure(1, ""))
        .exact(
            "tool",
            ["bytes"],
            Reply::success("").stdout(vec![0xff, 0x00]),
        )
        .exact("tool", ["lines"], Reply::lines(["one", "two", "three"]));
    let client = CliClient::new("tool").with_runner(scripted);
    assert_eq!(client.run(client.command(["ok"])).await.unwrap(), "out");
    assert_eq!(
        client
            .output_string(client.command(["ok"]))
            .await
            .unwrap()
            .stdout(),
        "out\n"
    );
    assert_eq!(
        client
            .output_bytes(client.command(["bytes"]))
            .await
            .unwrap()
            .stdout(),
        &[0xff, 0x00]
    );
    assert_eq!(client.exit_code(client.command(["no"])).await.unwrap(), 1);
    assert!(client.probe(client.command(["ok"])).await.unwrap());
    assert!(!client.probe(client.command(["no"])).await.unwrap());
    let two = client
        .first_line(client.command(["lines"]), |l| l.starts_with('t'))
        .await
        .unwrap();
    assert_eq!(two.as_deref(), Some("two"));
    let mut run = client.start(client.command(["no"])).await.unwrap();
    assert_eq!(run.wait().await.unwrap(), Some(1));
    let err = client.run(client.command(["missing"])).await.unwrap_err();
    assert!(matches!(err, Error::NoReply { .. }), "{err}");
}

#[cfg(unix)] // drives Unix programs
#[cfg(feature = "cancellation")]
#[tokio::test]
async fn client_cancel_token_reaches_every_command() {
    use processkit::CancellationToken;
    let token = CancellationToken::new();
    let client = CliClient::new("sh").default_cancel_on(token.clone());
    let cmd = client.command(["-c", "sleep 30"]);
    let run = tokio::spawn(async move { client.output_string(cmd).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    token.cancel();
    let err = run.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Cancelled { .. }), "{err}");

    let scripted = CliClient::new("sh")
        .default_cancel_on(token)
        .with_runner(ScriptedRunner::new().on(Match::program("sh"), Reply::success("never")));
    let err = scripted
        .run(scripted.command(["-c", "true"]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled { .. }), "{err}");
}

/// How long the grandchild may take to appear, and then to go.
#[cfg(unix)]
const PATIENT: Duration = Duration::from_secs(10);

/// Whether `pid` is a live (not zombie) `sleep`: a recycled pid is not ours.
#[cfg(unix)]
fn our_sleep_alive(pid: u32) -> bool {
    is_alive(pid) && common::argv_of(pid).is_some_and(|argv| argv.contains("sleep"))
}

#[cfg(unix)] // drives Unix programs
#[tokio::test]
async fn client_start_keeps_the_whole_tree_contained() {
    let dir = TempDir::new("tree");
    let pidfile = dir.0.join("grandchild.pid");
    let sh = Shell::new();
    let script = r#"sleep 300 & echo $! > "$1"; wait"#;
    let cmd = sh.core.command(["-c", script, "sh"]).arg(&pidfile);
    let run = sh.core.start(cmd).await.unwrap();

    let mut pid = None;
    eventually_async(PATIENT, || {
        pid = read_pids(&pidfile).first().copied();
        pid.is_some()
    })
    .await;
    let pid = pid.expect("the grandchild never wrote its pid");
    let _guard = KillPidOnDrop(Some(pid));
    // `$!` is written before the fork has exec'd `sleep`; wait for that.
    assert!(
        eventually_async(PATIENT, || our_sleep_alive(pid)).await,
        "grandchild {pid} never ran sleep"
    );

    drop(run);
    assert!(
        eventually_async(PATIENT, || !our_sleep_alive(pid)).await,
        "grandchild {pid} outlived the client's handle"
    );
}

#[cfg(unix)] // drives Unix programs
#[tokio::test]
async fn wrapper_runs_inside_a_shared_group() {
    let group = processkit::ProcessGroup::new().unwrap();
    let recorded = RecordingRunner::new(&group);
    let sh = Shell::with_runner(&recorded);
    assert_eq!(
        sh.core
            .run(sh.core.command(["-c", "echo in-group"]))
            .await
            .unwrap(),
        "in-group"
    );
    assert_eq!(recorded.count_of("sh"), 1);
    group.shutdown().await.unwrap();
}
