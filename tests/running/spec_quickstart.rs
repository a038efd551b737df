//! Acceptance: the spec's opening example, verb table and quick start, in the
//! shape users were shown. Examples that need programs absent here are compiled
//! only; the rest run with substitutes and assert what the spec promises.
#![cfg(unix)]

use std::time::Duration;

use processkit::{Command, ProcessGroup, Stdin};

#[allow(dead_code)]
async fn opening_example() -> processkit::Result<()> {
    let version = Command::new("cargo").arg("--version").run().await?;
    println!("{version}");
    Ok(())
}

#[allow(dead_code)]
async fn quick_start() -> processkit::Result<()> {
    // Capture output; a non-zero exit does not error on its own.
    let result = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output_string()
        .await?;
    println!("HEAD is {}", result.stdout().trim());
    // Require success and get trimmed stdout directly.
    let version = Command::new("cargo").arg("--version").run().await?;
    println!("{version}");
    // Feed stdin.
    let sorted = Command::new("sort")
        .stdin(Stdin::from_string("banana\napple\n"))
        .output_string()
        .await?;
    println!("{}", sorted.stdout());
    let group = ProcessGroup::new()?;
    let _server = group.start(&Command::new("some-server")).await?;
    group.shutdown().await?;
    Ok(())
}

#[allow(dead_code)]
async fn verb_table() -> processkit::Result<()> {
    let cmd = Command::new("git").arg("status");
    let _: String = cmd.run().await?;
    let _: processkit::ProcessResult = cmd.output_string().await?;
    let _: processkit::ProcessResult<Vec<u8>> = cmd.output_bytes().await?;
    let _: i32 = cmd.exit_code().await?;
    let _: bool = cmd.probe().await?;
    let _: Option<String> = cmd.first_line(|l| l.contains("branch")).await?;
    let _: processkit::RunningProcess = cmd.start().await?;
    let _: String = processkit::run("git", ["status"]).await?;
    let _: processkit::ProcessResult = processkit::output("git", ["status"]).await?;
    Ok(())
}

#[tokio::test]
async fn the_quick_start_runs_with_substitutes() {
    let result = Command::new("sh")
        .args(["-c", "echo abc123; exit 1"])
        .output_string()
        .await
        .unwrap();
    assert_eq!(result.stdout().trim(), "abc123");
    assert_eq!(
        result.code(),
        Some(1),
        "a non-zero exit does not error on its own"
    );

    let version = Command::new("sh")
        .args(["-c", "echo '  v1.2.3  '"])
        .run()
        .await
        .unwrap();
    assert_eq!(version, "v1.2.3");

    let sorted = Command::new("sort")
        .stdin(Stdin::from_string("banana\napple\n"))
        .output_string()
        .await
        .unwrap();
    assert_eq!(sorted.stdout(), "apple\nbanana\n");

    let group = ProcessGroup::new().unwrap();
    let server = group
        .start(&Command::new("sleep").arg("1000"))
        .await
        .unwrap();
    let pid = server.id().unwrap();
    tokio::time::timeout(Duration::from_secs(30), group.shutdown())
        .await
        .unwrap()
        .unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z"),
        "server still running after shutdown"
    );
}

#[tokio::test]
async fn the_verb_table_holds() {
    let sh = |script: &str| Command::new("sh").args(["-c", script]);
    assert_eq!(sh("echo ' x '").run().await.unwrap(), "x");
    assert!(sh("exit 3").run().await.is_err());
    assert_eq!(sh("exit 3").output_string().await.unwrap().code(), Some(3));
    assert_eq!(sh("exit 3").exit_code().await.unwrap(), 3);
    assert!(sh("exit 0").probe().await.unwrap());
    assert!(!sh("exit 1").probe().await.unwrap());
    assert!(sh("exit 2").probe().await.is_err());
    let line = sh("echo a; echo b").first_line(|l| l == "b").await.unwrap();
    assert_eq!(line.as_deref(), Some("b"));
    assert_eq!(sh("echo a").first_line(|l| l == "z").await.unwrap(), None);
    assert_eq!(processkit::run("echo", ["hi"]).await.unwrap(), "hi");
    assert_eq!(
        processkit::output("sh", ["-c", "exit 5"])
            .await
            .unwrap()
            .code(),
        Some(5)
    );
}
