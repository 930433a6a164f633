//! One thread's stack of pending cleanups, and who runs each: its owner or the stopper.
//!
//! A guarded call keeps a node in its own frame and links it on top of its thread's stack: `top`
//! points at the innermost pending node, each node's `prev` at the one it encloses. Only the
//! owning thread stores to `top`. The *stopper* is the one thread that ends the process (the
//! signal thread, or the thread inside `exit`): it raises the `stopping` flag, runs
//! [`crate::barrier::heavy`], then walks every stack and runs what is pending.
//!
//! Each owner step is a store followed, after a fence, by a load of `stopping`
//! ([`StopFlag`]): of the owner's store and the stopper's flag, at least one side sees the
//! other's. That gives:
//!
//! * **Push**: the owner stores `top = node`. Either the stopper sees the node, or the owner
//!   sees the stop (and, not being the stopper, parks before its body runs).
//! * **Claim**: when the body ends, the owner stores `top = node | RUNNING`. A stopper that
//!   looks later sees the tag and waits for the owner to finish the cleanup: a cleanup is never
//!   cut short, and cleanups run one at a time. If the owner sees the stop, the stopper may have
//!   seen the untagged node first: one compare-and-swap on the node's `state` settles who runs
//!   it, and an owner that loses parks for good. Without a stop, the claim costs no atomic
//!   read-modify-write at all.
//! * **Pop**: the owner stores `top = prev`. A stopper that saw the node (tagged or not) saw it
//!   before the pop, so the owner sees the stop and parks for good, keeping its frame, and all
//!   the nodes below it, alive for the stopper. An owner that does not see the stop was popped
//!   before the stopper looked, and returns. Only an owner that claimed with the
//!   compare-and-swap marks the node `DONE` first: a stopper that saw the tag never looks at the
//!   node's `state`, it waits for `top` to change.
//!
//! The stopper claims a node with the same compare-and-swap, so each cleanup runs exactly once:
//!
//! ```text
//! PENDING --owner's CAS (only during a stop)--> OWNER --cleanup done--> DONE
//!    \------stopper's CAS-----------------------> STOPPER  (its owner parks for good)
//! ```

use std::ptr;

use crate::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use crate::sync::atomic::{AtomicPtr, AtomicU8};
use crate::Exit;

pub(crate) const PENDING: u8 = 0;
pub(crate) const OWNER: u8 = 1;
pub(crate) const STOPPER: u8 = 2;
pub(crate) const DONE: u8 = 3;

/// The type-erased part of a pending cleanup.
pub(crate) struct Header {
    pub(crate) state: AtomicU8,
    /// On a stack, the node this one is nested in, written before the node is published.
    pub(crate) prev: AtomicPtr<Header>,
    /// Runs the cleanup of the node this header starts.
    pub(crate) run: unsafe fn(*const Header, &Exit),
    /// Names the cleanup in reports: `cleanup of function`. One word, not two: one store less
    /// on every guarded call.
    pub(crate) name: &'static &'static str,
}

impl Header {
    /// A node to go above `prev` on a stack (see [`Stack::push_above`]), or anywhere (null).
    pub(crate) fn new(
        run: unsafe fn(*const Header, &Exit),
        name: &'static &'static str,
        prev: *mut Header,
    ) -> Self {
        Header {
            state: AtomicU8::new(PENDING),
            prev: AtomicPtr::new(prev),
            run,
            name,
        }
    }

    /// The stopper's claim; `Err` holds the state it found instead of `PENDING`.
    pub(crate) fn claim_for_stopper(&self) -> Result<(), u8> {
        self.state
            .compare_exchange(PENDING, STOPPER, SeqCst, Acquire)
            .map(drop)
    }

    /// Stopper: claims the node and runs it with `run`; or, if its owner claimed it during the
    /// stop and runs it, waits for that with `wait`, unless `mine` (as in [`Stack::stop`]).
    pub(crate) fn stop(
        &self,
        mine: bool,
        run: &mut impl FnMut(&Header),
        wait: &mut impl FnMut(&Header),
    ) {
        match self.claim_for_stopper() {
            Ok(()) => run(self),
            Err(OWNER) if !mine => {
                while self.state.load(Acquire) != DONE {
                    wait(self);
                }
            }
            Err(_) => {}
        }
    }

    /// An owner's claim, during a stop.
    pub(crate) fn claim_for_owner(&self) -> bool {
        self.state
            .compare_exchange(PENDING, OWNER, SeqCst, Relaxed)
            .is_ok()
    }

