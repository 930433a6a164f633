//! The guardian on Windows, which has no `fork`: the program starts its own executable again,
//! with its own arguments, in the guardian's mode, which [`guardian`](super::guardian) enters
//! first thing in `main` when the environment says so.
//!
//! The program makes a named pipe in message mode (each write one message, as a packet socket
//! on Unix), and a named page for the notes; it passes both names and its pid to the guardian in
//! [`MODE`], and waits until the guardian has connected to the pipe. The guardian opens the
//! program's process, to wait for it to end, reads what the program sends meanwhile, and runs
//! the cleanup if the program ended without completing it: `TerminateProcess` (Task Manager,
//! `taskkill /F`), a crash. It is started detached from the console and in a process group of
//! its own (Ctrl-C, Ctrl-Break and the console's closing do not reach it), and out of the
//! program's job where the job allows it (a job that is closed kills its processes).
//!
//! Functions reach the guardian as offsets from the executable's base, which address-space
//! randomization may place elsewhere in the guardian.

use std::ffi::OsStr;
use std::io;
use std::os::windows::ffi::OsStrExt;
use std::os::windows::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant, SystemTime};
use std::{env, ptr, thread};

use windows_sys::Win32::Foundation::{
    GetLastError, ERROR_PIPE_CONNECTED, ERROR_PIPE_LISTENING, GENERIC_READ, HANDLE,
    INVALID_HANDLE_VALUE, WAIT_TIMEOUT,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, FILE_FLAG_FIRST_PIPE_INSTANCE, FILE_WRITE_ATTRIBUTES, OPEN_EXISTING,
    PIPE_ACCESS_DUPLEX,
};
use windows_sys::Win32::System::Pipes::{
    ConnectNamedPipe, CreateNamedPipeW, SetNamedPipeHandleState, PIPE_NOWAIT,
    PIPE_READMODE_MESSAGE, PIPE_REJECT_REMOTE_CLIENTS, PIPE_TYPE_MESSAGE,
};
use windows_sys::Win32::System::Threading::{
    OpenProcess, WaitForSingleObject, CREATE_BREAKAWAY_FROM_JOB, CREATE_NEW_PROCESS_GROUP,
    DETACHED_PROCESS, PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_SYNCHRONIZE,
};

use super::channel::{Inbox, HEADER, LONGEST};
use super::failed;
use super::notes::{Notes, Page};
use crate::cleanup::Run;
use crate::sys::link::Link;

/// The variable that puts a process in the guardian's mode: `PID PIPE PAGE`.
const MODE: &str = "FINALLY_GUARDIAN";
/// How long the program waits for its guardian to connect.
const PATIENCE: Duration = Duration::from_secs(10);
/// How often the guardian looks at the channel while it waits for the program.
const LOOK_EVERY: u32 = 20;

/// What the program keeps of a guardian that started.
pub(super) struct Started {
    /// The program's end of the channel.
    pub(super) channel: Link,
    pub(super) guardian: i32,
    pub(super) notes: *mut Notes,
}

/// Starts the guardian; in the guardian's mode, is the guardian, and never returns.
pub(super) fn start<C: Run>(cleanup: C) -> io::Result<Started> {
    if let Some(spec) = env::var_os(MODE) {
        // Not for what the cleanup starts.
        env::remove_var(MODE);
        guard(&spec, cleanup);
    }
    let pid = std::process::id();
    // Names no other process, nor an earlier run of this one, can have taken.
    let nonce = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    let pipe_name = format!(r"\\.\pipe\finally-guardian-{pid}-{nonce:x}");
    let page_name = format!(r"Local\finally-guardian-{pid}-{nonce:x}");
    let pipe = create_pipe(&wide(pipe_name.as_ref()))?;
    let page = Page::create(&wide(page_name.as_ref()))?;
    let mut command = Command::new(env::current_exe().map_err(|e| failed("current_exe", e))?);
    command
        .args(env::args_os().skip(1))
        .env(MODE, format!("{pid} {pipe_name} {page_name}"))
        .stdin(Stdio::null());
    let detached = DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP;
    let mut child = command
        .creation_flags(detached | CREATE_BREAKAWAY_FROM_JOB)
        .spawn()
        // A job that does not allow breaking away.
        .or_else(|_| command.creation_flags(detached).spawn())
        .map_err(|e| failed("start the executable again", e))?;
    let started = Instant::now();
    loop {
        // SAFETY: our pipe, in `PIPE_NOWAIT` mode: this only asks.
        let connected = unsafe { ConnectNamedPipe(pipe, ptr::null_mut()) } != 0;
        // SAFETY: no preconditions.
        match unsafe { GetLastError() } {
            _ if connected => {}
            ERROR_PIPE_CONNECTED => break,
            ERROR_PIPE_LISTENING => {}
            error => {
                let _ = child.kill();
                return Err(failed(
                    "connect",
                    io::Error::from_raw_os_error(error as i32),
                ));
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(io::Error::other(format!(
                "the guardian ended before it connected ({status})"
            )));
        }
        if started.elapsed() > PATIENCE {
            let _ = child.kill();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the guardian did not connect",
            ));
        }
        thread::sleep(Duration::from_millis(1));
    }
    Ok(Started {
        channel: pipe as Link,
        guardian: child.id() as i32,
        notes: page.keep(),
    })
}

