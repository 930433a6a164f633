//! The registry of pending cleanups: one stack per thread, walkable by the stopper.
//!
//! # Protocol
//!
//! Each thread owns a [`Slot`], found through a thread-local and never freed (a thread that ends
//! hands its slot to the next new thread). A guarded call keeps a [`Node`] in its own stack frame
//! and links it on top of its thread's slot: the slot's `top` points at the innermost pending
//! node, each node's `prev` at the one it encloses. Only the owning thread changes `top`.
//!
//! A node's `state` says who runs its cleanup:
//!
//! ```text
//! PENDING --owner's CAS---> OWNER --cleanup done--> DONE
//!    \------stopper's CAS--> STOPPER   (the owner then parks for good)
//! ```
//!
//! The *owner* is the thread whose call made the node; it claims the node when the body ends.
//! The *stopper* is the one thread that handles the end of the process (the signal thread on a
//! signal, or the thread inside `exit`): it raises the global `STOPPING` flag, then walks every
//! slot and claims each pending node. Both claim with one compare-and-swap on `state`, so exactly
//! one of them runs each cleanup.
//!
//! Two rules keep the stopper's pointers valid and lose no cleanup. Both are the classic pair of
//! "store, then load the other side's flag" (all `SeqCst`): of two threads that each store and
//! then load, at least one sees the other's store.
//!
//! * **Push**: the owner stores `top = node`, then loads `STOPPING`; the stopper stores
//!   `STOPPING`, then loads `top`. So either the stopper sees the node, or the owner sees the
//!   stop and parks before its body runs.
//! * **Pop**: the owner stores `top = prev`, then loads `STOPPING`. A stopper that read the node
//!   from `top` did so after raising `STOPPING` and before this pop, so the owner sees the stop
//!   and parks for good, which keeps its frame (and every node below it) alive for the stopper.
//!   An owner that does not see the stop is popped before the stopper looks, and may return.
//!
//! A node the owner claimed is running its cleanup on the owner's thread: the stopper waits for
//! `DONE` before it moves to older nodes, so cleanups run one at a time, innermost first, and a
//! normal-path cleanup is never cut short by a signal.
//!
//! # Futures
//!
//! A guarded `async fn`'s node lives in its future, which may be polled on any thread and
//! finishes in any order, so it cannot be on a stack. It goes into the `futures` list of the slot
//! of the thread that first polled it, a doubly linked list under the slot's mutex; it records
//! that slot to unlink itself, from whichever thread. The claim is the same CAS on `state`. The
//! mutex plays the part of the `SeqCst` pairs above: the stopper raises `STOPPING`, then copies
//! the list under the lock; an owner links or unlinks under the lock, then loads `STOPPING`. An
//! owner that unlinks after the stopper's copy sees the stop and parks, keeping its node alive.
//!
//! Nothing here runs inside a signal handler; none of it is async-signal-safe, and it need not be.

use std::cell::Cell;
use std::cmp::Reverse;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicU8};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::stop;
use crate::Exit;

const PENDING: u8 = 0;
const OWNER: u8 = 1;
const STOPPER: u8 = 2;
const DONE: u8 = 3;

/// The type-erased part of a pending cleanup, linked into its thread's slot.
pub(crate) struct Header {
    state: AtomicU8,
    /// On a stack, the node this one is nested in, written before the node is published. In a
    /// `futures` list, the newer neighbour, under the list's lock.
    prev: AtomicPtr<Header>,
    /// In a `futures` list, the older neighbour, under the list's lock.
    next: AtomicPtr<Header>,
    /// The slot of the thread that runs the cleanup if it claims it as the owner.
    owner: AtomicPtr<Slot>,
    /// Runs the cleanup of the `Node<F>` this header starts.
    run: unsafe fn(*const Header, &Exit),
}

/// A pending cleanup, kept in the frame of the guarded call.
#[repr(C)]
pub(crate) struct Node<F> {
    header: Header,
    cleanup: F,
}

impl<F> Node<F> {
    pub(crate) fn header(&self) -> &Header {
        &self.header
    }
}

impl<F: Fn(&Exit) + Sync> Node<F> {
    pub(crate) fn new(cleanup: F) -> Self {
        Node {
            header: Header {
                state: AtomicU8::new(PENDING),
                prev: AtomicPtr::new(ptr::null_mut()),
                next: AtomicPtr::new(ptr::null_mut()),
                owner: AtomicPtr::new(ptr::null_mut()),
                run: Self::run,
            },
            cleanup,
        }
    }

    /// # Safety
    ///
    /// `header` must be the header of a live `Node<F>`.
    unsafe fn run(header: *const Header, exit: &Exit) {
        // SAFETY: `Node<F>` is `repr(C)` with the header first, and the caller vouches for it.
        let node = unsafe { &*header.cast::<Node<F>>() };
        (node.cleanup)(exit)
    }
}

