//! Why the process is ending: the shutdown's reason, as the cleanups it takes over are told it.
//!
//! Architecture invariant: the reason is published, once per shutdown, by the thread that
//! claimed the shutdown, before that thread does anything another thread can act on: before the
//! deadline starts counting, before the stop is requested or the flag started, before any walk.
//! Whoever learns that a shutdown is under way from any of those finds the reason set.

use std::ptr;
use std::sync::atomic::AtomicPtr;
use std::sync::atomic::Ordering::SeqCst;

use crate::exit::Exit;

/// The reason, leaked: readers keep a `&'static` to it. Null until a shutdown publishes one.
static REASON: AtomicPtr<Exit> = AtomicPtr::new(ptr::null_mut());

/// Publishes `exit` as the reason the process is ending. Once per shutdown, by the thread that
/// claimed it.
pub(crate) fn publish(exit: &Exit) {
    REASON.store(Box::into_raw(Box::new(exit.clone())), SeqCst);
}

/// Why the process is ending, once a shutdown has published it. Async-signal-safe.
pub(crate) fn get() -> Option<&'static Exit> {
    // SAFETY: only ever null or a leaked `Exit`, never freed.
    unsafe { REASON.load(SeqCst).as_ref() }
}

/// In a forked child: no shutdown under way. Async-signal-safe.
#[cfg(unix)]
pub(crate) fn reset_in_child() {
    REASON.store(ptr::null_mut(), SeqCst);
}
