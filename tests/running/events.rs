//! `RunningProcess::events`: stdout and stderr lines interleaved in the
//! order the child wrote them (when it pauses between writes), tagged.
// The children are Unix shell tools; Windows has its own test binary.
#![cfg(unix)]

use processkit::{Command, OutputEvent, StreamExt};

#[tokio::test]
async fn events_interleave_both_streams_in_write_order() {
    // A pause between writes makes the order observable across two pipes.
    let script = "for i in 1 2 3; do echo out$i; sleep 0.2; echo err$i >&2; sleep 0.2; done";
    let mut run = Command::new("sh")
        .args(["-c", script])
        .start()
        .await
        .unwrap();
    let events: Vec<OutputEvent> = run.events().collect().await;
    let want: Vec<OutputEvent> = (1..=3)
        .flat_map(|i| {
            [
                OutputEvent::Stdout(format!("out{i}")),
                OutputEvent::Stderr(format!("err{i}")),
            ]
        })
        .collect();
    assert_eq!(events, want);
    assert_eq!(run.wait().await.unwrap(), Some(0));
}

#[tokio::test]
async fn events_start_with_what_was_captured_and_end_when_both_streams_do() {
    // stderr is captured from the start: lines written before the call come first.
    let mut run = Command::new("sh")
        .args(["-c", "echo early >&2; sleep 0.2; echo late"])
        .start()
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let events: Vec<OutputEvent> = run.events().collect().await;
    assert_eq!(
        events,
        [
            OutputEvent::Stderr("early".into()),
            OutputEvent::Stdout("late".into())
        ]
    );
    // A chatty stream does not starve the other.
    let script = "seq 1 50000; echo done >&2";
    let mut run = Command::new("sh")
        .args(["-c", script])
        .start()
        .await
        .unwrap();
    let events: Vec<OutputEvent> = run.events().collect().await;
    assert_eq!(events.len(), 50001);
    assert!(events.contains(&OutputEvent::Stderr("done".into())));
    let stdout: Vec<&OutputEvent> = events
        .iter()
        .filter(|e| matches!(e, OutputEvent::Stdout(_)))
        .collect();
    assert_eq!(stdout.first(), Some(&&OutputEvent::Stdout("1".into())));
    assert_eq!(stdout.last(), Some(&&OutputEvent::Stdout("50000".into())));
}
