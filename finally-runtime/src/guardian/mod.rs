//! The guardian: a second process that runs `main`'s cleanup if the program dies without it.
//!
//! `#[with_cleanup(cleanup, guardian)]` on `main` starts it first thing. The program and the
//! guardian share two things:
//!
//! - a channel, `socketpair(AF_UNIX, SOCK_SEQPACKET)`, on which the program sends the state of
//!   each guard made with [`guard_with`](crate::guard_with) ([`arm`]), naming its cleanup by
//!   its place among those registered (`registered.rs`), never by an address; its end
//!   ([`disarm`]); and once `main`'s cleanup has completed (then the guardian exits at once).
//!   Each message is one packet, so messages that threads send at once never interleave, and
//!   the kernel tells the guardian which process sent it: it hears the program alone, and
//!   rejects, and reports, what is not a message of the program's (`channel.rs`). The program
//!   sends with `MSG_NOSIGNAL | MSG_DONTWAIT`: a dead guardian costs an error, never a SIGPIPE
//!   that would end the program; what a guardian that is behind cannot take waits in the
//!   program (`outbox.rs`). The program's end stays open as long as the program runs: closed,
//!   its number could be reused by another file, into which a thread still sending would write.
//! - a page of memory, on which the program notes that `main`'s cleanup has completed, which
//!   crash is ending it (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, from its crash handler), and
//!   the messages that wait in the program. A note needs no room in the channel, so a `DONE`
//!   the guardian could not take does not make it clean up a second time, and a message that
//!   waited is not lost to a `kill -9`.
//!
//! Before it runs anything, the guardian takes on the program's credentials and directories,
//! as they were when it ended, or refuses and says why (`follow.rs`).
//!
//! The guardian waits for the program's *process* to end: it holds a pidfd of it, opened by the
//! program itself before it forks, while it is certainly alive (where there is no pidfd, the
//! guardian looks at the program's start time in `/proc` every tenth of a second, which tells
//! a reused pid apart). The channel's end-of-file would not do: the channel closes when the
//! program `exec`s another program, which still runs; the guardian waits for that one to end as
//! well, since the cleanup is about the process. Once the process has ended, and unless the page
//! says otherwise, it died without completing its cleanup (SIGKILL, a crash, an abort, the OOM
//! killer, or the program it `exec`ed ended): the guardian runs the same cleanup with
//! [`Exit::Died`], told the signal when the crash handler could note it, and exits.
//!
//! # Why `fork`, and why it is safe here
//!
//! The guardian must run the program's own cleanup function, so it is a copy of the program:
//! it is made with `fork`, at the top of `main`, before anything else runs and while the program
//! has a single thread (which is checked). A child forked from a single-threaded process is a
//! complete process with no lock held by a thread that is gone, so it may run any code, the
//! cleanup included. It forks twice so that the guardian is not the program's child: the program
//! does not have to reap it, and a program waiting for its own children never meets it. The
//! intermediate process tells the program on the channel how its fork went (the guardian's pid,
//! or why not: a limit on processes, say), so that a failure is reported like any other, and
//! not taken for a running guardian.
//!
//! The program's end is close-on-exec, so a child the program starts with `Command` does not
//! hold it, nor the page. The guardian closes every file descriptor but the standard ones, its
//! end of the channel and the pidfd, so it holds no socket, lock or pipe of the program's. It
//! catches SIGINT, SIGTERM, SIGHUP and SIGQUIT with a handler that does nothing (set before it
//! is forked), so that Ctrl-C (sent to the whole process group) or a `kill` of the group does not
//! end it before it can act, while a program that the cleanup starts gets them at their default
//! action again: `exec` resets a caught signal, but keeps an ignored one ignored.
//!
//! # PID 1
//!
//! A program that is PID 1 (in a container without an init) cannot have a guardian beside it:
//! the kernel kills every process of the PID namespace when PID 1 ends. So the process calling
//! [`guardian`] stays as the program's init and guardian, and the program goes on as its child
//! (see `init.rs`). Being its parent, the init learns how the program ended from `waitpid`, the
//! signal that killed it too (SIGKILL included), and it exits as the program did.
//!
//! # Failures
//!
//! Every failure is one line on stderr, never a panic: at the start (several threads already,
//! `/proc` unreadable, `mmap`, `socketpair`, `pidfd_open` and `/proc`, either `fork`,
//! `signalfd`), naming what failed and that kill -9 and crashes will not be cleaned up; later,
//! once, a guardian that has ended, or that is so far behind that what waits for it no longer
//! fits on the page. [`guardian_status`] tells the program whether a guardian watches, and if
//! not why.
//!
//! # Platforms
//!
//! The guardian runs on Linux, where `/proc` tells that the program runs a single thread and
//! how a `kill -9`ed program ended, and a pidfd watches it; and on Windows, as the executable
//! started again and handed its channel by inheritance (`windows.rs`). Elsewhere it does not
//! start, and says so like any other failure: `unsupported.rs` stands for `start`.

