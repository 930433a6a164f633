//! The shutdown flag: one byte that every owner step loads right after its store.
//!
//! It says whether a stop has been requested (a function that ends now ended for the signal:
//! `request.rs`), whether a shutdown has started (the runtime is taking over the pending
//! cleanups), whether it is closed (its last walk has begun: no guarded body may start any
//! more), whether
//! the owners' side of each store-then-load pair may be a compiler-only fence (`fence::heavy`
//! then stands for it), and, in a forked child, that the child has no signal thread yet. In one
//! byte, an owner's check is one load and one compare on the hot path.

use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{compiler_fence, fence, AtomicU8};
use std::sync::OnceLock;

use crate::fence;
use crate::protocol::ShutdownFlag;

/// What starts the threads of a forked child: set when the handlers are installed, by the layer
/// that makes those threads.
static START: OnceLock<fn()> = OnceLock::new();

/// Sets what [`Flag::start_thread_if_forked`] runs.
#[cfg(unix)]
pub(crate) fn when_forked_start(start: fn()) {
    let _ = START.set(start);
}

/// The process's shutdown flag.
pub(crate) static SHUTDOWN: Flag = Flag(AtomicU8::new(0));

pub(crate) struct Flag(AtomicU8);

/// A shutdown has started: owners that meet it coordinate with it.
const STARTED: u8 = 1;
/// `fence::heavy` orders the owners' stores: their side needs no fence of its own.
const ASYMMETRIC: u8 = 2;
/// The shutdown's last walk has begun: a guarded body that has not started never will.
const CLOSED: u8 = 4;
/// A forked child whose signal thread is not started yet: the first owner to see it starts it.
const NO_THREAD: u8 = 8;
/// A stop has been requested: an owner that ends its function now takes the slow path, where
/// the function is told that it ended for the signal.
const REQUESTED: u8 = 16;

impl Flag {
    /// Starts the shutdown; returns whether owners may be using compiler-only fences. If not,
    /// none can start to without seeing the flag: it is the same byte.
    pub(crate) fn start(&self) -> bool {
        self.0.fetch_or(STARTED, SeqCst) & ASYMMETRIC != 0
    }

    /// A stop has been requested: owners take their slow paths from now on.
    pub(crate) fn request(&self) {
        self.0.fetch_or(REQUESTED, SeqCst);
    }

    /// Closes the shutdown; returns as [`start`](Self::start) does.
    pub(crate) fn close(&self) -> bool {
        self.0.fetch_or(CLOSED, SeqCst) & ASYMMETRIC != 0
    }

    /// Whether nothing is under way: no stop requested, no shutdown, no forked child without a
    /// signal thread. One load, for the owners' paths that are not store-then-load pairs.
    #[inline]
    pub(crate) fn is_quiet(&self) -> bool {
        self.0.load(SeqCst) & !ASYMMETRIC == 0
    }

    pub(crate) fn is_started(&self) -> bool {
        self.0.load(SeqCst) & STARTED != 0
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.0.load(SeqCst) & CLOSED != 0
    }

    /// `fence::heavy` now orders the owners' stores.
    pub(crate) fn set_asymmetric(&self) {
        self.0.fetch_or(ASYMMETRIC, SeqCst);
    }

    /// In a forked child: no stop requested, no shutdown under way, no signal thread yet, and
    /// `asymmetric` as the child's registration of `membarrier` allows. Async-signal-safe.
    #[cfg(unix)]
    pub(crate) fn reset_in_child(&self, asymmetric: bool) {
        let asymmetric = if asymmetric { ASYMMETRIC } else { 0 };
        self.0.store(NO_THREAD | asymmetric, SeqCst);
    }

    /// Whether owners may be using compiler-only fences.
    #[cfg(unix)]
    pub(crate) fn is_asymmetric(&self) -> bool {
        self.0.load(SeqCst) & ASYMMETRIC != 0
    }

    /// Takes the "no signal thread" mark: `true` for the one caller that must start it. A load
    /// first: where the mark is not set (all but a forked child), no read-modify-write.
    fn take_no_thread(&self) -> bool {
        self.0.load(SeqCst) & NO_THREAD != 0
            && self.0.fetch_and(!NO_THREAD, SeqCst) & NO_THREAD != 0
    }

    /// In a forked child that has no signal thread yet: starts it (with what `when_forked_start`
    /// was given), once. Owners call this when they meet the flag.
    pub(crate) fn start_thread_if_forked(&self) {
        if self.take_no_thread() {
            if let Some(start) = START.get() {
                start();
            }
        }
    }

    /// Whether this process has no signal thread yet. Async-signal-safe.
    #[cfg(unix)]
    pub(crate) fn has_no_thread(&self) -> bool {
        self.0.load(SeqCst) & NO_THREAD != 0
    }

    /// The owners' side before `membarrier` is registered (until calls are hot, or for good).
    /// Out of line: where calls are hot, it is not taken. Counts the calls that take it, so that
    /// they become hot (`fence::fenced_step`).
    #[cold]
    fn seen_after_fence(&self) -> bool {
        fence(SeqCst);
        let seen = self.0.load(Relaxed) & !ASYMMETRIC != 0;
        if fence::ASYMMETRIC {
            fence::fenced_step(|| SHUTDOWN.set_asymmetric());
        }
        seen
    }
}

impl ShutdownFlag for Flag {
    #[inline]
    fn seen_after_store(&self) -> bool {
        compiler_fence(SeqCst);
        match self.0.load(Relaxed) {
            ASYMMETRIC => false,
            flags if flags & ASYMMETRIC != 0 => true,
            // Not (yet) asymmetric: this side needs its full fence before the load.
            _ => self.seen_after_fence(),
        }
    }
}
