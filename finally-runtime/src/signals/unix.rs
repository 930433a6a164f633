//! The signal handler and the signal thread.
//!
//! The handler is installed with `sigaction`, and chains to the action it replaced. It decides,
//! at each signal, whether the signal is `finally`'s to act on: not when someone else handles
//! it too, the application or a library, whether they installed their handler before ours (it
//! is the action ours replaced) or after (theirs is installed now, and calls ours, as
//! signal-hook's and so tokio's do): the signal is then theirs, and the cleanups run when the
//! application ends. Another copy of `finally` in the process is not someone else: the copies
//! ask each other (`copies.rs`), act one after the other, and the first installed ends the
//! process. When it is `finally`'s, the handler only records the first signal's number in an
//! atomic and wakes the `finally-signals` thread (`sys::wakeup`), both async-signal-safe. All
//! the work happens on that thread.
//!
//! `finally` does not register through signal-hook's registry: once a signal has a slot there,
//! a later registration (tokio's) changes nothing that can be seen, and `finally` could not know
//! that the application now handles the signal (ARCHITECTURE.md says where signal-hook is used,
//! and why not here).

use std::ffi::c_void;
use std::io;
use std::panic::catch_unwind;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::thread;

use libc::{c_int, siginfo_t};

use super::copies;
use crate::config::Options;
use crate::exit::Signal;
use crate::flag::SHUTDOWN;
use crate::handling::Handling;
use crate::report::report;
use crate::sys::signal::{self as sys_signal, HowInstalled, Replaced};
use crate::sys::{end, stderr, wakeup, ErrnoKept};
use crate::{registry, shutdown};

/// Installs the handler for each of `options`' signals that is not ignored: one `sigaction`
/// to look, one to install.
pub(crate) fn register(options: &Options) -> io::Result<()> {
    FORCE_QUIT_AFTER.store(options.force_quit_after.unwrap_or(0), SeqCst);
    let how = HowInstalled {
        // Restarting what it interrupts; the copies' fingerprint as its mask (`copies.rs`).
        flags: libc::SA_RESTART,
        mask: &copies::fingerprint(),
    };
    for signal in options.signal_numbers() {
        // SAFETY: the handler is async-signal-safe (below); the options ask for it.
        if unsafe { REPLACED.install(signal, handler, how) }? {
            WITH_OUR_HANDLER.fetch_or(1 << signal, SeqCst);
        } else {
            LEFT_IGNORED.fetch_or(1 << signal, SeqCst);
        }
    }
    Ok(())
}

/// The signals whose handler [`register`] installed, a bit each.
static WITH_OUR_HANDLER: AtomicU64 = AtomicU64::new(0);
/// The signals [`register`] found ignored, and left so, a bit each.
static LEFT_IGNORED: AtomicU64 = AtomicU64::new(0);

/// Whether this copy's handler takes `signal`, and if not why, as far as can be told with no
/// signal arriving: what the handler would decide (see [`handler`]). `None` if [`register`]
/// has not come to the signal. Not from a signal handler: it may call another copy's.
pub(crate) fn handling(signal: c_int) -> Option<Handling> {
    let bit = 1u64.checked_shl(signal as u32)?;
    if LEFT_IGNORED.load(SeqCst) & bit != 0 {
        return Some(Handling::Ignored);
    }
    if WITH_OUR_HANDLER.load(SeqCst) & bit == 0 {
        return None;
    }
    let Some(now) = sys_signal::action(signal) else {
        return Some(Handling::Removed);
    };
    let someone_else_below_asked = if now.sa_sigaction == handler as *const () as usize {
        someone_else_below_looked(signal)
    } else if copies::is_copy(&now) {
        // A copy installed over this one, which asks this one at a signal. One that does not
        // answer (an earlier version) is taken to have no one else's handler below it but
        // those below this copy.
        // SAFETY: a copy's action.
        unsafe { copies::look(&now, signal) }.unwrap_or_else(|| someone_else_below_looked(signal))
    } else if sys_signal::is_handler(&now) {
        return Some(Handling::HandlerAfter);
    } else {
        return Some(Handling::Removed);
    };
    Some(if someone_else_below_asked {
        Handling::HandlerBefore
    } else {
        Handling::Handled
    })
}

