//! The registry of pending cleanups: a stack per thread, and the walk of the shutdown over them all.
//!
//! Each thread owns a [`Slot`], found through a thread-local and never freed (a thread that ends
//! hands its slot to the next new thread). A slot holds the thread's [`Stack`] of pending
//! cleanups, whose protocol (`protocol.rs`) says who runs each one, its owner or the shutdown.
//! The shutdown walks threads that took their slot last first, each thread's innermost first,
//! and publishes which slot it is on (`standby.rs`), for the owners to keep their frames.
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
//! taken off the stack, so that the walk finds it in one or both (and takes it once, by
//! compare-and-swap).
//!
//! The list is doubly linked, through a [`Link`] beside the node, under the slot's mutex; the
//! future records the slot to unlink itself, from whichever thread. Owner and walk win the
//! node with the same compare-and-swap on `state`. The mutex plays the part of the stack's
//! store-then-load pairs: the shutdown starts the flag, then copies the list under the lock; an
//! owner links or unlinks under the lock, then loads the flag. An owner that unlinks after the
//! walk's copy sees the shutdown and stands by while the walk is on that slot, keeping its node
//! alive.
//!
//! # A forked child
//!
//! After `fork`, the child has one thread. The slots of the others are marked `gone`: their
//! cleanups belong to the parent, which runs them; the child never does.
//!
//! Nothing here runs inside a signal handler, but for what says it is async-signal-safe (the
//! child's side of `fork`).
//!
//! This file holds the slots and the owner's steps; `walking.rs` the walk, `freeing.rs` the freeing
//! of a guard's box that the walk may still read.

use std::cell::Cell;
use std::fmt::Display;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::cleanup::Run;
use crate::exit::Exit;
use crate::flag::SHUTDOWN;
use crate::protocol::{Header, Name, Stack};
use crate::{request, standby, stop, sys, trace};

mod freeing;
mod walking;

pub(crate) use self::freeing::release;
pub(crate) use self::walking::{call_unlinked, walk};

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

impl<F: Run> Node<F> {
    /// A node to go above `top`, its slot's stack's top (see [`Slot::top_unless_cleaning`]), so
    /// that [`push`] is a single store; above null, a node that no stack holds.
    #[inline]
    pub(crate) fn above(cleanup: F, name: &'static &'static str, top: *mut Header) -> Self {
        Node {
            header: Header::new(Self::call, Name::function(name), top),
            cleanup,
        }
    }

    /// # Safety
    ///
    /// `header` must be the header of a live `Node<F>`.
    unsafe fn call(header: *const Header, exit: &Exit) {
        // SAFETY: `Node<F>` is `repr(C)` with the header first, and the caller vouches for it.
        let node = unsafe { &*header.cast::<Node<F>>() };
        node.cleanup.run(exit, &node.header.name)
    }
}

/// One thread's pending cleanups.
///
/// Aligned as crossbeam's `CachePadded` is on x86-64: each thread stores to its slot on every
/// guarded call, and two slots sharing a cache line (or a pair the prefetcher fetches together)
/// would make threads that share nothing wait for each other.
#[repr(align(128))]
pub(crate) struct Slot {
    stack: Stack,
    /// How many cleanups the thread is running (see the module docs); the thread's own.
    cleaning: AtomicU32,
    in_use: AtomicBool,
    /// The thread that took the slot ([`sys::thread_id`]), to find it where its thread-locals
    /// are gone.
    owner: AtomicUsize,
    /// In a forked child: the thread is the parent's, not the child's.
    gone: AtomicBool,
    /// When the current thread took the slot: the walk cleans newer threads first.
    taken: AtomicU64,
    /// The next slot in the global list; set before the slot is published, never changed.
    next: AtomicPtr<Slot>,
    /// The pending cleanups that are not a call's: futures first polled on this slot's thread,
    /// and guards made on it. The newest first.
    linked: Mutex<Linked>,
}

/// The head of a slot's list of linked cleanups: the newest.
struct Linked(*const Link);

/// A linked cleanup's place in the list of a slot, beside its node; changed only under that
/// slot's mutex.
pub(crate) struct Link {
    /// The node this link stands for.
    header: AtomicPtr<Header>,
    /// The innermost node of the thread's stack when it was linked, or null: the cleanup runs
    /// before that one's, as if nested in it.
    enclosing: AtomicPtr<Header>,
    newer: AtomicPtr<Link>,
    older: AtomicPtr<Link>,
}

