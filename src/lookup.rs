//! Program lookup: `which` and `Command::resolve_program` answer "which
//! file would this run?" with the search the spawn itself makes.

use std::ffi::OsStr;
use std::path::PathBuf;

use crate::command::Command;
use crate::sys::spawn::{EnvPlan, lookup};

/// The file that `Command::new(program)` would run, found the way the spawn
/// finds it; `None` when there is none.
///
/// - A name with a path separator is taken as a path (relative to the
///   working directory); a bare name is searched in each `PATH` directory
///   (`/bin:/usr/bin` when `PATH` is unset; an empty entry is the working
///   directory, written `./name` in the answer).
/// - **Unix**: only an executable regular file counts, as for `execvp`: a
///   directory or a file without execute permission is skipped.
/// - **Windows**: a name without an extension takes each extension of
///   `PATHEXT` in turn (default `.COM;.EXE;.BAT;.CMD`), so `which("npm")`
///   finds `npm.cmd`; directories are searched in std's order (this
///   program's own directory, the system directories, then `PATH`).
///
/// For the search a particular command makes (its own `PATH`, its working
/// directory), use [`Command::resolve_program`].
///
/// ```no_run
/// match processkit::which("git") {
///     Some(path) => println!("git is {}", path.display()),
///     None => eprintln!("git is not installed"),
/// }
/// ```
pub fn which(program: impl AsRef<OsStr>) -> Option<PathBuf> {
    lookup::resolve(program.as_ref(), &EnvPlan::default(), None)
}

impl Command {
    /// The file this command would run, found as its spawn finds it (see
    /// [`which`](crate::which)): through the command's own `PATH` when it
    /// sets, removes or clears one, and from its
    /// [`current_dir`](Command::current_dir) for a relative path. `None`
    /// when there is none: the spawn would fail with
    /// [`Error::NotFound`](crate::Error::NotFound).
    ///
    /// ```no_run
    /// use processkit::Command;
    /// let tool = Command::new("mytool").env("PATH", "/opt/tools/bin");
    /// assert!(tool.resolve_program().is_some_and(|p| p.starts_with("/opt/tools/bin")));
    /// ```
    pub fn resolve_program(&self) -> Option<PathBuf> {
        lookup::resolve(&self.program, &self.env, self.cwd.as_deref())
    }
}
