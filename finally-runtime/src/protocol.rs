//! One thread's stack of pending cleanups, and who runs each: its owner or the shutdown.
//!
//! A guarded call keeps a node in its own frame and links it on top of its thread's stack: `top`
//! points at the innermost pending node, each node's `prev` at the one it encloses. Only the
//! owning thread stores to `top`. The *shutdown* is run by one thread (the signal thread, or the
//! thread inside `exit`): it starts the shutdown flag, runs [`crate::fence::heavy`], then
//! *walks* every stack and takes over what is pending.
//!
//! Each owner step is a store followed, after a fence, by a load of the flag
//! ([`ShutdownFlag`]): of the owner's store and the shutdown's flag, at least one side sees the
//! other's. That gives:
//!
//! * **Push**: the owner stores `top = node`. Either the walk sees the node, or the owner sees
//!   the shutdown (and knows that a later walk may).
//! * **Tag**: when the body ends, the owner stores `top = node | CLEANING`. A walk that looks
//!   later sees the tag and waits for the owner to finish the cleanup: a cleanup is never cut
//!   short, and cleanups run one at a time. If the owner sees the shutdown, the walk may have
//!   seen the untagged node first: one compare-and-swap on the node's `state` settles who *wins*
//!   it, and runs it. Without a shutdown, the tag costs no atomic read-modify-write at all.
//! * **Pop**: the owner stores `top = prev`. A walk that saw the node (tagged or not) saw it
//!   before the pop, so the owner sees the shutdown and does not let its frame go while the walk
//!   may still read the node: it *stands by* while its stack is being walked (a second
//!   store-then-load pair, on the slot's `walking` flag: `registry/`). An owner that does not
//!   see the shutdown was popped before the walk looked, and returns.
//!
//! The walk takes a node with the same compare-and-swap, so each cleanup runs exactly once:
//!
//! ```text
//! PENDING --owner's CAS (only during a shutdown)--> OWNED --cleanup done--> DONE
//!    |\------the walk's CAS---------------------------> TAKEN  (the walk runs it)
//!    \-------owner withdraws a body that never ran------> DONE
//! ```
//!
//! An owner that tagged `top` without meeting the shutdown never marks its node: a walk that saw
//! the tag waits for `top` to change and never reads `state`. (In this crate a node is *won*,
//! by its owner or by the walk, and tagged; only the shutdown as a whole is *claimed*, by the
//! thread that runs it: `shutdown/runner.rs`.)

use std::fmt;
use std::panic::Location;
use std::ptr;

use crate::exit::Exit;
use crate::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use crate::sync::atomic::{AtomicPtr, AtomicU8};

pub(crate) const PENDING: u8 = 0;
pub(crate) const OWNED: u8 = 1;
pub(crate) const TAKEN: u8 = 2;
pub(crate) const DONE: u8 = 3;

/// The type-erased part of a pending cleanup.
pub(crate) struct Header {
    pub(crate) state: AtomicU8,
    /// On a stack, the node this one is nested in, written before the node is published.
    pub(crate) prev: AtomicPtr<Header>,
    /// Calls the cleanup of the node this header starts.
    pub(crate) call: unsafe fn(*const Header, &Exit),
    /// Names the cleanup in reports.
    pub(crate) name: Name,
}

/// What a cleanup is called in the reports: a guarded function's (`cleanup of function`), or the
/// place a guard was made at (`the guard made at src/main.rs:12`). One word, not two: one store
/// less on every guarded call. A place is told from a name by the pointer's lowest bit, which
/// neither a `&'static str`'s address nor a `Location`'s has set (both are aligned to a word).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Name(*const u8);

// SAFETY: it points only at `'static` data that nothing writes.
unsafe impl Send for Name {}
// SAFETY: as above.
unsafe impl Sync for Name {}

impl Name {
    /// A guarded function's cleanup, named `name`.
    pub(crate) fn function(name: &'static &'static str) -> Name {
        Name(ptr::from_ref(name).cast())
    }

    /// The cleanup of the guard made at `place`.
    pub(crate) fn guard(place: &'static Location<'static>) -> Name {
        Name(ptr::from_ref(place).cast::<u8>().wrapping_add(1))
    }

    /// The name as one pointer, for an atomic: [`Name::from_raw`] takes it back.
    pub(crate) fn into_raw(self) -> *mut () {
        self.0.cast_mut().cast()
    }

    /// The name [`Name::into_raw`] gave; `None` for null.
    ///
    /// # Safety
    ///
    /// `raw` must be null or what `into_raw` gave.
    pub(crate) unsafe fn from_raw(raw: *mut ()) -> Option<Name> {
        (!raw.is_null()).then_some(Name(raw.cast_const().cast()))
    }
}

