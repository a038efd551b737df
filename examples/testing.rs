//! Testing code that runs processes: the same function runs against the real
//! `du`, a `ScriptedRunner` and a `RecordingRunner`, and a `cli_client!`
//! wrapper runs both for real and scripted.
//!
//! Run it with `cargo run --example testing`.

use std::time::Duration;

use processkit::testing::{Match, RecordingRunner, Reply, ScriptedRunner};
use processkit::{Command, JobRunner, ProcessRunner, ProcessRunnerExt, Result, cli_client};

/// Code under test: written against the seam, not against `Command`'s verbs.
async fn disk_usage_kib(runner: &impl ProcessRunner, dir: &str) -> Result<u64> {
    let out = runner.run(&Command::new("du").args(["-sk", dir])).await?;
    let kib = out.split_whitespace().next().unwrap_or("0");
    Ok(kib.parse().unwrap_or(0))
}

cli_client!(
    /// A typed wrapper around `uname`.
    pub struct Uname => "uname"
);

impl<R: ProcessRunner> Uname<R> {
    pub async fn kernel(&self) -> Result<String> {
        let cmd = self.core.command(["-s"]);
        self.core.run(&cmd).await
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    // Production: the real runner.
    let real = disk_usage_kib(&JobRunner::new(), "/etc").await?;
    println!("real du:        /etc uses {real} KiB");

    // A test: canned replies, no process.
    let scripted = ScriptedRunner::new()
        .on(
            Match::exact("du", ["-sk", "/etc"]),
            Reply::success("1234\t/etc\n"),
        )
        .on(Match::program("du"), Reply::failure(1, "permission denied"));
    println!(
        "scripted du:    {} KiB",
        disk_usage_kib(&scripted, "/etc").await?
    );
    println!(
        "scripted miss:  {:?}",
        disk_usage_kib(&scripted, "/root")
            .await
            .err()
            .map(|e| e.to_string())
    );

    // What did the code ask for?
    let recording = RecordingRunner::new(scripted);
    disk_usage_kib(&recording, "/etc").await?;
    println!(
        "recorded argv:  {:?}",
        recording.last().expect("one run").argv()
    );

    // Sequences and streaming, on tokio's clock.
    let server = ScriptedRunner::new().on(
        Match::program("my-server"),
        Reply::lines(["booting"])
            .line_after(Duration::from_millis(50), "listening")
            .exit_after(Duration::from_secs(3600)),
    );
    let ready = server
        .first_line(&Command::new("my-server"), |l| l == "listening")
        .await?;
    println!("scripted line:  {ready:?}");

    // A CLI client, real and scripted.
    println!("real uname:     {}", Uname::new().kernel().await?);
    let fake =
        Uname::with_runner(ScriptedRunner::new().exact("uname", ["-s"], Reply::success("Plan9\n")));
    println!("scripted uname: {}", fake.kernel().await?);
    Ok(())
}
