//! The lowered command both spawners consume (`SpawnSpec`): argv, the
//! environment and the paths exec tries, the working directory, the stdio
//! plan and the child's setup, built and validated once, before any spawn.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};

#[cfg(unix)]
use super::options::PreExec;
use super::options::SpawnOptions;

#[cfg(unix)]
use std::ffi::CString;
#[cfg(unix)]
use std::os::unix::ffi::OsStrExt;

#[cfg(unix)]
pub(crate) use super::setup::ChildSetup;

/// A blocking pipe end passed from one pipeline stage to the next.
#[cfg(unix)]
pub(crate) type StagePipe = std::os::fd::OwnedFd;
/// A blocking pipe end passed from one pipeline stage to the next.
#[cfg(windows)]
pub(crate) type StagePipe = std::os::windows::io::OwnedHandle;

/// The search list when the child has no `PATH`: glibc's (`confstr(_CS_PATH)`),
/// used for exec and for telling a missing program apart alike.
#[cfg(unix)]
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// How the child's environment is built from ours.
#[derive(Clone, Default)]
pub(crate) struct EnvPlan {
    /// Start from an empty environment.
    pub(crate) clear: bool,
    /// Copy only these of our variables (implies `clear`).
    pub(crate) inherit: Option<Vec<OsString>>,
    /// Explicit overrides applied on top, in order: `None` removes.
    pub(crate) overrides: Vec<(OsString, Option<OsString>)>,
}

impl EnvPlan {
    /// The complete environment the child will see.
    pub(crate) fn resolve(&self) -> BTreeMap<OsString, OsString> {
        let mut env: BTreeMap<OsString, OsString> = match (&self.inherit, self.clear) {
            (Some(names), _) => names
                .iter()
                .filter_map(|n| std::env::var_os(n).map(|v| (n.clone(), v)))
                .collect(),
            (None, true) => BTreeMap::new(),
            (None, false) => std::env::vars_os().collect(),
        };
        for (name, value) in &self.overrides {
            match value {
                Some(v) => env.insert(name.clone(), v.clone()),
                None => env.remove(name),
            };
        }
        env
    }

    /// Whether the child's environment differs from ours only by `overrides`.
    fn starts_from_parent(&self) -> bool {
        !self.clear && self.inherit.is_none()
    }

    /// Whether the child's environment is exactly ours.
    pub(crate) fn is_unchanged(&self) -> bool {
        self.starts_from_parent() && self.overrides.is_empty()
    }

    /// Whether the child may see another value of `name` than ours (its
    /// environment is cleared or filtered, or `name` is set or removed).
    #[cfg_attr(not(windows), allow(dead_code))]
    pub(crate) fn changes(&self, name: &OsStr) -> bool {
        let same = |k: &OsString| {
            if cfg!(windows) {
                k.eq_ignore_ascii_case(name)
            } else {
                k == name
            }
        };
        !self.starts_from_parent() || self.overrides.iter().any(|(k, _)| same(k))
    }
}

/// Where a child's stdin comes from.
#[derive(Debug)]
pub(crate) enum StdinPlan {
    Inherit,
    Null,
    /// A pipe the parent writes.
    Pipe,
    /// The previous pipeline stage's stdout.
    Stage(StagePipe),
}

/// Where a child's stdout or stderr goes.
#[derive(Debug, Default)]
pub(crate) enum OutputPlan {
    /// A pipe the parent reads.
    #[default]
    Pipe,
    /// The parent's own descriptor.
    Inherit,
    Null,
    /// An open file of the caller's (its descriptor, owned by the spec).
    File(StagePipe),
    /// stderr only: wherever stdout goes (one pipe for both).
    Stdout,
}

