//! Starting a child on a pseudo console: `CreateProcessW` with the console
//! as a `PROC_THREAD_ATTRIBUTE_PSEUDOCONSOLE` attribute, suspended when the
//! slot asks (it is placed in its job, then resumed), and waiting for it on
//! a thread that closes the console once it exits, which ends the output.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString, c_void};
use std::io;
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::{AsRawHandle, BorrowedHandle, FromRawHandle, OwnedHandle};
use std::os::windows::process::ExitStatusExt;
use std::process::ExitStatus;
use std::ptr;
use std::sync::Arc;

use tokio::sync::oneshot;
use windows_sys::Win32::System::Threading::{
    CREATE_SUSPENDED, CREATE_UNICODE_ENVIRONMENT, CreateProcessW, DeleteProcThreadAttributeList,
    EXTENDED_STARTUPINFO_PRESENT, GetExitCodeProcess, INFINITE, InitializeProcThreadAttributeList,
    LPPROC_THREAD_ATTRIBUTE_LIST, PROC_THREAD_ATTRIBUTE_PSEUDOCONSOLE, PROCESS_INFORMATION,
    STARTF_USESTDHANDLES, STARTUPINFOEXW, UpdateProcThreadAttribute, WaitForSingleObject,
};

use super::PseudoConsole;
use crate::sys::spawn::SpawnSpec;
use crate::sys::spawn::spec::Environment;

/// A child just created on its console, until its run claims it; dropped
/// unclaimed it is terminated (it may not be in its job yet).
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) pid: u32,
    process: Option<OwnedHandle>,
    console: Arc<PseudoConsole>,
}

impl Spawned {
    /// The process handle, for the slot to place it in its job.
    pub(crate) fn process(&self) -> io::Result<BorrowedHandle<'_>> {
        use std::os::windows::io::AsHandle;
        self.process
            .as_ref()
            .map(AsHandle::as_handle)
            .ok_or_else(|| io::Error::other("the child was already claimed"))
    }

    /// Takes the child over: a thread waits for its exit from now on.
    pub(crate) fn claim(mut self) -> io::Result<ConPtyChild> {
        let process = self.process()?.try_clone_to_owned()?;
        let (report, exit) = oneshot::channel();
        let console = Arc::clone(&self.console);
        std::thread::Builder::new()
            .name("processkit-conpty-wait".into())
            .spawn(move || {
                let code = wait_for_exit(&process);
                let _ = report.send(code);
                // Its output ends only with the console; closing it may
                // wait until the last output is read, so after the report.
                console.close();
            })?;
        Ok(ConPtyChild {
            pid: self.pid,
            _process: self.process.take(),
            exit,
            status: None,
        })
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(process) = &self.process {
            crate::sys::windows::process::terminate(std::os::windows::io::AsHandle::as_handle(
                process,
            ));
        }
    }
}

/// A child on a pseudo console, as its run waits for it.
#[derive(Debug)]
pub(crate) struct ConPtyChild {
    pid: u32,
    /// Pins the pid while the handle lives.
    _process: Option<OwnedHandle>,
    exit: oneshot::Receiver<io::Result<u32>>,
    status: Option<ExitStatus>,
}

impl ConPtyChild {
    pub(crate) fn id(&self) -> u32 {
        self.pid
    }

    /// Waits for the exit reported by the waiting thread. Cancel-safe.
    pub(crate) async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let code = (&mut self.exit)
            .await
            .map_err(|_| io::Error::other("the pseudo console's waiting thread ended early"))??;
        let status = ExitStatus::from_raw(code);
        self.status = Some(status);
        Ok(status)
    }
}

