//! Installing the handlers: the signal thread, the exit hook and the fork hook.
//!
//! The signal handler, registered through signal-hook (which chains it with any other), only
//! records the first signal's number in an atomic and wakes the `finally-signals` thread with a
//! futex, both async-signal-safe. All the work happens on that thread.

use std::io;
use std::panic::catch_unwind;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::Duration;

use libc::c_int;
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};

use crate::flag::SHUTDOWN;
use crate::report::report;
use crate::{barrier, registry, request, shutdown, standby, sys};
use crate::{Error, Exit, Signal};

/// The signals that run the pending cleanups.
pub(crate) const HANDLED: [c_int; 4] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT];

static INSTALLED: OnceLock<Result<(), Error>> = OnceLock::new();
static CONFIG: OnceLock<Config> = OnceLock::new();

/// The process-wide options of `#[with_cleanup]` on `main`.
#[derive(Debug)]
pub struct Config {
    /// The signals that run the cleanups.
    pub signals: &'static [c_int],
    /// How long the cleanups may take after a signal before the process ends anyway.
    pub timeout: Option<Duration>,
    /// After how many more signals during the cleanups the process ends at once.
    pub force_quit_after: Option<u32>,
}

impl Config {
    /// SIGINT, SIGTERM, SIGHUP and SIGQUIT; no time-out; no force-quit.
    pub const DEFAULT: Config = Config {
        signals: &HANDLED,
        timeout: None,
        force_quit_after: None,
    };
}

/// Sets the process-wide options, before anything is installed. Returns `false` (and says so on
/// stderr) if it is too late: a guarded call already installed the defaults, or `main` came
/// twice.
pub fn configure(config: Config) -> bool {
    let set = CONFIG.set(config).is_ok() && INSTALLED.get().is_none();
    if !set {
        crate::report::report(format_args!(
            "the options of `main` come too late: the defaults are installed"
        ));
    }
    set
}

pub(crate) fn config() -> &'static Config {
    CONFIG.get_or_init(|| Config::DEFAULT)
}

/// Installs the signal thread and the exit hook, once per process.
///
/// Guarded functions call this on their thread's first use of the registry, so calling it is
/// never needed; call it at start-up to handle a failure yourself instead of the one-line report
/// on stderr. Signals that were ignored when it runs (as `nohup` ignores SIGHUP) stay ignored.
///
/// # Errors
///
/// When the handlers, the signal thread or the exit hook cannot be set up. Later calls return
/// the same result.
pub fn install() -> Result<(), Error> {
    INSTALLED.get_or_init(install_now).clone()
}

/// [`install`], reporting a failure on stderr once instead of returning it.
pub(crate) fn install_once() {
    if INSTALLED.get().is_none() {
        if let Err(error) = install() {
            crate::report::report(format_args!(
                "{error} ({}): only return, panic and exit are covered",
                error.source
            ));
        }
    }
}

fn install_now() -> Result<(), Error> {
    exit_hook::register().map_err(|e| Error::new("register the exit hook", e))?;
    if cfg!(panic = "abort") {
        run_cleanups_before_abort();
    }
    let config = config();
    // The thread first: a handler with no thread to act on what it records would swallow the
    // signals it was meant to handle.
    start_signal_thread().map_err(|e| Error::new("start the signal thread", e))?;
    if let Some(limit) = config.timeout {
        shutdown::arm_deadline(limit).map_err(|e| Error::new("start the deadline thread", e))?;
    }
    // SAFETY: `in_child` only does what is allowed in a forked child (its docs).
    if unsafe { libc::pthread_atfork(None, None, Some(in_child)) } != 0 {
        return Err(Error::new(
            "register the fork hook",
            io::Error::last_os_error(),
        ));
    }
    let force_quit_after = config.force_quit_after;
    for &signal in config.signals.iter().filter(|&&signal| !is_ignored(signal)) {
        // In the signal handler: only atomics and system calls that are async-signal-safe.
        let action = move || {
            arrived(signal);
            if let Some(count) = force_quit_after {
                force_quit(count);
            }
        };
        // SAFETY: the action is async-signal-safe (above).
        unsafe { signal_hook::low_level::register(signal, action) }
            .map_err(|e| Error::new("install the signal handlers", e))?;
    }
    Ok(())
}

/// Starts the `finally-signals` thread: it waits for the first handled signal, runs the
/// shutdown, and ends the process by the signal. Nothing unwinds out of it before then.
fn start_signal_thread() -> io::Result<()> {
    thread::Builder::new()
        .name("finally-signals".into())
        .spawn(|| {
            let signal = first_signal();
            match catch_unwind(|| shutdown::on_signal(Signal::new(signal))) {
                Ok(true) => sys::die_by(signal),
                // The process is already exiting: that shutdown decides how it ends, and later
                // signals change nothing.
                Ok(false) => {}
                Err(_) => {
                    report(format_args!(
                        "the shutdown failed; ending the process by the signal"
                    ));
                    sys::die_by_now(signal)
                }
            }
        })
        .map(drop)
}

