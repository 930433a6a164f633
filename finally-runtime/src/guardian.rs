//! The guardian: a second process that runs `main`'s cleanup if the program dies without it.
//!
//! `#[with_cleanup(cleanup, guardian)]` on `main` starts it first thing. The program and the
//! guardian share two things:
//!
//! - a channel, `socketpair(AF_UNIX, SOCK_SEQPACKET)`, on which the program sends each value
//!   that [`remember`](crate::remember) keeps, and `DONE` once `main`'s cleanup has completed
//!   (then the guardian exits at once). Each message is one packet, so messages that threads
//!   send at once never interleave. The program sends with `MSG_NOSIGNAL | MSG_DONTWAIT`: a
//!   dead guardian costs an error, never a SIGPIPE that would end the program, and a stopped one
//!   that no longer reads never blocks it (see [`tell`]). The program's end stays open as long
//!   as the program runs: closed, its number could be reused by another file, into which a
//!   thread still sending would write.
//! - a page of memory, on which the program notes that `main`'s cleanup has completed, and which
//!   crash is ending it (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, from its crash handler). A
//!   note needs no room in the channel, so a `DONE` the guardian could not take does not make it
//!   clean up a second time.
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
//! (see [`init`]). Being its parent, the init learns how the program ended from `waitpid`, the
//! signal that killed it too (SIGKILL included), and it exits as the program did.
//!
//! # Failures
//!
//! Every failure is one line on stderr, never a panic: at the start (several threads already,
//! `/proc` unreadable, `mmap`, `socketpair`, `pidfd_open` and `/proc`, either `fork`,
//! `signalfd`), naming what failed and that kill -9 and crashes will not be cleaned up; later,
//! once, a guardian that has ended or does not keep up. [`guardian_status`] tells the program
//! the same.

use std::ffi::{c_void, OsStr, OsString};
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU8};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libc::{c_int, c_uint, pid_t};

use crate::{Error, Exit, Signal};

/// What the program sends when `main`'s cleanup has completed.
const DONE: u8 = 0;
/// What starts a message of [`tell`]: then the key's length (4 bytes, little-endian), the key
/// and the value.
const MEMO: u8 = 255;
/// The longest key and value of [`tell`], together: a packet must fit in the socket's send
/// buffer (208 KiB by default on Linux), and a few must fit at once.
const LONGEST: usize = 64 * 1024;
/// The bytes of a memo before its key.
const HEADER: usize = 5;
/// How long [`tell`] waits, once in the program's life, for a guardian that does not keep up.
const PATIENCE: Duration = Duration::from_millis(100);
/// How often a guardian without a pidfd looks at the program in `/proc`, in milliseconds.
const LOOK_EVERY: c_int = 100;
/// What the intermediate process sends the program: then the guardian's pid, or the `errno` of
/// its fork (4 bytes, little-endian).
const FORKED: u8 = 1;
const NOT_FORKED: u8 = 2;
/// The crashes the program reports before it dies of them.
const CRASHES: [c_int; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
];

static STARTED: AtomicBool = AtomicBool::new(false);
/// Whether a guardian runs: one of the following.
static STATE: AtomicU8 = AtomicU8::new(NOT_ASKED);
const NOT_ASKED: u8 = 0;
const RUNNING: u8 = 1;
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
/// The guardian did not take a memo within [`PATIENCE`] (said once).
static LAGGING: AtomicBool = AtomicBool::new(false);
/// A send failed for good: the guardian has ended (said once).
static GONE: AtomicBool = AtomicBool::new(false);
/// The program's end of the channel, or -1.
static CHANNEL: AtomicI32 = AtomicI32::new(-1);
/// The guardian's pid, or 0.
static GUARDIAN: AtomicI32 = AtomicI32::new(0);
/// The actions the crash handler replaced, to hand each crash on to (std's, for SIGSEGV).
static mut PREVIOUS: [mem::MaybeUninit<libc::sigaction>; 5] = [mem::MaybeUninit::uninit(); 5];

