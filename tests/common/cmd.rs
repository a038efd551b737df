//! The shell commands most tests build their processes from.

use processkit::Command;

/// `sh -c script`.
pub fn sh(script: &str) -> Command {
    Command::new("sh").args(["-c", script])
}

/// `sh -c script arg0`: `$0` names the tree, e.g. a token to find it by in /proc.
pub fn sh_as(script: &str, arg0: &str) -> Command {
    Command::new("sh").args(["-c", script, arg0])
}

/// `sh -c script` started with SIGINT, SIGHUP, SIGQUIT and SIGTERM at
/// their default dispositions (GNU `env --default-signal`): a shell cannot
/// trap a signal it was started ignoring, and a test run started as a
/// background job of a non-interactive shell ignores SIGINT. Linux tests
/// that trap a signal use this, so they do not depend on how they were run.
pub fn sh_trapping(script: &str) -> Command {
    Command::new("env").args(["--default-signal=INT,HUP,QUIT,TERM", "sh", "-c", script])
}
