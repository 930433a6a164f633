//! Who runs the shutdown: exactly one thread, which claims it.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicU8, AtomicUsize};

use crate::sys;

/// What started the shutdown, if anything has.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Signal,
    Exit,
}

/// Who claimed the shutdown: 0, or a [`Kind`] as `1 + kind`.
static CLAIMED: AtomicU8 = AtomicU8::new(0);
/// The thread running the shutdown ([`sys::thread_id`]); set right after the claim.
static RUNNER: AtomicUsize = AtomicUsize::new(0);

/// Becomes the thread that runs the shutdown, unless another one is (or was).
pub(super) fn claim(kind: Kind) -> bool {
    let claimed = CLAIMED
        .compare_exchange(0, 1 + kind as u8, SeqCst, SeqCst)
        .is_ok();
    if claimed {
        RUNNER.store(sys::thread_id(), SeqCst);
    }
    claimed
}

/// What started the shutdown, if anything has. Async-signal-safe.
pub(crate) fn kind() -> Option<Kind> {
    match CLAIMED.load(SeqCst) {
        0 => None,
        1 => Some(Kind::Signal),
        _ => Some(Kind::Exit),
    }
}

/// Whether the calling thread runs the shutdown. Async-signal-safe.
pub(crate) fn is_mine() -> bool {
    kind().is_some() && RUNNER.load(SeqCst) == sys::thread_id()
}

/// In a forked child: no shutdown claimed. Async-signal-safe.
#[cfg(unix)]
pub(super) fn reset_in_child() {
    CLAIMED.store(0, SeqCst);
    RUNNER.store(0, SeqCst);
}