impl Link {
    pub(crate) const fn new() -> Self {
        Link {
            header: AtomicPtr::new(ptr::null_mut()),
            enclosing: AtomicPtr::new(ptr::null_mut()),
            newer: AtomicPtr::new(ptr::null_mut()),
            older: AtomicPtr::new(ptr::null_mut()),
        }
    }
}

// SAFETY: the pointer is only followed under the slot's mutex, or by the walk (module docs).
unsafe impl Send for Linked {}

impl Slot {
    fn linked(&self) -> MutexGuard<'_, Linked> {
        // The list is consistent whenever the lock is free: nothing in it panics.
        self.linked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The innermost node of the stack, for its owner: what a guard made now is nested in.
    #[inline]
    pub(crate) fn innermost(&self) -> *mut Header {
        self.stack.top()
    }

    /// The linked cleanups, newest first, with what each is nested in. Allocates only if there
    /// are any.
    fn copy_linked(&self) -> Vec<(*const Header, *const Header)> {
        let mut copied = Vec::new();
        let list = self.linked();
        let mut link = list.0;
        // SAFETY: linked links are alive, and the lock is held.
        while let Some(linked) = unsafe { link.as_ref() } {
            let header = linked.header.load(Relaxed).cast_const();
            copied.push((header, linked.enclosing.load(Relaxed).cast_const()));
            link = linked.older.load(Relaxed);
        }
        copied
    }

    /// The slot's address: how the walk names the slot it is on (`standby.rs`).
    fn address(&self) -> usize {
        ptr::from_ref(self) as usize
    }
}

/// Every slot ever made, newest first.
static SLOTS: AtomicPtr<Slot> = AtomicPtr::new(ptr::null_mut());
/// How many times a thread has taken a slot: the number of the next take, kept in the slot
/// (`Slot::taken`), by which the walk goes newest first. (Not a node's `protocol::TAKEN`.)
static SLOTS_TAKEN: AtomicU64 = AtomicU64::new(0);

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
            // A thread ends with its stack empty, unless it is inside `exit` (whose hooks run
            // after this): then the shutdown still finds the slot by its owner.
            if slot.stack.is_empty() {
                slot.in_use.store(false, Release);
            }
        }
    }
}

/// The calling thread's slot, if it has taken one ([`take`]).
#[inline]
pub(crate) fn current() -> Option<&'static Slot> {
    // SAFETY: slots are never freed.
    unsafe { SLOT.with(Cell::get).as_ref() }
}

/// Takes a slot for the calling thread, to be handed back at the thread's end; `None` while the
/// thread is being torn down, when it could not be handed back.
#[cold]
pub(crate) fn take() -> Option<&'static Slot> {
    HAND_BACK.try_with(|_| ()).ok()?;
    let slot = take_slot();
    SLOT.with(|local| local.set(slot));
    Some(slot)
}

fn take_slot() -> &'static Slot {
    let taken = SLOTS_TAKEN.fetch_add(1, Relaxed);
    let owner = sys::thread_id();
    let free = slots().find(|slot| {
        !slot.gone.load(Relaxed)
            && slot
                .in_use
                .compare_exchange(false, true, Acquire, Relaxed)
                .is_ok()
    });
    if let Some(slot) = free {
        slot.owner.store(owner, Relaxed);
        slot.taken.store(taken, Relaxed);
        return slot;
    }
    let slot: &'static Slot = Box::leak(Box::new(Slot {
        stack: Stack::new(),
        cleaning: AtomicU32::new(0),
        in_use: AtomicBool::new(true),
        owner: AtomicUsize::new(owner),
        gone: AtomicBool::new(false),
        taken: AtomicU64::new(taken),
        next: AtomicPtr::new(ptr::null_mut()),
        linked: Mutex::new(Linked(ptr::null())),
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

/// Every slot ever made, newest first. Async-signal-safe.
fn slots() -> impl Iterator<Item = &'static Slot> {
    let mut next = SLOTS.load(SeqCst);
    std::iter::from_fn(move || {
        // SAFETY: slots are never freed.
        let slot = unsafe { next.as_ref() }?;
        next = slot.next.load(Relaxed);
        Some(slot)
    })
}

/// The calling thread's slot, found by its owner: also where its thread-locals are gone.
/// Async-signal-safe.
fn mine() -> Option<&'static Slot> {
    let me = sys::thread_id();
    slots().find(|slot| {
        slot.in_use.load(Acquire) && !slot.gone.load(Relaxed) && slot.owner.load(Relaxed) == me
    })
}

