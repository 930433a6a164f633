//! The registry of pending cleanups: a stack per thread, and the stopper's walk over them all.
//!
//! Each thread owns a [`Slot`], found through a thread-local and never freed (a thread that ends
//! hands its slot to the next new thread). A slot holds the thread's [`Stack`] of pending
//! cleanups, whose protocol (`protocol.rs`) says who runs each one, its owner or the stopper.
//! The stopper runs threads that took their slot last first, each thread's innermost first.
//!
//! While a thread runs a cleanup, the guarded calls that cleanup makes are not registered: they
//! are part of a cleanup, which is never cut short, so they only need return and panic covered.
//!
//! # Futures
//!
//! A guarded `async fn`'s node lives in its future. During the first poll it is on the polling
//! thread's stack, as a synchronous call's node is: a future that finishes in its first poll is
//! cleaned up as a call is, with no lock. But a future that waits may be polled again on any
//! thread, and futures finish in any order, so before its first poll returns `Pending`, its node
//! moves to the `futures` list of the slot of that thread: first linked into the list, then
//! taken off the stack, so that the stopper finds it in one or both (and claims it once, by
//! compare-and-swap).
//!
//! The list is doubly linked, through a [`Link`] beside the node, under the slot's mutex; the
//! future records the slot to unlink itself, from whichever thread. Owner and stopper claim the
//! node with the same compare-and-swap on `state`. The mutex plays the part of the stack's
//! store-then-load pairs: the stopper raises `STOPPING`, then copies the list under the lock; an
//! owner links or unlinks under the lock, then loads `STOPPING`. An owner that unlinks after the
//! stopper's copy sees the stop and parks, keeping its node alive.
//!
//! Nothing here runs inside a signal handler; none of it is async-signal-safe, and it need not be.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::barrier;
use crate::protocol::{Claim, Header, Stack};
use crate::stop::{self, STOPPING};
use crate::Exit;

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
    /// A node for a future, pushed (if ever) with [`push`].
    pub(crate) fn new(cleanup: F, name: &'static &'static str) -> Self {
        Self::above(ptr::null_mut(), cleanup, name)
    }

    /// A node to go on `slot`'s stack at once, with [`push_above`].
    #[inline(always)]
    pub(crate) fn on(slot: &Slot, cleanup: F, name: &'static &'static str) -> Self {
        Self::above(slot.stack.top(), cleanup, name)
    }

    #[inline(always)]
    fn above(prev: *mut Header, cleanup: F, name: &'static &'static str) -> Self {
        Node {
            header: Header::new(Self::run, name, prev),
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

/// One thread's pending cleanups.
pub(crate) struct Slot {
    stack: Stack,
    /// How many cleanups the thread is running (see the module docs); the thread's own.
    cleaning: AtomicU32,
    /// Guarded calls made on the thread, up to `barrier::HOT`; the thread's own.
    calls: AtomicU32,
    in_use: AtomicBool,
    /// When the current thread took the slot: the stopper cleans newer threads first.
    taken: AtomicU64,
    /// The next slot in the global list; set before the slot is published, never changed.
    next: AtomicPtr<Slot>,
    /// The newest pending future first polled on this slot's thread.
    futures: Mutex<FutureList>,
}

/// The head of a slot's list of pending futures: the newest.
struct FutureList(*const Link);

/// A future's place in the `futures` list of a slot, beside its node; changed only under that
/// slot's mutex.
pub(crate) struct Link {
    /// The node this link stands for.
    header: AtomicPtr<Header>,
    newer: AtomicPtr<Link>,
    older: AtomicPtr<Link>,
}

impl Link {
    pub(crate) const fn new() -> Self {
        Link {
            header: AtomicPtr::new(ptr::null_mut()),
            newer: AtomicPtr::new(ptr::null_mut()),
            older: AtomicPtr::new(ptr::null_mut()),
        }
    }
}

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

thread_local! {
    /// The calling thread's slot, or null before its first guarded call. No destructor: so the
    /// fast path reads it with no check of the thread-local's state.
    static SLOT: Cell<*const Slot> = const { Cell::new(ptr::null()) };
    /// Hands the slot back when the thread ends; touched once per thread.
    static HAND_BACK: HandBack = const { HandBack };
}

struct HandBack;

impl Drop for HandBack {
    fn drop(&mut self) {
        let slot = SLOT.with(|slot| slot.replace(ptr::null()));
        // SAFETY: slots are never freed.
        if let Some(slot) = unsafe { slot.as_ref() } {
            // A thread ends with its stack empty: every guarded frame popped its node.
            if slot.stack.is_empty() {
                slot.in_use.store(false, Release);
            }
        }
    }
}

/// The slot a guarded call registers in: the calling thread's, unless the thread is being torn
/// down or is running a cleanup (which is never cut short, so what it calls needs only return
/// and panic covered).
#[inline(always)]
pub(crate) fn guarded_slot() -> Option<&'static Slot> {
    local_slot().filter(|slot| !slot.is_cleaning())
}

/// The calling thread's slot, or `None` while the thread is being torn down.
#[inline(always)]
pub(crate) fn local_slot() -> Option<&'static Slot> {
    // SAFETY: slots are never freed.
    match unsafe { SLOT.with(Cell::get).as_ref() } {
        Some(slot) => Some(slot),
        None => first_slot(),
    }
}

