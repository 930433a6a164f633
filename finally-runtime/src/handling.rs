//! What `finally` does with each signal it can handle, and why not, as
//! [`signal_handling`](crate::signal_handling) tells it.

use std::fmt;

use crate::error::Error;

/// Whether `finally` handles a signal in this process, and if not, why: what
/// [`signal_handling`](crate::signal_handling) says of each signal.
///
/// Told without a signal arriving, from what `finally` installed and what `sigaction` says of
/// the signal now: a handler installed or changed later changes the answer. `Display` says it
/// in one line.
///
/// New variants may be added: match with a wildcard arm.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub enum Handling {
    /// `finally`'s handler takes the signal: with cleanups pending, it runs them, and the process
    /// ends by the signal; with none, the signal has its default effect. Another copy of
    /// `finally` in the process (another version, through another library) takes it together
    /// with this one.
    ///
    /// On Windows: `finally`'s console control handler is added. Windows does not tell whether a
    /// handler added after it takes the event first, nor whether the process ignores Ctrl-C (as
    /// one started with `CREATE_NEW_PROCESS_GROUP` does).
    Handled,
    /// The options leave the signal out ([`Options::signals`](crate::Options::signals),
    /// `signals = [...]` on `main`, [`leave_signals_to_me`](crate::Options::leave_signals_to_me)):
    /// `finally` installed nothing for it.
    NotChosen,
    /// The signal was ignored when `finally` was installed, and `finally` leaves it so: it does
    /// nothing. A program inherits it ignored from `nohup` (SIGHUP), or as a background job of a
    /// non-interactive shell (`prog &` in a script: SIGINT and SIGQUIT); or the program ignored it
    /// itself.
    Ignored,
    /// Someone else's handler was there before `finally`'s (the application's, or a library's:
    /// signal-hook, tokio, ctrlc): the signal is theirs. `finally` calls that handler and does
    /// nothing more; the cleanups run as the application winds down, on `exit`, or at
    /// [`end_by`](crate::end_by).
    HandlerBefore,
    /// Someone else's handler was installed over `finally`'s (the application's, or a library's:
    /// signal-hook, tokio, ctrlc): the signal is theirs. The cleanups run as the application
    /// winds down, on `exit`, or at [`end_by`](crate::end_by).
    HandlerAfter,
    /// `finally`'s handler was installed, and since then someone set the signal back to its
    /// default action, or to be ignored: `finally` does not see it.
    Removed,
    /// `finally` is not installed yet: nothing was guarded so far (no guarded call, no guard) and
    /// [`install`](crate::install()) was not called. Until then every signal has its usual effect.
    NotInstalled,
    /// `finally` could not be installed: only return, panic and exit run the cleanups.
    InstallFailed(Error),
}

impl Handling {
    /// Whether `finally`'s handler takes the signal ([`Handling::Handled`]).
    pub fn is_handled(&self) -> bool {
        matches!(self, Handling::Handled)
    }
}

impl fmt::Display for Handling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(unix)]
            Handling::Handled => f.write_str(
                "handled by finally: it runs the pending cleanups, then the process ends by it",
            ),
            #[cfg(windows)]
            Handling::Handled => f.write_str(
                "handled by finally: it runs the pending cleanups, unless a console handler added later takes the event first (Windows does not tell)",
            ),
            Handling::NotChosen => f.write_str(
                "not among the options' signals (`signals = [...]`, `leave_signals_to_me`): finally leaves it alone",
            ),
            Handling::Ignored => f.write_str(
                "ignored when finally was installed (inherited from `nohup`, or as a background job of a script): it stays ignored, and does nothing",
            ),
            Handling::HandlerBefore => f.write_str(
                "left to the handler that was there before finally's (the application's, or a library's): the cleanups run as the program ends, or at `finally::end_by`",
            ),
            Handling::HandlerAfter => f.write_str(
                "left to a handler installed over finally's (the application's, or a library's): the cleanups run as the program ends, or at `finally::end_by`",
            ),
            Handling::Removed => f.write_str(
                "finally's handler was replaced since by the default action or by ignoring it: finally does not see it",
            ),
            Handling::NotInstalled => f.write_str(
                "not handled yet: finally installs its handlers at the first guarded call, or at `finally::install`",
            ),
            Handling::InstallFailed(error) => write!(
                f,
                "not handled: finally {error} ({}): only return, panic and exit run the cleanups",
                error.io_error()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    #[test]
    fn each_reason_is_one_line() {
        let failed = Error::because(
            "start the signal thread",
            io::Error::from(io::ErrorKind::WouldBlock),
        );
        let all = [
            Handling::Handled,
            Handling::NotChosen,
            Handling::Ignored,
            Handling::HandlerBefore,
            Handling::HandlerAfter,
            Handling::Removed,
            Handling::NotInstalled,
            Handling::InstallFailed(failed),
        ];
        for handling in &all {
            let line = handling.to_string();
            assert!(
                !line.is_empty() && !line.contains('\n'),
                "{handling:?}: {line}"
            );
        }
        assert!(all[7]
            .to_string()
            .starts_with("not handled: finally could not start the signal thread ("));
        assert_eq!(format!("{:?}", all[2]), "Ignored");
        assert!(all[0].is_handled() && !all[1].is_handled());
    }
}
