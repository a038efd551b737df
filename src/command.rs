//! `Command`: the plain-data description of one run. No I/O happens here, so a
//! runner can inspect, record, replay or script a command before anything spawns.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::policy::Cancel;
use crate::signal::Signal;
use crate::stdin::Stdin;
use crate::stdio::Stdio;
use crate::sys::spawn::{EnvPlan, SpawnOptions};

/// A callback run on the read pump for every line of output.
pub(crate) type LineHandler = Arc<dyn Fn(&str) + Send + Sync>;

/// A description of a program to run: its arguments, environment, working
/// directory, stdin, timeout and spawn flags.
///
/// `Command` is plain data and `Clone`. Nothing happens until a verb
/// ([`run`](Command::run), [`output_string`](Command::output_string),
/// [`start`](Command::start), …) is awaited.
///
/// ```no_run
/// # async fn demo() -> processkit::Result<()> {
/// use processkit::Command;
/// use std::time::Duration;
/// let out = Command::new("ls").arg("-l").timeout(Duration::from_secs(5)).run().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Command {
    pub(crate) program: OsString,
    pub(crate) args: Vec<OsString>,
    pub(crate) env: EnvPlan,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) stdin: Stdin,
    pub(crate) keep_stdin_open: bool,
    pub(crate) stdout: Stdio,
    pub(crate) stderr: Stdio,
    /// stderr goes wherever stdout goes (one pipe when captured).
    pub(crate) stderr_to_stdout: bool,
    /// At most this many bytes kept per captured stream.
    pub(crate) max_output: Option<usize>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) timeout_grace: Option<Duration>,
    /// What a graceful stop sends first.
    pub(crate) stop_signal: Signal,
    /// A cancelled run is stopped with this grace instead of killed.
    pub(crate) cancel_grace: Option<Duration>,
    /// Stopped when neither stream produced a byte for this long.
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) unchecked: bool,
    pub(crate) stdout_handler: Option<LineHandler>,
    pub(crate) stderr_handler: Option<LineHandler>,
    pub(crate) os: SpawnOptions,
    pub(crate) cancel: Cancel,
    pub(crate) retry: Option<crate::RetryPolicy>,
    /// Run on a pseudo-terminal of this size: `(rows, columns)`.
    #[cfg(feature = "pty")]
    pub(crate) pty: Option<(u16, u16)>,
}

/// The size of a pseudo-terminal unless `pty_size` says otherwise.
#[cfg(feature = "pty")]
pub(crate) const DEFAULT_PTY_SIZE: (u16, u16) = (24, 80);

impl Command {
    /// A command that runs `program`, looked up on `PATH` unless it contains a
    /// path separator.
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: EnvPlan::default(),
            cwd: None,
            stdin: Stdin::null(),
            keep_stdin_open: false,
            stdout: Stdio::capture(),
            stderr: Stdio::capture(),
            stderr_to_stdout: false,
            max_output: None,
            timeout: None,
            timeout_grace: None,
            stop_signal: Signal::Term,
            cancel_grace: None,
            idle_timeout: None,
            unchecked: false,
            stdout_handler: None,
            stderr_handler: None,
            os: SpawnOptions::default(),
            cancel: Cancel::default(),
            retry: None,
            #[cfg(feature = "pty")]
            pty: None,
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Command {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends several arguments.
    pub fn args<I, S>(mut self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets one environment variable for the child.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Command {
        let entry = (key.as_ref().to_owned(), Some(value.as_ref().to_owned()));
        self.env.overrides.push(entry);
        self
    }

    /// Sets several environment variables for the child.
    pub fn envs<I, K, V>(mut self, vars: I) -> Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self = self.env(k, v);
        }
        self
    }