impl Slot {
    /// Whether the thread is running a cleanup: its guarded calls then go unregistered. (Its
    /// own stack's top is tagged while it runs one of its own; the count covers the others.)
    #[inline]
    pub(crate) fn is_cleaning(&self) -> bool {
        self.stack.is_cleaning() || self.cleaning.load(Relaxed) != 0
    }

    /// The innermost pending node, for a guarded call's node to go above it, unless the thread
    /// is running a cleanup ([`is_cleaning`](Self::is_cleaning)): one load of the top for both.
    #[inline]
    pub(crate) fn top_unless_cleaning(&self) -> Option<*mut Header> {
        let top = self.stack.top();
        (!Stack::is_tag(top) && self.cleaning.load(Relaxed) == 0).then_some(top)
    }

    /// Runs `cleanup`, counted as a cleanup the thread is running. `cleanup` must not unwind.
    #[inline]
    fn cleaning<T>(&self, cleanup: impl FnOnce() -> T) -> T {
        self.cleaning
            .store(self.cleaning.load(Relaxed) + 1, Relaxed);
        let result = cleanup();
        self.cleaning
            .store(self.cleaning.load(Relaxed) - 1, Relaxed);
        result
    }
}

/// Runs a cleanup, `cleanup`, named `name` and told `exit`, catching its panic: the one place a
/// cleanup is called, and told to `tracing` (`trace.rs`).
#[inline]
pub(crate) fn call_caught(
    name: &dyn Display,
    exit: &Exit,
    cleanup: impl FnOnce(),
) -> Option<Panic> {
    let started = trace::start();
    let panic = catch_unwind(AssertUnwindSafe(cleanup)).err();
    if let Some(started) = started {
        trace::ran(started, name, exit, panic.as_deref());
    }
    panic
}

/// Calls the cleanup of `header`, a live node won by the calling thread, whose slot is
/// `mine` if it has one: counted as a cleanup the thread runs.
fn call(mine: Option<&Slot>, header: &Header, exit: &Exit) -> Option<Panic> {
    let call = || {
        // SAFETY: the caller vouches for the node.
        call_caught(&header.name, exit, || unsafe {
            (header.call)(header, exit)
        })
    };
    match mine {
        Some(mine) => mine.cleaning(call),
        None => call(),
    }
}

/// Publishes `header`, of a node made with [`Node::above`] `slot`'s top just before, as the
/// innermost pending cleanup of the calling thread, whose slot is `slot`, which must not be
/// cleaning. The node must stay where it is until [`finish`] (or [`unpush`]).
///
/// Returns `false` where the body must not start (see [`entered_during_shutdown`]): the node is
/// off the stack again, and the caller stops the thread (`stop.rs`), or runs the body
/// unregistered, as a cleanup's calls are, if it is unwinding already.
#[inline]
#[must_use]
pub(crate) fn push(slot: &Slot, header: &Header) -> bool {
    slot.stack.push(header, &SHUTDOWN).is_ok() || entered_during_shutdown(slot, header)
}

/// A push met the flag. During a shutdown, on a thread with nothing else pending, the body runs,
/// its node pending like any other (a walk that saw it takes it over): that thread is one the
/// shutdown does not concern, as if it had not started, and it may hold a lock that a cleanup
/// needs. Inside a function that the shutdown takes over, or once the shutdown is closed, the
/// body never starts: the node is withdrawn and taken off the stack, and the thread is to be
/// stopped, so that the locks it holds are released on the way out.
#[cold]
fn entered_during_shutdown(slot: &Slot, header: &Header) -> bool {
    SHUTDOWN.start_thread_if_forked();
    let nested = !header.prev.load(Relaxed).is_null();
    if !refused(nested) {
        return true;
    }
    // Its cleanup is no one's to run: the body never ran. (A walk that saw it may have taken it
    // first, and runs it, once.)
    header.withdraw();
    let _ = slot.stack.pop(header, &SHUTDOWN);
    standby::wait_while_walking(slot.address());
    false
}

/// Whether a guarded body, or a guard, must not start now: once the shutdown is closed, or
/// during it if `nested` in a pending function, which the shutdown takes over.
fn refused(nested: bool) -> bool {
    SHUTDOWN.is_closed() || (SHUTDOWN.is_started() && nested)
}