/// The calling thread's first guarded call: takes a slot, to be handed back at the thread's end.
#[cold]
fn first_slot() -> Option<&'static Slot> {
    // Past this thread's teardown, a slot could not be handed back: none then.
    HAND_BACK.try_with(|_| ()).ok()?;
    let slot = take_slot();
    SLOT.with(|local| local.set(slot));
    Some(slot)
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
        stack: Stack::new(),
        cleaning: AtomicU32::new(0),
        calls: AtomicU32::new(0),
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

impl Slot {
    /// Whether the thread is running a cleanup: its guarded calls then go unregistered. (Its
    /// own stack's top is tagged while it runs one of its own; the count covers the others.)
    #[inline(always)]
    pub(crate) fn is_cleaning(&self) -> bool {
        self.stack.is_running() || self.cleaning.load(Relaxed) != 0
    }

    /// Runs `cleanup`, counted as a cleanup the thread is running. `cleanup` must not unwind.
    #[inline(always)]
    fn cleaning<T>(&self, cleanup: impl FnOnce() -> T) -> T {
        self.cleaning
            .store(self.cleaning.load(Relaxed) + 1, Relaxed);
        let result = cleanup();
        self.cleaning
            .store(self.cleaning.load(Relaxed) - 1, Relaxed);
        result
    }

    /// Runs a claimed node's cleanup, counted as one the thread is running.
    fn run_cleanup(&self, header: &Header, exit: &Exit) -> Option<Panic> {
        // SAFETY: `header` is the live header of a node claimed for this thread.
        self.cleaning(|| {
            catch_unwind(AssertUnwindSafe(|| unsafe { (header.run)(header, exit) })).err()
        })
    }
}

/// Publishes `header` as the innermost pending cleanup of the calling thread, whose slot is
/// `slot`, which must not be cleaning. The node must stay where it is until [`finish`].
///
/// Does not return while the process is stopping, unless the calling thread is the stopper.
#[inline(always)]
pub(crate) fn push(slot: &Slot, header: &Header) {
    count_call(slot);
    if slot.stack.push(header, &STOPPING).is_err() {
        stop::entered_while_stopping();
    }
}

/// [`push`] of a node made with [`Node::on`] the same slot, just before: one store less.
#[inline(always)]
pub(crate) fn push_above(slot: &Slot, header: &Header) {
    count_call(slot);
    if slot.stack.push_above(header, &STOPPING).is_err() {
        stop::entered_while_stopping();
    }
}

/// Counts a guarded call of the calling thread, whose slot is `slot`, up to [`barrier::HOT`].
#[inline(always)]
fn count_call(slot: &Slot) {
    let calls = slot.calls.load(Relaxed);
    if calls < barrier::HOT {
        slot.calls.store(calls + 1, Relaxed);
        if calls + 1 == barrier::HOT {
            barrier::hot();
        }
    }
}

