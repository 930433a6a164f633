//! The guardian on Windows, which has no `fork`: the program starts its own executable again,
//! with its own arguments, in the guardian's mode, which [`guardian`](super::guardian) enters
//! first thing in `main` when the environment says so.
//!
//! # What the guardian is handed
//!
//! The guardian inherits, at its start, three handles that the program made for it: one of the
//! program's process, to wait for it to end; the client end of the channel, a pipe in message
//! mode (each write one message, as a packet socket on Unix) that no other process can open
//! (`sys::pipe`); and one of the page of notes, which has no name. [`MODE`] says the program's
//! pid and the handles' values, which are the same in the guardian: nothing another process
//! could open by name, nor be given without the program.
//!
//! The handles are inheritable copies, made just before the guardian starts and closed as soon
//! as it has: std's `Command` starts a process with inheritance on (it hands the standard handles
//! so), so a process that another thread starts meanwhile inherits them too. That is why the
//! guardian starts first thing in `main`. `PROC_THREAD_ATTRIBUTE_HANDLE_LIST` would not close
//! that window (a handle in the list must be inheritable, for every process started meanwhile),
//! and would only keep the program's other inheritable handles from the guardian, which gets the
//! standard ones anyway; it would cost a `CreateProcessW` written by hand (std's `Command` cannot
//! pass it on stable Rust), with std's quoting of arguments and environment block redone.
//!
//! # How the guardian knows its program
//!
//! Anyone can start the executable with [`MODE`] set. Before anything else the guardian checks
//! that the pid it is told is its parent's (the process that created it, whose handles it
//! inherited), that the process handle is of that process, and that the pipe is the client end
//! of one that process serves. Otherwise it says why and exits (0), having run nothing: it
//! guards no process but the one that started it and handed it its channel. Once checked, it
//! tells the program that it watches, on the channel; the program waits for that.
//!
//! # Watching
//!
//! The guardian waits for the program's process to end, reads what the program sends
//! meanwhile, and runs the cleanup if the program ended without completing it:
//! `TerminateProcess` (Task Manager, `taskkill /F`), a crash. It is started detached from the
//! console and in a process group of its own (Ctrl-C, Ctrl-Break and the console's closing do
//! not reach it), and out of the program's job where the job allows it (a job that is closed
//! kills its processes).

use std::ffi::OsStr;
use std::io;
use std::os::windows::io::{AsRawHandle, IntoRawHandle, OwnedHandle};
use std::os::windows::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};
use std::{env, thread};

use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::System::Threading::{
    CREATE_BREAKAWAY_FROM_JOB, CREATE_NEW_PROCESS_GROUP, DETACHED_PROCESS,
    PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_SYNCHRONIZE,
};

use super::channel::Inbox;
use super::failed;
use super::notes::Page;
use super::wire::{HEADER, LONGEST, WATCHING};
use super::Started;
use crate::cleanup::Run;
use crate::report::report;
use crate::sys::link::{self, End};
use crate::sys::{inherit, pipe};

/// The variable that puts a process in the guardian's mode: `PID PROCESS PIPE PAGE`, the
/// program's pid and the values of the handles the guardian inherits.
const MODE: &str = "FINALLY_GUARDIAN";
/// How long the program waits for its guardian to say that it watches.
const PATIENCE: Duration = Duration::from_secs(10);
/// How often the guardian looks at the channel while it waits for the program.
const LOOK_EVERY: u32 = 20;

/// Starts the guardian; in the guardian's mode, is the guardian, and never returns.
pub(super) fn start<C: Run>(cleanup: C) -> io::Result<Started> {
    if let Some(spec) = env::var_os(MODE) {
        // Not for what the cleanup starts.
        env::remove_var(MODE);
        guard(&spec, cleanup);
    }
    // Room for a few of the longest messages.
    let room = (4 * (HEADER + LONGEST)) as u32;
    let (channel, guardians_end) = pipe::pair(room).map_err(|e| failed("the channel", e))?;
    let page = Page::new()?;
    // The copies are closed as the closure returns, once the guardian has inherited them.
    let mut guardian = Lent::new(&guardians_end, &page).and_then(|lent| spawn(&lent))?;
    // The guardian's alone: held here too, the pipe would not break when the guardian ends.
    drop(guardians_end);
    wait_until_watching(channel.as_raw_handle() as End, &mut guardian)?;
    Ok(Started {
        channel: channel.into_raw_handle() as End,
        guardian: guardian.id() as i32,
        notes: page.keep(),
    })
}

/// What the program lends its guardian: inheritable copies of the handles it needs, closed when
/// dropped, as soon as the guardian has inherited them.
struct Lent {
    program: OwnedHandle,
    link: OwnedHandle,
    page: OwnedHandle,
}