    /// The owner that claimed the node with [`claim_for_owner`](Self::claim_for_owner) has run
    /// its cleanup: a stopper waiting for it goes on.
    pub(crate) fn done(&self) {
        self.state.store(DONE, Release);
    }
}

/// Tags `top` while the owner runs that node's cleanup.
const RUNNING: usize = 1;

fn tagged(node: *const Header) -> *mut Header {
    node.cast_mut().wrapping_byte_add(RUNNING)
}

fn is_tagged(top: *mut Header) -> bool {
    top as usize & RUNNING != 0
}

/// One thread's stack of pending cleanups.
pub(crate) struct Stack {
    top: AtomicPtr<Header>,
}

/// The stop flag, as owners read it right after a store: the owners' half of each
/// store-then-load pair, fence included (a compiler-only one once [`crate::barrier::heavy`] stands in
/// for it). The runtime's flag, or loom's atomic in the model.
pub(crate) trait StopFlag {
    fn raised_after_store(&self) -> bool;
}

#[cfg(loom)]
impl StopFlag for loom::sync::atomic::AtomicBool {
    fn raised_after_store(&self) -> bool {
        crate::sync::atomic::fence(SeqCst);
        self.load(Relaxed)
    }
}

/// Who runs a node's cleanup, as its owner's claim found out.
#[derive(PartialEq, Eq)]
pub(crate) enum Claim {
    Owner,
    /// The owner, though the process is stopping.
    OwnerDuringStop,
    Stopper,
}

/// An owner step met a stop under way.
#[must_use]
pub(crate) struct Stopping;