/// One thread's stack of pending cleanups.
pub(crate) struct Slot {
    /// The innermost pending node of the thread using this slot, or null.
    top: AtomicPtr<Header>,
    in_use: AtomicBool,
    /// When the current thread took the slot: the stopper cleans newer threads first.
    taken: AtomicU64,
    /// The next slot in the global list; set before the slot is published, never changed.
    next: AtomicPtr<Slot>,
    /// The newest pending future first polled on this slot's thread.
    futures: Mutex<FutureList>,
}

/// The head of a slot's list of pending futures.
struct FutureList(*const Header);

// SAFETY: the pointer is only followed under the slot's mutex, or by the stopper (module docs).
unsafe impl Send for FutureList {}

impl Slot {
    fn futures(&self) -> MutexGuard<'_, FutureList> {
        // The list is consistent whenever the lock is free: nothing in it panics.
        self.futures.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Every slot ever made, newest first.
static SLOTS: AtomicPtr<Slot> = AtomicPtr::new(ptr::null_mut());
static TAKEN: AtomicU64 = AtomicU64::new(0);

/// The calling thread's slot; handed back when the thread ends.
struct Local(Cell<*const Slot>);

impl Drop for Local {
    fn drop(&mut self) {
        // SAFETY: slots are never freed.
        if let Some(slot) = unsafe { self.0.get().as_ref() } {
            // A thread ends with its stack empty: every guarded frame popped its node.
            if slot.top.load(Relaxed).is_null() {
                slot.in_use.store(false, Release);
            }
        }
    }
}

thread_local! {
    static LOCAL: Local = const { Local(Cell::new(ptr::null())) };
}

/// The calling thread's slot, or `None` while the thread is being torn down.
#[inline]
pub(crate) fn local_slot() -> Option<&'static Slot> {
    LOCAL
        .try_with(|local| {
            // SAFETY: slots are never freed.
            match unsafe { local.0.get().as_ref() } {
                Some(slot) => slot,
                None => {
                    let slot = take_slot();
                    local.0.set(slot);
                    slot
                }
            }
        })
        .ok()
}

#[cold]
fn take_slot() -> &'static Slot {
    crate::signals::install_once();
    let taken = TAKEN.fetch_add(1, Relaxed);
    let mut next = SLOTS.load(Acquire);
    // SAFETY (loop): slots are never freed.
    while let Some(slot) = unsafe { next.as_ref() } {
        if slot
            .in_use
            .compare_exchange(false, true, Acquire, Relaxed)
            .is_ok()
        {
            slot.taken.store(taken, Relaxed);
            return slot;
        }
        next = slot.next.load(Relaxed);
    }
    let slot: &'static Slot = Box::leak(Box::new(Slot {
        top: AtomicPtr::new(ptr::null_mut()),
        in_use: AtomicBool::new(true),
        taken: AtomicU64::new(taken),
        next: AtomicPtr::new(ptr::null_mut()),
        futures: Mutex::new(FutureList(ptr::null())),
    }));
    let mut head = SLOTS.load(Relaxed);
    loop {
        slot.next.store(head, Relaxed);
        match SLOTS.compare_exchange(head, slot as *const Slot as *mut Slot, SeqCst, Relaxed) {
            Ok(_) => return slot,
            Err(now) => head = now,
        }
    }
}

/// Publishes `header` as the innermost pending cleanup of the calling thread.
///
/// Does not return while the process is stopping, unless the calling thread is the stopper.
#[inline]
pub(crate) fn push(slot: &Slot, header: &Header) {
    header.prev.store(slot.top.load(Relaxed), Relaxed);
    header
        .owner
        .store(slot as *const Slot as *mut Slot, Relaxed);
    slot.top
        .store(header as *const Header as *mut Header, SeqCst);
    if stop::STOPPING.load(SeqCst) {
        stop::entered_while_stopping();
    }
}

/// Claims `header` for its owner, runs its cleanup and pops it.
///
/// Returns the cleanup's panic, if it panicked. Does not return if the stopper claimed the node
/// first, or if the process started stopping meanwhile (unless this thread is the stopper).
#[inline]
pub(crate) fn finish(slot: &Slot, header: &Header, exit: &Exit) -> Option<Panic> {
    let panic = claim_and_run(header, exit);
    slot.top.store(header.prev.load(Relaxed), SeqCst);
    if stop::STOPPING.load(SeqCst) {
        stop::returned_while_stopping();
    }
    panic
}

/// A cleanup's panic payload.
pub(crate) type Panic = Box<dyn std::any::Any + Send>;

/// Claims `header` for the calling thread and runs its cleanup, or parks for good if the
/// stopper claimed it first (the code after the function must not run).
fn claim_and_run(header: &Header, exit: &Exit) -> Option<Panic> {
    if header
        .state
        .compare_exchange(PENDING, OWNER, SeqCst, Relaxed)
        .is_err()
    {
        stop::park_forever();
    }
    // SAFETY: `header` is the live header of the caller's node.
    let panic = catch_unwind(AssertUnwindSafe(|| unsafe { (header.run)(header, exit) })).err();
    header.state.store(DONE, Release);
    panic
}

