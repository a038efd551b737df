//! The platform-support examples: the mechanism is always reported, an
//! unavailable one is a typed error, and `create_no_window` runs everywhere.

use processkit::{Command, Error, Mechanism, ProcessGroup, ProcessGroupOptions};

/// A shell that prints its argument: `cmd /c echo` on Windows, `sh -c echo` elsewhere.
fn echo(text: &str) -> Command {
    if cfg!(windows) {
        Command::new("cmd").args(["/c", &format!("echo {text}")])
    } else {
        Command::new("sh").args(["-c", &format!("echo {text}")])
    }
}

/// The shape of the guide's example (docs/platform-support.md).
#[allow(dead_code)]
fn platform_support_example() -> processkit::Result<()> {
    let group = ProcessGroup::new()?;
    if !group.mechanism().contains_whole_tree() {
        eprintln!(
            "note: a descendant that calls setsid can escape {}",
            group.mechanism()
        );
    }
    let fallback = ProcessGroup::with_options(
        ProcessGroupOptions::default().mechanism(Mechanism::ProcessGroup),
    );
    let _ = fallback;
    Ok(())
}

/// The spec's `create_no_window` example, verbatim in shape.
#[allow(dead_code)]
async fn create_no_window_example() -> processkit::Result<()> {
    Command::new("helper")
        .create_no_window() // Windows: no console window
        .run()
        .await?;
    Ok(())
}

#[test]
fn the_platforms_own_mechanism_is_reported() {
    let group = ProcessGroup::new().unwrap();
    let mechanism = group.mechanism();
    if cfg!(windows) {
        assert_eq!(mechanism, Mechanism::JobObject);
        assert!(mechanism.contains_whole_tree());
    } else {
        assert!(matches!(
            mechanism,
            Mechanism::CgroupV2 | Mechanism::Subreaper | Mechanism::ProcessGroup
        ));
        assert_eq!(
            mechanism.contains_whole_tree(),
            mechanism != Mechanism::ProcessGroup
        );
    }
}

#[test]
fn a_mechanism_the_host_lacks_is_unsupported() {
    let missing = if cfg!(windows) {
        Mechanism::ProcessGroup
    } else {
        Mechanism::JobObject
    };
    let err =
        ProcessGroup::with_options(ProcessGroupOptions::default().mechanism(missing)).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
}

#[tokio::test]
async fn create_no_window_runs_on_every_platform() {
    let text = echo("windowless").create_no_window().run().await.unwrap();
    assert_eq!(text, "windowless");
}
