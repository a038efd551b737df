//! ConPTY on Windows: a pseudo console over two pipes we hold, the child
//! created with the console as a thread attribute (`spawn.rs`: std cannot
//! pass one), and the pipes as async reader and writer (`sys::thread_io`). The
//! console API is looked up at run time: it exists from Windows 10 1809 on,
//! and a program built with `pty` must still start on older systems.

mod spawn;

use std::io as stdio;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::ptr;
use std::sync::{Arc, Mutex, OnceLock};

use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::System::Console::{COORD, HPCON};
use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
use windows_sys::Win32::System::Pipes::CreatePipe;
use windows_sys::core::HRESULT;

pub(crate) use self::spawn::{ConPtyChild, Spawned, spawn};
use crate::sys::spawn::{InputPipe, ReadPipe, SpawnSpec};
use crate::sys::thread_io::{ThreadReader, ThreadWriter};

/// What ending the input types: Ctrl+Z, then Enter (a console program's
/// end-of-file at the start of a line).
const EOF_KEYS: &[u8] = b"\x1a\r";

/// The pseudo console functions of kernel32, when this Windows has them.
struct Api {
    create: unsafe extern "system" fn(COORD, HANDLE, HANDLE, u32, *mut HPCON) -> HRESULT,
    resize: unsafe extern "system" fn(HPCON, COORD) -> HRESULT,
    close: unsafe extern "system" fn(HPCON),
}

fn api() -> stdio::Result<&'static Api> {
    static API: OnceLock<Option<Api>> = OnceLock::new();
    API.get_or_init(load_api).as_ref().ok_or_else(|| {
        stdio::Error::new(
            stdio::ErrorKind::Unsupported,
            "pseudo consoles (ConPTY) need Windows 10 version 1809 or later",
        )
    })
}

fn load_api() -> Option<Api> {
    let name: Vec<u16> = "kernel32.dll\0".encode_utf16().collect();
    // SAFETY: a NUL-terminated name; kernel32 is loaded in every process.
    let kernel32 = unsafe { GetModuleHandleW(name.as_ptr()) };
    if kernel32.is_null() {
        return None;
    }
    // SAFETY: NUL-terminated names looked up in a loaded module.
    let find = |symbol: &[u8]| unsafe { GetProcAddress(kernel32, symbol.as_ptr()) };
    let (create, resize, close) = (
        find(b"CreatePseudoConsole\0")?,
        find(b"ResizePseudoConsole\0")?,
        find(b"ClosePseudoConsole\0")?,
    );
    // SAFETY: these kernel32 exports have exactly these signatures
    // (consoleapi.h); only the pointer type changes.
    unsafe {
        Some(Api {
            create: std::mem::transmute::<
                unsafe extern "system" fn() -> isize,
                unsafe extern "system" fn(COORD, HANDLE, HANDLE, u32, *mut HPCON) -> HRESULT,
            >(create),
            resize: std::mem::transmute::<
                unsafe extern "system" fn() -> isize,
                unsafe extern "system" fn(HPCON, COORD) -> HRESULT,
            >(resize),
            close: std::mem::transmute::<
                unsafe extern "system" fn() -> isize,
                unsafe extern "system" fn(HPCON),
            >(close),
        })
    }
}

/// A pseudo console, closed once: when the run's direct child exits (its
/// output pipe then ends), or when the last holder lets go.
#[derive(Debug)]
pub(crate) struct PseudoConsole {
    handle: Mutex<Option<HPCON>>,
    /// Our end of its input, held open as long as the console: a console
    /// whose input pipe breaks ends, and its clients with it. Writers use
    /// copies of it.
    input: Mutex<Option<OwnedHandle>>,
}

impl PseudoConsole {
    /// The console's handle while it is open.
    fn raw(&self) -> stdio::Result<HPCON> {
        let handle = self.handle.lock().unwrap_or_else(|e| e.into_inner());
        handle.ok_or_else(|| stdio::Error::other("the pseudo console is closed"))
    }

    /// Closes the console: its clients are ended and its output pipe is
    /// closed after the last output. May wait until that output is read.
    pub(crate) fn close(&self) {
        let taken = self.handle.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let (Some(handle), Ok(api)) = (taken, api()) {
            // SAFETY: a console handle CreatePseudoConsole returned, closed once.
            unsafe { (api.close)(handle) };
        }
        drop(self.input.lock().unwrap_or_else(|e| e.into_inner()).take());
    }

    /// A copy of our end of the console's input.
    fn input(&self) -> stdio::Result<OwnedHandle> {
        let input = self.input.lock().unwrap_or_else(|e| e.into_inner());
        match input.as_ref() {
            Some(input) => input.try_clone(),
            None => Err(stdio::Error::other("the pseudo console is closed")),
        }
    }

