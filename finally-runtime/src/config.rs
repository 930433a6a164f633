//! The process-wide options: which signals run the cleanups, a deadline, a force-quit.

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use libc::c_int;

use crate::exit::Signal;

/// The signals that run the pending cleanups by default, and that the guardian shrugs off.
#[cfg(unix)]
pub(crate) const HANDLED: [c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// The signals `finally` can handle: those whose default action ends the process, that a program
/// can send itself or receive from a terminal or a supervisor.
#[cfg(unix)]
pub(crate) const HANDLEABLE: [c_int; 7] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
];

/// On Windows, the console control events: all of them, by default.
#[cfg(windows)]
pub(crate) const HANDLED: [c_int; 5] = [0, 1, 2, 5, 6];

#[cfg(windows)]
pub(crate) const HANDLEABLE: [c_int; 5] = HANDLED;

/// The application's policy for the whole process, set once, before the first guarded call:
/// with [`install`](crate::install()), or by the options of `#[with_cleanup]` on `main`.
///
/// ```
/// # use finally_runtime as finally;
/// use std::time::Duration;
///
/// use finally::{Options, Signal};
///
/// let options = Options::new()
///     .signals(&[Signal::SIGINT, Signal::SIGTERM]) // SIGHUP reloads the configuration
///     .timeout(Duration::from_secs(25))
///     .force_quit_after(3);
/// # let _ = options;
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// The signals that run the cleanups, as a set of signal numbers.
    signals: u64,
    pub(crate) timeout: Option<Duration>,
    pub(crate) force_quit_after: Option<u32>,
}

impl Options {
    /// The defaults: SIGINT, SIGTERM, SIGHUP and SIGQUIT run the cleanups; no deadline; no
    /// force-quit.
    #[must_use = "the options do nothing until given to `finally::install`"]
    pub const fn new() -> Self {
        Options {
            signals: set_of(&HANDLED),
            timeout: None,
            force_quit_after: None,
        }
    }

    /// The signals that run the cleanups, of SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2
    /// and SIGALRM ([`install`](crate::install()) refuses others). A signal left out is left
    /// alone: `finally` installs nothing for it.
    #[must_use = "`Options` is a value: this returns the changed options and leaves these as they were"]
    pub const fn signals(mut self, signals: &[Signal]) -> Self {
        self.signals = 0;
        let mut i = 0;
        while i < signals.len() {
            self.signals |= bit(signals[i].number());
            i += 1;
        }
        self
    }

    /// No signal runs the cleanups: `finally` installs no signal handler, and the application
    /// handles every signal itself. The cleanups run on return, panic and `exit`, and when the
    /// application calls [`end_by`](crate::end_by).
    #[must_use = "`Options` is a value: this returns the changed options and leaves these as they were"]
    pub const fn leave_signals_to_me(self) -> Self {
        self.signals(&[])
    }

    /// A deadline for the cleanups after a signal, grace periods included, or after `exit`:
    /// past it the process ends anyway, by the signal or with the exit code. It counts from the
    /// signal; grace periods end within its first three quarters, however long they are, so
    /// that the cleanups keep the last quarter.
    #[must_use = "`Options` is a value: this returns the changed options and leaves these as they were"]
    pub const fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// After `count` more signals during the cleanups, the process ends at once, by the first
    /// signal (0 turns it off).
    #[must_use = "`Options` is a value: this returns the changed options and leaves these as they were"]
    pub const fn force_quit_after(mut self, count: u32) -> Self {
        self.force_quit_after = Some(count);
        self
    }

    /// Whether `signal` runs the cleanups.
    pub(crate) fn has_signal(&self, signal: c_int) -> bool {
        self.signals & bit(signal) != 0
    }

    /// The signals that run the cleanups, by number.
    pub(crate) fn signal_numbers(&self) -> impl Iterator<Item = c_int> + '_ {
        (0..64).filter(|&signal| self.has_signal(signal))
    }

    /// The first signal of these options that `finally` cannot handle.
    pub(crate) fn unhandleable(&self) -> Option<Signal> {
        self.signal_numbers()
            .find(|signal| !HANDLEABLE.contains(signal))
            .map(Signal::new)
    }
}

impl Default for Options {
    fn default() -> Self {
        Options::new()
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let signals: Vec<Signal> = self.signal_numbers().map(Signal::new).collect();
        f.debug_struct("Options")
            .field("signals", &signals)
            .field("timeout", &self.timeout)
            .field("force_quit_after", &self.force_quit_after)
            .finish()
    }
}

/// `signal`'s bit in a set of signals; none for a number outside 0..64.
const fn bit(signal: c_int) -> u64 {
    if signal >= 0 && signal < 64 {
        1 << signal
    } else {
        0
    }
}

const fn set_of(signals: &[c_int]) -> u64 {
    let mut set = 0;
    let mut i = 0;
    while i < signals.len() {
        set |= bit(signals[i]);
        i += 1;
    }
    set
}

static OPTIONS: OnceLock<Options> = OnceLock::new();

/// Sets the options, once: `false` if they were set, or read, before.
pub(crate) fn set(options: Options) -> bool {
    OPTIONS.set(options).is_ok()
}

/// The options: those set, or the defaults from the first time they are read.
pub(crate) fn get() -> &'static Options {
    OPTIONS.get_or_init(Options::new)
}

/// The options, if they are set (or were read): unlike [`get`], leaves them to be set.
pub(crate) fn peek() -> Option<&'static Options> {
    OPTIONS.get()
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn signals_are_a_set_and_leaving_them_empties_it() {
        let numbers = |options: Options| options.signal_numbers().collect::<Vec<_>>();
        let mut default = HANDLED.to_vec();
        default.sort_unstable();
        assert_eq!(numbers(Options::new()), default);
        let two = Options::new().signals(&[Signal::SIGTERM, Signal::SIGINT, Signal::SIGINT]);
        assert_eq!(numbers(two), [libc::SIGINT, libc::SIGTERM]);
        assert_eq!(numbers(Options::new().leave_signals_to_me()), []);
        assert_eq!(two.unhandleable(), None);
        let kill = Options::new().signals(&[Signal::SIGINT, Signal::SIGKILL]);
        assert_eq!(kill.unhandleable(), Some(Signal::SIGKILL));
    }
}
