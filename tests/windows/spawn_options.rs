//! The spawn options on Windows: the POSIX-only ones are typed errors, raw
//! arguments reach the command line as given, creation flags and priority
//! classes are accepted.

use processkit::{Command, Error, Rlimit};

#[tokio::test]
async fn posix_only_options_are_unsupported() {
    // SAFETY: the hook is never run: the spawn is refused first.
    let with_hook = unsafe { Command::new("cmd").pre_exec(|| Ok(())) };
    for cmd in [
        Command::new("cmd").arg0("other"),
        Command::new("cmd").umask(0o022),
        Command::new("cmd").rlimit(Rlimit::NoFile, 64, 64),
        Command::new("cmd").foreground(),
        with_hook,
    ] {
        let err = cmd.args(["/c", "exit 0"]).run().await.unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn a_raw_argument_keeps_its_place_and_its_quotes() {
    let out = Command::new("cmd")
        .arg("/c")
        .raw_arg("echo \"two  spaces\"")
        .run()
        .await
        .unwrap();
    assert_eq!(out, "\"two  spaces\"");
}

#[tokio::test]
async fn creation_flags_and_a_priority_are_accepted() {
    // CREATE_DEFAULT_ERROR_MODE, and the idle class for a nice value of 19.
    let out = Command::new("cmd")
        .args(["/c", "echo ok"])
        .creation_flags(0x0400_0000)
        .priority(19)
        .run()
        .await
        .unwrap();
    assert_eq!(out, "ok");
}
