//! `CliClient`: the reusable core of a typed wrapper around one external
//! tool, with an injectable runner, and the `cli_client!` macro that
//! declares such a wrapper.

use std::borrow::Borrow;
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::time::Duration;

use crate::command::Command;
use crate::error::Result;
use crate::policy::Cancel;
use crate::result::ProcessResult;
use crate::runner::{JobRunner, ProcessRunner};
use crate::running::RunningProcess;
use crate::verbs::ProcessRunnerExt;

/// A client for one program: it builds [`Command`]s with the client's
/// defaults (timeout, environment, cancellation) and runs them through its
/// [`ProcessRunner`], which tests replace with a double.
///
/// ```no_run
/// # async fn demo() -> processkit::Result<()> {
/// use processkit::CliClient;
/// use std::time::Duration;
/// let git = CliClient::new("git").default_timeout(Duration::from_secs(30));
/// let status = git.command_in("/srv/repo", ["status", "--short"]);
/// let short = git.run(&status).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CliClient<R: ProcessRunner = JobRunner> {
    program: OsString,
    runner: R,
    timeout: Option<Duration>,
    env: Vec<(OsString, OsString)>,
    cancel: Cancel,
}

impl CliClient<JobRunner> {
    /// A client that runs `program` for real, each run in its own container.
    pub fn new(program: impl AsRef<OsStr>) -> CliClient<JobRunner> {
        CliClient {
            program: program.as_ref().to_owned(),
            runner: JobRunner::new(),
            timeout: None,
            env: Vec::new(),
            cancel: Cancel::default(),
        }
    }
}

impl<R: ProcessRunner> CliClient<R> {
    /// The same client running its commands through `runner` (a
    /// [`ProcessGroup`](crate::ProcessGroup), a test double, …).
    pub fn with_runner<R2: ProcessRunner>(self, runner: R2) -> CliClient<R2> {
        CliClient {
            program: self.program,
            runner,
            timeout: self.timeout,
            env: self.env,
            cancel: self.cancel,
        }
    }

    /// Gives every command built by this client `timeout`.
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets `key` to `value` in every command built by this client.
    pub fn default_env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        let entry = (key.as_ref().to_owned(), value.as_ref().to_owned());
        self.env.push(entry);
        self
    }

    /// Ties every command built by this client to `token`: cancelling it
    /// kills the runs in flight, which fail with
    /// [`Error::Cancelled`](crate::Error::Cancelled).
    #[cfg(feature = "cancellation")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cancellation")))]
    pub fn default_cancel_on(mut self, token: tokio_util::sync::CancellationToken) -> Self {
        self.cancel = Cancel::on(token);
        self
    }

    /// The program this client runs.
    pub fn program(&self) -> &OsStr {
        &self.program
    }

    /// The runner commands go through.
    pub fn runner(&self) -> &R {
        &self.runner
    }

    /// A command running the program with `args` and the client's defaults.
    /// It is plain data: adjust it further before passing it to a verb.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(&self.program).args(args);
        for (key, value) in &self.env {
            cmd = cmd.env(key, value);
        }
        if let Some(timeout) = self.timeout {
            cmd = cmd.timeout(timeout);
        }
        if self.cancel.is_armed() {
            cmd.cancel = self.cancel.clone();
        }
        cmd
    }

    /// Like [`command`](CliClient::command), running in `dir`.
    pub fn command_in<I, S>(&self, dir: impl AsRef<Path>, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command(args).current_dir(dir)
    }

    /// Trimmed stdout; a non-zero exit, timeout or signal is an error.
    /// Takes the command by reference like every runner's verb (an owned
    /// [`Command`] works too).
    pub async fn run(&self, cmd: impl Borrow<Command>) -> Result<String> {
        self.runner.run(cmd.borrow()).await
    }

    /// The full outcome with lossily decoded text; a non-zero exit is data.
    pub async fn output_string(&self, cmd: impl Borrow<Command>) -> Result<ProcessResult<String>> {
        self.runner.output_string(cmd.borrow()).await
    }

    /// The full outcome as raw bytes; a non-zero exit is data.
    pub async fn output_bytes(&self, cmd: impl Borrow<Command>) -> Result<ProcessResult<Vec<u8>>> {
        self.runner.output_bytes(cmd.borrow()).await
    }

    /// The exit code; a timed-out or killed run is an error.
    pub async fn exit_code(&self, cmd: impl Borrow<Command>) -> Result<i32> {
        self.runner.exit_code(cmd.borrow()).await
    }

    /// Exit 0 → `true`, 1 → `false`, anything else is an error.
    pub async fn probe(&self, cmd: impl Borrow<Command>) -> Result<bool> {
        self.runner.probe(cmd.borrow()).await
    }

    /// The first stdout line matching `pred`, or `None` when stdout closes first.
    pub async fn first_line<P>(&self, cmd: impl Borrow<Command>, pred: P) -> Result<Option<String>>
    where
        P: FnMut(&str) -> bool + Send,
    {
        self.runner.first_line(cmd.borrow(), pred).await
    }

    /// Starts the command and returns the live handle.
    pub async fn start(&self, cmd: impl Borrow<Command>) -> Result<RunningProcess> {
        self.runner.start(cmd.borrow()).await
    }
}

/// Declares a typed client for one program, generic over its runner.
///
/// `cli_client!(pub struct Git => "git")` expands to a
/// `pub struct Git<R: ProcessRunner = JobRunner> { pub core: CliClient<R> }`
/// with `Git::new()` (the real program), `Default`, and
/// `Git::with_runner(runner)`. Write the tool's operations as methods that
/// build commands with `self.core` and parse what comes back:
///
/// ```no_run
/// use processkit::{cli_client, ProcessRunner, Result};
/// use std::path::Path;
///
/// cli_client!(pub struct Git => "git");
///
/// impl<R: ProcessRunner> Git<R> {
///     pub async fn head(&self, dir: &Path) -> Result<String> {
///         self.core.run(self.core.command_in(dir, ["rev-parse", "HEAD"])).await
///     }
/// }
/// ```
///
/// Attributes (docs, derives) written before `struct` are applied to it.
#[macro_export]
macro_rules! cli_client {
    ($(#[$meta:meta])* $vis:vis struct $name:ident => $program:expr $(,)?) => {
        #[doc = concat!("A typed client for `", $program, "`, generic over its runner.")]
        $(#[$meta])*
        $vis struct $name<R: $crate::ProcessRunner = $crate::JobRunner> {
            /// The generic client: builds commands and runs them.
            pub core: $crate::CliClient<R>,
        }

        impl $name<$crate::JobRunner> {
            /// A client that runs the real program.
            pub fn new() -> Self {
                $name {
                    core: $crate::CliClient::new($program),
                }
            }
        }

        impl ::core::default::Default for $name<$crate::JobRunner> {
            fn default() -> Self {
                Self::new()
            }
        }

        impl<R: $crate::ProcessRunner> $name<R> {
            /// A client whose commands go through `runner` (e.g. a test double).
            pub fn with_runner(runner: R) -> Self {
                $name {
                    core: $crate::CliClient::new($program).with_runner(runner),
                }
            }
        }
    };
}
