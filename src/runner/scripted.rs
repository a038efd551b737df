//! `ScriptedRunner`: a test double that answers commands with canned
//! replies, matched by program and arguments. It never spawns a process; its
//! runs go through the same pumps, line reader and finishers as real ones.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::script::{Script, ScriptedEnd, start_scripted};
use super::{BoxFuture, ProcessRunner};
use crate::command::Command;
use crate::error::{Error, Result};
use crate::running::RunningProcess;

/// What a scripted run does: its stdout (optionally line by line with
/// delays), its stderr, and how it ends.
///
/// ```
/// use processkit::Reply;
/// use std::time::Duration;
/// let ok = Reply::success("v1.2.3\n");
/// let failed = Reply::failure(2, "fatal: not a git repository");
/// let streamed = Reply::lines(["starting"])
///     .line_after(Duration::from_millis(50), "listening on :8080");
/// ```
#[derive(Clone)]
pub struct Reply {
    not_found: bool,
    script: Script,
}

impl Reply {
    fn ending(end: ScriptedEnd) -> Reply {
        Reply {
            not_found: false,
            script: Script {
                stdout: Vec::new(),
                stderr: Vec::new(),
                exit_delay: Duration::ZERO,
                end,
            },
        }
    }

    /// Exit 0 with `stdout`.
    pub fn success(stdout: impl Into<String>) -> Reply {
        Reply::ending(ScriptedEnd::Code(0)).stdout(stdout.into())
    }

    /// Exit 0, writing each of `lines` followed by `\n`.
    pub fn lines<I, S>(lines: I) -> Reply
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        lines
            .into_iter()
            .fold(Reply::success(""), |reply, line| reply.line(line))
    }

    /// Exit with `code` (non-zero for a failure) and `stderr`.
    pub fn failure(code: i32, stderr: impl Into<String>) -> Reply {
        Reply::ending(ScriptedEnd::Code(code)).stderr(stderr.into())
    }

    /// The program does not exist: starting it fails with [`Error::NotFound`].
    pub fn not_found() -> Reply {
        Reply {
            not_found: true,
            ..Reply::ending(ScriptedEnd::Code(127))
        }
    }

    /// The run hits its timeout once its output is written: the result
    /// reports [`timed_out`](crate::ProcessResult::timed_out) and verbs that
    /// require success fail with [`Error::Timeout`].
    pub fn timeout() -> Reply {
        Reply::ending(ScriptedEnd::TimedOut)
    }

    /// The run is ended by `signal` (e.g. 9 for SIGKILL, 15 for SIGTERM).
    pub fn signalled(signal: i32) -> Reply {
        Reply::ending(ScriptedEnd::Signal(signal))
    }

    /// The run is killed with neither an exit code nor a signal, as a
    /// Windows run whose Job Object was terminated is: `run` fails with
    /// [`Error::Killed`].
    pub fn killed() -> Reply {
        Reply::ending(ScriptedEnd::Killed)
    }

    /// Appends raw bytes to stdout, written as one chunk.
    pub fn stdout(self, bytes: impl Into<Vec<u8>>) -> Reply {
        self.chunk_after(Duration::ZERO, bytes.into())
    }

    /// Appends `line` and `\n` to stdout.
    pub fn line(self, line: impl Into<String>) -> Reply {
        self.line_after(Duration::ZERO, line)
    }

    /// Appends `line` and `\n` to stdout, written `delay` after the previous
    /// chunk. The delay runs on tokio's clock, so paused-time tests skip it.
    pub fn line_after(self, delay: Duration, line: impl Into<String>) -> Reply {
        let mut bytes = line.into().into_bytes();
        bytes.push(b'\n');
        self.chunk_after(delay, bytes)
    }

    /// Replaces stderr.
    pub fn stderr(mut self, stderr: impl Into<Vec<u8>>) -> Reply {
        self.script.stderr = stderr.into();
        self
    }

    /// Waits `delay` after the last stdout chunk before exiting. A command
    /// timeout shorter than the whole script ends the run at the deadline.
    pub fn exit_after(mut self, delay: Duration) -> Reply {
        self.script.exit_delay = delay;
        self
    }

    /// Starts a scripted run of `cmd` that plays this reply, as
    /// [`ScriptedRunner`] does; handy in a `MockRunner`'s `expect_start`
    /// (feature `mock`). Must be called inside a tokio
    /// runtime; outside one it fails with [`Error::Unsupported`].
    pub fn start(&self, cmd: &Command) -> Result<RunningProcess> {
        if self.not_found {
            return Err(Error::NotFound {
                program: cmd.display_name(),
            });
        }
        start_scripted(cmd, self.script.clone())
    }

    fn chunk_after(mut self, delay: Duration, bytes: Vec<u8>) -> Reply {
        if !bytes.is_empty() || !delay.is_zero() {
            self.script.stdout.push((delay, bytes));
        }
        self
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Reply");
        if self.not_found {
            return d.field("not_found", &true).finish();
        }
        let stdout_len: usize = self.script.stdout.iter().map(|(_, c)| c.len()).sum();
        d.field("end", &self.script.end)
            .field("stdout_bytes", &stdout_len)
            .field("stderr_bytes", &self.script.stderr.len())
            .finish()
    }
}

