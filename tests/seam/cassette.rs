//! `RecordReplayRunner` (feature `record`): record for real, replay with no
//! process spawned, env values never written, sequences, strict misses and
//! format versions.
#![cfg(all(unix, feature = "record"))]

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::TempDir;
use processkit::{
    Command, Error, JobRunner, ProcessRunner, ProcessRunnerExt, RecordReplayRunner, Stdin,
};

/// How many times the real command ran: it appends a line to `marker`.
fn runs_of(marker: &Path) -> usize {
    std::fs::read_to_string(marker).map_or(0, |s| s.lines().count())
}

/// A command that leaves a trace of every real run in `marker`.
fn traced(marker: &Path) -> Command {
    let script = r#"echo ran >> "$1"; echo "out line"; echo "second"; echo "err line" >&2; exit 3"#;
    Command::new("sh").args(["-c", script, "sh"]).arg(marker)
}

#[tokio::test]
async fn round_trip_replays_without_spawning() {
    let dir = TempDir::new("roundtrip");
    let (cassette, marker) = (dir.join("fixtures/run.json"), dir.join("marker"));
    let cmd = traced(&marker);

    let recorder = RecordReplayRunner::record(&cassette, JobRunner::new());
    let recorded = recorder.output_string(&cmd).await.unwrap();
    assert_eq!(recorded.code(), Some(3));
    assert_eq!(recorded.stdout(), "out line\nsecond\n");
    assert_eq!(recorded.stderr(), "err line\n");
    recorder.save().unwrap();
    assert_eq!(runs_of(&marker), 1);

    let replay = RecordReplayRunner::replay(&cassette).unwrap();
    assert!(replay.is_replaying());
    assert_eq!(replay.len(), 1);
    let replayed = replay.output_string(&cmd).await.unwrap();
    assert_eq!(
        (replayed.code(), replayed.stdout(), replayed.stderr()),
        (recorded.code(), recorded.stdout(), recorded.stderr())
    );
    assert_eq!(
        replayed.duration(),
        Duration::from_millis(recorded.duration().as_millis() as u64)
    );
    let err = replay.run(&cmd).await.unwrap_err();
    assert!(matches!(err, Error::NonZeroExit { code: 3, .. }), "{err}");
    assert_eq!(replay.exit_code(&cmd).await.unwrap(), 3);
    // Streaming verbs replay through a scripted handle.
    let line = replay.first_line(&cmd, |l| l == "second").await.unwrap();
    assert_eq!(line.as_deref(), Some("second"));
    let mut run = replay.start(&cmd).await.unwrap();
    assert_eq!(run.wait().await.unwrap(), Some(3));
    assert_eq!(
        runs_of(&marker),
        1,
        "replay must never run the real command"
    );
}