impl Lent {
    /// Copies of a handle of this process, that may wait for it and tell its id, of the
    /// guardian's end of the channel, and of the page's mapping.
    fn new(link: &OwnedHandle, page: &Page) -> io::Result<Lent> {
        let copy = |handle, access| {
            inherit::inheritable_copy(handle, access).map_err(|e| failed("DuplicateHandle", e))
        };
        let process_access = PROCESS_SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION;
        Ok(Lent {
            program: copy(inherit::this_process(), Some(process_access))?,
            link: copy(link.as_raw_handle(), None)?,
            page: copy(page.mapping(), None)?,
        })
    }

    /// What [`MODE`] says of them.
    fn spec(&self) -> String {
        let value = |handle: &OwnedHandle| handle.as_raw_handle() as usize;
        let pid = std::process::id();
        let (program, link, page) = (value(&self.program), value(&self.link), value(&self.page));
        format!("{pid} {program} {link} {page}")
    }
}

/// Starts the executable again, with the program's arguments, in the guardian's mode, handed
/// `lent`.
fn spawn(lent: &Lent) -> io::Result<Child> {
    let mut command = Command::new(env::current_exe().map_err(|e| failed("current_exe", e))?);
    command
        .args(env::args_os().skip(1))
        .env(MODE, lent.spec())
        .stdin(Stdio::null());
    let detached = DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP;
    command
        .creation_flags(detached | CREATE_BREAKAWAY_FROM_JOB)
        .spawn()
        // A job that does not allow breaking away.
        .or_else(|_| command.creation_flags(detached).spawn())
        .map_err(|e| failed("start the executable again", e))
}

/// Waits until the guardian says that it watches: a guardian that ends first, or does not say so
/// within [`PATIENCE`] (it is then ended), did not start.
fn wait_until_watching(channel: End, guardian: &mut Child) -> io::Result<()> {
    let started = Instant::now();
    let mut said = [0u8; 1];
    loop {
        // Anything else: nothing yet, or the guardian's end closed, and its status says why.
        if matches!(link::receive(channel, &mut said), Ok((1, _))) && said == [WATCHING] {
            return Ok(());
        }
        if let Ok(Some(status)) = guardian.try_wait() {
            return Err(io::Error::other(format!(
                "the guardian ended before it watched ({status})"
            )));
        }
        if started.elapsed() > PATIENCE {
            let _ = guardian.kill();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the guardian did not say that it watches",
            ));
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// The guardian: checks what it was handed, tells the program that it watches, waits for the
/// program's process to end, cleans up if it died, exits.
fn guard<C: Run>(spec: &OsStr, cleanup: C) -> ! {
    let handed = Handed::check(spec).unwrap_or_else(|why| {
        report(format_args!(
            "{MODE} is set, but {why}: this process guards nothing"
        ));
        std::process::exit(0)
    });
    super::guarding(handed.pid as i32);
    let link = handed.link as End;
    // Lost, the program gives up on this guardian after its patience, and ends it.
    let _ = link::send(link, &[&[WATCHING]]);
    let mut inbox = Inbox::new(link, None);
    loop {
        if inbox.receive() {
            std::process::exit(0);
        }
        if inherit::has_ended_within(handed.program, LOOK_EVERY) {
            break;
        }
    }
    // What the program sent just before it ended.
    if inbox.receive() || handed.page.notes().completed.load(SeqCst) {
        std::process::exit(0);
    }
    inbox.clean_up(cleanup, None, handed.page.notes());
    std::process::exit(0)
}

/// What the guardian was handed, checked: the program's pid, and its handles of the program's
/// process, of the channel's client end and of the page.
struct Handed {
    pid: u32,
    program: HANDLE,
    link: HANDLE,
    page: Page,
}

impl Handed {
    /// What `spec` names, if the program that started this process handed it; or why not.
    fn check(spec: &OsStr) -> Result<Handed, String> {
        let spec = spec.to_string_lossy();
        let mut fields = spec.split(' ');
        let pid = fields.next().and_then(|pid| pid.parse::<u32>().ok());
        let values: Option<Vec<usize>> = fields.map(|value| value.parse().ok()).collect();
        let (Some(pid), Some(&[program, link, page])) = (pid, values.as_deref()) else {
            return Err(format!("it is {spec:?}, not `PID PROCESS PIPE PAGE`"));
        };
        if inherit::parent_id() != Some(pid) {
            return Err(format!("process {pid} did not start this one"));
        }
        if inherit::process_id(program as HANDLE) != Some(pid) {
            return Err(format!("handle {program} is not one of process {pid}"));
        }
        if pipe::server_of(link as HANDLE) != Some(pid) {
            return Err(format!(
                "handle {link} is not the client end of a pipe of process {pid}"
            ));
        }
        let page = Page::open(page as HANDLE).map_err(|error| error.to_string())?;
        Ok(Handed {
            pid,
            program: program as HANDLE,
            link: link as HANDLE,
            page,
        })
    }
}