    fn resize(&self, rows: u16, cols: u16) -> stdio::Result<()> {
        let handle = self.raw()?;
        // SAFETY: an open console handle and a size by value.
        check_hresult(unsafe { (api()?.resize)(handle, coord(rows, cols)) })
    }
}

impl Drop for PseudoConsole {
    fn drop(&mut self) {
        self.close();
    }
}

/// The parent's side of a run's pseudo console: the console (which keeps
/// our end of its input) and our end of its output.
#[derive(Debug)]
pub(crate) struct Terminal {
    console: Arc<PseudoConsole>,
    /// What the console writes: the child's screen, as VT sequences.
    output: OwnedHandle,
}

/// Resizes a run's pseudo console while it is open.
#[derive(Debug, Clone)]
pub(crate) struct Control {
    console: Arc<PseudoConsole>,
}

/// Creates a pseudo console of `rows` x `cols` for `spec`'s child.
pub(crate) fn attach(spec: &mut SpawnSpec, rows: u16, cols: u16) -> stdio::Result<Terminal> {
    let api = api()?;
    let (input_read, input) = pipe()?;
    let (output, output_write) = pipe()?;
    let mut handle: HPCON = 0;
    // SAFETY: two open pipe handles (the console duplicates them) and an
    // out pointer to a local.
    let created = unsafe {
        (api.create)(
            coord(rows, cols),
            input_read.as_raw_handle(),
            output_write.as_raw_handle(),
            0,
            &mut handle,
        )
    };
    check_hresult(created)?;
    // The console holds its own copies of its ends: ours close here, so the
    // output pipe ends when the console does.
    drop((input_read, output_write));
    let console = Arc::new(PseudoConsole {
        handle: Mutex::new(Some(handle)),
        input: Mutex::new(Some(input)),
    });
    spec.conpty = Some(Arc::clone(&console));
    Ok(Terminal { console, output })
}

impl Terminal {
    /// The console's output, read by a thread of its own.
    pub(crate) fn reader(&self) -> stdio::Result<ReadPipe> {
        let output = std::fs::File::from(self.output.try_clone()?);
        Ok(Box::new(ThreadReader::start(output, "processkit-tty-out")?))
    }

    /// The console's input, written by a thread of its own; shutting it
    /// down types Ctrl+Z and Enter.
    pub(crate) fn writer(&self) -> stdio::Result<InputPipe> {
        let input = std::fs::File::from(self.console.input()?);
        Ok(Box::new(ThreadWriter::start(
            input,
            Box::new(|| EOF_KEYS.to_vec()),
        )?))
    }

    pub(crate) fn control(&self) -> Control {
        Control {
            console: Arc::clone(&self.console),
        }
    }
}

impl Control {
    pub(crate) fn resize(&self, rows: u16, cols: u16) -> stdio::Result<()> {
        self.console.resize(rows, cols)
    }
}

/// A console size; Windows counts in `i16`.
fn coord(rows: u16, cols: u16) -> COORD {
    let clamp = |n: u16| i16::try_from(n).unwrap_or(i16::MAX);
    COORD {
        X: clamp(cols),
        Y: clamp(rows),
    }
}

/// An anonymous pipe `(read, write)`, neither end inheritable.
fn pipe() -> stdio::Result<(OwnedHandle, OwnedHandle)> {
    let mut read = ptr::null_mut();
    let mut write = ptr::null_mut();
    // SAFETY: out pointers to locals; no security attributes (not inheritable).
    if unsafe { CreatePipe(&mut read, &mut write, ptr::null(), 0) } == 0 {
        return Err(stdio::Error::last_os_error());
    }
    // SAFETY: two fresh handles that nothing else owns.
    Ok(unsafe {
        (
            OwnedHandle::from_raw_handle(read),
            OwnedHandle::from_raw_handle(write),
        )
    })
}

/// An HRESULT as an error: a wrapped Win32 error keeps its code.
fn check_hresult(result: HRESULT) -> stdio::Result<()> {
    const E_NOTIMPL: HRESULT = 0x8000_4001_u32 as HRESULT;
    if result >= 0 {
        return Ok(());
    }
    if result == E_NOTIMPL {
        return Err(stdio::Error::new(
            stdio::ErrorKind::Unsupported,
            "this pseudo console does not implement the call (E_NOTIMPL)",
        ));
    }
    const FACILITY_WIN32: i32 = 7;
    if (result >> 16) & 0x1fff == FACILITY_WIN32 {
        return Err(stdio::Error::from_raw_os_error(result & 0xffff));
    }
    Err(stdio::Error::other(format!(
        "the pseudo console failed: HRESULT {result:#010x}"
    )))
}