/// Starts the guardian for `cleanup`, once per process, and returns the cleanup to run in the
/// program: `cleanup`, then telling the guardian that it completed (also if `cleanup` panics).
///
/// In a program that is PID 1, does not return in the original process, which becomes the
/// program's init: the program returns from here as its child (see "PID 1" in this module).
///
/// If the guardian cannot be started (see "Failures" in this module), says so on stderr, keeps
/// why for [`guardian_status`], and returns `cleanup` unchanged in effect.
pub fn guardian<C>(cleanup: C) -> impl Fn(&Exit) + Copy + Send + Sync + 'static
where
    C: Fn(&Exit) + Copy + Send + Sync + 'static,
{
    if !STARTED.swap(true, SeqCst) {
        match start(cleanup) {
            Ok(started) => {
                CHANNEL.store(started.channel, SeqCst);
                GUARDIAN.store(started.guardian, SeqCst);
                NOTES.store(started.notes, SeqCst);
                STATE.store(RUNNING, SeqCst);
                install_crash_handler();
            }
            Err(error) => {
                crate::report::report(format_args!(
                    "the guardian could not start ({error}); kill -9 and crashes will not be cleaned up"
                ));
                let _ = FAILURE.set(Error::because("start the guardian", error));
                STATE.store(FAILED, SeqCst);
            }
        }
    }
    move |exit: &Exit| {
        // Also when the cleanup panics: it ran, and the guardian must not run it a second time.
        let _completed = Completed;
        cleanup(exit);
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
    let (context, kind, why) = match STATE.load(SeqCst) {
        RUNNING if !hung_up(CHANNEL.load(SeqCst)) => return Ok(()),
        RUNNING => (
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
pub(crate) fn forget_in_child() {
    NOTES.store(ptr::null_mut(), SeqCst);
    let _ = STATE.fetch_update(SeqCst, SeqCst, |state| {
        matches!(state, RUNNING | COMPLETED).then_some(FORGOTTEN)
    });
    GUARDIAN.store(0, SeqCst);
    let fd = CHANNEL.swap(-1, SeqCst);
    if fd >= 0 {
        // SAFETY: the child's copy of the program's end, which nothing else in the child uses.
        unsafe { libc::close(fd) };
    }
}

/// Whether the other end of the channel `fd` has closed.
fn hung_up(fd: RawFd) -> bool {
    let mut channel = libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid `pollfd`; with no time-out, it only looks.
    let looked = unsafe { libc::poll(&mut channel, 1, 0) };
    looked != 0 && channel.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
}

/// The guardian's pid, while one runs: for the tests, which stop and kill it. Not a public API.
pub fn guardian_pid() -> Option<u32> {
    u32::try_from(GUARDIAN.load(SeqCst))
        .ok()
        .filter(|&pid| pid > 0)
}

/// Sends what [`remember`](crate::remember) keeps to the guardian, if one runs.
///
/// Never waits long: when the channel is full (the guardian is stopped, or far behind), it
/// waits for room once in the program's life, up to [`PATIENCE`]; after that, a memo that does
/// not fit is lost, and that is reported once.
pub(crate) fn tell(key: &str, value: &OsStr) {
    let fd = CHANNEL.load(SeqCst);
    // After `main`'s cleanup completed, the guardian has nothing more to learn.
    if fd < 0 || STATE.load(SeqCst) != RUNNING {
        return;
    }
    let (key, value) = (key.as_bytes(), value.as_bytes());
    if key.len() + value.len() > LONGEST {
        too_long(key);
        return;
    }
    let length = (key.len() as u32).to_le_bytes();
    let header = [MEMO, length[0], length[1], length[2], length[3]];
    let parts = [&header[..], key, value];
    let mut sent = send(fd, &parts);
    if is_full(&sent) && !LAGGING.load(SeqCst) {
        sent = send_patiently(fd, &parts);
    }
    match sent {
        Ok(()) => {}
        // Sent as `main`'s cleanup completed: the guardian may have ended, as it should.
        Err(_) if STATE.load(SeqCst) != RUNNING => {}
        Err(_) if is_full(&sent) => {
            if !LAGGING.swap(true, SeqCst) {
                crate::report::report(format_args!(
                    "the guardian does not keep up (is it stopped?): values the program remembers may not reach it, and it may clean up with older ones"
                ));
            }
        }
        Err(error) if error.raw_os_error() == Some(libc::EMSGSIZE) => too_long(key),
        Err(error) => lost(&error),
    }
}

fn too_long(key: &[u8]) {
    crate::report::report(format_args!(
        "`{}` is too long for the guardian: only the program's own cleanup will see it",
        String::from_utf8_lossy(key)
    ));
}

/// Reports, once, that the guardian has ended.
fn lost(error: &io::Error) {
    if !GONE.swap(true, SeqCst) {
        crate::report::report(format_args!(
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
    if STATE
        .compare_exchange(RUNNING, COMPLETED, SeqCst, SeqCst)
        .is_ok()
    {
        let sent = send(CHANNEL.load(SeqCst), &[&[DONE]]);
        match sent {
            // A guardian that cannot take it now reads the note once the program has ended.
            Err(_) if is_full(&sent) => {}
            Err(error) => lost(&error),
            Ok(()) => {}
        }
    }
}

/// Sends `parts` as one packet on the channel `fd`, without waiting and without raising
/// SIGPIPE. Async-signal-safe.
fn send(fd: RawFd, parts: &[&[u8]]) -> io::Result<()> {
    let mut pieces = [libc::iovec {
        iov_base: ptr::null_mut(),
        iov_len: 0,
    }; 3];
    for (piece, part) in pieces.iter_mut().zip(parts) {
        piece.iov_base = part.as_ptr().cast_mut().cast();
        piece.iov_len = part.len();
    }
    // SAFETY: an all-zero `msghdr` is a valid, empty one.
    let mut message: libc::msghdr = unsafe { mem::zeroed() };
    message.msg_iov = pieces.as_mut_ptr();
    message.msg_iovlen = parts.len().min(pieces.len());
    let flags = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;
    loop {
        // SAFETY: the pieces point into live buffers of their lengths, only read.
        if unsafe { libc::sendmsg(fd, &message, flags) } >= 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// [`send`], waiting up to [`PATIENCE`] for room in the channel.
fn send_patiently(fd: RawFd, parts: &[&[u8]]) -> io::Result<()> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut room = libc::pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        let wait = c_int::try_from(left.as_millis())
            .unwrap_or(c_int::MAX)
            .max(1);
        // SAFETY: one valid `pollfd`.
        unsafe { libc::poll(&mut room, 1, wait) };
        let sent = send(fd, parts);
        if !is_full(&sent) {
            return sent;
        }
    }
}

/// Whether a send failed because the channel is full.
fn is_full(sent: &io::Result<()>) -> bool {
    matches!(sent, Err(error) if error.kind() == io::ErrorKind::WouldBlock)
}

/// What the program keeps of a guardian that started.
struct Started {
    /// The program's end of the channel.
    channel: RawFd,
    guardian: pid_t,
    notes: *mut Notes,
}

/// Starts the guardian.
fn start<C: Fn(&Exit)>(cleanup: C) -> io::Result<Started> {
    match threads() {
        Some(1) => {}
        Some(_) => {
            return Err(io::Error::other(
                "the program already runs several threads; start it first thing in `main`",
            ))
        }
        // Forking a process whose other threads may hold locks would make a guardian that can
        // deadlock in the cleanup, long after the program ended: better none, and said so.
        None => {
            return Err(io::Error::other(
                "/proc/self/task cannot be read to tell whether the program runs a single thread",
            ))
        }
    }
    let page = Page::new()?;
    let (program, guardian) = channel()?;
    // SAFETY: `getpid` cannot fail.
    if unsafe { libc::getpid() } == 1 {
        return start_as_init(program, guardian, page, cleanup);
    }
    let (watch, pidfd) = Watch::this_process()?;
    // SAFETY: the process has one thread (checked above), so the child is a complete copy that
    // may run any code.
    let child = check(unsafe { libc::fork() }).map_err(|error| failed("fork", error))?;
    if child == 0 {
        // SAFETY: in the child just forked, whose descriptors these are.
        unsafe {
            fork_guardian(
                program.as_raw_fd(),
                guardian.as_raw_fd(),
                watch,
                page.notes(),
                cleanup,
            )
        }
    }
    reap(child);
    drop((guardian, pidfd));
    // What the intermediate process said, if it could say anything.
    let mut reply = [0u8; 5];
    // SAFETY: receiving into a live buffer of that length.
    let length = unsafe {
        libc::recv(
            program.as_raw_fd(),
            reply.as_mut_ptr().cast(),
            reply.len(),
            libc::MSG_DONTWAIT,
        )
    };
    let number = i32::from_le_bytes([reply[1], reply[2], reply[3], reply[4]]);
    let failure = match (length, reply[0]) {
        (5, FORKED) => {
            return Ok(Started {
                channel: program.into_raw_fd(),
                guardian: number,
                notes: page.keep(),
            })
        }
        (5, NOT_FORKED) => failed("the second fork", io::Error::from_raw_os_error(number)),
        _ => io::Error::other("the process that forks the guardian ended before it could say"),
    };
    // A guardian forked by an intermediate process killed before it could say so must not take
    // the program, which goes on without it, for dead at its end.
    page.notes().completed.store(true, SeqCst);
    Err(failure)
}

/// A new channel: the program's end, the guardian's end. Both are close-on-exec.
fn channel() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut ends = [0 as c_int; 2];
    let kind = libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC;
    // SAFETY: `socketpair` fills the two descriptors.
    check(unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, ends.as_mut_ptr()) })
        .map_err(|error| failed("socketpair", error))?;
    // SAFETY: two new descriptors, ours alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) })
}

/// The intermediate process: forks the guardian, tells the program how that went, and exits,
/// which leaves the guardian to init (or the nearest subreaper) rather than to the program.
///
/// # Safety
///
/// Only in the child forked by [`start`], with its two ends of the channel.
unsafe fn fork_guardian<C: Fn(&Exit)>(
    program: RawFd,
    guardian: RawFd,
    watch: Watch,
    notes: &Notes,
    cleanup: C,
) -> ! {
    // SAFETY: this process has one thread, as the program had when it forked it. The guardian
    // is born with these actions: once the program hears of it, Ctrl-C cannot end it.
    let pid = unsafe {
        shrug_off_terminal_signals();
        libc::fork()
    };
    if pid == 0 {
        guard(program, guardian, watch, notes, cleanup);
    }
    let (kind, number) = match pid {
        -1 => (
            NOT_FORKED,
            io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ),
        pid => (FORKED, pid),
    };
    // The channel is empty: this fits. Lost, it is reported as an early end.
    let _ = send(guardian, &[&[kind], &number.to_le_bytes()]);
    // SAFETY: `_exit` skips the program's exit hooks, which are not this process's to run.
    unsafe { libc::_exit(0) }
}

/// Waits for the intermediate process to end; with SIGCHLD ignored, the kernel reaps it and
/// `waitpid` fails once it has ended, which does as well.
fn reap(child: pid_t) {
    // SAFETY: waiting for our own child, without a status.
    while unsafe { libc::waitpid(child, ptr::null_mut(), 0) } < 0 {
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            break;
        }
    }
}

/// How the guardian sees the program's process end.
#[derive(Clone, Copy)]
enum Watch {
    /// A pidfd, readable once the process has ended.
    Pidfd(RawFd),
    /// Where there is no pidfd: the process's pid and start time, looked at every [`LOOK_EVERY`].
    Stat { pid: pid_t, start: u64 },
}

impl Watch {
    /// A watch on this process, taken while it is certainly alive: with its pidfd, if any, which
    /// the caller closes once it has forked.
    fn this_process() -> io::Result<(Watch, Option<OwnedFd>)> {
        // SAFETY: `getpid` cannot fail; `pidfd_open` takes no pointers.
        let (pid, fd) = unsafe {
            let pid = libc::getpid();
            (pid, libc::syscall(libc::SYS_pidfd_open, pid, 0))
        };
        if let Ok(fd) = RawFd::try_from(fd) {
            if fd >= 0 {
                // SAFETY: a new descriptor, ours alone.
                return Ok((Watch::Pidfd(fd), Some(unsafe { OwnedFd::from_raw_fd(fd) })));
            }
        }
        let no_pidfd = io::Error::last_os_error();
        match stat(pid) {
            Some((_, start)) => Ok((Watch::Stat { pid, start }, None)),
            None => Err(io::Error::new(
                no_pidfd.kind(),
                format!("pidfd_open: {no_pidfd}, and /proc/self/stat cannot be read either"),
            )),
        }
    }

    /// The descriptor to poll, or -1.
    fn fd(self) -> RawFd {
        match self {
            Watch::Pidfd(fd) => fd,
            Watch::Stat { .. } => -1,
        }
    }

    /// How long to wait at most before calling [`ended`](Self::ended) again, for `poll`.
    fn patience(self) -> c_int {
        match self {
            Watch::Pidfd(_) => -1,
            Watch::Stat { .. } => LOOK_EVERY,
        }
    }

    fn ended(self) -> bool {
        match self {
            Watch::Pidfd(fd) => {
                let mut ended = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid `pollfd`.
                unsafe { libc::poll(&mut ended, 1, 0) == 1 }
            }
            // Gone, a zombie, or another process with the same pid.
            Watch::Stat { pid, start } => stat(pid).map_or(true, |(state, now)| {
                matches!(state, b'Z' | b'X') || now != start
            }),
        }
    }
}

/// The state and the start time of process `pid`: fields 3 and 22 of `/proc/PID/stat`.
fn stat(pid: pid_t) -> Option<(u8, u64)> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    // The name, field 2, is in parentheses and may hold anything, parentheses and spaces too.
    let after_name = stat.get(stat.iter().rposition(|&byte| byte == b')')? + 2..)?;
    let mut fields = after_name.split(|&byte| byte == b' ');
    let state = *fields.next()?.first()?;
    let start = std::str::from_utf8(fields.nth(22 - 4)?)
        .ok()?
        .parse()
        .ok()?;
    Some((state, start))
}

/// The page the program shares with its guardian: what must reach the guardian however full
/// the channel is. All zeros is "nothing to say".
#[repr(C)]
struct Notes {
    /// `main`'s cleanup has completed.
    completed: AtomicBool,
    /// The crash that is ending the program, or 0.
    crash: AtomicI32,
}

impl Notes {
    /// The crash that ended the program, if its crash handler noted one.
    fn crash(&self) -> Option<Signal> {
        Some(self.crash.load(SeqCst))
            .filter(|&signal| signal != 0)
            .map(Signal::new)
    }
}

/// A page shared with the processes forked from here on; unmapped when dropped.
struct Page(ptr::NonNull<Notes>);

impl Page {
    fn new() -> io::Result<Page> {
        // SAFETY: a new anonymous mapping, which the kernel fills with zeros: valid `Notes`.
        let page = unsafe {
            libc::mmap(
                ptr::null_mut(),
                mem::size_of::<Notes>(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        match ptr::NonNull::new(page.cast::<Notes>()) {
            Some(notes) if page != libc::MAP_FAILED => Ok(Page(notes)),
            _ => Err(failed("mmap", io::Error::last_os_error())),
        }
    }

    fn notes(&self) -> &Notes {
        // SAFETY: mapped, and zeros or notes, as long as `self` lives.
        unsafe { self.0.as_ref() }
    }

    /// Keeps the page mapped for the rest of the process's life.
    fn keep(self) -> *mut Notes {
        let notes = self.0.as_ptr();
        mem::forget(self);
        notes
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        // SAFETY: our own mapping, which nothing uses any more.
        unsafe { libc::munmap(self.0.as_ptr().cast(), mem::size_of::<Notes>()) };
    }
}

/// `error`, said to come from `what`.
fn failed(what: &str, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{what}: {error}"))
}

/// The guardian process: waits for the program's end, cleans up if it died, exits.
fn guard<C: Fn(&Exit)>(
    program: RawFd,
    channel: RawFd,
    watch: Watch,
    notes: &Notes,
    cleanup: C,
) -> ! {
    STATE.store(GUARDING, SeqCst);
    // SAFETY: plain libc calls on this process's own descriptors.
    unsafe {
        libc::close(program);
        close_all_but(&[channel, watch.fd()]);
        libc::prctl(libc::PR_SET_NAME, c"finally-guardian".as_ptr());
    }
    let mut inbox = Inbox::new(channel);
    while !watch.ended() {
        let mut ready = [inbox.fd, watch.fd()].map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        // SAFETY: two valid `pollfd`s; one with a negative descriptor is left alone.
        unsafe { libc::poll(ready.as_mut_ptr(), 2, watch.patience()) };
        if inbox.receive() {
            exit_now(0);
        }
    }
    // What the program sent just before it ended.
    if inbox.receive() || notes.completed.load(SeqCst) {
        exit_now(0);
    }
    clean_up(cleanup, notes.crash());
    exit_now(0)
}

/// Runs the cleanup of a program that died, by `signal` where known.
fn clean_up<C: Fn(&Exit)>(cleanup: C, signal: Option<Signal>) {
    let exit = Exit::Died { signal };
    if catch_unwind(AssertUnwindSafe(|| cleanup(&exit))).is_err() {
        crate::report::report(format_args!("the cleanup panicked in the guardian"));
    }
}

/// The guardian's end of the channel.
struct Inbox {
    /// -1 once the program's end has closed: at its end, or when it `exec`ed.
    fd: RawFd,
    packet: Vec<u8>,
}

impl Inbox {
    fn new(fd: RawFd) -> Self {
        Inbox {
            fd,
            packet: vec![0; HEADER + LONGEST],
        }
    }

    /// Takes in what the program has sent, without waiting: whether it said `DONE`.
    fn receive(&mut self) -> bool {
        while self.fd >= 0 {
            // SAFETY: receiving into a live buffer of that length.
            let length = unsafe {
                libc::recv(
                    self.fd,
                    self.packet.as_mut_ptr().cast(),
                    self.packet.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                )
            };
            match usize::try_from(length) {
                // Longer than any message the program sends: not one of them.
                Ok(length) if length > self.packet.len() => {}
                Ok(0) => self.fd = -1,
                Ok(length) => match Message::parse(&self.packet[..length]) {
                    Some(Message::Done) => return true,
                    Some(Message::Memo(key, value)) => crate::memo::keep(key, value),
                    None => {}
                },
                Err(_) => match io::Error::last_os_error().kind() {
                    io::ErrorKind::Interrupted => {}
                    io::ErrorKind::WouldBlock => break,
                    _ => self.fd = -1,
                },
            }
        }
        false
    }
}

/// Catches SIGINT, SIGTERM, SIGHUP and SIGQUIT with a handler that does nothing, so that
/// Ctrl-C or a `kill` of the whole process group does not end the guardian before it can act.
///
/// Caught, not ignored: `exec` resets a caught signal to its default action but keeps an ignored
/// one ignored, and a program that a cleanup starts must not find Ctrl-C ignored. A signal the
/// program was started with ignored (`nohup`) stays ignored, as it would for the program's own
/// children.
///
/// # Safety
///
/// Replaces these signals' actions for the whole process.
unsafe fn shrug_off_terminal_signals() {
    extern "C" fn nothing(_: c_int) {}
    for signal in crate::signals::HANDLED {
        // SAFETY: reading and setting this process's actions with valid `sigaction`s; the
        // handler does nothing, which is async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = mem::zeroed();
            libc::sigaction(signal, ptr::null(), &mut action);
            if action.sa_sigaction == libc::SIG_IGN {
                continue;
            }
            action.sa_sigaction = nothing as *const () as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, ptr::null_mut());
        }
    }
}

/// What the program says on the channel.
enum Message {
    Done,
    Memo(String, OsString),
}

impl Message {
    /// The message in `packet`, if it is one.
    fn parse(packet: &[u8]) -> Option<Message> {
        match *packet.first()? {
            DONE => Some(Message::Done),
            MEMO => {
                let length = u32::from_le_bytes(packet.get(1..5)?.try_into().ok()?);
                let body = packet.get(HEADER..)?;
                let length = usize::try_from(length).ok().filter(|&l| l <= body.len())?;
                let (key, value) = body.split_at(length);
                let key = String::from_utf8_lossy(key).into_owned();
                Some(Message::Memo(key, OsStr::from_bytes(value).to_owned()))
            }
            _ => None,
        }
    }
}

fn exit_now(code: c_int) -> ! {
    // SAFETY: ends this process; it has nothing of its own to flush but stdout, done below.
    unsafe {
        libc::fflush(ptr::null_mut());
        libc::_exit(code)
    }
}

/// Closes every descriptor above stderr but those in `keep` (negative ones stand for none).
///
/// # Safety
///
/// No descriptor above stderr but those in `keep` may be in use.
unsafe fn close_all_but(keep: &[RawFd]) {
    let mut keep: Vec<c_uint> = keep
        .iter()
        .filter_map(|&fd| c_uint::try_from(fd).ok())
        .filter(|&fd| fd > 2)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut first: c_uint = 3;
    let mut ranges = Vec::new();
    for fd in keep.iter().copied() {
        if fd > first {
            ranges.push((first, fd - 1));
        }
        first = fd + 1;
    }
    ranges.push((first, c_uint::MAX));
    // SAFETY: `close_range` takes no pointers; the caller vouches for the descriptors.
    let closed = ranges.iter().all(|&(first, last)| unsafe {
        libc::syscall(libc::SYS_close_range, first, last, 0 as c_uint) == 0
    });
    if closed {
        return;
    }
    // Before Linux 5.9: one by one.
    let open: Vec<c_uint> = match std::fs::read_dir("/proc/self/fd") {
        Ok(entries) => entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => (3..1024).collect(),
    };
    for fd in open.into_iter().filter(|fd| *fd > 2 && !keep.contains(fd)) {
        // SAFETY: the caller vouches that nothing uses them; the directory's own descriptor is
        // closed already, so it fails harmlessly.
        unsafe { libc::close(fd as c_int) };
    }
}

/// The signals that PID 1 hands on to the program: those a container runtime, a user or a
/// terminal sends to stop it or poke it. Not the crashes, which are the init's own.
const FORWARDED: [c_int; 8] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGWINCH,
];

/// Starts the guardian of a program that is PID 1 (in a container without an init): the kernel
/// kills every other process of the PID namespace when PID 1 ends, a guardian included. So the
/// process stays as the program's init and guardian (see [`init`]), and the program goes on as
/// its child, with its signal mask and actions as they were.
fn start_as_init<C: Fn(&Exit)>(
    program: OwnedFd,
    guardian: OwnedFd,
    page: Page,
    cleanup: C,
) -> io::Result<Started> {
    // SAFETY: plain libc calls on valid signal sets, this thread's mask and new descriptors.
    // The process has one thread, so the child of `fork` is a complete copy.
    unsafe {
        let mut handled: libc::sigset_t = mem::zeroed();
        libc::sigemptyset(&mut handled);
        for signal in FORWARDED.into_iter().chain([libc::SIGCHLD]) {
            libc::sigaddset(&mut handled, signal);
        }
        // Blocked from before the fork, so that none sent to PID 1 meanwhile is lost: the init
        // reads them from a signalfd.
        let mut mask: libc::sigset_t = mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &handled, &mut mask);
        let restore = |error: io::Error| {
            libc::pthread_sigmask(libc::SIG_SETMASK, &mask, ptr::null_mut());
            error
        };
        let flags = libc::SFD_CLOEXEC | libc::SFD_NONBLOCK;
        let signals = check(libc::signalfd(-1, &handled, flags))
            .map_err(|error| restore(failed("signalfd", error)))?;
        let signals = OwnedFd::from_raw_fd(signals);
        match check(libc::fork()).map_err(|error| restore(failed("fork", error)))? {
            0 => {
                libc::pthread_sigmask(libc::SIG_SETMASK, &mask, ptr::null_mut());
                drop((guardian, signals));
                Ok(Started {
                    channel: program.into_raw_fd(),
                    guardian: libc::getppid(),
                    notes: page.keep(),
                })
            }
            child => init(
                child,
                signals.as_raw_fd(),
                &mask,
                guardian.as_raw_fd(),
                program.as_raw_fd(),
                page.notes(),
                cleanup,
            ),
        }
    }
}

/// PID 1 as the program's init and guardian: hands the [`FORWARDED`] signals on to the
/// program, reaps every child (orphans come to PID 1), takes in what the program remembers, and
/// once the program has ended runs the cleanup unless it completed its own. Being its parent, it
/// knows how the program ended, the signal that killed it too. It then exits with the program's
/// exit code, or `128 +` the signal's number: PID 1 cannot end by a signal.
///
/// # Safety
///
/// Only in the process that forked `program`, with its descriptors: `signals` reads the blocked
/// signals, and `mask` is the signal mask the program had.
unsafe fn init<C: Fn(&Exit)>(
    program: pid_t,
    signals: RawFd,
    mask: &libc::sigset_t,
    channel: RawFd,
    program_end: RawFd,
    notes: &Notes,
    cleanup: C,
) -> ! {
    STATE.store(GUARDING, SeqCst);
    // SAFETY: plain libc calls on this process's own descriptors.
    unsafe {
        libc::close(program_end);
        close_all_but(&[signals, channel]);
        libc::prctl(libc::PR_SET_NAME, c"finally-init".as_ptr());
    }
    let mut inbox = Inbox::new(channel);
    let mut told = false;
    let status = loop {
        let mut ready = [signals, inbox.fd].map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        // SAFETY: two valid `pollfd`s; one with a negative descriptor is left alone.
        unsafe { libc::poll(ready.as_mut_ptr(), 2, -1) };
        told |= inbox.receive();
        if let Some(status) = forward_and_reap(signals, program) {
            break status;
        }
    };
    // What the program sent just before it ended.
    told |= inbox.receive();
    let (code, signal) = if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        (128 + signal, Some(Signal::new(signal)))
    } else {
        (libc::WEXITSTATUS(status), notes.crash())
    };
    if !(told || notes.completed.load(SeqCst)) {
        // As the program had it, for the programs the cleanup starts: nothing is handed on now.
        // SAFETY: a valid mask, for this process's only thread.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, mask, ptr::null_mut()) };
        clean_up(cleanup, signal);
    }
    exit_now(code)
}