impl Stack {
    pub(crate) fn new() -> Self {
        Stack {
            top: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Whether the stack is empty; for its owner.
    pub(crate) fn is_empty(&self) -> bool {
        self.top.load(Relaxed).is_null()
    }

    /// Whether the owner is running the cleanup of its innermost node; for the owner.
    #[inline(always)]
    pub(crate) fn is_running(&self) -> bool {
        is_tagged(self.top.load(Relaxed))
    }

    /// Owner: publishes `node` as the innermost pending cleanup. `node` must stay where it is
    /// until [`pop`](Self::pop).
    #[inline(always)]
    pub(crate) fn push(&self, node: &Header, stopping: &impl StopFlag) -> Result<(), Stopping> {
        node.prev.store(self.top(), Relaxed);
        self.push_above(node, stopping)
    }

    /// Owner: the innermost pending node, for a node made to go above it: made with `prev` set
    /// to it, the node is published with [`push_above`](Self::push_above), one store less.
    #[inline(always)]
    pub(crate) fn top(&self) -> *mut Header {
        self.top.load(Relaxed)
    }

    /// Owner: [`push`](Self::push) of a node whose `prev` already holds [`top`](Self::top).
    #[inline(always)]
    pub(crate) fn push_above(
        &self,
        node: &Header,
        stopping: &impl StopFlag,
    ) -> Result<(), Stopping> {
        self.top.store(ptr::from_ref(node).cast_mut(), Relaxed);
        check(stopping)
    }

    /// Owner: claims `node`, the innermost, to run its cleanup.
    #[inline(always)]
    pub(crate) fn claim(&self, node: &Header, stopping: &impl StopFlag) -> Claim {
        self.top.store(tagged(node), Relaxed);
        if check(stopping).is_ok() {
            Claim::Owner
        } else if node.claim_for_owner() {
            Claim::OwnerDuringStop
        } else {
            Claim::Stopper
        }
    }

    /// Owner: `node`'s cleanup has run (and, if it was claimed during a stop, the node is
    /// [`done`](Header::done)); unlinks it.
    #[inline(always)]
    pub(crate) fn pop(&self, node: &Header, stopping: &impl StopFlag) -> Result<(), Stopping> {
        self.top.store(node.prev.load(Relaxed), Relaxed);
        check(stopping)
    }

    /// Stopper: runs the cleanup of every pending node, innermost first, with `run`. A cleanup
    /// its owner is running is waited for with `wait` (which must let time pass), unless
    /// `mine`: the stopper is that owner (a cleanup that called `exit`), and would wait forever.
    ///
    /// # Safety
    ///
    /// `stopping` must have been raised, and [`crate::barrier::heavy`] run, before this call.
    pub(crate) unsafe fn stop(
        &self,
        mine: bool,
        mut run: impl FnMut(&Header),
        mut wait: impl FnMut(&Header),
    ) {
        let mut node = loop {
            let top = self.top.load(Acquire);
            if !is_tagged(top) {
                break top;
            }
            // The owner is running that cleanup: once done, it pops and parks for good.
            let running = top.wrapping_byte_sub(RUNNING);
            if mine {
                // SAFETY: our own frame, below us on this very thread.
                break unsafe { (*running).prev.load(Relaxed) };
            }
            while self.top.load(Acquire) == top {
                // SAFETY: as below: the owner parks for good once it has popped it.
                wait(unsafe { &*running });
            }
        };
        // SAFETY: a node seen on the stack after the stop was raised stays alive, and so do the
        // nodes below it (module docs).
        while let Some(header) = unsafe { node.as_ref() } {
            header.stop(mine, &mut run, &mut wait);
            node = header.prev.load(Relaxed);
        }
    }
}

/// The owner's half of a store-then-load pair, against the stopper's.
#[inline(always)]
fn check(stopping: &impl StopFlag) -> Result<(), Stopping> {
    if stopping.raised_after_store() {
        Err(Stopping)
    } else {
        Ok(())
    }
}

/// Model checks of the protocol: every interleaving of an owner and the stopper, each cleanup
/// run exactly once. Run with `RUSTFLAGS="--cfg loom" cargo test -p finally-runtime --lib
/// --release loom` (as `.ci/run` does).
#[cfg(all(test, loom))]
mod loom_model {
    use loom::sync::atomic::{AtomicBool, AtomicUsize};
    use loom::sync::{Arc, Mutex};
    use loom::thread;

    use super::*;
    use crate::barrier;

    unsafe fn never(_: *const Header, _: &Exit) {
        unreachable!("the model runs cleanups through its own closures")
    }

    /// What one execution saw.
    struct World {
        stack: Stack,
        stopping: AtomicBool,
        nodes: Vec<Header>,
        /// Cleanups run, by node index, in order.
        ran: Mutex<Vec<usize>>,
        /// Whether the owner's bodies ran (its pushes met no stop).
        bodies_ran: AtomicUsize,
    }

    impl World {
        fn new(nodes: usize) -> Arc<Self> {
            Arc::new(World {
                stack: Stack::new(),
                stopping: AtomicBool::new(false),
                nodes: (0..nodes)
                    .map(|_| Header::new(never, &"model", ptr::null_mut()))
                    .collect(),
                ran: Mutex::new(Vec::new()),
                bodies_ran: AtomicUsize::new(0),
            })
        }

        fn index(&self, header: &Header) -> usize {
            self.nodes
                .iter()
                .position(|node| ptr::eq(node, header))
                .unwrap()
        }

        /// The owner: nested guarded calls, outermost first; stops where a real owner parks.
        fn owner(&self) {
            let depth = self.nodes.len();
            for node in &self.nodes {
                if self.stack.push(node, &self.stopping).is_err() {
                    return;
                }
            }
            self.bodies_ran.store(depth, Relaxed);
            for (index, node) in self.nodes.iter().enumerate().rev() {
                let claim = self.stack.claim(node, &self.stopping);
                if claim == Claim::Stopper {
                    return;
                }
                self.ran.lock().unwrap().push(index);
                if claim == Claim::OwnerDuringStop {
                    node.done();
                }
                if self.stack.pop(node, &self.stopping).is_err() {
                    return;
                }
            }
        }

        fn stopper(&self) {
            self.stopping.store(true, SeqCst);
            barrier::heavy(false);
            let run = |header: &Header| self.ran.lock().unwrap().push(self.index(header));
            // SAFETY: the stop is raised and the barrier run; the nodes outlive the model.
            unsafe { self.stack.stop(false, run, |_| thread::yield_now()) };
        }

        /// Once both are done: if the bodies ran, each cleanup ran exactly once, innermost first.
        fn check(&self) {
            let ran = self.ran.lock().unwrap().clone();
            if self.bodies_ran.load(Relaxed) == self.nodes.len() {
                let innermost_first: Vec<usize> = (0..self.nodes.len()).rev().collect();
                assert_eq!(ran, innermost_first);
            } else {
                // Stopped before its body ran: each cleanup at most once, still in order.
                assert!(ran.windows(2).all(|pair| pair[0] > pair[1]), "{ran:?}");
            }
        }
    }

    fn model(nodes: usize) {
        loom::model(move || {
            let world = World::new(nodes);
            let owner = {
                let world = world.clone();
                thread::spawn(move || world.owner())
            };
            world.stopper();
            owner.join().unwrap();
            world.check();
        });
    }

    #[test]
    fn loom_a_returning_body_and_the_stopper_run_the_cleanup_exactly_once() {
        model(1);
    }

    #[test]
    fn loom_nested_calls_are_cleaned_up_once_each_innermost_first() {
        model(2);
    }
}