/// Claims `header` for its owner, runs its cleanup and pops it.
///
/// Returns the cleanup's panic, if it panicked. Does not return if the stopper claimed the node
/// first, or if the process started stopping meanwhile (unless this thread is the stopper).
#[inline(always)]
pub(crate) fn finish<F: Fn(&Exit)>(slot: &Slot, node: &Node<F>, exit: &Exit) -> Option<Panic> {
    let header = node.header();
    let stopped;
    let claim = slot.stack.claim(header, &STOPPING);
    let exit = match claim {
        Claim::Owner => exit,
        // Returned during the stop (a body that saw the stop request, say): it ended for the
        // signal, and the process ends by it.
        Claim::OwnerDuringStop => match (exit, stop::requested()) {
            (Exit::Returned, Some(signal)) => {
                stopped = Exit::Signal(signal);
                &stopped
            }
            _ => exit,
        },
        // The stopper runs this cleanup; the code after the function must not run.
        Claim::Stopper => stop::park_forever(),
    };
    // Called directly, not through the header's type-erased `run`, so it can be inlined. While
    // it runs, the tagged top tells `is_cleaning`.
    let panic = catch_unwind(AssertUnwindSafe(|| (node.cleanup)(exit))).err();
    if claim == Claim::OwnerDuringStop {
        header.done();
    }
    if slot.stack.pop(header, &STOPPING).is_err() {
        stop::returned_while_stopping();
    }
    panic
}

/// A cleanup's panic payload.
pub(crate) type Panic = Box<dyn std::any::Any + Send>;

/// Takes `header`, the innermost node of the calling thread, whose slot is `slot`, off its
/// stack without running its cleanup: its future waits, and [`link_future`] has put the node in
/// the slot's list first.
///
/// Does not return while the process is stopping, unless the calling thread is the stopper.
pub(crate) fn unpush(slot: &Slot, header: &Header) {
    if slot.stack.pop(header, &STOPPING).is_err() {
        stop::entered_while_stopping();
    }
}

/// Links a future's node, through `link`, into the list of `slot`, the calling thread's.
///
/// Does not return while the process is stopping, unless the calling thread is the stopper.
/// The node and the link must stay where they are until [`finish_future`].
pub(crate) fn link_future(slot: &Slot, link: &Link, header: &Header) {
    let mut list = slot.futures();
    link.header.store(ptr::from_ref(header).cast_mut(), Relaxed);
    link.newer.store(ptr::null_mut(), Relaxed);
    link.older.store(list.0.cast_mut(), Relaxed);
    // SAFETY: links in the list are alive while linked, and the lock is held.
    if let Some(newest) = unsafe { list.0.as_ref() } {
        newest.newer.store(ptr::from_ref(link).cast_mut(), Relaxed);
    }
    list.0 = link;
    drop(list);
    if STOPPING.is_raised() {
        stop::entered_while_stopping();
    }
}

/// Claims a linked future's node for the calling thread, runs its cleanup and unlinks it.
///
/// As [`finish`]: returns the cleanup's panic, and does not return if the stopper has the node.
pub(crate) fn finish_future(
    slot: &Slot,
    link: &Link,
    header: &Header,
    exit: &Exit,
) -> Option<Panic> {
    let mine = local_slot();
    // As in `finish`: completed during the stop, it ended for the signal.
    let stopped;
    let exit = match (exit, STOPPING.is_raised().then(stop::requested).flatten()) {
        (Exit::Returned, Some(signal)) => {
            stopped = Exit::Signal(signal);
            &stopped
        }
        _ => exit,
    };
    if !header.claim_for_owner() {
        stop::park_forever();
    }
    let panic = match mine {
        Some(mine) => mine.run_cleanup(header, exit),
        // SAFETY: the live header of the caller's node, claimed above.
        None => catch_unwind(AssertUnwindSafe(|| unsafe { (header.run)(header, exit) })).err(),
    };
    header.done();
    let mut list = slot.futures();
    let (newer, older) = (link.newer.load(Relaxed), link.older.load(Relaxed));
    // SAFETY: linked links are alive, and the lock is held.
    match unsafe { newer.as_ref() } {
        Some(newer) => newer.older.store(older, Relaxed),
        None => list.0 = older,
    }
    // SAFETY: as above.
    if let Some(older) = unsafe { older.as_ref() } {
        older.newer.store(newer, Relaxed);
    }
    drop(list);
    if STOPPING.is_raised() {
        stop::returned_while_stopping();
    }
    panic
}

