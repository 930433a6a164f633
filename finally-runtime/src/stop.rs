//! The end of the process: who runs the pending cleanups, and what the other threads do.
//!
//! Exactly one thread becomes the *stopper*: the signal thread on the first handled signal, or
//! the thread calling `exit` (`std::process::exit`, or the end of `main`). Every other thread
//! that reaches a guarded function's entry or exit while the process is stopping parks for good:
//! the process is about to end, and the code after a guarded function must not run once its
//! cleanup has been taken over.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::thread::{self, Thread};

use crate::registry;
use crate::Exit;

/// Raised once, by the stopper, before it walks the registry; never lowered.
pub(crate) static STOPPING: AtomicBool = AtomicBool::new(false);
/// Who gets to be the stopper.
static CLAIMED: AtomicBool = AtomicBool::new(false);
/// The stopper's thread; set before `STOPPING` is raised.
static STOPPER: OnceLock<Thread> = OnceLock::new();

/// Runs every pending cleanup with `exit`, if no other stop is under way.
///
/// Returns `false`, doing nothing, when another thread is (or was) the stopper.
pub(crate) fn stop(exit: &Exit) -> bool {
    if CLAIMED.swap(true, SeqCst) {
        return false;
    }
    let _ = STOPPER.set(thread::current());
    STOPPING.store(true, SeqCst);
    registry::run_all_pending(exit);
    true
}

/// Whether the calling thread is the stopper (its own cleanups may call guarded functions).
pub(crate) fn is_stopper() -> bool {
    STOPPING.load(Ordering::Acquire)
        && STOPPER
            .get()
            .is_some_and(|stopper| stopper.id() == thread::current().id())
}

/// A guarded function was entered while the process is stopping.
#[cold]
pub(crate) fn entered_while_stopping() {
    if !is_stopper() {
        park_forever();
    }
}

/// A guarded function's own cleanup finished while the process is stopping: the stopper may be
/// waiting for it, and the code after the function must not run.
#[cold]
pub(crate) fn returned_while_stopping() {
    if !is_stopper() {
        if let Some(stopper) = STOPPER.get() {
            stopper.unpark();
        }
        park_forever();
    }
}

/// Blocks the calling thread until the process ends.
#[cold]
pub(crate) fn park_forever() -> ! {
    loop {
        thread::park();
    }
}
