//! Cleanup that runs however a function or a program ends.
//!
//! A program makes a scratch directory, puts temporary rows in a database, or must tell someone
//! when it ends. Rust's `Drop` guards run on return and on panic only: Ctrl-C, `kill` and
//! [`std::process::exit`] end the process without them. [`#[with_cleanup]`](with_cleanup) runs
//! a cleanup function exactly once however the function ends, and signals cannot cut it short.
//!
//! ```
//! use std::path::PathBuf;
//!
//! use finally::{with_cleanup, Exit};
//!
//! fn scratch() -> PathBuf {
//!     std::env::temp_dir().join(format!("scratch-{}", std::process::id()))
//! }
//!
//! /// Runs once, whether `main` returns, panics, calls `process::exit` or gets Ctrl-C.
//! fn remove_scratch(exit: &Exit) {
//!     let _ = std::fs::remove_dir_all(scratch());
//!     eprintln!("scratch removed: main {exit}");
//! }
//!
//! #[with_cleanup(remove_scratch)]
//! fn main() -> std::io::Result<()> {
//!     std::fs::create_dir_all(scratch())?;
//!     std::fs::write(scratch().join("rows.csv"), "1,2,3\n")?;
//!     // ... work that may take hours, fail, or be stopped ...
//!     Ok(())
//! }
//! ```
//!
//! # What is covered
//!
//! | event while the function runs | cleanup | afterwards |
//! |---|---|---|
//! | it returns (`Ok` or `Err`) | once, [`Exit::Returned`], on the calling thread | the value is returned unchanged |
//! | it panics | once, [`Exit::Panicked`] with the message | the panic goes on; exit code 101 from `main` |
//! | SIGINT (Ctrl-C), SIGTERM (`kill`), SIGHUP, SIGQUIT | once, [`Exit::Signal`] naming it | the process ends **by that signal**, as a shell expects |
//! | [`std::process::exit(n)`](std::process::exit) | once, [`Exit::Exited`] | the exit code `n` is kept |
//! | more signals while a cleanup runs | not cut short: they are held back | the first signal decides how the process ends |
//! | SIGKILL, a segfault, `abort` | **not run** | — |
//!
//! - **Exactly once.** A signal racing the return, two signals at once, a signal while another
//!   cleanup runs: each pending cleanup still runs exactly once.
//! - **All pending cleanups.** On a signal or `exit`, every pending cleanup of every thread runs,
//!   one at a time: each thread's innermost first, threads that started using `finally` last
//!   first (so `main`'s, which encloses the others, runs last). A cleanup that panics is
//!   reported on stderr and the others still run.
//! - **A signal during a normal cleanup** waits for it to finish, then takes effect: the code
//!   after the function does not run, the enclosing cleanups run, the process ends by the signal.
//! - **Nothing pending, nothing changed.** A signal that arrives when no cleanup is pending has
//!   its default effect. A signal the process was started with ignored (as `nohup` ignores
//!   SIGHUP) stays ignored. Nothing is installed before the first guarded call.
//! - **Ending by the signal.** After the cleanups the signal's default action is restored and
//!   the signal re-raised, so the parent sees the process killed by it (`WIFSIGNALED`), not a
//!   made-up exit code. Where that does not end the process (PID 1 in a container ignores
//!   signals left at their default action) it exits with `128 + the signal's number`.
//!
//! # Writing a cleanup
//!
//! A cleanup is a path to a `fn()` or a `fn(&Exit)`, or a closure that captures nothing. The
//! [`Exit`] tells why the function ended.
//!
//! On a signal, the cleanups run on the runtime's own thread (`finally-signals`) **while the
//! other threads go on running**: they are not stopped. So a cleanup cannot borrow the
//! function's state, and should be idempotent for external state (remove a directory "if it is
//! there", delete rows "where run id = ours"). On `exit`, they run on the thread calling `exit`.
//!
//! No code of yours runs inside a signal handler: the handler (signal-hook's) only wakes the
//! runtime's thread, so a cleanup may allocate, lock, print and do I/O.
//!
//! # Not promised
//!
//! - SIGKILL, segmentation faults and `abort` end the process with no chance to clean up. (An
//!   opt-in guardian process that covers them is planned.)
//! - A cleanup running on the signal thread races the body of the function, which is still
//!   running. A body that must stop first should check a stop flag (planned).
//! - Builds with `panic = "abort"` run no cleanup on panic.
//! - A cleanup that calls [`std::process::exit`] ends the process there.
//! - Text printed with `print!` and no newline by a body stopped by a signal may stay in
//!   `stdout`'s buffer: the process ends by the signal without flushing it.
//! - `async fn` is not supported yet.
//!
//! # Installing early
//!
//! The signal thread and the exit hook are installed by the first guarded call. Call
//! [`install`] at start-up to do it earlier and to handle a failure yourself; otherwise a failure
//! is reported on stderr once and only return, panic and exit are covered.

#![warn(missing_docs)]

/// Runs a cleanup function exactly once when the function ends: by returning, panicking,
/// [`std::process::exit`], or SIGINT, SIGTERM, SIGHUP or SIGQUIT.
///
/// ```
/// # use finally::{with_cleanup, Exit};
/// fn close(exit: &Exit) {
///     println!("done: {exit}");
/// }
///
/// #[with_cleanup(close)]
/// fn count(items: &[u32]) -> Result<u32, String> {
///     let first = items.first().ok_or("empty")?;
///     Ok(first + 1)
/// }
///
/// assert_eq!(count(&[1]), Ok(2));
/// assert!(count(&[]).is_err()); // `close` ran both times
/// ```
///
/// # Arguments
///
/// - **The cleanup** (first, required): a path to a `fn()` or a `fn(&Exit)`, such as
///   `remove_scratch` or `Self::close`, or a closure that captures nothing, such as
///   `|exit| eprintln!("{exit}")`.
/// - **`crate = "path"`**: where the `finally` crate is, if the dependency was renamed.
///
/// # Where it works
///
/// Free functions and `fn main`, methods (`&self`, `&mut self`, `self`), generic functions with
/// `where` clauses, `impl Trait` returns, `unsafe fn`, functions returning `Result` that use `?`
/// and early `return`. The signature is kept as it is; the body runs inside a closure (so `?`
/// and `return` stay local) under `catch_unwind`.
///
/// Refused, with a compile error: items that are not functions, `const fn`, `async fn` (not yet
/// supported), a cleanup that is not a `fn()` or `fn(&Exit)`, a closure that captures, unknown
/// or repeated options.
///
/// # Panics
///
/// The body's panic goes on after the cleanup. A cleanup that panics after a normal return
/// panics the caller; after a panicking body, the body's panic goes on.
#[doc(inline)]
pub use finally_macros::with_cleanup;
pub use finally_runtime::{install, Error, Exit, Signal};

/// What the code generated by `#[with_cleanup]` calls. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use finally_runtime::__private::*;
}

/// The README's examples, run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