/// The environment as a spawner applies it.
#[derive(Debug)]
pub(crate) enum Environment {
    /// Ours, unchanged (read at spawn time).
    Inherited,
    /// Exactly these variables (Unix: `NAME=value` strings for `execve`).
    #[cfg(unix)]
    Exact(Vec<CString>),
    /// Ours, changed by these overrides (`None` removes): on Windows std
    /// applies them, matching names case-insensitively.
    #[cfg(windows)]
    Overrides(Vec<(OsString, Option<OsString>)>),
    /// Exactly these variables.
    #[cfg(windows)]
    Exact(BTreeMap<OsString, OsString>),
}

/// One child to start, lowered from a command: owns every descriptor the
/// spawn hands on (a pipeline's stdin, the cgroup to join) until it is done.
#[derive(Debug)]
pub(crate) struct SpawnSpec {
    /// The program as given, then its arguments.
    #[cfg(unix)]
    pub(crate) argv: Vec<CString>,
    #[cfg(windows)]
    pub(crate) argv: Vec<OsString>,
    pub(crate) env: Environment,
    /// The paths exec tries, in order: the program as given when it names a
    /// path, else one per `PATH` entry (as `execvp` does).
    #[cfg(unix)]
    pub(crate) candidates: Vec<CString>,
    #[cfg(windows)]
    pub(crate) candidates: Vec<PathBuf>,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) stdin: StdinPlan,
    pub(crate) stdout: OutputPlan,
    pub(crate) stderr: OutputPlan,
    /// Keep stdout blocking and at its default size (a pipeline's inner pipe).
    pub(crate) raw_stdout: bool,
    #[cfg(unix)]
    pub(crate) setup: ChildSetup,
    /// What the child sees as `argv[0]`, when not the program as given.
    #[cfg(unix)]
    pub(crate) arg0: Option<CString>,
    /// The caller's hooks, run last before exec; they force the std spawner.
    #[cfg(unix)]
    pub(crate) pre_exec: Vec<PreExec>,
    /// Hand the terminal to the child's process group while it runs.
    #[cfg(unix)]
    pub(crate) foreground: bool,
    #[cfg(windows)]
    pub(crate) create_no_window: bool,
    /// The caller's creation flags and the priority class asked for.
    #[cfg(windows)]
    pub(crate) creation_flags: u32,
    /// Unquoted arguments, each after this many ordinary ones.
    #[cfg(windows)]
    pub(crate) raw_args: Vec<(usize, OsString)>,
    /// Start suspended, so the slot places the child before it runs.
    #[cfg(windows)]
    pub(crate) start_suspended: bool,
    /// Start the child on this pseudo console (the ConPTY spawner's job).
    #[cfg(all(windows, feature = "pty"))]
    pub(crate) conpty: Option<std::sync::Arc<crate::sys::windows::conpty::PseudoConsole>>,
}

/// Why a command was not spawned. Messages are built above `sys`.
#[derive(Debug)]
pub(crate) enum SpawnError {
    /// The command cannot be spawned as given; nothing started.
    Invalid(Invalid),
    /// The working directory does not exist or is no directory.
    WorkingDirectory(PathBuf),
    /// An option this platform (or this mechanism) cannot honour: its name.
    Unsupported(&'static str),
    /// The slot could not be readied for the child (its cgroup not opened).
    Prepare(io::Error),
    /// The OS found no program at any path exec tried.
    NotFound,
    /// The OS refused the spawn.
    Spawn(io::Error),
    /// The child could not be contained (it was ended).
    Contain(io::Error),
}

/// What is wrong with a command that cannot be spawned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Invalid {
    EmptyProgram,
    NulInProgram,
    NulInArg0,
    /// The argument at this index (0 is the first after the program).
    NulInArgument(usize),
    /// A NUL byte, an empty name or a `=` in a name.
    Environment,
    /// The argument at this index holds a line break, which no quoting
    /// passes safely to a batch file (Windows).
    #[cfg_attr(not(windows), allow(dead_code))]
    BatchArgument(usize),
}