/// Whether someone else's handler takes `signal` below this copy's: the action it replaced is
/// someone's handler, or, where it is another copy's, that copy says so. Calls no handler but
/// the copies'; not from a signal handler.
fn someone_else_below_looked(signal: c_int) -> bool {
    match replaced(signal) {
        Some(below) if copies::is_copy(below) => {
            // SAFETY: a copy's action.
            unsafe { copies::look(below, signal) }.unwrap_or(false)
        }
        Some(below) => sys_signal::is_handler(below),
        None => false,
    }
}

/// For each signal, the action the handler replaced, to chain to.
static REPLACED: Replaced = Replaced::new();

/// The action the handler replaced for `signal`, once installed. Async-signal-safe.
fn replaced(signal: c_int) -> Option<&'static libc::sigaction> {
    REPLACED.get(signal)
}

/// The handler: chains to the action it replaced (or asks the copy of `finally` it replaced),
/// then, if the signal is `finally`'s, records it. Only atomics and async-signal-safe system
/// calls.
extern "C" fn handler(signal: c_int, info: *mut siginfo_t, context: *mut c_void) {
    let _errno = ErrnoKept::new();
    if let Some(call) = copies::read(signal, info) {
        return called_by_a_copy(call, context);
    }
    // Someone installed a handler over ours, and calls ours: they handle the signal. The ones
    // below get it as they would have.
    if !sys_signal::is_installed(signal, handler) {
        if let Some(replaced) = replaced(signal) {
            // SAFETY: the kernel's own arguments, passed on.
            unsafe { sys_signal::chain(replaced, signal, info, context) };
        }
        return;
    }
    // SAFETY: the kernel's own arguments.
    if unsafe { someone_else_below_asked(signal, info, context) } {
        return;
    }
    arrived(signal);
    force_quit_if_due();
}

/// Whether someone else handles `signal` below this copy's handler: the action it replaced is
/// someone's handler, which is called now, or another copy of `finally` says so.
///
/// # Safety
///
/// `info` and `context` must be what the kernel passed for `signal`.
unsafe fn someone_else_below_asked(
    signal: c_int,
    info: *mut siginfo_t,
    context: *mut c_void,
) -> bool {
    match replaced(signal) {
        Some(below) if copies::is_copy(below) => {
            // SAFETY: a copy's action; the caller vouches for the rest.
            let (someone_else, grace_ends_by) =
                unsafe { copies::ask(below, signal, info, context) };
            shutdown::learn_grace_ends_by(grace_ends_by);
            someone_else
        }
        Some(below) => {
            // SAFETY: as above.
            unsafe { sys_signal::chain(below, signal, info, context) };
            sys_signal::is_handler(below)
        }
        None => false,
    }
}

/// The copy of `finally` installed over this one calls.
fn called_by_a_copy(call: copies::Call, context: *mut c_void) {
    match call {
        copies::Call::Ask(asked) => {
            let signal = asked.signal;
            // SAFETY: the kernel's `info`, which the asking copy passed on, and its `context`.
            let someone_else = unsafe { someone_else_below_asked(signal, asked.info, context) };
            if !someone_else {
                // The copy above acts: this copy's deadline starts too.
                shutdown::starts_now();
            }
            asked.answer(someone_else, shutdown::grace_ends_by());
            if !someone_else {
                arrived_above(signal);
                force_quit_if_due();
            }
        }
        copies::Call::Exiting { code } => exiting(code),
        copies::Call::Requested(signal) => {
            requested(signal);
            shutdown::request_here(Signal::new(signal));
        }
        copies::Call::Look(looked) => {
            let signal = looked.signal;
            looked.answer(someone_else_below_looked(signal));
        }
        copies::Call::HandOn {
            signal,
            grace_ends_by,
        } => {
            shutdown::learn_grace_ends_by(grace_ends_by);
            let _ = ARRIVED.fetch_update(SeqCst, SeqCst, |word| {
                (word & ACTING == 0).then_some(word | signal as u32)
            });
            wakeup::wake(&ARRIVED);
        }
    }
}

