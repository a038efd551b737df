//! Finding the file a spawn runs, shared by the lowering and by `which`: on
//! Unix `execvp`'s `PATH` search (executable regular files only); on Windows
//! std's search order, with `PATHEXT` so that `npm` finds `npm.cmd`.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use super::spec::EnvPlan;

/// The file a child started from `program`, with environment `env`, in
/// `cwd` (ours when `None`) would run; `None` when there is none.
pub(crate) fn resolve(program: &OsStr, env: &EnvPlan, cwd: Option<&Path>) -> Option<PathBuf> {
    if program.is_empty() || program.as_encoded_bytes().contains(&0) {
        return None;
    }
    let vars = (!env.is_unchanged()).then(|| env.resolve());
    let path = match &vars {
        None => std::env::var_os("PATH"),
        Some(vars) => super::spec::path_of(vars),
    };
    imp::resolve(program, env, vars.as_ref(), path.as_deref(), cwd)
}

/// `candidate` as seen from `cwd` (relative ones are taken from there).
fn located(candidate: &Path, cwd: Option<&Path>) -> PathBuf {
    match cwd {
        Some(dir) if candidate.is_relative() => dir.join(candidate),
        _ => candidate.to_owned(),
    }
}

#[cfg(unix)]
mod imp {
    use std::collections::BTreeMap;
    use std::ffi::{OsStr, OsString};
    use std::os::unix::ffi::OsStrExt;
    use std::path::{Path, PathBuf};

    use super::located;
    use crate::sys::spawn::spec::{EnvPlan, exec_candidates};

    /// The first path exec would try that holds an executable regular file
    /// (exec skips the others, as `execvp` does). A relative result found
    /// through an empty `PATH` entry is written `./name`.
    pub(super) fn resolve(
        program: &OsStr,
        _env: &EnvPlan,
        _vars: Option<&BTreeMap<OsString, OsString>>,
        path: Option<&OsStr>,
        cwd: Option<&Path>,
    ) -> Option<PathBuf> {
        exec_candidates(program, path)
            .iter()
            .map(|c| located(Path::new(OsStr::from_bytes(c.to_bytes())), cwd))
            .find(|p| is_executable_file(p))
            .map(|p| match p.components().count() {
                1 if p.is_relative() => Path::new(".").join(p),
                _ => p,
            })
    }

    fn is_executable_file(path: &Path) -> bool {
        use rustix::fs::{Access, access};
        path.metadata().is_ok_and(|m| m.is_file()) && access(path, Access::EXEC_OK).is_ok()
    }
}

#[cfg(windows)]
mod imp {
    use std::collections::BTreeMap;
    use std::ffi::{OsStr, OsString};
    use std::path::{Path, PathBuf};

    use super::{Search, search};
    use crate::sys::spawn::spec::EnvPlan;

    pub(super) fn resolve(
        program: &OsStr,
        env: &EnvPlan,
        vars: Option<&BTreeMap<OsString, OsString>>,
        path: Option<&OsStr>,
        cwd: Option<&Path>,
    ) -> Option<PathBuf> {
        let pathext = match vars {
            Some(vars) => super::var_of(vars, "PATHEXT"),
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
    }
}

/// A variable of a resolved environment, by a name matched in any case.
#[cfg_attr(not(windows), allow(dead_code))]
pub(crate) fn var_of(
    vars: &std::collections::BTreeMap<OsString, OsString>,
    name: &str,
) -> Option<OsString> {
    vars.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

/// What a Windows search looks through.
#[cfg_attr(not(windows), allow(dead_code))]
pub(crate) struct Search<'a> {
    pub(crate) program: &'a OsStr,
    /// The child's `PATH`, when the command changes it (searched first).
    pub(crate) child_path: Option<&'a OsStr>,
    /// Our own `PATH` (searched last).
    pub(crate) parent_path: Option<&'a OsStr>,
    /// The extensions a name without one may take (default
    /// `.COM;.EXE;.BAT;.CMD`).
    pub(crate) pathext: Option<&'a OsStr>,
    pub(crate) cwd: Option<&'a Path>,
}

/// Where Windows finds `program`, in std's order: the child's `PATH` when
/// the command changes it, this program's own directory, the system
/// directories, then our `PATH`. In each directory a name without an
/// extension takes each of `PATHEXT`'s in turn; a path is taken as is (with
/// the same extensions when it has none).
#[cfg_attr(not(windows), allow(dead_code))]
pub(crate) fn search(s: &Search<'_>) -> Option<PathBuf> {
    let program = Path::new(s.program);
    let extensions = extensions(s.pathext);
    let with_extensions = |base: PathBuf| -> Option<PathBuf> {
        if program.extension().is_some() {
            return base.is_file().then_some(base);
        }
        extensions.iter().find_map(|ext| {
            let mut name = base.clone().into_os_string();
            name.push(ext);
            let candidate = PathBuf::from(name);
            candidate.is_file().then_some(candidate)
        })
    };
    if program.is_absolute() || program.components().count() > 1 {
        return with_extensions(located(program, s.cwd));
    }
    let split = |paths: Option<&OsStr>| -> Vec<PathBuf> {
        paths.map_or_else(Vec::new, |p| std::env::split_paths(p).collect())
    };
    let mut dirs = split(s.child_path);
    if let Some(own) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_owned))
    {
        dirs.push(own);
    }
    if let Some(root) = std::env::var_os("SystemRoot") {
        dirs.push(Path::new(&root).join("System32"));
        dirs.push(PathBuf::from(root));
    }
    dirs.extend(split(s.parent_path));
    dirs.into_iter()
        .filter(|dir| !dir.as_os_str().is_empty())
        .find_map(|dir| with_extensions(located(&dir.join(program), s.cwd)))
}

/// `PATHEXT`'s extensions, each with its dot.
fn extensions(pathext: Option<&OsStr>) -> Vec<OsString> {
    let text = pathext
        .and_then(OsStr::to_str)
        .filter(|t| !t.trim().is_empty())
        .unwrap_or(".COM;.EXE;.BAT;.CMD");
    text.split(';')
        .map(str::trim)
        .filter(|e| e.len() > 1 && e.starts_with('.'))
        .map(OsString::from)
        .collect()
}

/// Whether Windows runs `program` through `cmd.exe` (a `.bat` or `.cmd`).
#[cfg_attr(not(windows), allow(dead_code))]
pub(crate) fn is_batch_file(program: &Path) -> bool {
    program
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("bat") || e.eq_ignore_ascii_case("cmd"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pathext_defaults_and_skips_junk() {
        assert_eq!(extensions(None), [".COM", ".EXE", ".BAT", ".CMD"]);
        let custom = extensions(Some(OsStr::new(".CMD; .PS1;;bad;.")));
        assert_eq!(custom, [".CMD", ".PS1"]);
    }

    #[test]
    fn batch_files_are_told_by_their_extension() {
        assert!(is_batch_file(Path::new("C:/x/npm.CMD")));
        assert!(is_batch_file(Path::new("run.bat")));
        assert!(!is_batch_file(Path::new("npm.exe")));
        assert!(!is_batch_file(Path::new("npm")));
    }
}