// Reached from `start` only, which runs on Linux and Windows only.
#[cfg_attr(not(any(target_os = "linux", windows)), allow(dead_code))]
mod channel;
#[cfg(unix)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
mod crash;
#[cfg(target_os = "linux")]
mod follow;
#[cfg(target_os = "linux")]
mod init;
#[cfg_attr(not(any(target_os = "linux", windows)), allow(dead_code))]
mod notes;
#[cfg_attr(not(any(target_os = "linux", windows)), allow(dead_code))]
mod outbox;
#[cfg(target_os = "linux")]
mod start;
#[cfg(windows)]
#[path = "windows.rs"]
mod start;
#[cfg(not(any(target_os = "linux", windows)))]
#[path = "unsupported.rs"]
mod start;
#[cfg(target_os = "linux")]
mod watch;
#[cfg_attr(not(any(target_os = "linux", windows)), allow(dead_code))]
mod wire;

use std::any::TypeId;
use std::io;
use std::ptr;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicIsize, AtomicPtr, AtomicU64, AtomicU8};
use std::sync::OnceLock;

use self::channel::is_full;
use self::wire::LONGEST;

use self::notes::Notes;
use crate::cleanup::Run;
use crate::error::Error;
use crate::exit::Exit;
use crate::registered;
use crate::report::report;
use crate::sys::link::{self, NONE};

static STARTED: AtomicBool = AtomicBool::new(false);
/// Whether a guardian runs: one of the following.
static STATUS: AtomicU8 = AtomicU8::new(NOT_ASKED);
const NOT_ASKED: u8 = 0;
const WATCHING: u8 = 1;
/// `main`'s cleanup completed and the guardian was told: it has ended, or is ending.
const COMPLETED: u8 = 2;
/// It could not start: [`FAILURE`] says why.
const FAILED: u8 = 3;
/// This process is the guardian.
const GUARDING: u8 = 4;
/// A child forked from the program, without `exec`: the guardian is the parent's.
const FORGOTTEN: u8 = 5;
/// Why the guardian could not start.
static FAILURE: OnceLock<Error> = OnceLock::new();
/// The page shared with the guardian, or null.
static NOTES: AtomicPtr<Notes> = AtomicPtr::new(ptr::null_mut());
/// A send failed for good: the guardian has ended (said once).
static GONE: AtomicBool = AtomicBool::new(false);
/// A guard's cleanup was not registered (said once).
static UNREGISTERED: AtomicBool = AtomicBool::new(false);
/// The program's end of the channel, or -1.
static CHANNEL: AtomicIsize = AtomicIsize::new(NONE);
/// The guardian's pid, or 0.
static GUARDIAN: AtomicI32 = AtomicI32::new(0);

/// What the program keeps of a guardian that started, on every platform (`start` makes it).
struct Started {
    /// The program's end of the channel.
    channel: link::End,
    /// The guardian's process id.
    guardian: i32,
    /// The page shared with the guardian, mapped for the rest of the process's life.
    notes: *mut Notes,
}

