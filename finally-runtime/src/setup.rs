//! Installing the handlers, once per process: the exit hook, the signal thread and its handler,
//! the `finally-trace` thread (the `tracing` feature), the deadline thread, the fork hook.

use std::io;
use std::sync::OnceLock;

use crate::config::Options;
use crate::error::Error;
use crate::exit::Signal;
use crate::handling::Handling;
use crate::report::report;
use crate::{config, exit_hook, shutdown, signals, trace};
#[cfg(unix)]
use crate::{flag, fork_hook};

static INSTALLED: OnceLock<Result<(), Error>> = OnceLock::new();

/// Sets the options of `main`, before anything is installed; says so on stderr if it is too
/// late: a guarded call already installed the defaults, or `main` came twice. (Nothing to
/// return: the generated call would be an unused result in the user's `main`.)
pub fn configure(options: Options) {
    if !config::set(options) || INSTALLED.get().is_some() {
        report(format_args!(
            "the options of `main` come too late: the defaults are installed"
        ));
    }
}

/// Sets the application's policy for the whole process and installs `finally`'s exit hook and
/// signal handlers, once.
///
/// Guarded functions and guards install the defaults ([`Options::new`]) on their first use, so
/// calling this is needed only to choose other options, or to handle a failure yourself instead
/// of the one-line report on stderr. Call it first thing in `main`, before any guarded call
/// (a library's included): options come too late once the defaults are installed. A library
/// never calls it; the application does, and its policy then holds for every library in the
/// process. Signals that were ignored when it runs (as `nohup` ignores SIGHUP) stay ignored.
///
/// ```
/// # use finally_runtime as finally;
/// // The application handles its signals itself; the libraries' cleanups run when it ends.
/// finally::install(finally::Options::new().leave_signals_to_me()).expect("finally installed");
/// ```
///
/// # Errors
///
/// When the options come too late (installed before with other options), name a signal that
/// cannot run the cleanups, or the handlers, the signal thread or the exit hook cannot be set
/// up. Later calls with the same options return the same result. An error that the `timeout`'s
/// thread could not be made (a pids limit) leaves everything else installed: the cleanups then
/// run without a deadline.
pub fn install(options: Options) -> Result<(), Error> {
    if let Some(signal) = options.unhandleable() {
        return Err(Error::because(
            "install finally's signal handlers",
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{signal} cannot run the cleanups: only {} can",
                    handleable()
                ),
            ),
        ));
    }
    if !config::set(options) && *config::get() != options {
        return Err(Error::because(
            "apply the options",
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "finally was installed before, with {:?}: call `finally::install` first thing in `main`, before any guarded call",
                    config::get()
                ),
            ),
        ));
    }
    INSTALLED.get_or_init(install_now).clone()
}

/// Which signals `finally` handles in this process, and why not the others: each signal it can
/// handle (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGALRM; on Windows the
/// console events), with its [`Handling`].
///
/// For the question "why does Ctrl-C (or `kill`) not run my cleanups?": a program started as a
/// background job of a script inherits SIGINT ignored, `nohup` ignores SIGHUP, the application
/// or a library may handle the signal itself, the options may leave it out. It is told with no
/// signal arriving, from what `finally` installed and what the system says of each signal now.
/// Asking installs nothing, and leaves the options to be set.
///
/// ```
/// # use finally_runtime as finally;
/// for (signal, handling) in finally::signal_handling() {
///     eprintln!("{signal}: {handling}");
/// }
/// ```
///
/// prints, in a program started with `prog &` from a script, once it is installed:
///
/// ```text
/// SIGINT (2): ignored when finally was installed (inherited from `nohup`, or as a background job of a script): it stays ignored, and does nothing
/// SIGTERM (15): handled by finally: it runs the pending cleanups, then the process ends by it
/// ...
/// ```
pub fn signal_handling() -> impl Iterator<Item = (Signal, Handling)> {
    let installed = INSTALLED.get();
    let options = config::peek();
    let all: Vec<_> = config::HANDLEABLE
        .iter()
        .map(|&number| {
            let handling = match (installed, options) {
                (_, Some(options)) if !options.has_signal(number) => Handling::NotChosen,
                (None, _) => Handling::NotInstalled,
                (Some(result), _) => match (signals::handling(number), result) {
                    (Some(handling), _) => handling,
                    (None, Err(error)) => Handling::InstallFailed(error.clone()),
                    // Not reached: an install that succeeded came to every chosen signal.
                    (None, Ok(())) => Handling::NotInstalled,
                },
            };
            (Signal::new(number), handling)
        })
        .collect();
    all.into_iter()
}

/// The signals that can run the cleanups, named.
fn handleable() -> String {
    let names: Vec<&str> = config::HANDLEABLE
        .iter()
        .map(|&number| Signal::new(number).name())
        .collect();
    names.join(", ")
}

/// Installs the options set, or the defaults, reporting a failure on stderr once instead of
/// returning it.
pub(crate) fn install_once() {
    if INSTALLED.get().is_none() {
        if let Err(error) = install(*config::get()) {
            let left = match error.context() {
                // Everything else is installed: the message says so.
                NO_DEADLINE => "",
                _ => ": only return, panic and exit are covered",
            };
            report(format_args!("{error} ({}){left}", error.io_error()));
        }
    }
}

/// What is said when the deadline thread cannot be made: the one part of the install that
/// fails alone.
const NO_DEADLINE: &str =
    "start the deadline thread: the cleanups have no deadline, everything else is installed";

fn install_now() -> Result<(), Error> {
    let options = config::get();
    exit_hook::register().map_err(|e| Error::because("register the exit hook", e))?;
    // The thread first: a handler with no thread to act on what it records would swallow the
    // signals it was meant to handle.
    signals::start_thread().map_err(|e| Error::because("start the signal thread", e))?;
    start_trace_thread();
    #[cfg(unix)]
    {
        flag::when_forked_start(start_threads_in_child);
        fork_hook::register().map_err(|e| Error::because("register the fork hook", e))?;
    }
    signals::register(options).map_err(|e| Error::because("install the signal handlers", e))?;
    // Last, and alone: where no more threads can be made (a pids limit), the rest is installed.
    arm_deadline().map_err(|e| Error::because(NO_DEADLINE, e))
}

/// Makes the thread that tells `tracing` what the program's ending does (the `tracing`
/// feature): without it, the rest works, untold.
fn start_trace_thread() {
    if let Err(error) = trace::start_thread() {
        report(format_args!(
            "could not start the thread that tells `tracing` ({error}): the program's ending is not traced"
        ));
    }
}

/// Makes the deadline thread, if the options have a `timeout`.
fn arm_deadline() -> io::Result<()> {
    match config::get().timeout {
        Some(limit) => shutdown::arm_deadline(limit),
        None => Ok(()),
    }
}

/// In a forked child, whose signal, trace and deadline threads stayed in the parent: starts them
/// (see `flag.rs` for when).
#[cfg(unix)]
fn start_threads_in_child() {
    if let Err(error) = signals::start_thread() {
        report(format_args!(
            "could not start the signal thread in a forked child ({error}): signals end it without its cleanups"
        ));
        return;
    }
    start_trace_thread();
    if let Err(error) = arm_deadline() {
        report(format_args!(
            "could not start the deadline thread in a forked child ({error}): its cleanups have no deadline"
        ));
    }
}
