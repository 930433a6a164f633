//! The walk of the shutdown over every slot: newest first, each thread's innermost first, a
//! linked node before the stack node it is nested in.

use std::ptr;
use std::sync::atomic::Ordering::Relaxed;

use super::{call, freeing, mine, slots, Panic, Slot};
use crate::exit::Exit;
use crate::protocol::Header;
use crate::{report, request, standby};

/// Runs a node's cleanup where no slot could be had: on completion or drop only.
pub(crate) fn call_unlinked(header: &Header, exit: &Exit) -> Option<Panic> {
    let stopped = request::stopped(exit);
    // The live header of the caller's node, known to no one else.
    call(None, header, stopped.as_ref().unwrap_or(exit))
}

/// The walk: runs every pending cleanup of every thread with `exit`, threads that took their
/// slot last first, each thread's innermost first; `before_last` runs just before the walk
/// leaves the last slot (at once if there is none). Called by the thread that runs the
/// shutdown, after starting the flag and running the heavy barrier.
pub(crate) fn walk(exit: &Exit, before_last: impl FnOnce()) {
    // Not `guarded::slot`: the signal thread has none, taking one allocates, on the way from a
    // signal to its first cleanup, and inside `exit` this thread's thread-locals are gone.
    let mine = mine();
    // A walk by a thread that is itself running a cleanup (which called `exit`) must not wait
    // for a linked cleanup that its owner is running: that may be its own.
    let cleaning = mine.is_some_and(Slot::is_cleaning);
    let take_over = |header: &Header| {
        standby::running(header.name);
        if let Some(payload) = call(mine, header, exit) {
            report::panicked(&header.name, &*payload);
        }
    };
    let wait = |header: &Header| {
        standby::running(header.name);
        standby::wait_a_little();
    };
    let mut before_last = Some(before_last);
    // Newest first, each slot once, by `taken`, which no two slots share.
    let mut order = NewestFirst::default();
    let mut next = order.next();
    while let Some(slot) = next {
        let is_mine = mine.is_some_and(|mine| ptr::eq(mine, slot));
        standby::walking(slot.address());
        let linked = slot.copy_linked();
        let take_linked = |nested_in: &dyn Fn(*const Header) -> bool| {
            for &(header, enclosing) in &linked {
                if nested_in(enclosing) {
                    // SAFETY: a node copied from the list during the walk stays alive while the
                    // walk is on its slot.
                    unsafe { &*header }.take_or_wait(cleaning, &mut &take_over, &mut &wait);
                }
            }
        };
        // In the order of a nested call's: before the node each is nested in. One nested in a
        // node no longer on the stack (a guard that outlived the function it was made in)
        // first; one made outside any guarded function last.
        if !linked.is_empty() {
            // SAFETY: as below.
            let on_stack = unsafe { slot.stack.nodes() };
            take_linked(&|enclosing| !enclosing.is_null() && !on_stack.contains(&enclosing));
        }
        // SAFETY: the flag is started and the barrier run (`shutdown/mod.rs`); the owner stands by
        // while the walk is on its slot.
        unsafe {
            slot.stack.walk(is_mine, &take_over, &wait, |node| {
                if !linked.is_empty() {
                    take_linked(&|enclosing| ptr::eq(enclosing, node));
                }
            })
        };
        take_linked(&|enclosing| enclosing.is_null());
        next = order.next();
        if next.is_none() {
            if let Some(last) = before_last.take() {
                last();
            }
        }
        standby::walked();
        freeing::free_left();
    }
    if let Some(last) = before_last.take() {
        last();
    }
}

/// The slots in the walk's order, newest taken first: the first found without allocating, on
/// the way to the first cleanup; the others sorted once, after its cleanups, so that a walk
/// over many threads is not quadratic. A slot taken since the walk began is not in it (the
/// second walk finds it), nor one handed back and taken again meanwhile.
#[derive(Default)]
struct NewestFirst {
    /// The last slot given, by its `taken`.
    below: Option<u64>,
    rest: Option<std::vec::IntoIter<(&'static Slot, u64)>>,
}

impl Iterator for NewestFirst {
    type Item = &'static Slot;

    fn next(&mut self) -> Option<&'static Slot> {
        let Some(below) = self.below else {
            let first = newest_below(u64::MAX)?;
            self.below = Some(first.taken.load(Relaxed));
            return Some(first);
        };
        let rest = self.rest.get_or_insert_with(|| {
            let mut rest: Vec<_> = slots()
                .filter(|slot| !slot.gone.load(Relaxed))
                .map(|slot| (slot, slot.taken.load(Relaxed)))
                .filter(|&(_, taken)| taken < below)
                .collect();
            rest.sort_unstable_by_key(|&(_, taken)| std::cmp::Reverse(taken));
            rest.into_iter()
        });
        rest.find(|&(slot, taken)| !slot.gone.load(Relaxed) && slot.taken.load(Relaxed) == taken)
            .map(|(slot, _)| slot)
    }
}

/// The slot that took its thread last among those of this process that took theirs before
/// `below`.
fn newest_below(below: u64) -> Option<&'static Slot> {
    let mut newest: Option<&'static Slot> = None;
    for slot in slots().filter(|slot| !slot.gone.load(Relaxed)) {
        let taken = slot.taken.load(Relaxed);
        if taken < below && newest.map_or(true, |newest| taken > newest.taken.load(Relaxed)) {
            newest = Some(slot);
        }
    }
    newest
}