/// Starts the guardian for `cleanup`, once per process, and returns the cleanup to run in the
/// program: `cleanup`, then telling the guardian that it completed (also if `cleanup` panics).
///
/// In a program that is PID 1, does not return in the original process, which becomes the
/// program's init: the program returns from here as its child (see "PID 1" in this module).
///
/// If the guardian cannot be started (see "Failures" in this module), says so on stderr, keeps
/// why for [`guardian_status`], and returns `cleanup` unchanged in effect.
pub fn guardian<C: Run>(cleanup: C) -> MainCleanup<C> {
    if !STARTED.swap(true, SeqCst) {
        match start::start(cleanup) {
            Ok(started) => {
                CHANNEL.store(started.channel, SeqCst);
                GUARDIAN.store(started.guardian, SeqCst);
                NOTES.store(started.notes, SeqCst);
                STATUS.store(WATCHING, SeqCst);
                #[cfg(unix)]
                crash::install();
            }
            Err(error) => {
                report(format_args!(
                    "the guardian could not start ({error}); kill -9 and crashes will not be cleaned up"
                ));
                let _ = FAILURE.set(Error::because("start the guardian", error));
                STATUS.store(FAILED, SeqCst);
            }
        }
    }
    MainCleanup(cleanup)
}

/// `main`'s cleanup, run in the program: then the guardian is told that it completed.
#[derive(Clone, Copy)]
pub struct MainCleanup<C>(C);

impl<C: Run> Run for MainCleanup<C> {
    fn run(&self, exit: &Exit, name: &dyn std::fmt::Display) {
        // Also when the cleanup panics: it ran, and the guardian must not run it a second time.
        let _completed = Completed;
        self.0.run(exit, name);
    }
}

/// Tells the guardian that `main`'s cleanup completed when dropped, on unwinding too.
struct Completed;

impl Drop for Completed {
    fn drop(&mut self) {
        completed();
    }
}

/// Whether a guardian watches over this program: `Ok` while the guardian that
/// `#[with_cleanup(cleanup, guardian)]` on `main` started runs (stopped, it still runs).
///
/// Cheap (one `poll` of the guardian's channel), so a program may ask before each risky step,
/// or refuse to go on without a guardian. Not async-signal-safe.
///
/// ```
/// # use finally_runtime as finally;
/// // In a `main` under `#[with_cleanup(remove_lock, guardian)]`:
/// if let Err(error) = finally::guardian_status() {
///     // Such as "could not start the guardian: the second fork: Resource temporarily unavailable"
///     let why = std::error::Error::source(&error).map(ToString::to_string);
///     eprintln!("{error}: {}; kill -9 will leave the lock behind", why.unwrap_or_default());
/// }
/// ```
///
/// # Errors
///
/// [`Error`]'s `source` says why, as an [`io::Error`]:
///
/// - no guardian was asked for, in this process (kind `NotFound`);
/// - it could not start, and why: the program already ran several threads, `/proc` could not
///   tell, a `fork` failed at a limit on processes, ... (the error of the call that failed; the
///   same failure is reported on stderr when `main` starts);
/// - it has ended (kind `BrokenPipe`): it was killed, or `main`'s cleanup completed and the
///   guardian, told so, exited;
/// - this process is the guardian itself, running the cleanup, or a child forked from the
///   program (without `exec`), to which the program's guardian does not belong.
pub fn guardian_status() -> Result<(), Error> {
    let (context, kind, why) = match STATUS.load(SeqCst) {
        WATCHING if !link::hung_up(CHANNEL.load(SeqCst)) => return Ok(()),
        WATCHING => (
            "reach the guardian",
            io::ErrorKind::BrokenPipe,
            "it has ended",
        ),
        COMPLETED => (
            "reach the guardian",
            io::ErrorKind::BrokenPipe,
            "it has ended: `main`'s cleanup completed",
        ),
        FAILED => match FAILURE.get() {
            Some(error) => return Err(error.clone()),
            None => ("start the guardian", io::ErrorKind::Other, "unknown"),
        },
        GUARDING => (
            "reach a guardian",
            io::ErrorKind::Other,
            "this process is the guardian",
        ),
        FORGOTTEN => (
            "reach a guardian",
            io::ErrorKind::Other,
            "this process was forked from the program, whose guardian it is",
        ),
        _ => (
            "reach a guardian",
            io::ErrorKind::NotFound,
            "none was asked for: `#[with_cleanup(cleanup, guardian)]` on `main` starts one",
        ),
    };
    Err(Error::because(context, io::Error::new(kind, why)))
}