/// Hands the signals PID 1 received on to `program`, and reaps the children that ended: the
/// program's wait status, once it has ended.
fn forward_and_reap(signals: RawFd, program: pid_t) -> Option<c_int> {
    // SAFETY: all zeros is a valid `signalfd_siginfo`.
    let mut received: [libc::signalfd_siginfo; 8] = unsafe { mem::zeroed() };
    loop {
        // SAFETY: reading into a live buffer of that length.
        let length = unsafe {
            libc::read(
                signals,
                received.as_mut_ptr().cast(),
                mem::size_of_val(&received),
            )
        };
        // Nothing more to read (the descriptor does not block), or interrupted: the next wake.
        let Ok(length @ 1..) = usize::try_from(length) else {
            break;
        };
        for info in &received[..length / mem::size_of::<libc::signalfd_siginfo>()] {
            let signal = info.ssi_signo as c_int;
            if signal != libc::SIGCHLD {
                // SAFETY: our own child, not reaped yet (it is reaped below).
                unsafe { libc::kill(program, signal) };
            }
        }
    }
    // SIGCHLDs coalesce: every child that ended, whether one was told or not.
    let mut ended = None;
    loop {
        let mut status = 0;
        // SAFETY: reaping our own children, with a live status.
        match unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } {
            pid if pid <= 0 => break ended,
            pid if pid == program => ended = Some(status),
            _ => {}
        }
    }
}

