//! Installing the handlers: the signal thread and the `atexit` hook.
//!
//! The signal handler, registered through signal-hook (which chains it with any other), only
//! writes the signal's number to a pipe, which is async-signal-safe. All the work happens on the
//! `finally-signals` thread, which reads the pipe.

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
        eprintln!("finally: the options of `main` come too late: the defaults are installed");
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
            eprintln!("{error}: only return, panic and exit are covered");
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
    let wanted: Vec<c_int> = config
        .signals
        .iter()
        .copied()
        .filter(|&signal| !is_ignored(signal))
        .collect();
    // The handler writes the signal's number to a pipe, and the signal thread reads it: one
    // blocking `read` between the signal and the stop, as `ctrlc` does (signal-hook's iterator
    // polls, then reads, then scans its flags: measurably slower to wake).
    let mut ends = [0 as c_int; 2];
    // SAFETY: `pipe2` fills the two descriptors.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(Error::new(
            "make the signal pipe",
            io::Error::last_os_error(),
        ));
    }
    let [read, write] = ends;
    // The reading end blocks; the handler's end must not (a full pipe already wakes the thread).
    // SAFETY: `fcntl` on our own descriptor.
    unsafe { libc::fcntl(read, libc::F_SETFL, 0) };
    for &signal in &wanted {
        let action = move || {
            // In the signal handler: only `write`, which is async-signal-safe.
            let number = signal as u8;
            // SAFETY: one byte from a live buffer to our own pipe; if full, it is awake anyway.
            unsafe { libc::write(write, (&number as *const u8).cast(), 1) };
        };
        // SAFETY: the action is async-signal-safe (above).
        unsafe { signal_hook::low_level::register(signal, action) }
            .map_err(|e| Error::new("install the signal handlers", e))?;
    }
    if let Some(count) = config.force_quit_after {
        force_quit_after(count, &wanted)?;
    }
    thread::Builder::new()
        .name("finally-signals".into())
        .spawn(move || loop {
            let mut number = 0u8;
            // SAFETY: reading one byte into a live buffer from our own pipe.
            match unsafe { libc::read(read, (&mut number as *mut u8).cast(), 1) } {
                1 => {
                    let signal = c_int::from(number);
                    if stop::on_signal(Signal::new(signal)) {
                        die_by(signal);
                    }
                    // Otherwise the process is already exiting: that stop decides how it ends.
                }
                _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
                _ => return,
            }
        })
        .map_err(|e| Error::new("start the signal thread", e))?;
    Ok(())
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

/// After `count` more signals once a stop was requested, ends the process at once, by the
/// signal that requested it: the habit of pressing Ctrl-C three times.
fn force_quit_after(count: u32, signals: &[c_int]) -> Result<(), Error> {
    static MORE: AtomicU32 = AtomicU32::new(0);
    for &signal in signals {
        let action = move || {
            // In the signal handler: only atomics, `write`, `sigaction`, `raise`, `_exit`.
            let first = stop::requested_number();
            if first == 0 || MORE.fetch_add(1, SeqCst) + 1 < count {
                return;
            }
            let message = b"finally: forced to quit: the cleanups are cut short\n";
            // SAFETY: async-signal-safe calls with valid arguments.
            unsafe {
                libc::write(2, message.as_ptr().cast(), message.len());
                die_by_unchecked(first);
            }
        };
        // SAFETY: the action is async-signal-safe (above).
        unsafe { signal_hook::low_level::register(signal, action) }
            .map_err(|e| Error::new("install the force-quit handler", e))?;
    }
    Ok(())
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