/// The program's end of the channel: a pipe of one instance, local, in message mode, that
/// never blocks, with room for a few of the longest messages.
fn create_pipe(name: &[u16]) -> io::Result<HANDLE> {
    let room = (4 * (HEADER + LONGEST)) as u32;
    // SAFETY: a NUL-terminated name; no security attributes (not inherited).
    let pipe = unsafe {
        CreateNamedPipeW(
            name.as_ptr(),
            PIPE_ACCESS_DUPLEX | FILE_FLAG_FIRST_PIPE_INSTANCE,
            PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_NOWAIT | PIPE_REJECT_REMOTE_CLIENTS,
            1,
            room,
            room,
            0,
            ptr::null(),
        )
    };
    if pipe == INVALID_HANDLE_VALUE {
        return Err(failed("CreateNamedPipeW", io::Error::last_os_error()));
    }
    Ok(pipe)
}

/// The guardian: connects to the program's pipe and page, waits for the program's process to
/// end, cleans up if it died, exits.
fn guard<C: Run>(spec: &OsStr, cleanup: C) -> ! {
    let spec = spec.to_string_lossy();
    let mut parts = spec.split(' ');
    let (Some(pid), Some(pipe), Some(page)) = (parts.next(), parts.next(), parts.next()) else {
        std::process::exit(0)
    };
    let pid: u32 = pid.parse().unwrap_or(0);
    super::guarding(pid as i32);
    // SAFETY: opening a process by id, only to wait for it.
    let program = unsafe {
        OpenProcess(
            PROCESS_SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION,
            0,
            pid,
        )
    };
    let Ok(page) = Page::open(&wide(page.as_ref())) else {
        std::process::exit(0)
    };
    // SAFETY: opening the program's pipe by its NUL-terminated name, to read.
    let link = unsafe {
        CreateFileW(
            wide(pipe.as_ref()).as_ptr(),
            GENERIC_READ | FILE_WRITE_ATTRIBUTES,
            0,
            ptr::null(),
            OPEN_EXISTING,
            0,
            ptr::null_mut(),
        )
    };
    if program.is_null() || link == INVALID_HANDLE_VALUE {
        // The program is gone already, or the pipe is not its: nothing is watched.
        std::process::exit(0);
    }
    let mode = PIPE_READMODE_MESSAGE;
    // SAFETY: our end of the pipe; messages, read whole.
    unsafe { SetNamedPipeHandleState(link, &mode, ptr::null(), ptr::null()) };
    let mut inbox = Inbox::new(link as Link, None);
    loop {
        if inbox.receive() {
            std::process::exit(0);
        }
        // SAFETY: a process handle of ours.
        if unsafe { WaitForSingleObject(program, LOOK_EVERY) } != WAIT_TIMEOUT {
            break;
        }
    }
    // What the program sent just before it ended.
    if inbox.receive() || page.notes().completed.load(SeqCst) {
        std::process::exit(0);
    }
    inbox.clean_up(cleanup, None, page.notes());
    std::process::exit(0)
}

/// `text` as a NUL-terminated UTF-16 string.
fn wide(text: &OsStr) -> Vec<u16> {
    text.encode_wide().chain([0]).collect()
}