/// A pop (or an unlink) of `slot`'s met the flag: during a shutdown, the owner stands by while
/// the walk may read what it unlinked.
#[cold]
fn left_during_shutdown(slot: &Slot) {
    SHUTDOWN.start_thread_if_forked();
    if SHUTDOWN.is_started() {
        standby::stand_by(slot.address());
    }
}

/// Tags `header` for its owner, runs its cleanup and pops it.
///
/// Returns the cleanup's panic, if it panicked. Runs nothing if the shutdown took the node over
/// (it runs the cleanup itself). Once the shutdown is closed, stops the thread (`stop.rs`).
///
/// Always inlined: in an executor's big poll function, LLVM would otherwise call it, and a
/// guarded future would pay a call more than a guarded function.
#[inline(always)]
pub(crate) fn finish<F: Run>(slot: &Slot, node: &Node<F>, exit: &Exit) -> Option<Panic> {
    let header = node.header();
    if slot.stack.tag(header, &SHUTDOWN).is_err() {
        return finish_during_shutdown(slot, node, exit);
    }
    // Called directly, not through the header's type-erased `call`, so it can be inlined. While
    // it runs, the tagged top tells `is_cleaning`.
    let panic = call_caught(&node.header.name, exit, || {
        node.cleanup.run(exit, &node.header.name);
    });
    if slot.stack.pop(header, &SHUTDOWN).is_err() {
        left_during_shutdown(slot);
    }
    panic
}

/// [`finish`] once the tag met the flag: the owner runs the cleanup only if it wins the node;
/// if the shutdown took it over, it runs nothing.
#[cold]
#[inline(never)]
fn finish_during_shutdown<F: Run>(slot: &Slot, node: &Node<F>, exit: &Exit) -> Option<Panic> {
    let header = node.header();
    let panic = if header.own() {
        let stopped = request::stopped(exit);
        let exit = stopped.as_ref().unwrap_or(exit);
        let panic = call_caught(&node.header.name, exit, || {
            node.cleanup.run(exit, &node.header.name);
        });
        header.done();
        panic
    } else {
        None
    };
    if slot.stack.pop(header, &SHUTDOWN).is_err() {
        left_during_shutdown(slot);
    }
    panic
}

/// A cleanup's panic payload.
pub(crate) type Panic = Box<dyn std::any::Any + Send>;

/// Takes `header`, the innermost node of the calling thread, whose slot is `slot`, off its
/// stack without running its cleanup: its future waits, and [`link_future`] has put the node in
/// the slot's list first.
pub(crate) fn unpush(slot: &Slot, header: &Header) {
    if slot.stack.pop(header, &SHUTDOWN).is_err() {
        left_during_shutdown(slot);
    }
}

/// Links a future's node, through `link`, into the list of `slot`, the calling thread's.
///
/// The node and the link must stay where they are until [`finish_linked`].
pub(crate) fn link_future(slot: &Slot, link: &Link, header: &Header) {
    link_in(slot, link, header, header.prev.load(Relaxed));
}

/// Whether a guard made now by the calling thread, whose slot is `slot`, may be linked there:
/// not where a guarded body could not start (see [`entered_during_shutdown`]); then the thread
/// was stopped, unless it is unwinding already: the guard then runs on drop only. In a forked
/// child that has no signal thread yet, starts it first, so that a signal finds the guard.
#[inline]
pub(crate) fn may_link_guard(slot: &Slot) -> bool {
    SHUTDOWN.is_quiet() || may_link_guard_now(slot)
}

#[cold]
fn may_link_guard_now(slot: &Slot) -> bool {
    SHUTDOWN.start_thread_if_forked();
    if !refused(!slot.innermost().is_null()) {
        return true;
    }
    stop::stop();
    false
}

/// Links the node of a guard made by the calling thread, whose slot is `slot`, nested in
/// `enclosing` (see [`Slot::innermost`]). A walk that copied the list before started the flag
/// before, and [`may_link_guard`] said yes after that; one that copies it after takes the guard
/// over, as any other it finds.
pub(crate) fn link_guard(slot: &Slot, link: &Link, header: &Header, enclosing: *mut Header) {
    link_in(slot, link, header, enclosing);
}

fn link_in(slot: &Slot, link: &Link, header: &Header, enclosing: *mut Header) {
    let mut list = slot.linked();
    link.enclosing.store(enclosing, Relaxed);
    link.header.store(ptr::from_ref(header).cast_mut(), Relaxed);
    link.newer.store(ptr::null_mut(), Relaxed);
    link.older.store(list.0.cast_mut(), Relaxed);
    // SAFETY: links in the list are alive while linked, and the lock is held.
    if let Some(newest) = unsafe { list.0.as_ref() } {
        newest.newer.store(ptr::from_ref(link).cast_mut(), Relaxed);
    }
    list.0 = link;
}

