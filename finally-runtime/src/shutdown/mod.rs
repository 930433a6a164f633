//! The shutdown: who runs it, and its sequence from the first signal (or `exit`) to the last
//! cleanup.
//!
//! Exactly one thread runs the shutdown: the signal thread on the first handled signal, or the
//! thread calling `exit` (`std::process::exit`, or the end of `main`), or a panicking thread
//! of a `panic = "abort"` build. It claims the shutdown, starts the flag, and *walks* the
//! registry twice:
//!
//! 1. The first walk takes over every pending cleanup and runs it. Meanwhile the program's
//!    threads go on (`standby.rs` says where an owner waits); a guarded body that starts now is
//!    registered as usual.
//! 2. Just before the first walk leaves its last slot, the shutdown is *closed*: from then on no
//!    guarded body starts, and a thread that reaches a guarded function's entry or exit waits for
//!    the end of the process. The second walk takes over what bodies started during the first.
//!
//! The thread that claims the shutdown first publishes why the process is ending
//! (`reason.rs`), and only then starts the deadline (`timeout`), which counts from the signal
//! (or `exit`) and covers the grace periods and the cleanups alike.
//!
//! On a signal, the stop is *requested* first (`request.rs`). With guarded functions that have a
//! grace period under way, the flag starts only once they have returned or had their grace
//! period (`grace.rs`), so that they can return on their own; without, the flag starts before
//! the request, so that a body that returns as soon as it learns of the stop runs no further.
//!
//! A cleanup that calls `exit` on the shutdown's own thread brings the shutdown back here
//! ([`on_exit`]): it resumes the walks, and the remaining cleanups still run once.

mod deadline;
mod grace;
mod runner;

use std::sync::atomic::AtomicI32;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::OnceLock;

use libc::c_int;

use self::runner::claim;
use crate::exit::{Exit, Signal};
use crate::flag::SHUTDOWN;
use crate::sys::{self, end};
use crate::trace::{self, Start};
use crate::{fence, reason, registry, request, standby, stop};

pub(crate) use self::deadline::arm as arm_deadline;
pub use self::grace::Period;
pub(crate) use self::runner::{is_mine, kind, Kind};

/// What the shutdown does for the other copies of `finally` in the process, through the
/// signals' layer, which knows their handlers (`signals/copies.rs`).
pub(crate) struct OtherCopies {
    /// A stop is requested: tells them first.
    pub(crate) requested: fn(Signal),
    /// The cleanups have run: ends the process by the signal, or hands it on to them.
    pub(crate) end_by: fn(c_int) -> !,
}

static OTHER_COPIES: OnceLock<OtherCopies> = OnceLock::new();

/// Sets what the shutdown does for the other copies of `finally`; without, it knows of none.
#[cfg(unix)]
pub(crate) fn with_other_copies(others: OtherCopies) {
    let _ = OTHER_COPIES.set(others);
}

/// Ends the process by `signal`, the cleanups done.
fn die_by(signal: c_int) -> ! {
    match OTHER_COPIES.get() {
        Some(others) => (others.end_by)(signal),
        None => end::die_by(signal),
    }
}

/// Requests the stop for `signal`, the other copies of `finally` first.
fn request(signal: Signal) {
    if let Some(others) = OTHER_COPIES.get() {
        (others.requested)(signal);
    }
    request::request(signal);
}

/// A copy of `finally` installed over this one requests the stop for `signal`: so does this
/// one, though its own shutdown has not started.
#[cfg(unix)]
pub(crate) fn request_here(signal: Signal) {
    request::request(signal);
}

/// A copy of `finally` installed over this one acts on `signal`, as it told this one from its
/// signal handler. Async-signal-safe.
#[cfg(unix)]
pub(crate) fn signal_above(signal: Signal) {
    deadline::mark_above(Some(signal));
}

/// A copy of `finally` installed over this one acts on `signal`: this copy's deadline counts
/// from now, as it would from its own signal. (Once, from the signal thread.)
#[cfg(unix)]
pub(crate) fn start_deadline_above(signal: Signal) {
    deadline::start_above(Some(signal));
}

/// Whether a signal is ending the process, as this copy of `finally` or one installed over it
/// acts on it: an `exit` meanwhile (`main` returning on the stop) changes nothing.
#[cfg(unix)]
pub(crate) fn ending_by_a_signal() -> bool {
    kind() == Some(Kind::Signal) || deadline::signal_above()
}

/// The process is exiting, with `code` if known, as the exit hook of this copy of `finally`, or
/// of one installed after it, says: this copy's deadline counts from now.
#[cfg(unix)]
pub(crate) fn exiting_above(code: Option<i32>) {
    if let Some(code) = code {
        exiting_with(code);
    }
    deadline::start_above(None);
}

#[cfg(unix)]
pub(crate) use self::deadline::{grace_ends_by, learn as learn_grace_ends_by, starts_now};

/// The shutdown claimed, started so, says why: tells `tracing` (`trace.rs`), publishes the
/// reason, then starts the deadline. Until the result is dropped (the process ends first, but
/// after `exit`'s cleanups), a cleanup whose output goes to a closed pipe (a terminal gone, a
/// reader gone) sees EPIPE, as Rust programs do, even if the program set SIGPIPE back to its
/// default: a SIGPIPE must not end the process half-way through its cleanups. The programs they
/// start get SIGPIPE as the program had it. Once it is dropped, what was told is told.
fn decided(start: Start, exit: &Exit) -> Decided {
    let told = trace::shutdown(start, exit, deadline::limit());
    reason::publish(exit);
    deadline::start();
    Decided {
        _sigpipe: end::hold_sigpipe(),
        _told: told,
    }
}

