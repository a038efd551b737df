//! Pipelines without a shell: `a | b | c` with native pipes, pipefail
//! attribution, an unchecked stage and a chain timeout.
//!
//! Run it with `cargo run --example pipelines`.

use std::time::Duration;

use processkit::{Command, Stdin};

#[tokio::main]
async fn main() -> processkit::Result<()> {
    let words = "pear\napple\nfig\napple\npear\napple\n";
    let counts = Command::new("sort")
        .stdin(Stdin::from_string(words))
        .pipe(Command::new("uniq").arg("-c"))
        .pipe(Command::new("sort").arg("-rn"))
        .run()
        .await?;
    println!("sort | uniq -c | sort -rn:");
    for line in counts.lines() {
        println!("    {}", line.trim());
    }

    // The `|` operator is the same thing.
    let total = (Command::new("seq").arg("100") | Command::new("wc").arg("-l"))
        .run()
        .await?;
    println!("seq 100 | wc -l = {total}");

    // Pipefail: the first failing stage is the outcome, not the happy last one.
    let result = (Command::new("sh").args(["-c", "echo 'no such table' >&2; exit 3"])
        | Command::new("sort"))
    .output_string()
    .await?;
    println!(
        "failing first stage: program {}, code {:?}, stderr {:?}",
        result.program(),
        result.code(),
        result.stderr().trim()
    );

    // `yes` dies of SIGPIPE once `head` is done: expected, so unchecked.
    let first = (Command::new("yes").unchecked() | Command::new("head").arg("-1"))
        .run()
        .await?;
    println!("yes | head -1 = {first}");

    // One timeout for the whole chain.
    let stuck = (Command::new("sleep").arg("30") | Command::new("cat"))
        .timeout(Duration::from_millis(300))
        .output_string()
        .await?;
    println!(
        "sleep 30 | cat with a 300 ms timeout: timed_out {}",
        stuck.timed_out()
    );
    Ok(())
}
