//! Why a guarded function ended, as told to a cleanup.

use std::any::Any;
use std::{fmt, io};

use crate::error::Error;

/// Why a guarded function ended: the argument of a `fn(&Exit)` cleanup.
///
/// New variants may be added: match with a wildcard arm.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The function returned (a `Result::Err` counts: the function returned it).
    Returned,
    /// The function panicked; the panic continues after the cleanup.
    #[non_exhaustive]
    Panicked {
        /// The panic message, when the payload was a string.
        message: Option<String>,
    },
    /// A handled signal (by default SIGINT, SIGTERM, SIGHUP or SIGQUIT) arrived while the
    /// cleanup was pending; the process ends by that signal after the cleanups. A function that
    /// returns (or a guard dropped other than by a panic) once the stop is requested is told
    /// this too: it may have returned because of it.
    Signal(Signal),
    /// The process exited (`std::process::exit`, or the end of `main` while another thread's
    /// cleanup was pending); the exit code is kept.
    #[non_exhaustive]
    Exited {
        /// The exit code, where the C library tells it (glibc does).
        code: Option<i32>,
    },
    /// An `async fn`'s future was dropped before it finished.
    Cancelled,
    /// Reported by the guardian process only: the program ended without running its own cleanup
    /// (SIGKILL, a crash, an abort).
    #[non_exhaustive]
    Died {
        /// The signal that ended the program, where known.
        signal: Option<Signal>,
    },
    /// Told by [`recover`](crate::recover), in a later process: the process that made this
    /// durable guard ended without running its cleanup, and without a guardian that could
    /// (killed with its guardian, its container or its machine gone).
    #[non_exhaustive]
    Recovered {
        /// The process that made the guard.
        owner: u32,
    },
}

/// The payload of the unwinding that stops a thread during a shutdown (`stop.rs`): not a panic,
/// but why the functions it leaves ended, the shutdown's reason.
///
/// Std's types only, so that every copy of `finally` in the process knows it, whichever copy
/// stopped the thread: [`STOPPED`], then a signal's number, or 0 and an exit code (`i32::MIN`
/// if unknown).
pub(crate) type Stopped = (&'static str, i32, i32);

/// The mark of a [`Stopped`] payload, compared by its text.
const STOPPED: &str = "finally: this thread is stopped while the process ends";

/// The payload that stops a thread for `reason`.
pub(crate) fn stopped(reason: &Exit) -> Stopped {
    match reason {
        Exit::Signal(signal) => (STOPPED, signal.number(), 0),
        Exit::Exited { code } => (STOPPED, 0, code.unwrap_or(i32::MIN)),
        _ => (STOPPED, 0, i32::MIN),
    }
}

/// The reason a [`Stopped`] payload carries, if `payload` is one.
pub(crate) fn stopped_for(payload: &(dyn Any + Send)) -> Option<Exit> {
    match payload.downcast_ref::<Stopped>() {
        Some(&(mark, signal, code)) if mark == STOPPED => Some(match signal {
            0 => Exit::exited((code != i32::MIN).then_some(code)),
            _ => Exit::Signal(Signal::new(signal)),
        }),
        _ => None,
    }
}

/// The variants that carry fields are built with these (they are `#[non_exhaustive]`), to call
/// a cleanup in a test as `finally` would:
///
/// ```
/// # use finally_runtime::{Exit, Signal};
/// fn remove_scratch(exit: &Exit) -> Result<(), String> {
///     match exit {
///         Exit::Died { .. } => Err(format!("the program {exit}: nothing to keep")),
///         _ => Ok(()),
///     }
/// }
///
/// assert!(remove_scratch(&Exit::panicked(Some("boom"))).is_ok());
/// assert!(remove_scratch(&Exit::exited(Some(3))).is_ok());
/// assert!(remove_scratch(&Exit::died(None)).is_err());
/// assert!(remove_scratch(&Exit::Signal(Signal::SIGTERM)).is_ok());
/// assert_eq!(Exit::panicked(None).to_string(), "panicked");
/// ```
impl Exit {
    /// [`Exit::Panicked`], with the panic's message if it had one.
    pub fn panicked(message: Option<&str>) -> Self {
        Exit::Panicked {
            message: message.map(str::to_owned),
        }
    }

    /// [`Exit::Exited`], with the exit code if known.
    pub fn exited(code: Option<i32>) -> Self {
        Exit::Exited { code }
    }

    /// [`Exit::Died`], with the signal that ended the program if known.
    pub fn died(signal: Option<Signal>) -> Self {
        Exit::Died { signal }
    }

    /// `Exit::Panicked` with the message of a panic payload; for the unwinding that stops a
    /// thread, the shutdown's reason that it carries.
    pub(crate) fn from_panic(payload: &(dyn Any + Send)) -> Self {
        stopped_for(payload).unwrap_or_else(|| Exit::panicked(panic_message(payload)))
    }

    /// The signal that ended the function, for `Signal` (and `Died`, where known): compare it
    /// with [`Signal::SIGTERM`] and the like, or with a number such as `libc::SIGTERM`.
    ///
    /// ```
    /// # use finally_runtime::{Exit, Signal};
    /// fn cleanup(exit: &Exit) {
    ///     if exit.signal() == Some(Signal::SIGHUP) {
    ///         // the terminal went away: nobody reads stdout any more
    ///     }
    /// }
    /// ```
    pub fn signal(&self) -> Option<Signal> {
        match self {
            Exit::Signal(signal) => Some(*signal),
            Exit::Died { signal } => *signal,
            _ => None,
        }
    }

    /// The exit code the process ends with, where known: for `Exited`.
    pub fn code(&self) -> Option<i32> {
        match self {
            Exit::Exited { code } => *code,
            _ => None,
        }
    }

    /// Whether the function ended well: it returned (with `Ok` or `Err` alike: it chose to), or
    /// the process exited with code 0. Not when it panicked, was stopped by a signal,
    /// cancelled, or died.
    pub fn ended_well(&self) -> bool {
        matches!(self, Exit::Returned | Exit::Exited { code: Some(0) })
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Returned => f.write_str("returned"),
            Exit::Panicked { message: Some(m) } => write!(f, "panicked: {m}"),
            Exit::Panicked { message: None } => f.write_str("panicked"),
            Exit::Signal(signal) => write!(f, "stopped by {signal}"),
            Exit::Exited { code: Some(code) } => write!(f, "the process exited with {code}"),
            Exit::Exited { code: None } => f.write_str("the process exited"),
            Exit::Cancelled => f.write_str("cancelled before it finished"),
            Exit::Died { signal: Some(s) } => write!(f, "died by {s} without its own cleanup"),
            Exit::Died { signal: None } => f.write_str("died without its own cleanup"),
            Exit::Recovered { owner } => {
                write!(
                    f,
                    "recovered: its process ({owner}) ended without its cleanup"
                )
            }
        }
    }
}