impl fmt::Display for Name {
    /// Writes the name: async-signal-safe as far as the formatter is (no allocation).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 as usize & 1 == 0 {
            // SAFETY: made by `Name::function`, from a `&'static &'static str`.
            f.write_str(unsafe { *self.0.cast::<&'static str>() })
        } else {
            // SAFETY: made by `Name::guard`, from a `&'static Location`, one byte on.
            let place = unsafe { &*self.0.wrapping_sub(1).cast::<Location<'static>>() };
            write!(f, "the guard made at {}:{}", place.file(), place.line())
        }
    }
}

impl Header {
    /// A node to go above `prev` on a stack (see [`Stack::push`]), or anywhere (null).
    pub(crate) fn new(
        call: unsafe fn(*const Header, &Exit),
        name: Name,
        prev: *mut Header,
    ) -> Self {
        Header {
            state: AtomicU8::new(PENDING),
            prev: AtomicPtr::new(prev),
            call,
            name,
        }
    }

    /// The walk wins the node; `Err` holds the state it found instead of `PENDING`.
    pub(crate) fn take(&self) -> Result<(), u8> {
        self.state
            .compare_exchange(PENDING, TAKEN, SeqCst, Acquire)
            .map(drop)
    }

    /// The walk: takes the node over and runs it with `take_over`; or, if its owner won it during
    /// the shutdown and runs it, waits for that with `wait`, unless `mine` (as in [`Stack::walk`]).
    pub(crate) fn take_or_wait(
        &self,
        mine: bool,
        take_over: &mut impl FnMut(&Header),
        wait: &mut impl FnMut(&Header),
    ) {
        match self.take() {
            Ok(()) => take_over(self),
            Err(OWNED) if !mine => {
                while self.state.load(Acquire) != DONE {
                    wait(self);
                }
            }
            Err(_) => {}
        }
    }

    /// The owner wins the node, during a shutdown.
    pub(crate) fn own(&self) -> bool {
        self.state
            .compare_exchange(PENDING, OWNED, SeqCst, Relaxed)
            .is_ok()
    }

    /// The owner wins a node whose body will never run: no one is to run its cleanup.
    pub(crate) fn withdraw(&self) -> bool {
        self.state
            .compare_exchange(PENDING, DONE, SeqCst, Relaxed)
            .is_ok()
    }

