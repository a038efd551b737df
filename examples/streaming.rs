//! Streaming and interactive I/O: line streams, a conversation over stdin,
//! stdin fed from a channel, a readiness probe and a race between children.
//! Needs `sh`, `bc` and coreutils.
//!
//! Run it with `cargo run --example streaming`.

use std::time::Duration;

use processkit::{Command, Stdin, StreamExt, wait_any};

#[tokio::main]
async fn main() -> processkit::Result<()> {
    // stdout line by line, stderr collected in the background.
    let mut run = Command::new("sh")
        .args([
            "-c",
            "for i in 1 2 3; do echo line $i; sleep 0.05; done; echo bye >&2",
        ])
        .start()
        .await?;
    let mut lines = run.stdout_lines();
    while let Some(line) = lines.next().await {
        println!("streamed:    {line}");
    }
    let (code, stderr) = run.finish_streamed().await?;
    println!("finished:    code {code:?}, stderr {:?}", stderr.trim());

    // A conversation with bc: one question, one answer.
    let mut bc = Command::new("bc").keep_stdin_open().start().await?;
    let mut stdin = bc.standard_input().expect("stdin was kept open");
    let mut answers = bc.stdout_lines();
    for question in ["2 + 2", "6 * 7", "2 ^ 10"] {
        stdin.write_line(question).await?;
        let answer = answers.next().await.unwrap_or_default();
        println!("bc:          {question} = {answer}");
    }
    stdin.finish().await?;
    drop(answers);

    // stdin fed from a channel.
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(4);
    let sort = Command::new("sort").stdin(Stdin::from_lines(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ));
    let sorting = tokio::spawn(async move { sort.output_string().await });
    for word in ["pear", "fig", "apple"] {
        tx.send(word.to_owned()).await.expect("sort is reading");
    }
    drop(tx);
    let sorted = sorting.await.expect("task ran")?;
    println!("from_lines:  {}", sorted.stdout().replace('\n', " "));

    // Wait for a readiness line instead of sleeping.
    let mut server = Command::new("sh")
        .args(["-c", "sleep 0.2; echo 'listening on 127.0.0.1:0'; sleep 30"])
        .start()
        .await?;
    let banner = server
        .wait_for_line(|l| l.contains("listening"), Duration::from_secs(10))
        .await?;
    println!("ready:       {banner}");

    // Race the server against a quick job; the loser stays usable.
    let mut quick = Command::new("sh").args(["-c", "exit 3"]).start().await?;
    let (index, code) = wait_any(&mut [&mut server, &mut quick]).await?;
    println!("wait_any:    contender #{index} exited first with {code:?}");
    server.kill()?;
    println!("loser:       killed, wait() = {:?}", server.wait().await?);
    Ok(())
}