/// The message of a panic payload, where it is a string.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&'static str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// A Unix signal, or on Windows a console control event: its number, and its name.
///
/// Named by constants (`Signal::SIGTERM`), made from a number (`Signal::try_from(15)`),
/// compared with either, and printed with both:
///
/// ```
/// # use finally_runtime::Signal;
/// # #[cfg(unix)] {
/// let signal = Signal::SIGTERM;
/// assert_eq!(signal.number(), libc::SIGTERM);
/// assert!(signal == libc::SIGTERM);
/// assert_eq!(signal.to_string(), "SIGTERM (15)");
/// assert_eq!(format!("{signal:?}"), "SIGTERM=15");
/// # }
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal(libc::c_int);

#[cfg(unix)]
impl Signal {
    /// Ctrl-C.
    pub const SIGINT: Signal = Signal(libc::SIGINT);
    /// `kill`'s default; the usual request to stop (`docker stop`, systemd, Kubernetes).
    pub const SIGTERM: Signal = Signal(libc::SIGTERM);
    /// The terminal went away.
    pub const SIGHUP: Signal = Signal(libc::SIGHUP);
    /// Ctrl-\\.
    pub const SIGQUIT: Signal = Signal(libc::SIGQUIT);
    /// `kill -9`: as the guardian may report it.
    pub const SIGKILL: Signal = Signal(libc::SIGKILL);
    /// A segmentation fault.
    pub const SIGSEGV: Signal = Signal(libc::SIGSEGV);
    /// A bus error.
    pub const SIGBUS: Signal = Signal(libc::SIGBUS);
    /// An illegal instruction.
    pub const SIGILL: Signal = Signal(libc::SIGILL);
    /// An arithmetic fault.
    pub const SIGFPE: Signal = Signal(libc::SIGFPE);
    /// `abort`, or a panic that could not unwind.
    pub const SIGABRT: Signal = Signal(libc::SIGABRT);
    /// The first signal left to programs.
    pub const SIGUSR1: Signal = Signal(libc::SIGUSR1);
    /// The second signal left to programs.
    pub const SIGUSR2: Signal = Signal(libc::SIGUSR2);
    /// A timer (`alarm`).
    pub const SIGALRM: Signal = Signal(libc::SIGALRM);

    /// The signal's name, such as `"SIGTERM"`, or `"SIG?"` for a number without a name.
    pub fn name(self) -> &'static str {
        signal_hook::low_level::signal_name(self.0).unwrap_or("SIG?")
    }
}