type Predicate = Arc<dyn Fn(&Command) -> bool + Send + Sync>;

/// Which invocations a scripted reply answers.
///
/// ```
/// use processkit::Match;
/// let head = Match::exact("git", ["rev-parse", "HEAD"]);
/// let any_log = Match::prefix("git", ["log"]);
/// let in_tmp = Match::when(|cmd| cmd.get_current_dir() == Some("/tmp".as_ref()));
/// ```
#[derive(Clone)]
pub struct Match(MatchKind);

#[derive(Clone)]
enum MatchKind {
    Exact(OsString, Vec<OsString>),
    Prefix(OsString, Vec<OsString>),
    When(Predicate),
}

fn owned<I, S>(args: I) -> Vec<OsString>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    args.into_iter().map(|a| a.as_ref().to_owned()).collect()
}

impl Match {
    /// This program with exactly these arguments.
    pub fn exact<I, S>(program: impl AsRef<OsStr>, args: I) -> Match
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Match(MatchKind::Exact(program.as_ref().to_owned(), owned(args)))
    }

    /// This program with arguments that start with `args` (an empty prefix
    /// matches every invocation of the program).
    pub fn prefix<I, S>(program: impl AsRef<OsStr>, args: I) -> Match
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Match(MatchKind::Prefix(program.as_ref().to_owned(), owned(args)))
    }

    /// Every invocation of `program`, whatever its arguments.
    pub fn program(program: impl AsRef<OsStr>) -> Match {
        Match::prefix(program, std::iter::empty::<&OsStr>())
    }

    /// Every command for which `pred` is true.
    pub fn when(pred: impl Fn(&Command) -> bool + Send + Sync + 'static) -> Match {
        Match(MatchKind::When(Arc::new(pred)))
    }

    /// Whether `cmd` is an invocation this matcher answers.
    pub fn matches(&self, cmd: &Command) -> bool {
        match &self.0 {
            MatchKind::Exact(program, args) => cmd.program == *program && cmd.args == *args,
            MatchKind::Prefix(program, args) => {
                cmd.program == *program && cmd.args.starts_with(args)
            }
            MatchKind::When(pred) => pred(cmd),
        }
    }
}

impl fmt::Debug for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            MatchKind::Exact(p, a) => f.debug_tuple("Match::exact").field(p).field(a).finish(),
            MatchKind::Prefix(p, a) => f.debug_tuple("Match::prefix").field(p).field(a).finish(),
            MatchKind::When(_) => f.write_str("Match::when(..)"),
        }
    }
}

/// One matcher and the replies it serves, in order, repeating the last.
#[derive(Debug)]
struct Rule {
    matcher: Match,
    replies: Vec<Reply>,
    served: AtomicUsize,
}

impl Rule {
    fn next_reply(&self) -> Option<Reply> {
        let n = self.served.fetch_add(1, Ordering::Relaxed);
        let last = self.replies.len().checked_sub(1)?;
        Some(self.replies[n.min(last)].clone())
    }
}