#[tokio::test]
async fn env_values_never_reach_the_file() {
    let dir = TempDir::new("secrets");
    let cassette = dir.join("env.json");
    let secret = "s3cr3t-value-7f9a2c";
    let cmd = Command::new("sh")
        .args(["-c", "test -n \"$API_TOKEN\" && echo present"])
        .env("API_TOKEN", secret)
        .env("ZETA", "another-value-1b2c")
        .env_remove("HOME_OVERRIDE");
    let recorder = RecordReplayRunner::record(&cassette, JobRunner::new());
    assert_eq!(recorder.run(&cmd).await.unwrap(), "present");
    recorder.save().unwrap();

    let text = std::fs::read_to_string(&cassette).unwrap();
    assert!(
        !text.contains(secret),
        "secret leaked into the cassette:\n{text}"
    );
    assert!(!text.contains("another-value-1b2c"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(
        json["entries"][0]["env_names"],
        serde_json::json!(["API_TOKEN", "HOME_OVERRIDE", "ZETA"])
    );

    // Env values are not part of the match: a different value still replays.
    let replay = RecordReplayRunner::replay(&cassette).unwrap();
    let other = Command::new("sh")
        .args(["-c", "test -n \"$API_TOKEN\" && echo present"])
        .env("API_TOKEN", "different");
    assert_eq!(replay.run(&other).await.unwrap(), "present");
}

#[tokio::test]
async fn repeated_invocations_replay_in_order_then_repeat_the_last() {
    let dir = TempDir::new("sequence");
    let cassette = dir.join("seq.json");
    let counter =
        r#"n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; echo "call $n""#;
    let cmd = Command::new("sh").args(["-c", counter]).current_dir(&dir.0);

    let recorder = RecordReplayRunner::record(&cassette, JobRunner::new());
    for expected in ["call 1", "call 2", "call 3"] {
        assert_eq!(recorder.run(&cmd).await.unwrap(), expected);
    }
    recorder.save().unwrap();
    std::fs::remove_file(dir.join("count")).unwrap();

    let replay = RecordReplayRunner::replay(&cassette).unwrap();
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(replay.run(&cmd).await.unwrap());
    }
    assert_eq!(seen, ["call 1", "call 2", "call 3", "call 3", "call 3"]);
    assert!(!dir.join("count").exists(), "replay ran the real command");
}

#[tokio::test]
async fn a_miss_is_strict_and_spawns_nothing() {
    let dir = TempDir::new("miss");
    let (cassette, marker) = (dir.join("miss.json"), dir.join("marker"));
    let recorder = RecordReplayRunner::record(&cassette, JobRunner::new());
    recorder.output_bytes(&traced(&marker)).await.unwrap();
    recorder.save().unwrap();
    assert_eq!(runs_of(&marker), 1);

    let replay = RecordReplayRunner::replay(&cassette).unwrap();
    let with_stdin = traced(&marker).stdin(Stdin::from_string("x"));
    let in_other_dir = traced(&marker).current_dir(&dir.0);
    let extra_arg = traced(&marker).arg("extra");
    for cmd in [with_stdin, in_other_dir, extra_arg] {
        let err = replay.output_string(&cmd).await.unwrap_err();
        match &err {
            Error::NoReply { program, detail } => {
                assert_eq!(program, "sh");
                assert!(detail.contains("not recorded"), "{detail}");
            }
            other => panic!("expected NoReply, got {other}"),
        }
        assert!(matches!(
            replay.start(&cmd).await.unwrap_err(),
            Error::NoReply { .. }
        ));
    }
    assert_eq!(
        runs_of(&marker),
        1,
        "a miss must not fall back to a real run"
    );
}

#[tokio::test]
async fn another_format_version_fails_loudly() {
    let dir = TempDir::new("version");
    let future = dir.join("future.json");
    std::fs::write(&future, r#"{"version": 99, "entries": []}"#).unwrap();
    let err = RecordReplayRunner::replay(&future).unwrap_err();
    match &err {
        Error::Io { source, .. } => {
            assert_eq!(source.kind(), std::io::ErrorKind::InvalidData);
            assert!(source.to_string().contains("version 99"), "{source}");
        }
        other => panic!("expected Io, got {other}"),
    }

    let unversioned = dir.join("unversioned.json");
    std::fs::write(&unversioned, r#"{"entries": []}"#).unwrap();
    let err = RecordReplayRunner::replay(&unversioned).unwrap_err();
    assert!(err.to_string().contains("version"), "{err}");

    let garbage = dir.join("garbage.json");
    std::fs::write(&garbage, "not json").unwrap();
    assert!(matches!(
        RecordReplayRunner::replay(&garbage).unwrap_err(),
        Error::Io { .. }
    ));

    let missing = RecordReplayRunner::replay(dir.join("absent.json")).unwrap_err();
    match missing {
        Error::Io { source, .. } => assert_eq!(source.kind(), std::io::ErrorKind::NotFound),
        other => panic!("expected Io, got {other}"),
    }
}

#[tokio::test]
async fn drop_saves_an_unsaved_recording() {
    let dir = TempDir::new("drop");
    let cassette = dir.join("nested/deeper/drop.json");
    {
        let recorder = RecordReplayRunner::record(&cassette, JobRunner::new());
        recorder
            .run(&Command::new("sh").args(["-c", "echo kept"]))
            .await
            .unwrap();
        assert!(!cassette.exists(), "nothing is written before save or drop");
    }
    let replay = RecordReplayRunner::replay(&cassette).unwrap();
    assert_eq!(
        replay
            .run(&Command::new("sh").args(["-c", "echo kept"]))
            .await
            .unwrap(),
        "kept"
    );
}

#[tokio::test]
async fn failures_timeouts_and_raw_bytes_round_trip() {
    let dir = TempDir::new("outcomes");
    let cassette = dir.join("outcomes.json");
    let missing = Command::new("pk-no-such-program-4d1e");
    let slow = Command::new("sh")
        .args(["-c", "echo started; sleep 30"])
        .timeout(Duration::from_millis(300));
    let bytes = Command::new("printf").arg(r"\377\000\001");

    let recorder = RecordReplayRunner::record(&cassette, JobRunner::new());
    assert!(matches!(
        recorder.run(&missing).await.unwrap_err(),
        Error::NotFound { .. }
    ));
    assert!(recorder.output_string(&slow).await.unwrap().timed_out());
    assert_eq!(
        recorder.output_bytes(&bytes).await.unwrap().stdout(),
        &[0xff, 0x00, 0x01]
    );
    assert_eq!(recorder.len(), 3);
    recorder.save().unwrap();

    let replay = RecordReplayRunner::replay(&cassette).unwrap();
    let err = replay.run(&missing).await.unwrap_err();
    assert!(
        matches!(err, Error::NotFound { ref program } if program == "pk-no-such-program-4d1e"),
        "{err}"
    );
    assert!(matches!(
        replay.start(&missing).await.unwrap_err(),
        Error::NotFound { .. }
    ));
    let timed = replay.output_string(&slow).await.unwrap();
    assert!(timed.timed_out());
    assert_eq!((timed.code(), timed.stdout().as_str()), (None, "started\n"));
    let err = replay.run(&slow).await.unwrap_err();
    assert!(
        matches!(err, Error::Timeout { timeout, .. } if timeout == Duration::from_millis(300)),
        "{err}"
    );
    assert_eq!(
        replay.output_bytes(&bytes).await.unwrap().stdout(),
        &[0xff, 0x00, 0x01]
    );
}

#[tokio::test]
async fn record_mode_start_returns_a_replaying_handle() {
    let dir = TempDir::new("start");
    let cassette = dir.join("start.json");
    let recorder = RecordReplayRunner::record(&cassette, JobRunner::new());
    let cmd = Command::new("seq").arg("5");
    let line = recorder.first_line(&cmd, |l| l == "4").await.unwrap();
    assert_eq!(line.as_deref(), Some("4"));
    let as_trait: &dyn ProcessRunner = &recorder;
    assert_eq!(as_trait.run(&cmd).await.unwrap(), "1\n2\n3\n4\n5");
    recorder.save().unwrap();
    let replay = RecordReplayRunner::replay(&cassette).unwrap();
    assert_eq!(replay.len(), 2);
    assert_eq!(
        replay
            .first_line(&cmd, |l| l == "4")
            .await
            .unwrap()
            .as_deref(),
        Some("4")
    );
}