/// In a forked child, whose signal thread (and deadline thread) stayed in the parent: starts
/// them, the first time an owner meets the child's flag (or at once, from [`in_child`], if the
/// child has a cleanup pending).
pub(crate) fn start_thread_if_forked() {
    if !SHUTDOWN.take_no_thread() {
        return;
    }
    let started = start_signal_thread().and_then(|()| match config().timeout {
        Some(limit) => shutdown::arm_deadline(limit),
        None => Ok(()),
    });
    if let Err(error) = started {
        report(format_args!(
            "could not start the signal thread in a forked child ({error}): signals end it without its cleanups"
        ));
    }
}

/// The child's side of `fork`, on its one thread, before `fork` returns there: what belonged
/// to the parent's other threads, and its shutdown, are not the child's. Only what is allowed
/// in a forked child of a process with threads: atomics and system calls, and, if the child
/// has a cleanup pending (it forked inside a guarded function, as a daemon does), starting its
/// signal thread at once: it may never reach another guarded function.
extern "C" fn in_child() {
    let pending = registry::forget_other_threads();
    crate::guardian::forget_in_child();
    shutdown::reset_in_child();
    request::reset_in_child();
    standby::reset_in_child();
    ARRIVED.store(0, SeqCst);
    SEEN.store(0, SeqCst);
    let asymmetric = SHUTDOWN.is_asymmetric() && barrier::register_in_child();
    SHUTDOWN.reset_in_child(asymmetric);
    if pending {
        start_thread_if_forked();
    }
}

/// The number of the first handled signal, or 0: only the first matters, since it starts the
/// shutdown, and a shutdown is never started twice.
///
/// It is also the futex the signal thread sleeps on. A futex wake is the least the kernel can do
/// to wake a thread (as `ctrlc` does, through `sem_post`), less than writing to a pipe.
static ARRIVED: AtomicU32 = AtomicU32::new(0);

/// How many handled signals have arrived, the first included.
static SEEN: AtomicU32 = AtomicU32::new(0);

/// Counts `signal`, records it unless one came first, and wakes the signal thread.
/// Async-signal-safe.
fn arrived(signal: c_int) {
    SEEN.fetch_add(1, SeqCst);
    let _ = ARRIVED.compare_exchange(0, signal as u32, SeqCst, SeqCst);
    if SHUTDOWN.has_no_thread() && !registry::has_pending() {
        // A forked child with nothing pending and no signal thread yet: the signal has its
        // default effect, as if `finally` were not there.
        sys::die_by_now(signal);
    }
    futex(libc::FUTEX_WAKE, 1);
}

/// The number of the first handled signal, or 0. Async-signal-safe.
pub(crate) fn first_signal_number() -> c_int {
    ARRIVED.load(SeqCst) as c_int
}

/// Sleeps until a handled signal arrives, and returns its number.
fn first_signal() -> c_int {
    loop {
        match ARRIVED.load(SeqCst) {
            // Sleeps only while it still holds 0: a signal between the load and the wait makes
            // the kernel return at once, as does any wake-up; each ends in the load again.
            0 => futex(libc::FUTEX_WAIT, 0),
            signal => return signal as c_int,
        }
    }
}

/// `futex(2)` on [`ARRIVED`]: FUTEX_WAIT (for `value`, without time-out) or FUTEX_WAKE (`value`
/// threads). Async-signal-safe: one system call.
fn futex(operation: c_int, value: u32) {
    let forever: *const libc::timespec = std::ptr::null();
    // SAFETY: `ARRIVED` is a live, aligned `u32`; a null time-out waits for ever (WAIT) or is
    // ignored (WAKE).
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            ARRIVED.as_ptr(),
            operation | libc::FUTEX_PRIVATE_FLAG,
            value,
            forever,
        )
    };
}

/// Built with `panic = "abort"`, a panic ends the process after the panic hook, with no
/// unwinding: this hook, chained after the one before it (which prints the message), runs every
/// pending cleanup first.
fn run_cleanups_before_abort() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        shutdown::on_exit(&Exit::panicked(info.payload()));
    }));
}

/// Whether `signal` is set to be ignored, as the process inherited it or the program set it.
fn is_ignored(signal: c_int) -> bool {
    // SAFETY: a zeroed `sigaction` is a valid out-parameter; a null new action only queries.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut current) == 0
            && current.sa_sigaction == libc::SIG_IGN
    }
}