/// Runs a node's cleanup where no slot could be had: on completion or drop only.
pub(crate) fn run_unlinked(header: &Header, exit: &Exit) -> Option<Panic> {
    // SAFETY: the live header of the caller's node, known to no one else.
    catch_unwind(AssertUnwindSafe(|| unsafe { (header.run)(header, exit) })).err()
}

/// Runs every pending cleanup of every thread with `exit`: threads that took their slot last
/// first, each thread's innermost first. Called by the stopper only, after raising `STOPPING`.
pub(crate) fn run_all_pending(exit: &Exit) {
    // Not `local_slot`: the signal thread has none, and taking one allocates, on the way from a
    // signal to its first cleanup.
    // SAFETY: slots are never freed.
    let mine = unsafe { SLOT.with(Cell::get).as_ref() };
    // A stopper that is itself running a cleanup (which called `exit`) must not wait for a
    // future's cleanup that its owner is running: that may be its own.
    let cleaning = mine.is_some_and(Slot::is_cleaning);
    let mut run = |header: &Header| {
        stop::running(header.name);
        run_reporting(mine, header, exit);
    };
    // Newest first, each slot once, without allocating: by `taken`, which no two slots share.
    let mut below = u64::MAX;
    while let Some(slot) = newest_below(below) {
        below = slot.taken.load(Relaxed);
        let is_mine = mine.is_some_and(|mine| ptr::eq(mine, slot));
        // SAFETY: the stopper raised `STOPPING` and ran the heavy barrier (`stop::begin_stop`).
        unsafe { slot.stack.stop(is_mine, run, wait) };
        let mut futures = Vec::new();
        let list = slot.futures();
        let mut link = list.0;
        // SAFETY: linked links are alive, and the lock is held.
        while let Some(linked) = unsafe { link.as_ref() } {
            futures.push(linked.header.load(Relaxed).cast_const());
            link = linked.older.load(Relaxed);
        }
        drop(list);
        for header in futures {
            // SAFETY: a node copied from the list after `STOPPING` was raised stays alive.
            unsafe { &*header }.stop(cleaning, &mut run, &mut wait);
        }
    }
}

/// The slot that took its thread last among those that took theirs before `below`.
fn newest_below(below: u64) -> Option<&'static Slot> {
    let mut newest: Option<&'static Slot> = None;
    let mut next = SLOTS.load(SeqCst);
    // SAFETY: slots are never freed.
    while let Some(slot) = unsafe { next.as_ref() } {
        let taken = slot.taken.load(Relaxed);
        if taken < below && newest.map_or(true, |newest| taken > newest.taken.load(Relaxed)) {
            newest = Some(slot);
        }
        next = slot.next.load(Relaxed);
    }
    newest
}

/// Lets an owner finish the cleanup the stopper waits for; it unparks the stopper when done.
fn wait(header: &Header) {
    stop::running(header.name);
    std::thread::park_timeout(Duration::from_millis(20));
}

/// Runs a cleanup the stopper claimed; a panic is reported and does not stop the others.
fn run_reporting(mine: Option<&Slot>, header: &Header, exit: &Exit) {
    let result = match mine {
        Some(mine) => mine.run_cleanup(header, exit),
        // SAFETY: the stopper claimed this live node.
        None => catch_unwind(AssertUnwindSafe(|| unsafe { (header.run)(header, exit) })).err(),
    };
    if let Err(payload) = result.map_or(Ok(()), Err) {
        let message = crate::exit::panic_message(&*payload).unwrap_or("a non-string payload");
        crate::report::report(format_args!(
            "a cleanup panicked ({message}); running the remaining cleanups"
        ));
    }
}