/// Links a future's node into the list of the calling thread's slot, and returns the slot.
///
/// `None` while the thread is being torn down: the node then stays unlinked, and its cleanup runs
/// on completion and drop only. Does not return while the process is stopping, unless the
/// calling thread is the stopper. The node must stay where it is until [`finish_future`].
pub(crate) fn link_future(header: &Header) -> Option<&'static Slot> {
    let slot = local_slot()?;
    let mut list = slot.futures();
    header.prev.store(ptr::null_mut(), Relaxed);
    header.next.store(list.0 as *mut Header, Relaxed);
    // SAFETY: nodes in the list are alive while linked, and the lock is held.
    if let Some(newest) = unsafe { list.0.as_ref() } {
        newest
            .prev
            .store(header as *const Header as *mut Header, Relaxed);
    }
    list.0 = header;
    drop(list);
    if stop::STOPPING.load(SeqCst) {
        stop::entered_while_stopping();
    }
    Some(slot)
}

/// Claims a linked future's node for the calling thread, runs its cleanup and unlinks it.
///
/// As [`finish`]: returns the cleanup's panic, and does not return if the stopper has the node.
pub(crate) fn finish_future(slot: &Slot, header: &Header, exit: &Exit) -> Option<Panic> {
    let mine = LOCAL.try_with(|local| local.0.get()).unwrap_or(ptr::null());
    header.owner.store(mine as *mut Slot, Relaxed);
    let panic = claim_and_run(header, exit);
    let mut list = slot.futures();
    let (prev, next) = (header.prev.load(Relaxed), header.next.load(Relaxed));
    // SAFETY: linked nodes are alive, and the lock is held.
    match unsafe { prev.as_ref() } {
        Some(prev) => prev.next.store(next, Relaxed),
        None => list.0 = next,
    }
    // SAFETY: as above.
    if let Some(next) = unsafe { next.as_ref() } {
        next.prev.store(prev, Relaxed);
    }
    drop(list);
    if stop::STOPPING.load(SeqCst) {
        stop::returned_while_stopping();
    }
    panic
}

/// Runs a node's cleanup where no slot could be had: on completion or drop only.
pub(crate) fn run_unlinked(header: &Header, exit: &Exit) -> Option<Panic> {
    claim_and_run(header, exit)
}

/// Runs every pending cleanup of every thread with `exit`: threads that took their slot last
/// first, each thread's innermost first. Called by the stopper only, after raising `STOPPING`.
pub(crate) fn run_all_pending(exit: &Exit) {
    let mine = LOCAL.try_with(|local| local.0.get()).unwrap_or(ptr::null());
    let mut slots = Vec::new();
    let mut next = SLOTS.load(SeqCst);
    // SAFETY: slots are never freed.
    while let Some(slot) = unsafe { next.as_ref() } {
        slots.push(slot);
        next = slot.next.load(Relaxed);
    }
    slots.sort_by_key(|slot| Reverse(slot.taken.load(Relaxed)));
    for slot in slots {
        let mut node = slot.top.load(SeqCst);
        // SAFETY: a node read from `top` after `STOPPING` was raised stays alive (module docs),
        // and so do the older nodes of the same thread below it.
        while let Some(header) = unsafe { node.as_ref() } {
            stop_one(header, exit, mine);
            node = header.prev.load(Relaxed);
        }
        let mut futures = Vec::new();
        let list = slot.futures();
        let mut node = list.0;
        // SAFETY: linked nodes are alive, and the lock is held.
        while let Some(header) = unsafe { node.as_ref() } {
            futures.push(header as *const Header);
            node = header.next.load(Relaxed);
        }
        drop(list);
        for header in futures {
            // SAFETY: a node copied from the list after `STOPPING` was raised stays alive.
            stop_one(unsafe { &*header }, exit, mine);
        }
    }
}

/// Claims a node for the stopper and runs it; or, if its owner is running it, waits for that.
fn stop_one(header: &Header, exit: &Exit, mine: *const Slot) {
    match header
        .state
        .compare_exchange(PENDING, STOPPER, SeqCst, Acquire)
    {
        Ok(_) => run_reporting(header, exit),
        // Let the owner finish, unless the owner is this very thread (a cleanup that called
        // `exit`), which would never come back.
        Err(OWNER) if !ptr::eq(header.owner.load(Relaxed), mine) => {
            while header.state.load(Acquire) != DONE {
                std::thread::park_timeout(Duration::from_millis(20));
            }
        }
        Err(_) => {}
    }
}

/// Runs a cleanup the stopper claimed; a panic is reported and does not stop the others.
fn run_reporting(header: &Header, exit: &Exit) {
    // SAFETY: the stopper claimed this live node (see `run_all_pending`).
    let result = catch_unwind(AssertUnwindSafe(|| unsafe { (header.run)(header, exit) }));
    if let Err(payload) = result {
        let message = crate::exit::panic_message(&*payload).unwrap_or("a non-string payload");
        eprintln!("finally: a cleanup panicked ({message}); running the remaining cleanups");
    }
}
