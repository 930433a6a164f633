//! Grace periods: on a signal, the shutdown waits for the guarded functions that have one and
//! are under way to return on their own, each for its own period, and at most three quarters
//! of the `timeout` (this copy's, or another copy's of `finally` that ends sooner), so that the
//! cleanups keep the last quarter.
//!
//! Each function with a grace period has a [`Period`] in its `static` site, which counts its
//! calls under way and joins a list of periods the first time one starts. At the signal, the
//! wait looks at the periods of the functions under way then, not at one that returned long
//! before.

use std::ptr;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicPtr};
use std::time::Duration;

use super::deadline;
use super::runner::is_mine;
use crate::{request, standby, stop, sys};

/// A guarded function's grace period, and how many of its calls are under way.
#[derive(Debug)]
pub struct Period {
    length: Duration,
    /// Calls under way; signed, as a forked child starts counting from 0 whatever its one thread
    /// had started.
    running: AtomicIsize,
    /// Whether it is in the list of [`LISTED`], which is for good.
    listed: AtomicBool,
    /// The next period in that list; written before this one is listed.
    next: AtomicPtr<Period>,
}

/// Every period that has had a call, the newest first; periods are `static`s.
static LISTED: AtomicPtr<Period> = AtomicPtr::new(ptr::null_mut());

impl Period {
    /// A grace period of `length`; zero for none.
    pub const fn new(length: Duration) -> Self {
        Period {
            length,
            running: AtomicIsize::new(0),
            listed: AtomicBool::new(false),
            next: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Whether there is a grace period at all.
    pub(crate) fn is_some(&self) -> bool {
        !self.length.is_zero()
    }

    /// A call with this grace period started.
    pub(crate) fn started(&'static self) {
        if !self.listed.swap(true, SeqCst) {
            let mut head = LISTED.load(SeqCst);
            loop {
                self.next.store(head, SeqCst);
                let this = ptr::from_ref(self).cast_mut();
                match LISTED.compare_exchange(head, this, SeqCst, SeqCst) {
                    Ok(_) => break,
                    Err(now) => head = now,
                }
            }
        }
        self.running.fetch_add(1, SeqCst);
    }

    /// A call with this grace period finished its cleanup. Once a stop is requested, the code
    /// after it must not run: the thread is stopped (`stop.rs`), and the last such call lets the
    /// shutdown go on. Returns if it may go on, or is unwinding already.
    pub(crate) fn finished(&self) {
        self.running.fetch_sub(1, SeqCst);
        if request::requested().is_some() {
            standby::notify();
            if !is_mine() {
                stop::stop();
            }
        }
    }

    /// A call with this grace period never started its body.
    pub(crate) fn abandoned(&self) {
        self.running.fetch_sub(1, SeqCst);
        standby::notify();
    }
}

/// The periods ever listed. Async-signal-safe.
fn listed() -> impl Iterator<Item = &'static Period> {
    let mut next = LISTED.load(SeqCst);
    std::iter::from_fn(move || {
        // SAFETY: periods are `static`s.
        let period = unsafe { next.as_ref() }?;
        next = period.next.load(SeqCst);
        Some(period)
    })
}

/// The longest grace period of the functions with a call under way, if any.
pub(super) fn longest_running() -> Option<Duration> {
    listed()
        .filter(|period| period.running.load(SeqCst) > 0)
        .map(|period| period.length)
        .max()
}

/// Waits, from `since` (the signal, on the monotonic clock), until each guarded function with a
/// grace period that is under way has returned or had its period, and grace periods may last
/// no longer (`deadline::grace_ends_by`). Returns whether they all returned in time.
pub(super) fn wait_out(since: u64) -> bool {
    while let Some(longest) = longest_running() {
        let longest = u64::try_from(longest.as_nanos()).unwrap_or(u64::MAX);
        let until = since.saturating_add(longest).min(deadline::grace_ends_by());
        if sys::monotonic_nanos() >= until {
            return false;
        }
        standby::wait_a_little();
    }
    true
}

/// In a forked child: no grace period pending. Async-signal-safe.
#[cfg(unix)]
pub(super) fn reset_in_child() {
    for period in listed() {
        period.running.store(0, SeqCst);
    }
}