    /// The owner that won the node with [`own`](Self::own) has run its cleanup: a walk
    /// waiting for it goes on.
    pub(crate) fn done(&self) {
        self.state.store(DONE, Release);
    }
}

/// Tags `top` while the owner runs that node's cleanup: in the low bit, which a node's address
/// never sets.
const CLEANING: usize = 1;
const _: () = assert!(std::mem::align_of::<Header>() > CLEANING);

fn tagged(node: *const Header) -> *mut Header {
    node.cast_mut().wrapping_byte_add(CLEANING)
}

fn is_tagged(top: *mut Header) -> bool {
    top as usize & CLEANING != 0
}

/// One thread's stack of pending cleanups.
pub(crate) struct Stack {
    top: AtomicPtr<Header>,
}

/// The shutdown flag, as owners read it right after a store: the owners' half of each
/// store-then-load pair, fence included (a compiler-only one once [`crate::fence::heavy`]
/// stands in for it). The runtime's flag, or loom's atomic in the model.
pub(crate) trait ShutdownFlag {
    fn seen_after_store(&self) -> bool;
}

#[cfg(all(test, loom))]
impl ShutdownFlag for loom::sync::atomic::AtomicU8 {
    fn seen_after_store(&self) -> bool {
        crate::sync::atomic::fence(SeqCst);
        self.load(Relaxed) != 0
    }
}

/// An owner step met the flag raised.
#[must_use]
pub(crate) struct FlagSeen;

impl Stack {
    pub(crate) fn new() -> Self {
        Stack {
            top: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Whether `top`, as [`top`](Self::top) read it, tells that the owner is running its
    /// innermost node's cleanup.
    #[inline]
    pub(crate) fn is_tag(top: *mut Header) -> bool {
        is_tagged(top)
    }

    /// Whether the stack is empty. Async-signal-safe.
    pub(crate) fn is_empty(&self) -> bool {
        self.top.load(Relaxed).is_null()
    }

    /// Whether the owner is running the cleanup of its innermost node; for the owner.
    #[inline]
    pub(crate) fn is_cleaning(&self) -> bool {
        is_tagged(self.top.load(Relaxed))
    }

    /// Owner: the innermost pending node, for a node made to go above it: made with `prev` set
    /// to it, the node is published with [`push`](Self::push) in a single store.
    #[inline]
    pub(crate) fn top(&self) -> *mut Header {
        self.top.load(Relaxed)
    }

    /// Owner: publishes `node`, whose `prev` holds [`top`](Self::top), as the innermost pending
    /// cleanup. `node` must stay where it is until [`pop`](Self::pop).
    #[inline]
    pub(crate) fn push(&self, node: &Header, flag: &impl ShutdownFlag) -> Result<(), FlagSeen> {
        // Release: a walk that sees the node sees its `prev` too (free where stores are ordered
        // anyway, as on x86).
        self.top.store(ptr::from_ref(node).cast_mut(), Release);
        flag_seen(flag)
    }

    /// Owner: tags `node`, the innermost, to run its cleanup. If the flag is seen, the walk
    /// may have seen the untagged node first: the owner runs the cleanup only if it wins the
    /// node with [`Header::own`].
    #[inline]
    pub(crate) fn tag(&self, node: &Header, flag: &impl ShutdownFlag) -> Result<(), FlagSeen> {
        self.top.store(tagged(node), Relaxed);
        flag_seen(flag)
    }

    /// Owner: unlinks `node`, the innermost, whose cleanup has run (and which is
    /// [`done`](Header::done) if it was won during a shutdown), or was taken over.
    #[inline]
    pub(crate) fn pop(&self, node: &Header, flag: &impl ShutdownFlag) -> Result<(), FlagSeen> {
        self.top.store(node.prev.load(Relaxed), Relaxed);
        flag_seen(flag)
    }

    /// Owner, inside `exit` for good: unlinks the node whose cleanup it was running (and which
    /// called `exit`), so that a walk waiting for it goes on to the nodes below.
    pub(crate) fn unlink_cleaning(&self) {
        let top = self.top.load(Relaxed);
        if is_tagged(top) {
            // SAFETY: the owner's own node, in a frame it never leaves.
            let prev = unsafe { (*top.wrapping_byte_sub(CLEANING)).prev.load(Relaxed) };
            self.top.store(prev, Release);
        }
    }

    /// The nodes on the stack now, innermost first (a node whose cleanup its owner runs
    /// included).
    ///
    /// # Safety
    ///
    /// As for [`walk`](Self::walk).
    pub(crate) unsafe fn nodes(&self) -> Vec<*const Header> {
        let top = self.top.load(Acquire);
        let mut node = top.wrapping_byte_sub(top as usize & CLEANING).cast_const();
        let mut nodes = Vec::new();
        // SAFETY: as in `walk`: the nodes seen stay alive while the stack is walked.
        while let Some(header) = unsafe { node.as_ref() } {
            nodes.push(node);
            node = header.prev.load(Relaxed);
        }
        nodes
    }

    /// The walk: runs the cleanup of every pending node, innermost first, with `take_over`;
    /// `before` is told of each node before it is taken over. A cleanup
    /// its owner is running is waited for with `wait` (which must let time pass), unless
    /// `mine`: the walking thread is that owner (a cleanup that called `exit`), and would wait
    /// forever.
    ///
    /// # Safety
    ///
    /// The flag must have been started, and [`crate::fence::heavy`] run, before this call;
    /// and the owner must stand by while its stack is walked (module docs).
    pub(crate) unsafe fn walk(
        &self,
        mine: bool,
        mut take_over: impl FnMut(&Header),
        mut wait: impl FnMut(&Header),
        mut before: impl FnMut(*const Header),
    ) {
        let mut node = loop {
            let top = self.top.load(Acquire);
            if !is_tagged(top) {
                break top;
            }
            // The owner is running that cleanup: once done, it pops it.
            let cleaning = top.wrapping_byte_sub(CLEANING);
            if mine {
                // SAFETY: our own frame, below us on this very thread.
                break unsafe { (*cleaning).prev.load(Relaxed) };
            }
            while self.top.load(Acquire) == top {
                // SAFETY: as below: the owner stands by while its stack is walked.
                wait(unsafe { &*cleaning });
            }
        };
        // SAFETY: a node seen on the stack during the walk stays alive, and so do the nodes
        // below it: their owner stands by until the walk is over (module docs).
        while let Some(header) = unsafe { node.as_ref() } {
            before(header);
            let prev = header.prev.load(Relaxed);
            // SAFETY: as above.
            if unsafe { prev.as_ref() }.is_some_and(|prev| prev.state.load(Acquire) != PENDING) {
                // Above a node an earlier walk took: pushed since, by a body nested in a function
                // the shutdown took over, which never starts it (`registry/`).
                header.withdraw();
            } else {
                header.take_or_wait(mine, &mut take_over, &mut wait);
            }
            node = prev;
        }
    }
}

/// The owner's half of a store-then-load pair, against the shutdown's.
#[inline]
fn flag_seen(flag: &impl ShutdownFlag) -> Result<(), FlagSeen> {
    if flag.seen_after_store() {
        Err(FlagSeen)
    } else {
        Ok(())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::Name;
    use std::panic::Location;

    #[test]
    fn a_name_says_the_function_or_the_place_of_the_guard() {
        let function = Name::function(&"cleanup of work");
        assert_eq!(function.to_string(), "cleanup of work");
        let place = Location::caller();
        let guard = Name::guard(place);
        assert_eq!(
            guard.to_string(),
            format!("the guard made at {}:{}", place.file(), place.line())
        );
        for name in [function, guard] {
            // SAFETY: what `into_raw` gave.
            assert!(unsafe { Name::from_raw(name.into_raw()) } == Some(name));
        }
    }
}
