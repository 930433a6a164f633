//! Make each way a program can end happen to it in a test, for real, and see how it ended.
//!
//! A program's cleanup has to run however it ends: it returns, panics, calls `exit`, gets
//! Ctrl-C (once, or again and again), `kill`, loses its terminal, is killed with `kill -9` or
//! crashes. Testing that means running the program as a child process, waiting until it is
//! where the test wants it, making the ending happen, and looking at what it left: with no
//! sleeps, no wait without a bound, and no child left behind when a test fails. This crate does
//! that part; each case is one line.
//!
//! ```no_run
//! use finally_test::{Ending, Program, SIGINT, SIGTERM};
//!
//! // `app` is a `[[bin]]` of the package that prints `ready` once it has made its scratch
//! // directory, then works until it is stopped.
//! # fn scratch_is_gone() -> bool { true }
//! let ended = Program::bin("app").run_until_ready_then(Ending::Signal(SIGTERM)).unwrap();
//! ended.assert_signaled(SIGTERM).assert_stderr_contains("scratch removed");
//! assert!(scratch_is_gone());
//!
//! // Ctrl-C pressed five times: to the program's process group, as a terminal sends it.
//! Program::bin("app").run_until_ready_then(Ending::CtrlC(5)).unwrap().assert_signaled(SIGINT);
//!
//! // Step by step: read what the program says, then kill it and wait for its guardian.
//! let mut app = Program::bin("app").arg("--guardian").start().unwrap();
//! let line = app.wait_for_line_where(|line| line.starts_with("scratch ")).unwrap();
//! app.kill().unwrap();
//! let ended = app.wait().unwrap(); // its guardian's cleanup has run once this returns
//! # let _ = (line, ended);
//! ```
//!
//! # The endings
//!
//! | [`Ending`] | what the kit does | how a program with `finally` cleanups ends |
//! |---|---|---|
//! | `Return`, `Panic`, `Exit(n)` | asks the program on its stdin ([`wait_for_ending`]) | exit code 0, 101, `n` |
//! | `Crash`, `Abort` | asks the program: a write to an unmapped address, `abort()` | by SIGSEGV, SIGABRT |
//! | `Signal(s)` | `kill -s PID` | by `s` |
//! | `SignalGroup(s)` | `kill -s -PGID`, the program in a group of its own | by `s` |
//! | `HangUp` | closes the program's [terminal](Program::terminal): SIGHUP, then `EIO` on writes | by SIGHUP |
//! | `CtrlC(n)` | `n` SIGINTs to its process group, a millisecond apart | by SIGINT |
//! | `Kill` | `kill -9 PID`; [`Running::wait`] waits for a guardian, which holds stderr | by SIGKILL |
//!
//! [`Running`] also does each of them one by one ([`signal`](Running::signal),
//! [`hang_up`](Running::hang_up), [`ctrl_c`](Running::ctrl_c), ...), any number of times, and
//! reads stdout line by line in between.
//!
//! # Which program
//!
//! - [`Program::bin("name")`](Program::bin): the package's binary target, as cargo built it for
//!   the integration test; [`bin!("name")`](bin!) reads cargo's `CARGO_BIN_EXE_name` at compile
//!   time.
//! - [`Program::path(path)`](Program::path): any executable.
//! - [`Program::current_test("name")`](Program::current_test): a test function of the running
//!   test executable, run again alone as a child process. The test holds its body in
//!   [`child`](fn@child), which runs it there only, so the program under test sits next to the test that
//!   makes it end:
//!
//! ```
//! use finally_test::{Ending, Program, SIGTERM};
//!
//! /// A `Drop` guard runs on a return and on a panic, not on a signal (`finally` runs it then).
//! struct Cleanup;
//!
//! impl Drop for Cleanup {
//!     fn drop(&mut self) {
//!         println!("cleaned up");
//!     }
//! }
//!
//! # /*
//! #[test]
//! # */
//! fn worker() {
//!     finally_test::child(|| {
//!         let _cleanup = Cleanup;
//!         finally_test::ready();
//!         finally_test::wait_for_ending();
//!     });
//! }
//!
//! # /*
//! #[test]
//! # */
//! fn a_drop_guard_runs_on_return_but_not_on_sigterm() {
//!     let returned = Program::current_test("worker").run_until_ready_then(Ending::Return);
//!     returned.unwrap().assert_success().assert_stdout_line("cleaned up");
//!     let killed = Program::current_test("worker").run_until_ready_then(Ending::Signal(SIGTERM));
//!     let killed = killed.unwrap();
//!     killed.assert_signaled(SIGTERM);
//!     assert!(!killed.stdout.iter().any(|line| line == "cleaned up"));
//! }
//! # fn main() {
//! #     match finally_test::is_child() {
//! #         true => worker(),
//! #         false => a_drop_guard_runs_on_return_but_not_on_sigterm(),
//! #     }
//! # }
//! ```
//!
//! # The child's side
//!
//! The child tells that it is ready with a line on stdout, `ready` unless
//! [`ready_line`](Program::ready_line) says otherwise ([`ready`] prints it); lines before it
//! are skipped and kept. For the endings that only its own code can cause, the kit writes one
//! line to its stdin, and [`wait_for_ending`] acts on it:
//!
//! | line | [`wait_for_ending`] |
//! |---|---|
//! | `return` | returns |
//! | `panic` | panics with `asked to panic` |
//! | `exit CODE` | calls `std::process::exit(CODE)` |
//! | `crash` | writes to address 1, never mapped: SIGSEGV |
//! | `abort` | calls `std::process::abort()`: SIGABRT |
//! | end of stdin (the test is gone) | returns |
//!
//! A program that does not use this crate can read the same lines itself.
//!
//! # What the kit promises
//!
//! - **Every wait is bounded** by the [patience](Program::patience), 20 s unless set: for the
//!   ready line, any line, the end, and the closing of stdout and stderr. One that runs out is
//!   an [`Error`] whose message holds the program's stdout and stderr, and the program is
//!   killed. No wait is a sleep standing for an event.
//! - **No program outlives its test**: dropping a [`Running`] (a test that failed or
//!   returned early) kills it with SIGKILL, and its whole group if it has one of its own, and
//!   reaps it.
//! - **Tests run in parallel** (`cargo test`'s threads): no global state, no fixed paths, the
//!   terminal's descriptors close on `exec` so that no other test's child keeps it open.
//! - **The program starts as from a terminal**: SIGINT, SIGTERM, SIGHUP and SIGQUIT at their
//!   default actions, nothing blocked, whatever the test runner inherited (a background job of
//!   a non-interactive shell ignores SIGINT); and no core dump.
//! - **How it ended, as its parent sees it**: [`Ended`] holds the wait status, the code or
//!   signal, the time from the ending to the end, all of stdout and stderr. It waits until
//!   every process holding stdout and stderr has closed them (a guardian that runs the cleanup
//!   after `kill -9` too), and reaps the program only then: until then it stays a zombie, from
//!   which a guardian can read the signal that killed it.
//!
//! # Platforms
//!
//! Unix: Linux, macOS, the BSDs. On Linux the program is looked at without being reaped
//! (`waitid` with `WNOWAIT`); elsewhere it is reaped as soon as it has ended. On Windows, where
//! there are no signals to send, the crate is empty.

#![cfg(unix)]
#![warn(missing_docs)]

mod child;
mod ended;
mod ending;
mod error;
mod output;
mod program;
mod running;
mod terminal;

pub use child::{child, is_child, ready, wait_for_ending};
pub use ended::Ended;
pub use ending::{signal_name, Ending};
pub use error::Error;
pub use program::{Program, PATIENCE};
pub use running::Running;

pub use libc::{SIGABRT, SIGHUP, SIGINT, SIGKILL, SIGQUIT, SIGSEGV, SIGTERM, SIGUSR1, SIGUSR2};

/// The package's binary target `name`, found through `CARGO_BIN_EXE_<name>`, which cargo sets
/// while it compiles an integration test: `finally_test::bin!("app")`.
#[macro_export]
macro_rules! bin {
    ($name:literal) => {
        $crate::Program::path(env!(concat!("CARGO_BIN_EXE_", $name)))
    };
}
