//! The guardian: a second process that runs `main`'s cleanup if the program dies without it.
//!
//! `#[with_cleanup(cleanup, guardian)]` on `main` starts it first thing. The program keeps the
//! write end of a pipe, the guardian the read end. The program writes:
//!
//! - `0` once `main`'s cleanup has completed: the guardian exits without doing anything;
//! - a signal number from its crash handler (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT), just
//!   before it dies of it;
//! - `255`, two lengths and a key and value that [`remember`](crate::remember) keeps, each in
//!   one `write` no longer than `PIPE_BUF`, so that nothing interleaves with them.
//!
//! When the program ends, however it ends, the kernel closes its end of the pipe, and the
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
//! does not have to reap it, and a program waiting for its own children never meets it.
//!
//! The write end is close-on-exec, so a child the program starts with `Command` does not hold
//! it: the guardian sees the program's end, not its children's. The guardian closes every file
//! descriptor but the standard ones and its end of the pipe, so it holds no socket, lock or pipe
//! of the program's, and it ignores SIGINT, SIGTERM, SIGHUP and SIGQUIT, so that Ctrl-C (sent to
//! the whole process group) or a `kill` of the group does not end it before it can act.

use std::ffi::c_void;
use std::io;
use std::mem;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicI32};

use libc::c_int;

use crate::{Exit, Signal};

/// What the program writes when `main`'s cleanup has completed.
const DONE: u8 = 0;
/// What starts a message of [`tell`].
const MEMO: u8 = 255;
/// The longest message of [`tell`]: `PIPE_BUF` is at least 4096 on Linux and 512 by POSIX, and
/// writes up to it are atomic.
const LONGEST: usize = 4000;
/// The crashes the program reports before it dies of them.
const CRASHES: [c_int; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
];

static STARTED: AtomicBool = AtomicBool::new(false);
/// The program's end of the pipe, or -1.
static PIPE: AtomicI32 = AtomicI32::new(-1);
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
        if let Err(error) = start(cleanup) {
            crate::report::report(format_args!(
                "the guardian could not start ({error}); kill -9 and crashes will not be cleaned up"
            ));
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

/// Sends what [`remember`](crate::remember) keeps to the guardian, if one runs.
pub(crate) fn tell(key: &str, value: &std::ffi::OsStr) {
    use std::os::unix::ffi::OsStrExt;
    let fd = PIPE.load(SeqCst);
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
    let mut message = vec![MEMO];
    message.extend((key.len() as u16).to_le_bytes());
    message.extend((value.len() as u16).to_le_bytes());
    message.extend(key);
    message.extend(value);
    // SAFETY: writing a live buffer to our own descriptor; a short write cannot happen below
    // `PIPE_BUF`, and a failed one leaves the guardian without this memo, as documented.
    unsafe { libc::write(fd, message.as_ptr().cast(), message.len()) };
}

/// Tells the guardian that `main`'s cleanup completed.
fn completed() {
    let fd = PIPE.swap(-1, SeqCst);
    if fd >= 0 {
        // SAFETY: writing one byte from a live buffer to our own descriptor, then closing it.
        unsafe {
            libc::write(fd, [DONE].as_ptr().cast(), 1);
            libc::close(fd);
        }
    }
}

fn start<C: Fn(&Exit)>(cleanup: C) -> io::Result<()> {
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
    let mut ends = [0 as c_int; 2];
    // SAFETY: `pipe2` fills the two descriptors.
    check(unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) })?;
    let [read, write] = ends;
    // SAFETY: the process has one thread (checked above), so the child is a complete copy that
    // may run any code; the parent only reaps the intermediate child.
    match check(unsafe { libc::fork() })? {
        0 => {
            // The intermediate child: fork the guardian and leave it to init.
            // SAFETY: as above; `_exit` skips the program's exit hooks, which are not ours.
            unsafe {
                if libc::fork() == 0 {
                    guard(read, write, cleanup);
                }
                libc::_exit(0);
            }
        }
        child => {
            // SAFETY: reaping our own child, closing our copy of the guardian's end.
            unsafe {
                libc::waitpid(child, ptr::null_mut(), 0);
                libc::close(read);
            }
        }
    }
    PIPE.store(write, SeqCst);
    install_crash_handler();
    Ok(())
}

/// The guardian process: waits for the program's end, cleans up if it died, exits.
fn guard<C: Fn(&Exit)>(read: c_int, write: c_int, cleanup: C) -> ! {
    // SAFETY: plain libc calls on this process's own signals and descriptors.
    unsafe {
        shrug_off_terminal_signals();
        libc::close(write);
        close_all_but(read);
        libc::prctl(libc::PR_SET_NAME, c"finally-guardian".as_ptr());
    }
    let mut died_by = None;
    let mut unread = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        // SAFETY: reading into a live buffer of that length.
        let read = unsafe { libc::read(read, buffer.as_mut_ptr().cast::<c_void>(), buffer.len()) };
        match usize::try_from(read) {
            Ok(0) => break,
            Ok(read) => unread.extend_from_slice(&buffer[..read]),
            Err(_) if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
        while let Some((message, length)) = Message::parse(&unread) {
            match message {
                Message::Done => exit_now(),
                Message::Crash(signal) => died_by = Some(signal),
                Message::Memo(key, value) => crate::memo::keep(key, value),
            }
            unread.drain(..length);
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

/// What the program says on the pipe.
enum Message {
    Done,
    Crash(Signal),
    Memo(String, std::ffi::OsString),
}

impl Message {
    /// The first whole message in `bytes`, and its length.
    fn parse(bytes: &[u8]) -> Option<(Message, usize)> {
        use std::os::unix::ffi::OsStrExt;
        match *bytes.first()? {
            DONE => Some((Message::Done, 1)),
            MEMO => {
                let key = usize::from(u16::from_le_bytes([*bytes.get(1)?, *bytes.get(2)?]));
                let value = usize::from(u16::from_le_bytes([*bytes.get(3)?, *bytes.get(4)?]));
                let body = bytes.get(5..5 + key + value)?;
                let (key, value) = body.split_at(key);
                let key = String::from_utf8_lossy(key).into_owned();
                let value = std::ffi::OsStr::from_bytes(value).to_owned();
                Some((Message::Memo(key, value), 5 + body.len()))
            }
            signal => Some((Message::Crash(Signal::new(c_int::from(signal))), 1)),
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
/// `write`, `sigaction`, `raise`, and the replaced handler (std's stack-overflow report).
extern "C" fn on_crash(signal: c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    let fd = PIPE.load(Relaxed);
    if fd >= 0 {
        // SAFETY: one byte from a live buffer; a failed write changes nothing.
        unsafe { libc::write(fd, [signal as u8].as_ptr().cast(), 1) };
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
