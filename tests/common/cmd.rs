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