/// How many threads the process has, or `None` where `/proc` cannot tell.
pub(crate) fn threads() -> Option<usize> {
    std::fs::read_dir("/proc/self/task")
        .ok()
        .map(Iterator::count)
}

fn check(result: c_int) -> io::Result<c_int> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// Installs [`on_crash`] for the crashes that are not ignored, keeping the replaced actions.
fn install_crash_handler() {
    for (index, &signal) in CRASHES.iter().enumerate() {
        // SAFETY: installing a handler that does only async-signal-safe work; `PREVIOUS` is
        // written here, before the handler for that signal can run, and only read after.
        unsafe {
            let previous = &mut *ptr::addr_of_mut!(PREVIOUS[index]);
            let mut action: libc::sigaction = mem::zeroed();
            action.sa_sigaction = on_crash as *const () as usize;
            // On the alternate stack std sets up, so a stack overflow can be reported too.
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, previous.as_mut_ptr());
            if previous.assume_init_ref().sa_sigaction == libc::SIG_IGN {
                libc::sigaction(signal, previous.as_ptr(), ptr::null_mut());
            }
        }
    }
}

/// Notes for the guardian which crash is ending the program, then hands the crash on to the action
/// it replaced, so the program ends exactly as it would have. Async-signal-safe: atomic loads
/// and stores, `sigaction`, `raise`, and the replaced handler (std's stack-overflow report).
extern "C" fn on_crash(signal: c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    let notes = NOTES.load(Relaxed);
    if !notes.is_null() {
        // SAFETY: the page stays mapped for the rest of the process's life. Noted, not sent:
        // as little as possible runs on the small alternate stack, and the channel may be full.
        unsafe { (*notes).crash.store(signal, SeqCst) };
    }
    let Some(index) = CRASHES.iter().position(|&crash| crash == signal) else {
        return;
    };
    // SAFETY: `PREVIOUS[index]` was written before this handler was installed.
    unsafe {
        let previous = (*ptr::addr_of!(PREVIOUS[index])).assume_init_ref();
        libc::sigaction(signal, previous, ptr::null_mut());
        match previous.sa_sigaction {
            // The default action: raised again, it ends the process once this handler returns
            // (a fault would also recur when the instruction runs again).
            libc::SIG_DFL => {
                libc::raise(signal);
            }
            libc::SIG_IGN => {}
            handler if previous.sa_flags & libc::SA_SIGINFO != 0 => {
                let handler: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) =
                    mem::transmute(handler);
                handler(signal, info, context);
            }
            handler => {
                let handler: extern "C" fn(c_int) = mem::transmute(handler);
                handler(signal);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_reads_the_state_and_the_start_time() {
        // SAFETY: `getpid` cannot fail.
        let (state, start) = stat(unsafe { libc::getpid() }).expect("our own stat");
        // Running or sleeping (the test runs on a thread of its own), not a zombie.
        assert!(matches!(state, b'R' | b'S'), "state {}", state as char);
        assert!(start > 0);
        // Beyond `pid_max` (at most 2^22): no such process.
        assert_eq!(stat(1 << 23), None);
    }
}