/// A stop is requested for `signal`, by this copy or one installed after it: the copies of
/// `finally` installed before it are told (`copies.rs`). Not from a signal handler.
fn requested(signal: c_int) {
    if let Some(below) = replaced(signal).filter(|below| copies::is_copy(below)) {
        // SAFETY: a copy's action.
        unsafe { copies::tell_requested(below, signal) };
    }
}

/// The process is exiting, with `code` if known: this copy's deadline counts from now, and
/// the copies of `finally` installed before it are told (`copies.rs`). Called by the exit hook
/// of this copy, or of a copy installed after it; not from a signal handler.
pub(crate) fn exiting(code: Option<i32>) {
    if shutdown::ending_by_a_signal() {
        return;
    }
    shutdown::exiting_above(code);
    let below = (1..64).find_map(|signal| {
        let below = replaced(signal).filter(|below| copies::is_copy(below))?;
        Some((signal, below))
    });
    if let Some((signal, below)) = below {
        // SAFETY: a copy's action.
        unsafe { copies::tell_exiting(below, signal, code) };
    }
}

/// The cleanups of this copy have run: ends the process by `signal`, or, where this copy's
/// handler replaced another copy's, hands the signal on to it, which runs its own cleanups and
/// ends the process (`copies.rs`).
fn end_by(signal: c_int) -> ! {
    if let Some(below) = replaced(signal).filter(|below| copies::is_copy(below)) {
        // SAFETY: a copy's action.
        unsafe { copies::hand_on(below, signal, shutdown::grace_ends_by()) };
        end::park_for_good();
    }
    end::die_by(signal)
}

/// The `force_quit_after` option, or 0 for none.
///
/// Architecture invariant: stored by [`register`] before it installs the handler that reads it.
static FORCE_QUIT_AFTER: AtomicU32 = AtomicU32::new(0);

/// Starts the `finally-signals` thread: it waits for the first chosen signal, runs the
/// shutdown, and ends the process by the signal. Nothing unwinds out of it before then.
pub(crate) fn start_thread() -> io::Result<()> {
    wakeup::prepare()?;
    shutdown::with_other_copies(shutdown::OtherCopies {
        requested: |signal| requested(signal.number()),
        end_by,
    });
    thread::Builder::new()
        .name("finally-signals".into())
        .spawn(|| {
            let signal = first_signal();
            match catch_unwind(|| shutdown::on_signal(Signal::new(signal))) {
                Ok(true) => end_by(signal),
                // The process is already exiting: that shutdown decides how it ends, and later
                // signals change nothing.
                Ok(false) => {}
                Err(_) => {
                    report(format_args!(
                        "the shutdown failed; ending the process by the signal"
                    ));
                    end::die_by_now(signal)
                }
            }
        })
        .map(drop)
}

/// The first chosen signal this copy acts on, in the low byte ([`ACTING`]), and the first
/// that a copy of `finally` installed over this one acts on, above it ([`ABOVE`]); 0 for none.
/// Only the first of each matters: it starts the shutdown (or this copy's deadline), and a
/// shutdown is never started twice.
///
/// It is also the word the signal thread sleeps on (`sys::wakeup`): on Linux a futex, whose wake
/// is the least the kernel can do to wake a thread (as `ctrlc` does, through `sem_post`), less
/// than writing to a pipe.
static ARRIVED: AtomicU32 = AtomicU32::new(0);
const ACTING: u32 = 0xff;
const ABOVE: u32 = 0xff << 8;