/// Ends the process at once, by the first signal, once `count` more signals have arrived
/// during a shutdown: the habit of pressing Ctrl-C three times. Async-signal-safe.
///
/// In a shutdown by a signal, the first signal requested it, and the "more" are the ones after
/// it (counting from the request itself would also count that first signal whenever the signal
/// thread made the request before this handler got here). In a shutdown by `exit`, every
/// signal is one more: each was held back.
fn force_quit(count: u32) {
    let more = match shutdown::kind() {
        None => return,
        Some(shutdown::Kind::Signal) => SEEN.load(SeqCst) - 1,
        Some(shutdown::Kind::Exit) => SEEN.load(SeqCst),
    };
    if more < count {
        return;
    }
    let message = b"finally: forced to quit: the cleanups are cut short\n";
    // SAFETY: async-signal-safe calls with valid arguments.
    unsafe { libc::write(2, message.as_ptr().cast(), message.len()) };
    sys::die_by_now(first_signal_number());
}

mod exit_hook {
    //! The exit hook: `process::exit`, and the end of `main`, run the pending cleanups.
    //!
    //! A cleanup may call `exit` itself, while the process is exiting. Then the first `exit`'s
    //! code stands (glibc tells it to the hook; elsewhere 1), the cleanup that called it ends
    //! there, and the others still run once, however `exit` was entered again:
    //!
    //! - on the thread that runs the shutdown, after an earlier `exit`: std aborts the process
    //!   ("exit called re-entrantly") through the panic hook, where [`catch_reentry`] catches it;
    //! - after the end of `main` (libc's `exit`, which std does not guard): libc runs the hooks
    //!   still to run, [`again`] among them.

    use std::ffi::c_void;
    use std::io;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

    use libc::c_int;

    use crate::{registry, shutdown, Exit};

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    extern "C" {
        /// glibc's `atexit` that is told the exit code.
        fn on_exit(hook: extern "C" fn(c_int, *mut c_void), argument: *mut c_void) -> c_int;
    }

    /// Registers [`at_exit`].
    pub(super) fn register() -> io::Result<()> {
        if add(at_exit) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn add(hook: extern "C" fn(c_int, *mut c_void)) -> c_int {
        // SAFETY: `hook` never unwinds.
        unsafe { on_exit(hook, std::ptr::null_mut()) }
    }

    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    fn add(hook: extern "C" fn(c_int, *mut c_void)) -> c_int {
        /// Which hook `atexit` runs: it passes nothing.
        static HOOK: std::sync::OnceLock<extern "C" fn(c_int, *mut c_void)> =
            std::sync::OnceLock::new();
        extern "C" fn plain() {
            if let Some(hook) = HOOK.get() {
                hook(i32::MIN, std::ptr::null_mut());
            }
        }
        let _ = HOOK.set(hook);
        // SAFETY: `plain` never unwinds.
        unsafe { libc::atexit(plain) }
    }

    /// Runs while `exit` is in progress, on the exiting thread.
    extern "C" fn at_exit(code: c_int, _: *mut c_void) {
        if code != i32::MIN {
            shutdown::exiting_with(code);
        }
        let _ = catch_unwind(|| {
            if registry::any_pending() {
                catch_reentry();
            }
            shutdown::on_exit(&Exit::Exited);
        });
    }

    /// Runs after [`at_exit`]: at once and to no effect, or inside an `exit` that a cleanup
    /// called after the end of `main`: then it runs the cleanups still pending, and ends the
    /// process with the first code.
    extern "C" fn again(code: c_int, _: *mut c_void) {
        let _ = catch_unwind(|| {
            if shutdown::is_mine() {
                shutdown::resume();
            }
        });
        if code != i32::MIN && code != shutdown::exit_code() {
            // SAFETY: `exit` again, from an exit hook: libc runs the hooks still to run.
            unsafe { libc::exit(shutdown::exit_code()) }
        }
    }

    /// Set up once the process exits with cleanups pending (module docs).
    fn catch_reentry() {
        static SET: AtomicBool = AtomicBool::new(false);
        if SET.swap(true, SeqCst) || std::thread::panicking() {
            return;
        }
        add(again);
        let _ = catch_unwind(AssertUnwindSafe(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                let reentered = info.payload().downcast_ref::<&str>()
                    == Some(&"std::process::exit called re-entrantly");
                if reentered && shutdown::is_mine() {
                    shutdown::resume();
                    // SAFETY: `exit` again, from within `exit`: libc runs the hooks still to run.
                    unsafe { libc::exit(shutdown::exit_code()) }
                }
                previous(info);
            }));
        }));
    }
}

impl Error {
    fn new(context: &'static str, source: io::Error) -> Self {
        Error {
            context,
            source: Arc::new(source),
        }
    }
}