/// Where a linked node lives, which says what its owner must wait for during a shutdown.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lives {
    /// In a future, freed by its executor once dropped: while a walk may read it, the thread
    /// that finishes it keeps it.
    InFuture,
    /// In a guard's box, which a walk frees if it may still read it ([`release`]).
    InBox,
}

/// Wins a linked node (a future's, a guard's) for the calling thread, runs its cleanup, unless
/// `exit` is `None` (a guard dismissed), and unlinks it.
///
/// As [`finish`]: runs nothing if the shutdown took the node; returns whether the node was the
/// calling thread's to finish (not the shutdown's), and the cleanup's panic.
/// `mine` is the calling thread's slot, if any. During a shutdown, the thread stands by while the
/// walk is on `slot` where it must: where the node lives in a future (which it may free next),
/// or where it is that slot's own thread, for which this is the end of a guarded scope, as the
/// end of a guarded call is ([`standby::stand_by`]). A guard dropped by another thread does not
/// wait for the walk at all: it may hold a lock that one of the maker's cleanups needs.
pub(crate) fn finish_linked(
    slot: &Slot,
    link: &Link,
    header: &Header,
    exit: Option<&Exit>,
    mine: Option<&Slot>,
    lives: Lives,
) -> (bool, Option<Panic>) {
    let stopped = match SHUTDOWN.is_quiet() {
        true => None,
        false => exit.and_then(request::stopped),
    };
    let exit = exit.map(|exit| stopped.as_ref().unwrap_or(exit));
    let stands_by = lives == Lives::InFuture || mine.is_some_and(|mine| ptr::eq(mine, slot));
    // Not ours if the walk took it: it runs it, and may be running it still (the standing by
    // below waits for that). Unlinked first all the same: standing by may stop the thread
    // (`stop.rs`), which must not leave the link in the list when the node's memory goes.
    let ours = header.own();
    let panic = if ours {
        let panic = exit.and_then(|exit| call(mine, header, exit));
        header.done();
        panic
    } else {
        None
    };
    let mut list = slot.linked();
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
    if stands_by && SHUTDOWN.is_started() {
        standby::stand_by(slot.address());
    }
    (ours, panic)
}

/// The calling thread is about to wait for good inside `exit` while another thread ends the
/// process: a cleanup of its own that it was running (and that called `exit`) is over, so the
/// walk must not wait for it.
pub(crate) fn abandon_mine() {
    if let Some(slot) = mine() {
        if slot.stack.is_cleaning() {
            slot.stack.unlink_cleaning();
            standby::notify();
        }
    }
}

/// Whether the calling thread has a cleanup pending on its stack. Async-signal-safe.
#[cfg(unix)]
pub(crate) fn has_pending() -> bool {
    mine().is_some_and(|slot| !slot.stack.is_empty())
}

/// Whether any thread has a cleanup pending.
pub(crate) fn any_pending() -> bool {
    slots()
        .filter(|slot| !slot.gone.load(Relaxed))
        .any(|slot| !slot.stack.is_empty() || !slot.linked().0.is_null())
}

/// How many `fork`s this process is from the one that started the program: what was made
/// before the last fork belongs to the parent.
static GENERATION: AtomicU32 = AtomicU32::new(0);

/// This process's generation (see [`GENERATION`]).
pub(crate) fn generation() -> u32 {
    GENERATION.load(Relaxed)
}

/// In a forked child, with its one thread: the slots of every other thread are the parent's.
/// Returns whether the child's thread has a cleanup pending. Async-signal-safe.
#[cfg(unix)]
pub(crate) fn forget_other_threads() -> bool {
    GENERATION.fetch_add(1, SeqCst);
    let me = sys::thread_id();
    let mut pending = false;
    for slot in slots() {
        if slot.in_use.load(Relaxed) && slot.owner.load(Relaxed) == me && !slot.gone.load(Relaxed) {
            // A lock held by a thread that is gone stays held: count it as pending.
            pending |= !slot.stack.is_empty()
                || slot
                    .linked
                    .try_lock()
                    .map_or(true, |list| !list.0.is_null());
        } else if slot.in_use.load(Relaxed) {
            slot.gone.store(true, Relaxed);
        }
    }
    pending
}
