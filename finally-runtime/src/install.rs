//! Installing the handlers, once per process: the exit hook, the signal thread and its handler,
//! the deadline thread, the fork hook.

use std::io;
use std::sync::OnceLock;

use crate::config::Config;
use crate::report::report;
use crate::Error;
use crate::{config, exit_hook, flag, fork_hook, shutdown, signals};

static INSTALLED: OnceLock<Result<(), Error>> = OnceLock::new();

/// Sets the process-wide options, before anything is installed. Returns `false` (and says so on
/// stderr) if it is too late: a guarded call already installed the defaults, or `main` came
/// twice.
pub fn configure(options: Config) -> bool {
    let set = config::set(options) && INSTALLED.get().is_none();
    if !set {
        report(format_args!(
            "the options of `main` come too late: the defaults are installed"
        ));
    }
    set
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
            report(format_args!(
                "{error} ({}): only return, panic and exit are covered",
                error.source
            ));
        }
    }
}

fn install_now() -> Result<(), Error> {
    let options = config::get();
    exit_hook::register().map_err(|e| Error::new("register the exit hook", e))?;
    // The thread first: a handler with no thread to act on what it records would swallow the
    // signals it was meant to handle.
    signals::start_thread().map_err(|e| Error::new("start the signal thread", e))?;
    if let Some(limit) = options.timeout {
        shutdown::arm_deadline(limit).map_err(|e| Error::new("start the deadline thread", e))?;
    }
    flag::when_forked_start(start_threads_in_child);
    fork_hook::register().map_err(|e| Error::new("register the fork hook", e))?;
    signals::register(options).map_err(|e| Error::new("install the signal handlers", e))
}

/// In a forked child, whose signal thread and deadline thread stayed in the parent: starts them
/// (see `flag.rs` for when).
fn start_threads_in_child() {
    let started = signals::start_thread().and_then(|()| match config::get().timeout {
        Some(limit) => shutdown::arm_deadline(limit),
        None => Ok(()),
    });
    if let Err(error) = started {
        report(format_args!(
            "could not start the signal thread in a forked child ({error}): signals end it without its cleanups"
        ));
    }
}

impl Error {
    pub(crate) fn new(context: &'static str, source: io::Error) -> Self {
        Error::because(context, source)
    }
}