impl SpawnSpec {
    /// Lowers one command, rejecting what the OS would reject less clearly.
    /// A missing program is only recognised once a spawn fails (`not_found`),
    /// so a successful spawn pays for no search of ours.
    pub(crate) fn new(
        program: &OsStr,
        args: &[OsString],
        env: &EnvPlan,
        cwd: Option<&Path>,
        stdin: StdinPlan,
        raw_stdout: bool,
        options: &SpawnOptions,
    ) -> Result<SpawnSpec, SpawnError> {
        validate(program, args, env, cwd)?;
        #[cfg(windows)]
        super::options::refuse_posix_only(options)?;
        #[cfg(unix)]
        super::options::refuse_windows_only(options)?;
        if options
            .arg0
            .as_deref()
            .is_some_and(|a| a.as_encoded_bytes().contains(&0))
        {
            return Err(SpawnError::Invalid(Invalid::NulInArg0));
        }
        // Ours unchanged only when nothing at all changes: then the child's
        // `PATH` is ours, read now, and its environment is read at the spawn.
        let vars = (!env.is_unchanged()).then(|| env.resolve());
        let path = match &vars {
            None => std::env::var_os("PATH"),
            Some(vars) => path_of(vars),
        };
        #[cfg(windows)]
        let found = windows_program(program, args, env, vars.as_ref(), path.as_deref(), cwd)?;
        #[cfg(windows)]
        let program = found.as_deref().map_or(program, Path::as_os_str);
        Ok(SpawnSpec {
            argv: std::iter::once(program)
                .chain(args.iter().map(OsString::as_os_str))
                .map(arg)
                .collect(),
            candidates: exec_candidates(program, path.as_deref()),
            env: lower_env(env, vars),
            cwd: cwd.map(Path::to_owned),
            stdin,
            stdout: OutputPlan::Pipe,
            stderr: OutputPlan::Pipe,
            raw_stdout,
            #[cfg(unix)]
            setup: ChildSetup::new(options, cwd).map_err(SpawnError::Spawn)?,
            #[cfg(unix)]
            arg0: options.arg0.as_deref().map(arg),
            #[cfg(unix)]
            pre_exec: options.pre_exec.clone(),
            #[cfg(unix)]
            foreground: options.foreground,
            #[cfg(windows)]
            create_no_window: options.create_no_window,
            #[cfg(windows)]
            creation_flags: options.creation_flags
                | options.priority.map_or(0, super::options::priority_class),
            #[cfg(windows)]
            raw_args: options.raw_args.clone(),
            #[cfg(windows)]
            start_suspended: false,
            #[cfg(all(windows, feature = "pty"))]
            conpty: None,
        })
    }

    /// Turns a failed spawn's error into `NotFound` when no path exec tried
    /// holds a file (relative ones taken from the working directory).
    /// `execvp` answers "permission denied" when a `PATH` directory could
    /// not be searched, even if the program is nowhere: that is `NotFound`
    /// too when no candidate is a file we can see.
    pub(crate) fn classify(&self, error: io::Error) -> SpawnError {
        let exists = |candidate: &Path| {
            let full = match &self.cwd {
                Some(dir) if candidate.is_relative() => dir.join(candidate),
                _ => candidate.to_owned(),
            };
            full.metadata().is_ok_and(|m| m.is_file())
        };
        let missing = matches!(
            error.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
        );
        if missing && !self.candidate_paths().any(exists) {
            return SpawnError::NotFound;
        }
        SpawnError::Spawn(error)
    }

    fn candidate_paths(&self) -> impl Iterator<Item = &Path> {
        #[cfg(unix)]
        return self
            .candidates
            .iter()
            .map(|c| Path::new(OsStr::from_bytes(c.to_bytes())));
        #[cfg(windows)]
        return self.candidates.iter().map(PathBuf::as_path);
    }