/// Makes a child forked from the program (without `exec`) forget the program's guardian, which
/// is the parent's: the child must neither tell it anything (its `DONE` would disarm the
/// parent's guardian, its crash would be noted as the parent's) nor hold its channel open.
/// Afterwards the child sends nothing, notes nothing, and [`guardian_status`] says why.
///
/// Async-signal-safe (atomic operations and `close`), for a `pthread_atfork` child handler: the
/// child then runs the forking thread alone, so no other thread can be sending on the descriptor
/// being closed. Calling it in the program itself would leave it unguarded.
#[cfg(unix)]
pub(crate) fn forget_in_child() {
    NOTES.store(ptr::null_mut(), SeqCst);
    let _ = STATUS.fetch_update(SeqCst, SeqCst, |state| {
        matches!(state, WATCHING | COMPLETED).then_some(FORGOTTEN)
    });
    GUARDIAN.store(0, SeqCst);
    let channel = CHANNEL.swap(NONE, SeqCst);
    if channel != NONE {
        // The child's copy of the program's end, which nothing else in the child uses.
        link::close(channel);
    }
}

/// In the guardian: the pid of the program it watches; 0 elsewhere.
static PROGRAM: AtomicI32 = AtomicI32::new(0);

/// This process becomes the guardian of the program `program` (its pid).
#[cfg_attr(not(any(target_os = "linux", windows)), allow(dead_code))]
fn guarding(program: i32) {
    PROGRAM.store(program, SeqCst);
    STATUS.store(GUARDING, SeqCst);
}

/// The program's process id: [`std::process::id`] in the program, and in its guardian the
/// program's still, where `std::process::id()` gives the guardian's own (a copy of the program
/// made when `main` started, or on Windows the executable started again).
///
/// Name what the program makes with it, not with `std::process::id()`, so that `main`'s
/// cleanup finds it from both processes:
///
/// ```
/// # use finally_runtime as finally;
/// fn scratch() -> std::path::PathBuf {
///     std::env::temp_dir().join(format!("scratch-{}", finally::program_id()))
/// }
/// # let _ = scratch();
/// ```
pub fn program_id() -> u32 {
    match PROGRAM.load(SeqCst) {
        0 => std::process::id(),
        program => program as u32,
    }
}

/// How many times the guardian has looked at the program: for the tests, which wait for it to
/// have seen what the program changed. Not a public API.
pub fn guardian_looks() -> u32 {
    // SAFETY: the page, once set, stays mapped for the rest of the process's life.
    unsafe { NOTES.load(SeqCst).as_ref() }.map_or(0, |notes| notes.looked.load(SeqCst))
}

/// The guardian's pid, while one runs: for the tests, which stop and kill it. Not a public API.
pub fn guardian_pid() -> Option<u32> {
    u32::try_from(GUARDIAN.load(SeqCst))
        .ok()
        .filter(|&pid| pid > 0)
}

/// The program's end of the channel, while a guardian runs: for the tests, which show that no
/// other process can open it. Not a public API.
#[cfg(windows)]
pub fn guardian_channel() -> Option<isize> {
    Some(CHANNEL.load(SeqCst)).filter(|&channel| channel != NONE)
}

/// The next guard's id: the guardian runs the guards newest first, by id.
static NEXT_GUARD: AtomicU64 = AtomicU64::new(1);