/// How many chosen signals have arrived, the first included.
static SEEN: AtomicU32 = AtomicU32::new(0);

/// Counts `signal`, records it unless one came first, and wakes the signal thread.
/// Async-signal-safe.
fn arrived(signal: c_int) {
    SEEN.fetch_add(1, SeqCst);
    let _ = ARRIVED.fetch_update(SeqCst, SeqCst, |word| {
        (word & ACTING == 0).then_some(word | signal as u32)
    });
    if SHUTDOWN.has_no_thread() && !registry::has_pending() {
        // A forked child with nothing pending and no signal thread yet: the signal has its
        // default effect, as if `finally` were not there.
        end::die_by_now(signal);
    }
    wakeup::wake(&ARRIVED);
}

/// A copy of `finally` installed over this one acts on `signal`: counts it, records it unless
/// one came first, and wakes the signal thread, which starts this copy's deadline.
/// Async-signal-safe.
fn arrived_above(signal: c_int) {
    SEEN.fetch_add(1, SeqCst);
    shutdown::signal_above(Signal::new(signal));
    let _ = ARRIVED.fetch_update(SeqCst, SeqCst, |word| {
        (word & ABOVE == 0).then_some(word | (signal as u32) << 8)
    });
    wakeup::wake(&ARRIVED);
}

/// The number of the first chosen signal, here or above, or 0. Async-signal-safe.
fn first_signal_number() -> c_int {
    let word = ARRIVED.load(SeqCst);
    match word & ACTING {
        0 => ((word & ABOVE) >> 8) as c_int,
        signal => signal as c_int,
    }
}

/// In a forked child: no signal has arrived. Async-signal-safe.
pub(crate) fn reset_in_child() {
    ARRIVED.store(0, SeqCst);
    SEEN.store(0, SeqCst);
    wakeup::reset_in_child();
}

/// Sleeps until a chosen signal arrives that this copy acts on, and returns its number. Once
/// a copy of `finally` installed over this one acts on one first, starts the deadline.
fn first_signal() -> c_int {
    let mut deadline_started = false;
    loop {
        // Sleeps only while the word holds what was seen: a signal between the load and the
        // wait makes the kernel return at once, as does any wake-up; each ends in the load
        // again.
        let word = ARRIVED.load(SeqCst);
        match word & ACTING {
            0 => {
                if word & ABOVE != 0 && !deadline_started {
                    shutdown::start_deadline_above(Signal::new(((word & ABOVE) >> 8) as c_int));
                    deadline_started = true;
                }
                wakeup::wait(&ARRIVED, word);
            }
            signal => return signal as c_int,
        }
    }
}

/// [`force_quit`], where the option is set.
fn force_quit_if_due() {
    match FORCE_QUIT_AFTER.load(SeqCst) {
        0 => {}
        count => force_quit(count),
    }
}

/// Ends the process at once, by the first signal, once `count` more signals have arrived
/// during a shutdown: the habit of pressing Ctrl-C three times. Async-signal-safe.
///
/// In a shutdown by a signal, the first signal requested it, and the "more" are the ones after
/// it (counting from the request itself would also count that first signal whenever the signal
/// thread made the request before this handler got here). In a shutdown by `exit`, every
/// signal is one more: each was held back.
fn force_quit(count: u32) {
    let more = match shutdown::kind() {
        // A copy of `finally` over this one acts on the first: the others are more.
        None if ARRIVED.load(SeqCst) & ABOVE != 0 => SEEN.load(SeqCst) - 1,
        None => return,
        Some(shutdown::Kind::Signal) => SEEN.load(SeqCst) - 1,
        Some(shutdown::Kind::Exit) => SEEN.load(SeqCst),
    };
    if more < count {
        return;
    }
    let message = b"finally: forced to quit: the cleanups are cut short\n";
    stderr::write_now(message);
    end::die_by_now(first_signal_number());
}
