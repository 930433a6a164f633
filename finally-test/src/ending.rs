//! The ways a program can end, as a test makes them happen.

use std::fmt;

/// One way for a running program to end, as [`Running::end`](crate::Running::end) and
/// [`Program::run_until_ready_then`](crate::Program::run_until_ready_then) make it happen.
///
/// The parent causes the signals, the hang-up and the kill from outside, as the system or a
/// user would. A return, a panic, an `exit`, a crash and an abort can only come from the
/// program's own code: the kit asks for them with a line on the program's stdin, which the program acts on
/// with [`wait_for_ending`](crate::wait_for_ending) (the [child's protocol](crate#the-childs-side)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ending {
    /// Asks the program to return from [`wait_for_ending`](crate::wait_for_ending) (the line
    /// `return`).
    Return,
    /// Asks the program to panic in [`wait_for_ending`](crate::wait_for_ending) (the line
    /// `panic`), with the message `asked to panic`.
    Panic,
    /// Asks the program to call `std::process::exit(code)` (the line `exit CODE`).
    Exit(i32),
    /// Sends the signal to the process, as `kill -SIGNAL PID` does.
    Signal(i32),
    /// Sends the signal to the program's process group, as `kill -SIGNAL -PGID` does (a
    /// guardian in that group gets it too). The one-liner starts the program in a group of its
    /// own for it.
    SignalGroup(i32),
    /// Hangs up the program's terminal: the kernel sends SIGHUP to it (and SIGCONT), and its
    /// writes to the terminal fail with `EIO` from then on. The one-liner starts the program on
    /// a [terminal](crate::Program::terminal) for it.
    HangUp,
    /// Presses Ctrl-C this many times: as many SIGINTs to the process group (as a terminal
    /// sends them), a millisecond apart. The one-liner starts the program in a group of its
    /// own for it.
    CtrlC(u32),
    /// `kill -9`: SIGKILL to the process. A guardian that the program started then runs its
    /// cleanup; [`Running::wait`](crate::Running::wait) waits for it, since it holds the
    /// program's stderr until it ends.
    Kill,
    /// A crash: asks the program to write to an address that is never mapped (the line
    /// `crash`); the kernel sends it SIGSEGV, as for any invalid memory access. (A SIGSEGV sent
    /// from outside is not one: Rust's own handler for stack overflows lets it pass, and the
    /// program goes on.) No core is dumped.
    Crash,
    /// Asks the program to call `std::process::abort` (the line `abort`): it ends by SIGABRT,
    /// as after a double panic.
    Abort,
}

impl Ending {
    /// The line on stdin that asks the program for this ending, if it is one the program
    /// causes itself.
    pub(crate) fn request(self) -> Option<String> {
        match self {
            Ending::Return => Some("return".to_owned()),
            Ending::Panic => Some("panic".to_owned()),
            Ending::Exit(code) => Some(format!("exit {code}")),
            Ending::Crash => Some("crash".to_owned()),
            Ending::Abort => Some("abort".to_owned()),
            _ => None,
        }
    }
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ending::Return => f.write_str("return"),
            Ending::Panic => f.write_str("panic"),
            Ending::Exit(code) => write!(f, "exit({code})"),
            Ending::Signal(signal) => write!(f, "{} to the process", signal_name(*signal)),
            Ending::SignalGroup(signal) => write!(f, "{} to the group", signal_name(*signal)),
            Ending::HangUp => f.write_str("the terminal hung up"),
            Ending::CtrlC(times) => write!(f, "Ctrl-C x{times}"),
            Ending::Kill => f.write_str("kill -9"),
            Ending::Crash => f.write_str("a crash"),
            Ending::Abort => f.write_str("abort"),
        }
    }
}

/// The usual name of `signal` (`SIGTERM`), or its number.
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        _ => return format!("signal {signal}"),
    };
    format!("{name} ({signal})")
}