/// Sends a guard's state to the guardian, with its cleanup (the type of the function, named
/// `name`, which `#[guardian_cleanup]` registered); returns the guard's id, to [`disarm`] it
/// with, or why the guardian does not have it.
///
/// Never waits: when the channel is full, the state waits in the program, and on the page it
/// shares with the guardian, and goes once there is room (`outbox.rs`).
pub(crate) fn arm(cleanup: TypeId, name: &str, state: &[u8]) -> Result<u64, Error> {
    guardian_status()?;
    let refused = |why: io::Error| Err(Error::because("give the guardian a guard's state", why));
    let Some(place) = registered::place_of(cleanup) else {
        let why = format!("`{name}` is not registered: mark it `#[finally::guardian_cleanup]`");
        if !UNREGISTERED.swap(true, SeqCst) {
            report(format_args!(
                "a guard's cleanup, {why}; kill -9 and crashes will not run it"
            ));
        }
        return refused(io::Error::new(io::ErrorKind::NotFound, why));
    };
    if state.len() > LONGEST {
        return refused(io::Error::other(format!(
            "{} bytes, more than the {LONGEST} the channel takes",
            state.len()
        )));
    }
    let id = NEXT_GUARD.fetch_add(1, SeqCst);
    let header = wire::armed(id, place);
    match outbox().arm(id, &[&header, state]) {
        Ok(()) => Ok(id),
        Err(error) => {
            lost(&error);
            refused(error)
        }
    }
}

/// Tells the guardian where the program keeps its durable records, once: if the program dies,
/// the guardian runs and removes them, before `main`'s cleanup.
pub(crate) fn keep_records_in(dir: &std::path::Path) {
    static TOLD: AtomicBool = AtomicBool::new(false);
    if STATUS.load(SeqCst) != WATCHING || TOLD.swap(true, SeqCst) {
        return;
    }
    let Some(message) = wire::records(dir) else {
        return report(format_args!(
            "the guardian cannot be told where the durable records are ({}): a later start recovers them",
            dir.display()
        ));
    };
    // An id of its own, which no disarm names.
    if let Err(error) = outbox().arm(NEXT_GUARD.fetch_add(1, SeqCst), &[&message]) {
        lost(&error);
    }
}

/// Tells the guardian that the guard `id` has ended: it ran in the program, or was dismissed.
pub(crate) fn disarm(id: u64) {
    if STATUS.load(SeqCst) == WATCHING {
        outbox().disarm(id);
    }
}

/// The program's channel to its guardian, through the outbox.
fn outbox() -> outbox::Channel {
    outbox::Channel {
        link: CHANNEL.load(SeqCst),
        // SAFETY: the page, once set, stays mapped for the rest of the process's life.
        log: unsafe { NOTES.load(SeqCst).as_ref() }.map(|notes| &notes.log),
    }
}

/// Reports, once, that the guardian has ended.
fn lost(error: &io::Error) {
    if !GONE.swap(true, SeqCst) {
        report(format_args!(
            "the guardian has ended ({error}); kill -9 and crashes will not be cleaned up"
        ));
    }
}

/// Tells the guardian that `main`'s cleanup completed. The channel stays open: another thread
/// may be sending on it, and its number must not go to another file meanwhile.
fn completed() {
    let notes = NOTES.load(SeqCst);
    if !notes.is_null() {
        // SAFETY: the page stays mapped for the rest of the process's life.
        unsafe { (*notes).completed.store(true, SeqCst) };
    }
    if STATUS
        .compare_exchange(WATCHING, COMPLETED, SeqCst, SeqCst)
        .is_ok()
    {
        let sent = link::send(CHANNEL.load(SeqCst), &[&[wire::COMPLETED]]);
        match sent {
            // A guardian that cannot take it now reads the note once the program has ended.
            Err(_) if is_full(&sent) => {}
            Err(error) => lost(&error),
            Ok(()) => {}
        }
    }
}

/// `error`, said to come from `what`.
#[cfg_attr(not(any(target_os = "linux", windows)), allow(dead_code))]
pub(super) fn failed(what: &str, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{what}: {error}"))
}
