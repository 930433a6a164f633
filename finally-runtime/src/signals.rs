//! Installing the handlers: the signal thread and the `atexit` hook.
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

use crate::stop;
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
    // SAFETY: `at_exit` is an `extern "C" fn()` that never unwinds.
    if unsafe { libc::atexit(at_exit) } != 0 {
        return Err(Error::new(
            "register the exit hook",
            io::Error::last_os_error(),
        ));
    }
    if cfg!(panic = "abort") {
        run_cleanups_before_abort();
    }
    let config = config();
    // The thread first: a handler with no thread to act on what it records would swallow the
    // signals it was meant to handle.
    thread::Builder::new()
        .name("finally-signals".into())
        .spawn(|| {
            let signal = first_signal();
            if stop::on_signal(Signal::new(signal)) {
                die_by(signal);
            }
            // Otherwise the process is already exiting: that stop decides how it ends, and
            // later signals change nothing.
        })
        .map_err(|e| Error::new("start the signal thread", e))?;
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

/// The number of the first handled signal, or 0: only the first matters, since it starts the
/// stop, and a stop is never started twice.
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
    futex(libc::FUTEX_WAKE, 1);
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
        stop::on_end(&Exit::panicked(info.payload()));
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

/// Ends the process at once, by the signal that requested the stop, once `count` more have
/// arrived after it: the habit of pressing Ctrl-C three times. Async-signal-safe.
///
/// The signal that requested the stop is the first one [`arrived`] counted: counting from the
/// request itself would also count that first signal whenever the signal thread made the
/// request before this handler got here.
fn force_quit(count: u32) {
    let first = stop::requested_number();
    if first == 0 || SEEN.load(SeqCst) - 1 < count {
        return;
    }
    let message = b"finally: forced to quit: the cleanups are cut short\n";
    // SAFETY: async-signal-safe calls with valid arguments.
    unsafe {
        libc::write(2, message.as_ptr().cast(), message.len());
        die_by_unchecked(first);
    }
}

/// Ends the process by `signal`, as if no handler had been installed.
pub(crate) fn die_by(signal: c_int) -> ! {
    // SAFETY: async-signal-safe calls with valid arguments; the process ends by the signal.
    unsafe { reraise(signal) };
    // Still alive: the default action did not end the process, as for PID 1 in a container,
    // where the kernel drops signals left at their default action.
    std::process::exit(128 + signal)
}

/// [`die_by`] for a signal handler: ends the process without running or flushing anything.
///
/// # Safety
///
/// Ends the process at once: no destructor runs, no buffer is flushed.
unsafe fn die_by_unchecked(signal: c_int) -> ! {
    // SAFETY: the caller accepts the end.
    unsafe {
        reraise(signal);
        libc::_exit(128 + signal)
    }
}

/// Restores `signal`'s default action, unblocks it and raises it. Async-signal-safe.
///
/// # Safety
///
/// Where the default action ends the process, it ends here.
unsafe fn reraise(signal: c_int) {
    // SAFETY: plain libc calls with valid arguments.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(signal);
    }
}

/// Runs while `exit` is in progress, on the exiting thread.
extern "C" fn at_exit() {
    let _ = catch_unwind(|| stop::on_end(&Exit::Exited));
}

impl Error {
    fn new(context: &'static str, source: io::Error) -> Self {
        Error {
            context,
            source: Arc::new(source),
        }
    }
}
