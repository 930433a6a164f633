//! Grace periods: on a signal, the shutdown waits for the guarded functions that have one to
//! return on their own, up to the longest of them.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicIsize, AtomicU64};
use std::time::{Duration, Instant};

use super::runner::is_mine;
use crate::{request, standby};

/// Guarded calls with a grace period whose cleanup has not finished; signed, as a forked child
/// starts counting from 0 whatever its one thread had started.
static GRACEFUL: AtomicIsize = AtomicIsize::new(0);
/// The longest grace period of any guarded call so far, in nanoseconds.
static LONGEST_GRACE: AtomicU64 = AtomicU64::new(0);

/// Whether a guarded call with a grace period is under way.
pub(super) fn pending() -> bool {
    GRACEFUL.load(SeqCst) > 0
}

/// Waits until every guarded call with a grace period has finished, or the longest grace
/// period has passed.
pub(super) fn wait_out() {
    let deadline = Instant::now() + Duration::from_nanos(LONGEST_GRACE.load(SeqCst));
    while GRACEFUL.load(SeqCst) > 0 && Instant::now() < deadline {
        standby::wait_a_little();
    }
}

/// A guarded call with a grace period started.
pub(crate) fn grace_started(grace: Duration) {
    let nanos = u64::try_from(grace.as_nanos()).unwrap_or(u64::MAX);
    LONGEST_GRACE.fetch_max(nanos, SeqCst);
    GRACEFUL.fetch_add(1, SeqCst);
}

/// A guarded call with a grace period finished its cleanup. Once a stop is requested, the
/// code after it must not run: this waits for good, and the last such call lets the shutdown
/// go on.
pub(crate) fn grace_finished() {
    GRACEFUL.fetch_sub(1, SeqCst);
    if request::requested().is_some() {
        standby::notify();
        if !is_mine() {
            standby::park_for_good();
        }
    }
}

/// In a forked child: no grace period pending. Async-signal-safe.
#[cfg(unix)]
pub(super) fn reset_in_child() {
    GRACEFUL.store(0, SeqCst);
}
