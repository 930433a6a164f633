//! Stopping a thread that must not go on, without keeping what it holds.
//!
//! During a shutdown, some code must not run: a guarded body nested in a function the shutdown
//! took over (its cleanup has run), and the code after a guarded function once the stop has
//! taken effect. The thread that would run it may hold the program's locks, across the guarded
//! call or the guard's drop, and a cleanup still to run may need one of them. So the thread is
//! never parked for good there: it *unwinds*, as a panic that no hook reports, with
//! `exit::Stopped` as the payload, which every copy of `finally` in the process knows. Every
//! lock guard and destructor on the way runs; each guarded function it leaves runs its
//! cleanup, if the shutdown has not taken it over, told the shutdown's reason (`Exit::from_panic`
//! reads it from the payload); `main` waits there for the end of the process
//! (`guarded::guard_main`), since nothing above it is the program's.
//!
//! A thread that is unwinding already needs no second unwinding: [`stop`] then returns, and the
//! unwinding under way takes the thread out. Where nothing unwinds (a `panic = "abort"` build),
//! the thread waits for the end of the process where it is.
//!
//! Why a thread unwinds is kept for what it drops on the way ([`unwinding`]): the shutdown's
//! reason when it is stopped, a panic's message from the panic hook that
//! [`keep_panic_messages`] chains once the first guard is made.

use std::cell::RefCell;
use std::panic::resume_unwind;

use crate::exit::{self, Exit};
use crate::sys::end::park_for_good;
use crate::{reason, request};

thread_local! {
    /// Why the calling thread is unwinding, for a guard dropped on the way: the shutdown's
    /// reason while [`stop`] unwinds it, else the latest panic, as the panic hook of
    /// `guard.rs` keeps it.
    static UNWINDING: RefCell<Option<Exit>> = const { RefCell::new(None) };
}

/// Stops the calling thread, which must not go on (module docs): unwinds with `Stopped`. Returns
/// only if the thread is unwinding already; where nothing unwinds, waits for the end of the
/// process.
pub(crate) fn stop() {
    if std::thread::panicking() {
        return;
    }
    if cfg!(panic = "abort") {
        park_for_good();
    }
    // Before this copy's shutdown has a reason, a stop requested by another copy of `finally`.
    let reason = reason::get()
        .cloned()
        .or_else(|| request::requested().map(Exit::Signal))
        .unwrap_or(Exit::Returned);
    kept(reason.clone());
    resume_unwind(Box::new(exit::stopped(&reason)))
}

/// Chains a panic hook that keeps each panic's message for the guards (a guard dropped while a
/// panic unwinds cannot see the panic's payload: `stop::unwinding` tells it), once the first
/// guard is made (a program without guards keeps its hook as it is). The hook before it runs
/// after.
pub(crate) fn keep_panic_messages() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    if std::thread::panicking() {
        // Changing the hook is not allowed now; the next guard does it.
        return;
    }
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            panic_began(crate::exit::panic_message(info.payload()).map(str::to_owned));
            previous(info);
        }));
    });
}

/// A panic began on this thread, with `message`: for the guards dropped while it unwinds.
fn panic_began(message: Option<String>) {
    kept(Exit::Panicked { message });
}

fn kept(exit: Exit) {
    let _ = UNWINDING.try_with(|kept| {
        if let Ok(mut kept) = kept.try_borrow_mut() {
            *kept = Some(exit);
        }
    });
}

/// Why the calling thread is unwinding, as far as it is known.
pub(crate) fn unwinding() -> Exit {
    UNWINDING
        .try_with(|kept| kept.try_borrow().ok().and_then(|kept| kept.clone()))
        .ok()
        .flatten()
        .unwrap_or(Exit::Panicked { message: None })
}