fn wait_for_exit(process: &OwnedHandle) -> io::Result<u32> {
    // SAFETY: a process handle we own, waited on without a timeout.
    unsafe { WaitForSingleObject(process.as_raw_handle(), INFINITE) };
    let mut code = 0u32;
    // SAFETY: the same handle and an out pointer to a local.
    if unsafe { GetExitCodeProcess(process.as_raw_handle(), &mut code) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(code)
}

/// Creates `spec`'s child on its pseudo console.
pub(crate) fn spawn(spec: &mut SpawnSpec) -> io::Result<Spawned> {
    let console = spec
        .conpty
        .clone()
        .ok_or_else(|| io::Error::other("no pseudo console to start the child on"))?;
    let application = wide(program(spec).as_os_str());
    let mut command_line = command_line(&spec.argv);
    let environment = environment_block(&spec.env);
    let cwd = spec.cwd.as_ref().map(|dir| wide(dir.as_os_str()));
    let mut attributes = AttributeList::with_console(console.raw()?)?;
    // SAFETY: all-zero is a valid STARTUPINFOEXW (null pointers, no flags).
    let mut info: STARTUPINFOEXW = unsafe { std::mem::zeroed() };
    info.StartupInfo.cb = std::mem::size_of::<STARTUPINFOEXW>() as u32;
    info.lpAttributeList = attributes.as_ptr();
    // Standard handles given, and all null: the child then takes the
    // console's, never this process's own (possibly redirected) stdio.
    info.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
    let mut flags = EXTENDED_STARTUPINFO_PRESENT | CREATE_UNICODE_ENVIRONMENT;
    if spec.start_suspended {
        flags |= CREATE_SUSPENDED;
    }
    // SAFETY: zeroed out-structure for CreateProcessW to fill.
    let mut created: PROCESS_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: every string is NUL-terminated and outlives the call; the
    // command line is writable as CreateProcessW requires; the attribute
    // list was initialised above and lives until `attributes` drops.
    let ok = unsafe {
        CreateProcessW(
            application.as_ptr(),
            command_line.as_mut_ptr(),
            ptr::null(),
            ptr::null(),
            0,
            flags,
            environment
                .as_ref()
                .map_or(ptr::null(), |block| block.as_ptr().cast::<c_void>()),
            cwd.as_ref().map_or(ptr::null(), |dir| dir.as_ptr()),
            &info.StartupInfo,
            &mut created,
        )
    };
    drop(attributes);
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh handles CreateProcessW returned, owned by nobody else.
    let (process, thread) = unsafe {
        (
            OwnedHandle::from_raw_handle(created.hProcess),
            OwnedHandle::from_raw_handle(created.hThread),
        )
    };
    // The slot resumes the child by its threads; this handle is not needed.
    drop(thread);
    Ok(Spawned {
        pid: created.dwProcessId,
        process: Some(process),
        console,
    })
}

/// The program to start: the first candidate that is a file, else the first
/// (CreateProcessW then says it is missing).
fn program(spec: &SpawnSpec) -> std::path::PathBuf {
    let is_file = |p: &&std::path::PathBuf| p.is_file();
    spec.candidates
        .iter()
        .find(is_file)
        .or(spec.candidates.first())
        .cloned()
        .unwrap_or_default()
}

/// A process attribute list holding one attribute: the pseudo console.
struct AttributeList {
    /// Pointer-aligned storage of the size the system asked for.
    storage: Vec<usize>,
}

impl AttributeList {
    fn with_console(console: windows_sys::Win32::System::Console::HPCON) -> io::Result<Self> {
        let mut size = 0usize;
        // SAFETY: a size query with no list: it fails and reports the size.
        unsafe { InitializeProcThreadAttributeList(ptr::null_mut(), 1, 0, &mut size) };
        let words = size.div_ceil(std::mem::size_of::<usize>()).max(1);
        let mut list = AttributeList {
            storage: vec![0; words],
        };
        // SAFETY: storage of at least `size` bytes, pointer-aligned.
        if unsafe { InitializeProcThreadAttributeList(list.as_ptr(), 1, 0, &mut size) } == 0 {
            list.storage.clear();
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the console attribute takes the console handle itself as
        // its value (not a pointer to it), with the handle's size.
        let updated = unsafe {
            UpdateProcThreadAttribute(
                list.as_ptr(),
                0,
                PROC_THREAD_ATTRIBUTE_PSEUDOCONSOLE as usize,
                console as *const c_void,
                std::mem::size_of_val(&console),
                ptr::null_mut(),
                ptr::null(),
            )
        };
        if updated == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(list)
    }

    fn as_ptr(&mut self) -> LPPROC_THREAD_ATTRIBUTE_LIST {
        self.storage.as_mut_ptr().cast()
    }
}

impl Drop for AttributeList {
    fn drop(&mut self) {
        if !self.storage.is_empty() {
            // SAFETY: a list InitializeProcThreadAttributeList initialised.
            unsafe { DeleteProcThreadAttributeList(self.as_ptr()) };
        }
    }
}

/// `s` as a NUL-terminated UTF-16 string.
fn wide(s: &OsStr) -> Vec<u16> {
    s.encode_wide().chain(std::iter::once(0)).collect()
}

/// The command line Windows programs parse back into `argv` (the rules of
/// `CommandLineToArgvW` and the C runtime, as std applies them).
fn command_line(argv: &[OsString]) -> Vec<u16> {
    let mut line = Vec::new();
    for (i, arg) in argv.iter().enumerate() {
        if i > 0 {
            line.push(u16::from(b' '));
        }
        append_arg(&mut line, arg, i == 0);
    }
    line.push(0);
    line
}

fn append_arg(line: &mut Vec<u16>, arg: &OsStr, always_quote: bool) {
    let (quote, backslash, space, tab) = (
        u16::from(b'"'),
        u16::from(b'\\'),
        u16::from(b' '),
        u16::from(b'\t'),
    );
    let quoted =
        always_quote || arg.is_empty() || arg.encode_wide().any(|c| c == space || c == tab);
    if quoted {
        line.push(quote);
    }
    let mut backslashes = 0;
    for c in arg.encode_wide() {
        if c == backslash {
            backslashes += 1;
        } else {
            if c == quote {
                // Backslashes before a quote are doubled, and the quote escaped.
                line.extend(std::iter::repeat_n(backslash, backslashes + 1));
            }
            backslashes = 0;
        }
        line.push(c);
    }
    if quoted {
        // Backslashes before the closing quote are doubled.
        line.extend(std::iter::repeat_n(backslash, backslashes));
        line.push(quote);
    }
}

/// The environment block `CreateProcessW` takes, or `None` for ours.
fn environment_block(env: &Environment) -> Option<Vec<u16>> {
    let vars: BTreeMap<String, (OsString, OsString)> = match env {
        Environment::Inherited => return None,
        Environment::Exact(vars) => vars
            .iter()
            .map(|(k, v)| (key(k), (k.clone(), v.clone())))
            .collect(),
        Environment::Overrides(overrides) => {
            let mut vars: BTreeMap<String, (OsString, OsString)> = std::env::vars_os()
                .map(|(k, v)| (key(&k), (k, v)))
                .collect();
            for (name, value) in overrides {
                match value {
                    Some(v) => vars.insert(key(name), (name.clone(), v.clone())),
                    None => vars.remove(&key(name)),
                };
            }
            vars
        }
    };
    let mut block = Vec::new();
    for (name, value) in vars.values() {
        block.extend(name.encode_wide());
        block.push(u16::from(b'='));
        block.extend(value.encode_wide());
        block.push(0);
    }
    // An empty block still needs its two terminating NULs.
    if block.is_empty() {
        block.push(0);
    }
    block.push(0);
    Some(block)
}

/// Variable names match case-insensitively on Windows (and sort that way).
fn key(name: &OsStr) -> String {
    name.to_string_lossy().to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(args: &[&str]) -> String {
        let argv: Vec<OsString> = args.iter().map(OsString::from).collect();
        let wide = command_line(&argv);
        String::from_utf16(&wide[..wide.len() - 1]).unwrap()
    }

    #[test]
    fn arguments_are_quoted_as_the_c_runtime_reads_them() {
        assert_eq!(line(&["prog", "a", "b c"]), r#""prog" a "b c""#);
        assert_eq!(line(&["prog", ""]), r#""prog" """#);
        assert_eq!(line(&["prog", r#"say "hi""#]), r#""prog" "say \"hi\"""#);
        assert_eq!(line(&["prog", r"dir\"]), r#""prog" dir\"#);
        assert_eq!(line(&["prog", r"a dir\"]), r#""prog" "a dir\\""#);
    }

    #[test]
    fn an_environment_block_is_terminated_twice() {
        let empty = environment_block(&Environment::Exact(BTreeMap::new())).unwrap();
        assert_eq!(empty, [0, 0]);
        let mut vars = BTreeMap::new();
        vars.insert(OsString::from("A"), OsString::from("1"));
        let block = environment_block(&Environment::Exact(vars)).unwrap();
        assert_eq!(String::from_utf16(&block).unwrap(), "A=1\0\0");
    }
}
