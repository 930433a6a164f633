//! The guardian: a second process that runs `main`'s cleanup if the program dies without it.
//!
//! `#[with_cleanup(cleanup, guardian)]` on `main` starts it first thing. The program keeps one
//! end of a `socketpair(AF_UNIX, SOCK_SEQPACKET)`, the guardian the other. Each message is one
//! packet, so messages that threads send at once never interleave. The program sends:
//!
//! - `0` once `main`'s cleanup has completed: the guardian exits without doing anything;
//! - a signal number from its crash handler (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT), just
//!   before it dies of it;
//! - `255`, the key's length, the key and the value that [`remember`](crate::remember) keeps.
//!
//! When the program ends, however it ends, the kernel closes its end of the channel, and the
//! guardian reads end-of-file. If no `0` came first, the program died without completing its
//! cleanup (SIGKILL, a crash, an abort, the OOM killer): the guardian runs the same cleanup with
//! [`Exit::Died`], told the signal when the crash handler could say it, and exits.
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
//! hold it: the guardian sees the program's end, not its children's. The guardian closes every
//! file descriptor but the standard ones and its end of the channel, so it holds no socket, lock or pipe
//! of the program's, and it ignores SIGINT, SIGTERM, SIGHUP and SIGQUIT, so that Ctrl-C (sent to
//! the whole process group) or a `kill` of the group does not end it before it can act.

use std::ffi::{c_void, OsStr, OsString};
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicI32};

use libc::{c_int, pid_t};

use crate::{Exit, Signal};

/// What the program sends when `main`'s cleanup has completed.
const DONE: u8 = 0;
/// What starts a message of [`tell`]: then the key's length (4 bytes, little-endian), the key
/// and the value.
const MEMO: u8 = 255;
/// The longest key and value of [`tell`], together.
const LONGEST: usize = 4000;
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
/// The program's end of the channel, or -1.
static CHANNEL: AtomicI32 = AtomicI32::new(-1);
/// The guardian's pid, or 0.
static GUARDIAN: AtomicI32 = AtomicI32::new(0);
/// The actions the crash handler replaced, to hand each crash on to (std's, for SIGSEGV).
static mut PREVIOUS: [mem::MaybeUninit<libc::sigaction>; 5] = [mem::MaybeUninit::uninit(); 5];

