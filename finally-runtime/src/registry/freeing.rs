//! Freeing a guard's box: now, or, while a walk may still read it, once the walk has left the
//! slot it is on.

use std::sync::{Mutex, PoisonError};

use super::Slot;
use crate::standby;

/// A box that its owner let go of while a walk could still read it: freed by the walk.
struct Left {
    boxed: *mut (),
    free: unsafe fn(*mut ()),
}

// SAFETY: a box that no thread uses any more, freed by whichever thread.
unsafe impl Send for Left {}

/// The boxes let go of while the walk was on their slot ([`release`]).
static LEFT: Mutex<Vec<Left>> = Mutex::new(Vec::new());

/// Frees `boxed` with `free`, a node's box that was linked into `slot` and has been unlinked
/// since: now, unless a walk may still read it (the walk is on `slot`, or the calling thread is
/// the walker, running a cleanup that let it go): then the walk frees it once it leaves the
/// slot it is on.
///
/// # Safety
///
/// `free(boxed)` must be sound once no walk reads the box, and nothing else may use it.
#[inline]
pub(crate) unsafe fn release(slot: Option<&Slot>, boxed: *mut (), free: unsafe fn(*mut ())) {
    if standby::no_walk() || !walk_may_read(slot) {
        // SAFETY: the caller vouches for it, and no walk reads it: one that copied the list it
        // was in was on `slot` when it did, and has left it since (`standby::walked`).
        unsafe { free(boxed) };
    } else {
        LEFT.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Left { boxed, free });
    }
}

/// Whether the walk under way may still read a box that was linked into `slot` (see
/// [`release`]).
#[cold]
fn walk_may_read(slot: Option<&Slot>) -> bool {
    slot.is_some_and(|slot| standby::is_walking(slot.address())) || standby::is_walker()
}

/// The walk has left a slot: frees what was let go of while it was there (or on another slot
/// before: it reads no box of a slot it has left).
pub(super) fn free_left() {
    let left = std::mem::take(&mut *LEFT.lock().unwrap_or_else(PoisonError::into_inner));
    for Left { boxed, free } in left {
        // SAFETY: let go of by its owner (`release`), and no walk reads it any more.
        unsafe { free(boxed) };
    }
}