/// What [`decided`] holds until the shutdown is over: fields drop in this order.
struct Decided {
    _sigpipe: end::SigpipeHeld,
    _told: trace::Shutdown,
}

/// Starts the flag: from now on, owners that reach a guarded function's entry or exit meet the
/// shutdown, and their nodes may be taken over.
fn begin() {
    let asymmetric = SHUTDOWN.start();
    fence::heavy(asymmetric);
}

/// The two walks (module docs).
fn walk() {
    let exit = reason::get().expect("published before any walk");
    registry::walk(exit, || {
        let asymmetric = SHUTDOWN.close();
        fence::heavy(asymmetric);
    });
    registry::walk(exit, || {});
}

/// Handles a signal: requests the stop, waits out the grace period, runs every pending cleanup.
///
/// Returns `false`, doing nothing, if another shutdown is under way (the process is exiting).
pub(crate) fn on_signal(signal: Signal) -> bool {
    if !claim(Kind::Signal) {
        return false;
    }
    let signalled = sys::monotonic_nanos();
    let _decided = decided(Start::Signal, &Exit::Signal(signal));
    if let Some(longest) = grace::longest_running() {
        request(signal);
        trace::grace_begins(longest);
        let all_returned = grace::wait_out(signalled);
        trace::grace_ends(signalled, all_returned);
        begin();
    } else {
        begin();
        request(signal);
    }
    walk();
    true
}

/// Handles the end of the process from within (`exit`, or a panic that will abort), told why:
/// runs every pending cleanup, unless another thread runs the shutdown, which decides how the
/// process ends: then this thread waits for good. A cleanup of the shutdown that called `exit`
/// resumes the walks instead.
pub(crate) fn on_exit(exit: &Exit) {
    if claim(Kind::Exit) {
        let _decided = decided(Start::Exit, exit);
        begin();
        walk();
    } else if is_mine() {
        resume();
        trace::told();
    } else {
        registry::abandon_mine();
        standby::park_for_good();
    }
}

/// Runs every pending cleanup now, on the calling thread, told [`Exit::Signal`], and ends the
/// process by `signal`: for an application that handles its signals itself (with tokio,
/// signal-hook or ctrlc) and ends by one.
///
/// The signal handlers of other code take precedence over `finally`'s: when the application
/// (or a library) handles a signal too, `finally` leaves it to them, and the cleanups run when
/// the application ends, as its functions return or on `exit`. An application that ends on its
/// signal's account, after its own graceful shutdown, calls this instead of re-raising the
/// signal (which would end the process with no cleanup) or calling `exit`:
///
/// ```no_run
/// # use finally_runtime as finally;
/// # fn wait_for_ctrl_c() {}
/// # fn finish_in_flight_requests() {}
/// // The application's own handling (`tokio::signal::ctrl_c().await`, a `ctrlc` handler, a
/// // signal-hook flag): `finally` leaves SIGINT to it.
/// wait_for_ctrl_c();
/// finish_in_flight_requests();
/// finally::end_by(finally::Signal::SIGINT); // every pending cleanup, then the end by SIGINT
/// ```
///
/// As with `exit`, the stop is requested ([`stop_requested`](crate::stop_requested) is `true`),
/// there is no grace period (the application had its own), `timeout` and `force_quit_after`
/// hold, and where SIGINT does not end the process (PID 1) it exits with `128 + 2`. Called
/// while the process is already ending, the shutdown under way decides how it ends: from one
/// of its cleanups, the others still run, once; from another thread, that thread is stopped as
/// a guarded function's would be (it unwinds, releasing what it holds), and waits for the end.
pub fn end_by(signal: Signal) -> ! {
    let exit = Exit::Signal(signal);
    if claim(Kind::Exit) {
        let _decided = decided(Start::EndBy, &exit);
        begin();
        request(signal);
        walk();
        trace::told();
        die_by(signal.number())
    }
    if is_mine() {
        let first = reason::get().expect("published by the shutdown's thread");
        resume();
        trace::told();
        match first {
            Exit::Signal(first) => die_by(first.number()),
            // A `panic = "abort"` build's panic.
            Exit::Panicked { .. } => std::process::abort(),
            // In `exit`: `exit` again, from an exit hook, with the first code: the C library
            // runs the hooks still to run.
            _ => end::exit(exit_code()),
        }
    }
    registry::abandon_mine();
    stop::stop();
    standby::park_for_good()
}

/// Runs the cleanups still pending, on the thread that runs the shutdown, after one of its
/// cleanups ended it again (`exit`).
pub(crate) fn resume() {
    if reason::get().is_some() {
        walk();
    }
}

/// In a forked child, with its one thread: no shutdown under way, no grace period pending, no
/// deadline thread yet. Async-signal-safe.
#[cfg(unix)]
pub(crate) fn reset_in_child() {
    runner::reset_in_child();
    reason::reset_in_child();
    grace::reset_in_child();
    deadline::reset_in_child();
}

/// The code of the first `exit` of the process, once known.
static EXIT_CODE: AtomicI32 = AtomicI32::new(i32::MIN);

/// `exit` was called with `code`; the first one stands. Async-signal-safe.
pub(crate) fn exiting_with(code: i32) {
    let _ = EXIT_CODE.compare_exchange(i32::MIN, code, SeqCst, SeqCst);
}

/// The code of the first `exit`, where the platform tells it (glibc does); else 1.
pub(crate) fn exit_code() -> i32 {
    match EXIT_CODE.load(SeqCst) {
        i32::MIN => 1,
        code => code,
    }
}