    /// Removes one variable from the child's environment.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Command {
        self.env.overrides.push((key.as_ref().to_owned(), None));
        self
    }

    /// Starts the child from an empty environment; later `env` calls still apply.
    pub fn env_clear(mut self) -> Command {
        self.env.clear = true;
        self.env.inherit = None;
        self.env.overrides.clear();
        self
    }

    /// Clears the environment and copies only the named variables from ours.
    /// Explicit [`env`](Command::env) and [`env_remove`](Command::env_remove)
    /// calls apply on top, whatever their order.
    pub fn inherit_env<I, S>(mut self, names: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let names = names.into_iter().map(|n| n.as_ref().to_owned());
        self.env.inherit.get_or_insert_with(Vec::new).extend(names);
        self
    }

    /// Runs the child in `dir`. A missing directory is reported as
    /// [`Error::WorkingDirectory`](crate::Error::WorkingDirectory).
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Command {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// Sets where stdin comes from (default: [`Stdin::null`]).
    pub fn stdin(mut self, stdin: Stdin) -> Command {
        self.stdin = stdin;
        self
    }

    /// Sets where the child's stdout goes (default: [`Stdio::capture`]).
    /// In a pipeline, only the last stage's stdout can be set: the others
    /// feed the next stage.
    pub fn stdout(mut self, stdout: Stdio) -> Command {
        self.stdout = stdout;
        self
    }

    /// Sets where the child's stderr goes (default: [`Stdio::capture`]).
    /// Overrides an earlier [`stderr_to_stdout`](Command::stderr_to_stdout).
    pub fn stderr(mut self, stderr: Stdio) -> Command {
        self.stderr = stderr;
        self.stderr_to_stdout = false;
        self
    }

    /// Keeps at most about `bytes` of each captured stream, however much the
    /// child writes: the first half of `bytes` and the most recent rest,
    /// with the line `[processkit: output truncated]` where bytes were
    /// dropped ([`ProcessResult::truncated`](crate::ProcessResult::truncated)
    /// says so). Memory stays bounded (about twice `bytes` per stream while
    /// the child writes). Line streams read live are not cut: what they
    /// deliver is not kept. The default keeps everything: a verb's result
    /// is what the child wrote, and a caller who expects a flood says so.
    pub fn max_output(mut self, bytes: usize) -> Command {
        self.max_output = Some(bytes);
        self
    }

    /// Sends stderr wherever stdout goes. When stdout is captured, both
    /// share one pipe, so their lines arrive in the order the child wrote
    /// them, all as stdout; the result's stderr is then empty.
    pub fn stderr_to_stdout(mut self) -> Command {
        self.stderr_to_stdout = true;
        self
    }

    /// Keeps a pipe to the child's stdin open so it can be written to through
    /// [`RunningProcess::standard_input`](crate::RunningProcess::standard_input)
    /// (on a pseudo-terminal: the terminal's input).
    pub fn keep_stdin_open(mut self) -> Command {
        self.keep_stdin_open = true;
        self
    }

    /// Bounds the run: at the deadline the whole tree is killed. The expiry is
    /// captured in the result ([`ProcessResult::timed_out`](crate::ProcessResult::timed_out));
    /// verbs that require success report [`Error::Timeout`](crate::Error::Timeout).
    pub fn timeout(mut self, timeout: Duration) -> Command {
        self.timeout = Some(timeout);
        self
    }

    /// Makes the timeout (and the [`idle_timeout`](Command::idle_timeout))
    /// graceful: at the deadline the tree gets the
    /// [`stop_signal`](Command::stop_signal), and is killed only if it is
    /// still there after `grace` (Windows: `CTRL_BREAK_EVENT` and
    /// `WM_CLOSE`, then the job is terminated).
    pub fn timeout_grace(mut self, grace: Duration) -> Command {
        self.timeout_grace = Some(grace);
        self
    }

    /// The signal every graceful path sends this run's tree first
    /// (default [`Signal::Term`]): [`RunningProcess::stop`](crate::RunningProcess::stop),
    /// [`timeout_grace`](Command::timeout_grace), `cancel_grace` (feature `cancellation`),
    /// and a group's [`stop`](crate::ProcessGroup::stop) and
    /// [`shutdown`](crate::ProcessGroup::shutdown). Use [`Signal::Int`] for
    /// programs that treat Ctrl-C as "finish up", [`Signal::Quit`] or
    /// [`Signal::Hup`] where that is a program's clean exit. On Windows a
    /// graceful stop sends `CTRL_BREAK_EVENT` and `WM_CLOSE` whatever this is.
    pub fn stop_signal(mut self, signal: Signal) -> Command {
        self.stop_signal = signal;
        self
    }

    /// Makes cancellation graceful: when the `cancel_on` token fires, the
    /// tree gets the [`stop_signal`](Command::stop_signal) and is killed
    /// only if it is still there after `grace`. The run still reports
    /// [`Error::Cancelled`](crate::Error::Cancelled).
    #[cfg(feature = "cancellation")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cancellation")))]
    pub fn cancel_grace(mut self, grace: Duration) -> Command {
        self.cancel_grace = Some(grace);
        self
    }

    /// Stops the run when neither stdout nor stderr produced a byte for
    /// `idle` (gracefully when [`timeout_grace`](Command::timeout_grace) is
    /// set). The run reports a timeout that
    /// [`ProcessResult::idle_timed_out`](crate::ProcessResult::idle_timed_out)
    /// tells from the wall-clock one; verbs that require success fail with
    /// [`Error::IdleTimeout`](crate::Error::IdleTimeout). Bytes count when
    /// processkit reads them, so at least one stream must come to us
    /// (captured or teed): with both inherited, discarded or sent to files
    /// the start fails with [`Error::InvalidCommand`](crate::Error::InvalidCommand).
    pub fn idle_timeout(mut self, idle: Duration) -> Command {
        self.idle_timeout = Some(idle);
        self
    }

    /// Marks this pipeline stage as allowed to fail (e.g. a producer killed by
    /// SIGPIPE when `head` stops reading). Pipefail skips it.
    pub fn unchecked(mut self) -> Command {
        self.unchecked = true;
        self
    }

    /// Calls `handler` for every stdout line as it is read, in addition to capture.
    pub fn on_stdout_line(mut self, handler: impl Fn(&str) + Send + Sync + 'static) -> Command {
        self.stdout_handler = Some(Arc::new(handler));
        self
    }

    /// Calls `handler` for every stderr line as it is read, in addition to capture.
    pub fn on_stderr_line(mut self, handler: impl Fn(&str) + Send + Sync + 'static) -> Command {
        self.stderr_handler = Some(Arc::new(handler));
        self
    }

    /// Runs the child as user `uid` (Unix). The child joins its container first,
    /// then drops privileges, then enters its working directory as that user,
    /// then execs. Without [`gid`](Command::gid) the group is the user's
    /// primary group from the user database; a uid with no entry there fails
    /// the spawn until a gid is given. Elsewhere the run fails with
    /// [`Error::Unsupported`](crate::Error::Unsupported).
    pub fn uid(mut self, uid: u32) -> Command {
        self.os.uid = Some(uid);
        self
    }

    /// Runs the child with group `gid` (Unix), set before the user id.
    /// Supplementary groups are cleared unless [`groups`](Command::groups) sets them.
    pub fn gid(mut self, gid: u32) -> Command {
        self.os.gid = Some(gid);
        self
    }

    /// Sets the child's supplementary groups (Unix) when dropping privileges.
    pub fn groups(mut self, groups: impl IntoIterator<Item = u32>) -> Command {
        self.os.groups = Some(groups.into_iter().collect());
        self
    }

    /// Makes the child the leader of a new session (Unix). It stays contained.
    pub fn setsid(mut self) -> Command {
        self.os.setsid = true;
        self
    }

    /// Runs the child on a new pseudo-terminal: the terminal is its stdin,
    /// stdout and stderr, and (on Unix) the controlling terminal of a new
    /// session it leads; on Windows a ConPTY pseudo console. Programs then
    /// behave as in a terminal window: line-buffered output, colours,
    /// prompts, line editing. The run stays contained like any other.
    ///
    /// What changes: everything the child writes arrives as stdout (stderr
    /// comes back empty), with the terminal's line endings (`\r\n`; line
    /// streams drop the `\r`, raw readers keep it) and escape sequences;
    /// input is echoed; ending stdin sends the terminal's end-of-file
    /// character rather than closing anything. stdin may be null (the child
    /// gets end-of-file at once), data, lines, a reader, or kept open;
    /// stdout must be captured (teeing is fine); stderr settings do not
    /// apply. Other settings fail the start with
    /// [`Error::InvalidCommand`](crate::Error::InvalidCommand), as does a
    /// pipeline stage on a terminal. See `docs/pty.md`.
    ///
    /// ```no_run
    /// # async fn demo() -> processkit::Result<()> {
    /// use processkit::Command;
    /// let out = Command::new("ls").arg("--color=auto").pty().output_string().await?;
    /// # let _ = out; Ok(()) }
    /// ```
    #[cfg(feature = "pty")]
    #[cfg_attr(docsrs, doc(cfg(feature = "pty")))]
    pub fn pty(mut self) -> Command {
        self.pty.get_or_insert(DEFAULT_PTY_SIZE);
        self
    }

    /// Sets the pseudo-terminal's size in rows and columns (default 24 x 80)
    /// and runs on one, as [`pty`](Command::pty) does. Both must be at least
    /// 1, or the start fails with
    /// [`Error::InvalidCommand`](crate::Error::InvalidCommand). Change it
    /// later with [`RunningProcess::resize_pty`](crate::RunningProcess::resize_pty).
    #[cfg(feature = "pty")]
    #[cfg_attr(docsrs, doc(cfg(feature = "pty")))]
    pub fn pty_size(mut self, rows: u16, cols: u16) -> Command {
        self.pty = Some((rows, cols));
        self
    }

    /// Windows: starts console programs without a console window. A no-op elsewhere.
    pub fn create_no_window(mut self) -> Command {
        self.os.create_no_window = true;
        self
    }

    /// Kills the child if this process dies abruptly (Linux `PR_SET_PDEATHSIG`;
    /// Windows' Job Object already does this; a documented no-op on macOS/BSD).
    pub fn kill_on_parent_death(mut self) -> Command {
        self.os.kill_on_parent_death = true;
        self
    }

    /// Ties the run to `token`: cancelling it kills the run's whole tree (in a
    /// shared group, only this run's), ends its output streams, and makes
    /// every verb and finisher report [`Error::Cancelled`](crate::Error::Cancelled).
    /// A token cancelled before the run starts means nothing is spawned.
    #[cfg(feature = "cancellation")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cancellation")))]
    pub fn cancel_on(mut self, token: tokio_util::sync::CancellationToken) -> Command {
        self.cancel = Cancel::on(token);
        self
    }

    /// Replays the run under `policy` until it succeeds or the policy gives
    /// up; applies to the verbs on `Command` (`start` retries spawn failures
    /// only). See [`RetryPolicy`](crate::RetryPolicy).
    pub fn retry(mut self, policy: crate::RetryPolicy) -> Command {
        self.retry = Some(policy);
        self
    }

    /// The program as given to [`Command::new`].
    pub fn get_program(&self) -> &OsStr {
        &self.program
    }

    /// The arguments, in order.
    pub fn get_args(&self) -> impl ExactSizeIterator<Item = &OsStr> {
        self.args.iter().map(OsString::as_os_str)
    }

    /// The working directory, if one was set.
    pub fn get_current_dir(&self) -> Option<&Path> {
        self.cwd.as_deref()
    }

    /// The names of the variables this command sets or removes explicitly,
    /// sorted and without values.
    pub fn get_env_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .env
            .overrides
            .iter()
            .map(|(n, _)| n.to_string_lossy().into_owned())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Whether stdin is fed from data, a stream, a reader or a file (not
    /// null or inherited).
    pub fn has_stdin(&self) -> bool {
        self.stdin.is_fed() || self.keep_stdin_open
    }

    /// The timeout, if one was set.
    pub fn get_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The signal a graceful stop sends first.
    pub fn get_stop_signal(&self) -> Signal {
        self.stop_signal
    }

    /// The idle timeout, if one was set.
    pub fn get_idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }

    /// Whether the command was marked [`unchecked`](Command::unchecked).
    pub fn is_unchecked(&self) -> bool {
        self.unchecked
    }

    /// The program name as text, for messages.
    pub(crate) fn display_name(&self) -> String {
        self.program.to_string_lossy().into_owned()
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Command");
        d.field("program", &self.program).field("args", &self.args);
        d.field("env_names", &self.get_env_names());
        if self.env.clear || self.env.inherit.is_some() {
            d.field("env_inherit", &self.env.inherit);
        }
        d.field("cwd", &self.cwd)
            .field("stdin", &self.stdin)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}