/// On Windows, the console control events, by their names and by those of the Unix signals
/// that come closest, so that `signals = [SIGINT]` and `Signal::SIGINT` mean Ctrl-C on both.
#[cfg(windows)]
impl Signal {
    /// Ctrl-C: `CTRL_C_EVENT`.
    pub const CTRL_C: Signal = Signal(0);
    /// Ctrl-Break: `CTRL_BREAK_EVENT`.
    pub const CTRL_BREAK: Signal = Signal(1);
    /// The console window closed: `CTRL_CLOSE_EVENT`. Windows ends the process about 5 s
    /// later, cleanups or not.
    pub const CTRL_CLOSE: Signal = Signal(2);
    /// The user logs off: `CTRL_LOGOFF_EVENT` (for processes without a window of their own).
    pub const CTRL_LOGOFF: Signal = Signal(5);
    /// The system shuts down: `CTRL_SHUTDOWN_EVENT` (for processes without a window of their
    /// own).
    pub const CTRL_SHUTDOWN: Signal = Signal(6);
    /// Ctrl-C, by its Unix name.
    pub const SIGINT: Signal = Signal::CTRL_C;
    /// Ctrl-Break, by the name of Unix's Ctrl-\\.
    pub const SIGQUIT: Signal = Signal::CTRL_BREAK;
    /// The console closed, by the name of Unix's terminal gone away.
    pub const SIGHUP: Signal = Signal::CTRL_CLOSE;
    /// The system shutting down, by the name of Unix's request to stop.
    pub const SIGTERM: Signal = Signal::CTRL_SHUTDOWN;

    /// The event's name, such as `"CTRL_C_EVENT"`, or `"CTRL_?"` for a number without a name.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "CTRL_C_EVENT",
            1 => "CTRL_BREAK_EVENT",
            2 => "CTRL_CLOSE_EVENT",
            5 => "CTRL_LOGOFF_EVENT",
            6 => "CTRL_SHUTDOWN_EVENT",
            _ => "CTRL_?",
        }
    }
}

impl Signal {
    pub(crate) const fn new(number: libc::c_int) -> Self {
        Signal(number)
    }

    /// The signal number, as `kill -l` lists it (SIGTERM is 15); on Windows the console event's
    /// (`CTRL_C_EVENT` is 0).
    pub const fn number(self) -> i32 {
        self.0
    }
}

/// A signal from its number, as a C library, `kill -l` or another crate gives it: one this
/// system has (on Windows, one of the console events above).
///
/// ```
/// # use finally_runtime::Signal;
/// # #[cfg(unix)] {
/// assert_eq!(Signal::try_from(15).unwrap(), Signal::SIGTERM);
/// assert_eq!(Signal::try_from(libc::SIGINT).unwrap().name(), "SIGINT");
/// assert!(Signal::try_from(0).is_err());
/// assert!(Signal::try_from(-1).is_err());
/// # }
/// ```
impl TryFrom<i32> for Signal {
    type Error = Error;

    fn try_from(number: i32) -> Result<Self, Error> {
        #[cfg(unix)]
        let exists = number > 0 && crate::sys::signal::action(number).is_some();
        #[cfg(windows)]
        let exists = matches!(number, 0 | 1 | 2 | 5 | 6);
        match exists {
            true => Ok(Signal(number)),
            false => Err(Error::because(
                "take the number for a signal",
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{number} is not the number of a signal on this system"),
                ),
            )),
        }
    }
}

/// A signal is its number: `exit.signal() == Some(libc::SIGTERM)` reads as it should.
impl PartialEq<i32> for Signal {
    fn eq(&self, number: &i32) -> bool {
        self.0 == *number
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name(), self.0)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn debug_names_the_variant_and_the_signal() {
        let exit = Exit::Signal(Signal::new(libc::SIGTERM));
        assert_eq!(format!("{exit:?}"), "Signal(SIGTERM=15)");
        assert_eq!(exit.to_string(), "stopped by SIGTERM (15)");
        assert_eq!(format!("{:?}", Exit::Returned), "Returned");
    }

    #[test]
    fn signals_compare_with_their_numbers_and_named_constants() {
        let exit = Exit::Signal(Signal::new(libc::SIGTERM));
        assert_eq!(exit.signal(), Some(Signal::SIGTERM));
        assert!(exit.signal().is_some_and(|signal| signal == libc::SIGTERM));
        assert!(!exit.ended_well());
        assert!(Exit::Returned.ended_well());
        assert!(Exit::exited(Some(0)).ended_well());
        assert!(!Exit::exited(Some(3)).ended_well());
        assert_eq!(Exit::exited(Some(3)).code(), Some(3));
        assert_eq!(
            Exit::exited(Some(3)).to_string(),
            "the process exited with 3"
        );
        assert!(!Exit::exited(None).ended_well());
    }

    #[test]
    fn panic_messages_of_both_string_kinds() {
        let owned: Box<dyn Any + Send> = Box::new(String::from("boom"));
        let fixed: Box<dyn Any + Send> = Box::new("bang");
        let other: Box<dyn Any + Send> = Box::new(7);
        assert_eq!(panic_message(&*owned), Some("boom"));
        assert_eq!(panic_message(&*fixed), Some("bang"));
        assert_eq!(panic_message(&*other), None);
        assert_eq!(Exit::from_panic(&*owned).to_string(), "panicked: boom");
    }
}
