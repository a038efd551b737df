//! Running commands: the builder and every verb, with which outcomes are data
//! and which are errors. Needs only `sh` and coreutils.
//!
//! Run it with `cargo run --example commands`.

use std::time::Duration;

use processkit::{Command, Error, Stdin};

#[tokio::main]
async fn main() -> processkit::Result<()> {
    // run(): trimmed stdout, success required.
    let greeting = Command::new("sh")
        .args(["-c", "echo \"hello from $WHO in $(pwd)\""])
        .env("WHO", "processkit")
        .current_dir("/")
        .run()
        .await?;
    println!("run:            {greeting}");

    // output_string(): a non-zero exit is data.
    let failed = Command::new("sh")
        .args(["-c", "echo partial; echo broken >&2; exit 4"])
        .output_string()
        .await?;
    println!(
        "output_string:  code {:?}, stdout {:?}, stderr {:?}",
        failed.code(),
        failed.stdout().trim(),
        failed.stderr().trim()
    );

    // ... and run() turns the same outcome into a typed error.
    match Command::new("sh").args(["-c", "exit 4"]).run().await {
        Err(Error::NonZeroExit { program, code, .. }) => {
            println!("run error:      {program} exited {code}")
        }
        other => panic!("expected NonZeroExit, got {other:?}"),
    }

    // output_bytes(): binary-safe.
    let bytes = Command::new("printf")
        .arg("\\001\\002\\377")
        .output_bytes()
        .await?;
    println!("output_bytes:   {:?}", bytes.stdout());

    // exit_code() and probe().
    let code = Command::new("sh")
        .args(["-c", "exit 7"])
        .exit_code()
        .await?;
    let yes = Command::new("test").args(["-d", "/"]).probe().await?;
    let no = Command::new("test").args(["-f", "/"]).probe().await?;
    println!("exit_code:      {code}; probe: / is a dir {yes}, a file {no}");

    // first_line(): answer one question, then the tree is torn down.
    let third = Command::new("seq")
        .arg("1000000")
        .first_line(|l| l.ends_with('3'))
        .await?;
    println!("first_line:     {third:?}");

    // stdin from a string.
    let sorted = Command::new("sort")
        .stdin(Stdin::from_string("pear\napple\nfig\n"))
        .run()
        .await?;
    println!("stdin:          {}", sorted.replace('\n', " "));

    // A timeout is data in the result, an error from run().
    let slow = Command::new("sleep")
        .arg("30")
        .timeout(Duration::from_millis(200));
    let result = slow.output_string().await?;
    println!(
        "timeout:        timed_out {}, code {:?}",
        result.timed_out(),
        result.code()
    );
    assert!(matches!(slow.run().await, Err(Error::Timeout { .. })));

    // Bad input is a typed error, never a panic.
    match Command::new("no-such-program-processkit").run().await {
        Err(Error::NotFound { program }) => println!("not found:      {program}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    match Command::new("true").current_dir("/no/such/dir").run().await {
        Err(err @ Error::WorkingDirectory { .. }) => println!("bad cwd:        {err}"),
        other => panic!("expected WorkingDirectory, got {other:?}"),
    }

    // The one-liners.
    let listing = processkit::run("echo", ["one", "two"]).await?;
    println!("processkit::run {listing}");

    // A live handle.
    let mut child = Command::new("sleep").arg("30").start().await?;
    println!(
        "start:          pid {:?} in {:?}",
        child.id(),
        child.mechanism()
    );
    child.kill()?;
    println!("after kill:     wait() = {:?}", child.wait().await?);

    // How a run ended, as one value.
    let mut child = Command::new("sh").args(["-c", "exit 3"]).start().await?;
    let status = child.wait_status().await?;
    println!("wait_status:    {status} (success: {})", status.success());
    Ok(())
}