    /// The program (`argv[0]`) and its arguments, as std takes them.
    pub(crate) fn program_and_args(&self) -> (&OsStr, impl Iterator<Item = &OsStr>) {
        let mut argv = self.argv.iter().map(as_os_str);
        let program = argv.next().unwrap_or_default();
        (program, argv)
    }
}

#[cfg(unix)]
fn as_os_str(arg: &CString) -> &OsStr {
    OsStr::from_bytes(arg.to_bytes())
}

#[cfg(windows)]
fn as_os_str(arg: &OsString) -> &OsStr {
    arg.as_os_str()
}

/// Rejects an empty program, NUL bytes and malformed variables, and a
/// working directory that is not there.
fn validate(
    program: &OsStr,
    args: &[OsString],
    env: &EnvPlan,
    cwd: Option<&Path>,
) -> Result<(), SpawnError> {
    let has_nul = |s: &OsStr| s.as_encoded_bytes().contains(&0);
    if program.is_empty() {
        return Err(SpawnError::Invalid(Invalid::EmptyProgram));
    }
    if has_nul(program) {
        return Err(SpawnError::Invalid(Invalid::NulInProgram));
    }
    if let Some(i) = args.iter().position(|a| has_nul(a)) {
        return Err(SpawnError::Invalid(Invalid::NulInArgument(i)));
    }
    let bad_variable = env.overrides.iter().any(|(k, v)| {
        has_nul(k)
            || k.is_empty()
            || k.as_encoded_bytes().contains(&b'=')
            || v.as_deref().is_some_and(has_nul)
    });
    if bad_variable {
        return Err(SpawnError::Invalid(Invalid::Environment));
    }
    if let Some(dir) = cwd
        && !dir.is_dir()
    {
        return Err(SpawnError::WorkingDirectory(dir.to_owned()));
    }
    Ok(())
}

/// The file to start in place of a bare `program` without an extension
/// that Windows itself would not find (`npm` for `npm.cmd`): found through
/// `PATHEXT` in std's search order. A `.exe` is left to std's own search,
/// which finds the same file. Arguments to a batch file (`.bat`, `.cmd`)
/// are quoted by std for `cmd.exe`, which cannot take a line break in one:
/// such an argument is refused here, before anything starts.
#[cfg(windows)]
fn windows_program(
    program: &OsStr,
    args: &[OsString],
    env: &EnvPlan,
    vars: Option<&BTreeMap<OsString, OsString>>,
    path: Option<&OsStr>,
    cwd: Option<&Path>,
) -> Result<Option<PathBuf>, SpawnError> {
    use super::lookup::{Search, is_batch_file, search, var_of};
    let found = if Path::new(program).extension().is_none() {
        let pathext = match vars {
            Some(vars) => var_of(vars, "PATHEXT"),
            None => std::env::var_os("PATHEXT"),
        };
        let parent_path = std::env::var_os("PATH");
        search(&Search {
            program,
            child_path: env.changes(OsStr::new("PATH")).then_some(path).flatten(),
            parent_path: parent_path.as_deref(),
            pathext: pathext.as_deref(),
            cwd,
        })
        .filter(|p| !p.extension().is_some_and(|e| e.eq_ignore_ascii_case("exe")))
    } else {
        None
    };
    let runs = found.as_deref().unwrap_or(Path::new(program));
    if is_batch_file(runs) {
        let line_break = |a: &OsString| {
            a.as_encoded_bytes()
                .iter()
                .any(|b| matches!(b, b'\r' | b'\n'))
        };
        if let Some(i) = args.iter().position(line_break) {
            return Err(SpawnError::Invalid(Invalid::BatchArgument(i)));
        }
    }
    Ok(found)
}

/// The child's `PATH` in a resolved environment (any case on Windows).
pub(crate) fn path_of(vars: &BTreeMap<OsString, OsString>) -> Option<OsString> {
    if cfg!(windows) {
        let path = vars.iter().find(|(k, _)| k.eq_ignore_ascii_case("PATH"));
        return path.map(|(_, v)| v.clone());
    }
    vars.get(OsStr::new("PATH")).cloned()
}

