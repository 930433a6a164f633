//! How owners and the shutdown wait for each other.
//!
//! During a shutdown, the walk waits for an owner that is running its own cleanup, and an owner
//! whose stack is being walked waits for the walk to be done with it (`protocol.rs`). Both are
//! short waits on one condition variable, bounded so that a missed notification costs at most
//! [`A_LITTLE`]. An owner that must not go on once the walk is done with it is stopped
//! (`stop.rs`), never parked where it may hold what a cleanup needs; a thread waits for good
//! only inside `exit` (while another thread ends the process), or in `main`.

use std::ptr;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{fence, AtomicPtr, AtomicUsize};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use crate::flag::SHUTDOWN;
use crate::protocol::Name;
use crate::stop;

/// The longest a waiting side sleeps before it looks again.
const A_LITTLE: Duration = Duration::from_millis(20);

/// Bumped by every notification; the waiters' condition variable.
static PROGRESS: Mutex<u64> = Mutex::new(0);
static CHANGED: Condvar = Condvar::new();

/// Something a waiting side may wait for has changed: an owner's `top` or node, or a walk.
pub(crate) fn notify() {
    *PROGRESS.lock().unwrap_or_else(PoisonError::into_inner) += 1;
    CHANGED.notify_all();
}

/// Sleeps until the next [`notify`], or [`A_LITTLE`].
pub(crate) fn wait_a_little() {
    let progress = PROGRESS.lock().unwrap_or_else(PoisonError::into_inner);
    let seen = *progress;
    let _ = CHANGED
        .wait_timeout_while(progress, A_LITTLE, |now| *now == seen)
        .unwrap_or_else(PoisonError::into_inner);
}

/// The slot the walk is on (its address), or [`NONE`]: the walk has not started, is between
/// two slots, or is over.
static WALK: AtomicUsize = AtomicUsize::new(NONE);
const NONE: usize = 0;

/// The thread that walks ([`crate::sys::thread_id`]), or 0.
static WALKER: AtomicUsize = AtomicUsize::new(0);

/// Whether the calling thread is the one walking: a cleanup it runs is part of the walk, and
/// must not wait for it, nor free what the walk may still read.
pub(crate) fn is_walker() -> bool {
    WALK.load(SeqCst) != NONE && WALKER.load(SeqCst) == crate::sys::thread_id()
}

/// Whether no walk is on any slot now (between two, or none under way). One load.
#[inline]
pub(crate) fn no_walk() -> bool {
    WALK.load(SeqCst) == NONE
}

/// Whether the walk is on `slot` (an address): it may read what was linked there.
pub(crate) fn is_walking(slot: usize) -> bool {
    WALK.load(SeqCst) == slot
}

/// The walk: from now on it may read the nodes of `slot` (an address), until [`walked`].
pub(crate) fn walking(slot: usize) {
    WALKER.store(crate::sys::thread_id(), SeqCst);
    WALK.store(slot, SeqCst);
    notify();
    // The walk's half of the pair on `WALK`: its loads of `top` come after.
    fence(SeqCst);
}

/// The walk is done with the slot it was on.
pub(crate) fn walked() {
    WALK.store(NONE, SeqCst);
    notify();
}

/// An owner that met the shutdown flag after a store to the stack of `slot` (an address), or
/// to a list of it: while the walk is on that slot, the walk may still read the node just
/// unlinked, so the owner keeps its frame. Once the shutdown is closed, the thread is stopped
/// (`stop.rs`): the code after a guarded function does not run past the last walk. Before that,
/// it waits while the walk is not busy elsewhere, and goes on while the walk runs another
/// thread's cleanups: one of them may need a lock that this thread holds across the guarded
/// call, and would wait for it for ever.
///
/// So in a program with one thread of guarded calls, the code after a guarded function that
/// met the shutdown never runs. Returns once the thread may go on, or if it is unwinding
/// already.
pub(crate) fn stand_by(slot: usize) {
    if is_walker() {
        return;
    }
    notify();
    // The owner's half of the pair on `WALK`: its store to `top` came before.
    fence(SeqCst);
    loop {
        let walk = WALK.load(SeqCst);
        if walk != slot {
            if SHUTDOWN.is_closed() {
                return stop::stop();
            }
            if walk != NONE {
                return;
            }
        }
        wait_a_little();
    }
}

/// Waits while the walk is on `slot` (an address): it may still read a node that its owner
/// just unlinked, and is about to leave.
pub(crate) fn wait_while_walking(slot: usize) {
    if is_walker() {
        return;
    }
    notify();
    // As in `stand_by`.
    fence(SeqCst);
    while WALK.load(SeqCst) == slot {
        wait_a_little();
    }
}

/// The cleanup the walk runs or waits for, for the deadline's report: a [`Name`], or null.
static CURRENT: AtomicPtr<()> = AtomicPtr::new(ptr::null_mut());

/// The walk is running, or waiting for, the cleanup `name`.
pub(crate) fn running(name: Name) {
    CURRENT.store(name.into_raw(), SeqCst);
}

/// The cleanup the walk runs or waits for, if any. Async-signal-safe.
pub(crate) fn running_name() -> Option<Name> {
    // SAFETY: only ever a `Name`'s pointer, or null.
    unsafe { Name::from_raw(CURRENT.load(SeqCst)) }
}

/// In a forked child: no walk under way. Async-signal-safe.
#[cfg(unix)]
pub(crate) fn reset_in_child() {
    WALK.store(NONE, SeqCst);
}

pub(crate) use crate::sys::end::park_for_good;