/// A [`ProcessRunner`] that answers from a script instead of spawning.
///
/// Rules are tried in the order they were added; the first whose [`Match`]
/// accepts the command answers it. A rule with a sequence of replies serves
/// them in order and then keeps repeating the last one. A command no rule
/// matches fails with [`Error::NoReply`].
///
/// `start()` returns a real [`RunningProcess`]: stdout is fed through an
/// in-memory pipe (with any delays the reply asks for), so line reading,
/// `first_line` and the output verbs behave as they do for a child. The
/// command's timeout and cancellation token apply too. There is no OS
/// process, so `id()` is `None` and stdin kept open with `keep_stdin_open`
/// is not available. `kill()` stops the script at once, as it would stop a
/// child: stdout closes and `wait()` reports `None` (killed, signal 9 on
/// Unix, no signal on Windows). Dropping the handle stops the script too.
///
/// ```
/// # async fn demo() -> processkit::Result<()> {
/// use processkit::{Command, Match, ProcessRunnerExt, Reply, ScriptedRunner};
/// let runner = ScriptedRunner::new()
///     .on(Match::exact("git", ["rev-parse", "HEAD"]), Reply::success("abc123\n"))
///     .on_sequence(
///         Match::program("curl"),
///         [Reply::failure(7, "connection refused"), Reply::success("ok")],
///     );
/// let head = runner.run(&Command::new("git").args(["rev-parse", "HEAD"])).await?;
/// assert_eq!(head, "abc123");
/// assert!(runner.run(&Command::new("curl")).await.is_err());
/// assert_eq!(runner.run(&Command::new("curl")).await?, "ok");
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct ScriptedRunner {
    rules: Vec<Rule>,
    calls: AtomicUsize,
}

impl ScriptedRunner {
    /// A runner with no rules: every command is a miss.
    pub fn new() -> ScriptedRunner {
        ScriptedRunner::default()
    }

    /// Answers commands accepted by `matcher` with `reply`, every time.
    pub fn on(self, matcher: Match, reply: Reply) -> ScriptedRunner {
        self.on_sequence(matcher, [reply])
    }

    /// Answers commands accepted by `matcher` with `replies` in order, then
    /// repeats the last one. An empty sequence answers with
    /// [`Error::NoReply`].
    pub fn on_sequence(
        mut self,
        matcher: Match,
        replies: impl IntoIterator<Item = Reply>,
    ) -> ScriptedRunner {
        self.rules.push(Rule {
            matcher,
            replies: replies.into_iter().collect(),
            served: AtomicUsize::new(0),
        });
        self
    }

    /// Shorthand for `on(Match::exact(program, args), reply)`.
    pub fn exact<I, S>(self, program: impl AsRef<OsStr>, args: I, reply: Reply) -> ScriptedRunner
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.on(Match::exact(program, args), reply)
    }

    /// Shorthand for `on(Match::prefix(program, args), reply)`.
    pub fn prefix<I, S>(self, program: impl AsRef<OsStr>, args: I, reply: Reply) -> ScriptedRunner
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.on(Match::prefix(program, args), reply)
    }

    /// Shorthand for `on(Match::when(pred), reply)`.
    pub fn when(
        self,
        pred: impl Fn(&Command) -> bool + Send + Sync + 'static,
        reply: Reply,
    ) -> ScriptedRunner {
        self.on(Match::when(pred), reply)
    }

    /// How many commands this runner was asked to run, matched or not.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    /// The reply for `cmd`, advancing its rule's sequence.
    fn reply_for(&self, cmd: &Command) -> Result<Reply> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let rule = self.rules.iter().find(|r| r.matcher.matches(cmd));
        let reply = match rule {
            Some(rule) => rule.next_reply(),
            None => None,
        };
        reply.ok_or_else(|| {
            let why = match rule {
                Some(_) => "its rule has an empty reply sequence",
                None => "no scripted rule matches",
            };
            no_reply(cmd, why)
        })
    }
}

/// [`Error::NoReply`] naming the program and its argument count, never
/// argument or environment values.
pub(crate) fn no_reply(cmd: &Command, why: &str) -> Error {
    let n = cmd.args.len();
    let plural = if n == 1 { "" } else { "s" };
    Error::NoReply {
        program: cmd.display_name(),
        detail: format!("{n} argument{plural}; {why}"),
    }
}

impl ProcessRunner for ScriptedRunner {
    fn start<'a>(&'a self, cmd: &'a Command) -> BoxFuture<'a, Result<RunningProcess>> {
        Box::pin(async move { self.reply_for(cmd)?.start(cmd) })
    }
}