/// Starts the guardian for `cleanup`, once per process, and returns the cleanup to run in the
/// program: `cleanup`, then telling the guardian that it completed.
///
/// If the guardian cannot be started (the program already has several threads, or `fork`
/// fails), says so on stderr and returns `cleanup` unchanged in effect.
pub fn guardian<C>(cleanup: C) -> impl Fn(&Exit) + Copy + Send + Sync + 'static
where
    C: Fn(&Exit) + Copy + Send + Sync + 'static,
{
    if !STARTED.swap(true, SeqCst) {
        match start(cleanup) {
            Ok((channel, guardian)) => {
                CHANNEL.store(channel, SeqCst);
                GUARDIAN.store(guardian, SeqCst);
                install_crash_handler();
            }
            Err(error) => crate::report::report(format_args!(
                "the guardian could not start ({error}); kill -9 and crashes will not be cleaned up"
            )),
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

/// The guardian's pid, while one runs: for the tests, which stop and kill it. Not a public API.
pub fn guardian_pid() -> Option<u32> {
    u32::try_from(GUARDIAN.load(SeqCst))
        .ok()
        .filter(|&pid| pid > 0)
}

/// Sends what [`remember`](crate::remember) keeps to the guardian, if one runs.
pub(crate) fn tell(key: &str, value: &OsStr) {
    let fd = CHANNEL.load(SeqCst);
    if fd < 0 {
        return;
    }
    let (key, value) = (key.as_bytes(), value.as_bytes());
    if key.len() + value.len() > LONGEST {
        crate::report::report(format_args!(
            "`{}` is too long for the guardian: only the program's own cleanup will see it",
            String::from_utf8_lossy(key)
        ));
        return;
    }
    let length = (key.len() as u32).to_le_bytes();
    let header = [MEMO, length[0], length[1], length[2], length[3]];
    let _ = send(fd, &[&header, key, value], 0);
}

/// Tells the guardian that `main`'s cleanup completed.
fn completed() {
    let fd = CHANNEL.swap(-1, SeqCst);
    if fd >= 0 {
        let _ = send(fd, &[&[DONE]], 0);
        // SAFETY: our own descriptor, which nothing else uses now.
        unsafe { libc::close(fd) };
    }
}

/// Sends `parts` as one packet on the channel `fd`. Async-signal-safe.
fn send(fd: RawFd, parts: &[&[u8]], flags: c_int) -> io::Result<()> {
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

/// Starts the guardian; returns the program's end of the channel and the guardian's pid.
fn start<C: Fn(&Exit)>(cleanup: C) -> io::Result<(RawFd, pid_t)> {
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
    let (program, guardian) = channel()?;
    // SAFETY: the process has one thread (checked above), so the child is a complete copy that
    // may run any code.
    let child = check(unsafe { libc::fork() }).map_err(|error| failed("fork", error))?;
    if child == 0 {
        // SAFETY: in the child just forked, whose descriptors these are.
        unsafe { fork_guardian(program.as_raw_fd(), guardian.as_raw_fd(), cleanup) }
    }
    reap(child);
    drop(guardian);
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
    match (length, reply[0]) {
        (5, FORKED) => Ok((program.into_raw_fd(), number)),
        (5, NOT_FORKED) => Err(failed(
            "the second fork",
            io::Error::from_raw_os_error(number),
        )),
        _ => Err(io::Error::other(
            "the process that forks the guardian ended before it could",
        )),
    }
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
unsafe fn fork_guardian<C: Fn(&Exit)>(program: RawFd, guardian: RawFd, cleanup: C) -> ! {
    // SAFETY: this process has one thread, as the program had when it forked it. The guardian
    // is born with these actions: once the program hears of it, Ctrl-C cannot end it.
    let pid = unsafe {
        shrug_off_terminal_signals();
        libc::fork()
    };
    if pid == 0 {
        guard(program, guardian, cleanup);
    }
    let (kind, number) = match pid {
        -1 => (
            NOT_FORKED,
            io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ),
        pid => (FORKED, pid),
    };
    // The channel is empty: this cannot wait. Lost, it is reported as an early end.
    let _ = send(
        guardian,
        &[&[kind], &number.to_le_bytes()],
        libc::MSG_NOSIGNAL,
    );
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

/// `error`, said to come from `what`.
fn failed(what: &str, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{what}: {error}"))
}

/// The guardian process: waits for the program's end, cleans up if it died, exits.
fn guard<C: Fn(&Exit)>(program: RawFd, channel: RawFd, cleanup: C) -> ! {
    // SAFETY: plain libc calls on this process's own signals and descriptors.
    unsafe {
        libc::close(program);
        close_all_but(channel);
        libc::prctl(libc::PR_SET_NAME, c"finally-guardian".as_ptr());
    }
    let mut died_by = None;
    let mut packet = vec![0u8; LONGEST + 5];
    loop {
        // SAFETY: receiving into a live buffer of that length.
        let length = unsafe {
            libc::recv(
                channel,
                packet.as_mut_ptr().cast(),
                packet.len(),
                libc::MSG_TRUNC,
            )
        };
        match usize::try_from(length) {
            Ok(0) => break,
            Ok(length) if length > packet.len() => continue,
            Ok(length) => match Message::parse(&packet[..length]) {
                Some(Message::Done) => exit_now(),
                Some(Message::Crash(signal)) => died_by = Some(signal),
                Some(Message::Memo(key, value)) => crate::memo::keep(key, value),
                None => {}
            },
            Err(_) if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    let exit = Exit::Died { signal: died_by };
    if catch_unwind(AssertUnwindSafe(|| cleanup(&exit))).is_err() {
        crate::report::report(format_args!("the cleanup panicked in the guardian"));
    }
    exit_now()
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
    Crash(Signal),
    Memo(String, OsString),
}

impl Message {
    /// The message in `packet`, if it is one.
    fn parse(packet: &[u8]) -> Option<Message> {
        match *packet.first()? {
            DONE => Some(Message::Done),
            MEMO => {
                let length = u32::from_le_bytes(packet.get(1..5)?.try_into().ok()?);
                let body = packet.get(5..)?;
                let length = usize::try_from(length).ok().filter(|&l| l <= body.len())?;
                let (key, value) = body.split_at(length);
                let key = String::from_utf8_lossy(key).into_owned();
                Some(Message::Memo(key, OsStr::from_bytes(value).to_owned()))
            }
            signal => Some(Message::Crash(Signal::new(c_int::from(signal)))),
        }
    }
}

fn exit_now() -> ! {
    // SAFETY: ends this process; it has nothing of its own to flush but stdout, done below.
    unsafe {
        libc::fflush(ptr::null_mut());
        libc::_exit(0)
    }
}

/// Closes every descriptor above stderr but `keep`.
///
/// # Safety
///
/// No descriptor above stderr but `keep` may be in use.
unsafe fn close_all_but(keep: c_int) {
    let open: Vec<c_int> = match std::fs::read_dir("/proc/self/fd") {
        Ok(entries) => entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => (3..1024).collect(),
    };
    for fd in open.into_iter().filter(|&fd| fd > 2 && fd != keep) {
        // SAFETY: the caller vouches that nothing uses them; the directory's own descriptor is
        // closed already, so it fails harmlessly.
        unsafe { libc::close(fd) };
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

/// Tells the guardian which crash is ending the program, then hands the crash on to the action
/// it replaced, so the program ends exactly as it would have. Async-signal-safe: an atomic load,
/// `sendmsg`, `sigaction`, `raise`, and the replaced handler (std's stack-overflow report).
extern "C" fn on_crash(signal: c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    let fd = CHANNEL.load(Relaxed);
    if fd >= 0 {
        // SAFETY: one byte from a live buffer; a failed send changes nothing. Called directly,
        // as little as possible runs on the small alternate stack.
        unsafe { libc::send(fd, [signal as u8].as_ptr().cast(), 1, 0) };
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