#[cfg(unix)]
fn lower_env(_plan: &EnvPlan, vars: Option<BTreeMap<OsString, OsString>>) -> Environment {
    match vars {
        None => Environment::Inherited,
        Some(vars) => Environment::Exact(
            vars.into_iter()
                .map(|(name, value)| {
                    let mut pair = name.into_encoded_bytes();
                    pair.push(b'=');
                    pair.extend_from_slice(value.as_bytes());
                    arg_bytes(pair)
                })
                .collect(),
        ),
    }
}

#[cfg(windows)]
fn lower_env(plan: &EnvPlan, vars: Option<BTreeMap<OsString, OsString>>) -> Environment {
    match vars {
        None => Environment::Inherited,
        Some(_) if plan.starts_from_parent() => Environment::Overrides(plan.overrides.clone()),
        Some(vars) => Environment::Exact(vars),
    }
}

/// An argument as a C string (validated free of NUL bytes before).
#[cfg(unix)]
fn arg(s: &OsStr) -> CString {
    arg_bytes(s.as_bytes().to_vec())
}

#[cfg(unix)]
fn arg_bytes(bytes: Vec<u8>) -> CString {
    // Validated before; an inherited variable cannot hold a NUL either.
    CString::new(bytes).unwrap_or_default()
}

#[cfg(windows)]
fn arg(s: &OsStr) -> OsString {
    s.to_owned()
}

/// The paths exec tries, like `execvp`: a name with a slash as is, a bare
/// name in each `PATH` directory (an empty entry is the working directory).
#[cfg(unix)]
pub(crate) fn exec_candidates(program: &OsStr, path: Option<&OsStr>) -> Vec<CString> {
    if program.as_bytes().contains(&b'/') {
        return vec![arg(program)];
    }
    let path = path.unwrap_or(OsStr::new(DEFAULT_PATH));
    path.as_bytes()
        .split(|&b| b == b':')
        .map(|dir| match dir {
            [] => arg(program),
            dir => arg(Path::new(OsStr::from_bytes(dir)).join(program).as_os_str()),
        })
        .collect()
}

/// Where Windows looks for a program: a path as is; a bare name in each
/// `PATH` directory, also with `.exe`, then in System32.
#[cfg(windows)]
fn exec_candidates(program: &OsStr, path: Option<&OsStr>) -> Vec<PathBuf> {
    let program = Path::new(program);
    if program.components().count() > 1 || program.is_absolute() {
        return vec![program.to_owned()];
    }
    let path = path.unwrap_or_default();
    let mut out: Vec<PathBuf> = std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .collect();
    if program.extension().is_none() {
        let mut with_ext = program.as_os_str().to_owned();
        with_ext.push(".exe");
        out.extend(std::env::split_paths(path).map(|dir| dir.join(&with_ext)));
        if let Some(system) = std::env::var_os("SystemRoot") {
            out.push(Path::new(&system).join("System32").join(&with_ext));
        }
    }
    out
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn strings(v: Vec<CString>) -> Vec<String> {
        v.into_iter().map(|c| c.into_string().unwrap()).collect()
    }

    #[test]
    fn a_bare_name_is_searched_in_every_path_entry() {
        let found = exec_candidates(OsStr::new("ls"), Some(OsStr::new("/a::/b/")));
        assert_eq!(strings(found), ["/a/ls", "ls", "/b/ls"]);
    }

    #[test]
    fn a_name_with_a_slash_is_taken_as_is() {
        let found = exec_candidates(OsStr::new("./tool"), Some(OsStr::new("/a")));
        assert_eq!(strings(found), ["./tool"]);
    }

    #[test]
    fn without_path_the_default_list_is_searched() {
        let found = exec_candidates(OsStr::new("sh"), None);
        assert_eq!(strings(found), ["/bin/sh", "/usr/bin/sh"]);
    }
}
