//! The `timeout` option: a thread made when the handlers are installed, so that no thread
//! has to be made when the shutdown starts (a pids limit may forbid it then). Once the
//! shutdown has published why the process is ending, it sleeps for the time-out, then ends the
//! process so, however far the grace periods and the cleanups have got.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU64};
use std::thread::{self, Thread};
use std::time::Duration;

use super::exit_code;
use crate::exit::Exit;
#[cfg(unix)]
use crate::exit::Signal;
use crate::report::report;
use crate::sys::{self, end};
use crate::{reason, standby, trace};

/// The deadline thread, once it runs: leaked, so that a forked child can forget it.
///
/// Architecture invariant: the deadline thread publishes itself here before it first reads the
/// reason, and the shutdown publishes the reason before it reads this ([`start`]): of the two,
/// one sees the other's store, so the thread is never left asleep by a shutdown that began
/// while it was being made. The same holds for [`ABOVE`], stored before `start` reads this.
static WATCHER: AtomicPtr<Thread> = AtomicPtr::new(ptr::null_mut());

/// What a copy of `finally` installed over this one has started: a shutdown by this signal,
/// or by `exit` ([`EXIT`]), or nothing (0). The deadline counts from there too, before this
/// copy's own shutdown has a reason.
static ABOVE: AtomicI32 = AtomicI32::new(0);
const EXIT: i32 = -1;

/// The `timeout`, in nanoseconds, 0 for none: stored before the deadline thread is made, which
/// reads it.
static LIMIT: AtomicU64 = AtomicU64::new(0);

/// The latest a grace period may last, on the monotonic clock (`sys::monotonic_nanos`): three
/// quarters into the deadline that ends first of those this copy knows, its own and those that
/// other copies of `finally` told (`signals/copies.rs`); `u64::MAX` while none is known. The
/// cleanups keep the last quarter, whichever copy's deadline it is.
static GRACE_ENDS_BY: AtomicU64 = AtomicU64::new(u64::MAX);

/// This copy's deadline starts now: the latest a grace period may last follows from it.
/// Async-signal-safe.
pub(crate) fn starts_now() {
    let limit = LIMIT.load(SeqCst);
    if limit != 0 {
        learn(sys::monotonic_nanos().saturating_add(limit - limit / 4));
    }
}

/// Another copy of `finally` says that grace periods must end by `by` (as [`GRACE_ENDS_BY`]),
/// or this copy's deadline does: the earlier stands. Async-signal-safe.
pub(crate) fn learn(by: u64) {
    GRACE_ENDS_BY.fetch_min(by, SeqCst);
}

/// The latest a grace period may last (see [`GRACE_ENDS_BY`]). Async-signal-safe.
pub(crate) fn grace_ends_by() -> u64 {
    GRACE_ENDS_BY.load(SeqCst)
}

/// Makes the deadline thread for `limit`.
pub(crate) fn arm(limit: Duration) -> std::io::Result<()> {
    LIMIT.store(u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX), SeqCst);
    thread::Builder::new()
        .name("finally-deadline".into())
        .spawn(move || {
            // Published before the reason is read (see `WATCHER`).
            WATCHER.store(Box::into_raw(Box::new(thread::current())), SeqCst);
            // Woken by `start`, after the reason was published (`reason.rs`), or by
            // `start_above`.
            while reason::get().is_none() && ABOVE.load(SeqCst) == 0 {
                thread::park();
            }
            // Nothing here may panic or wait for a lock: it is the last resort.
            let _ = catch_unwind(AssertUnwindSafe(|| thread::sleep(limit)));
            let _ = catch_unwind(trace::deadline_reached);
            let running = standby::running_name();
            let running: &dyn std::fmt::Display = match &running {
                Some(name) => name,
                None => &"none",
            };
            report(format_args!(
                "the cleanups did not finish within {limit:?} (still running: {running}); ending the process"
            ));
            match (reason::get(), ABOVE.load(SeqCst)) {
                (Some(Exit::Signal(signal)), _) => end::die_by_now(signal.number()),
                (Some(_), _) | (None, EXIT) => end::exit_now(exit_code()),
                (None, signal) => end::die_by_now(signal),
            }
        })
        .map(drop)
}

/// The `timeout`, if there is one.
pub(super) fn limit() -> Option<Duration> {
    Some(LIMIT.load(SeqCst))
        .filter(|&nanos| nanos != 0)
        .map(Duration::from_nanos)
}

/// The shutdown has published its reason: the deadline runs from now.
pub(super) fn start() {
    starts_now();
    // SAFETY: leaked, never freed.
    if let Some(watcher) = unsafe { WATCHER.load(SeqCst).as_ref() } {
        watcher.unpark();
    }
}

/// A copy of `finally` installed over this one acts on `signal` (`None`: the process exits):
/// the deadline runs from now. The first stands: a process that a signal is ending may exit
/// meanwhile (`main` returns on the stop), and still ends by the signal.
#[cfg(unix)]
pub(super) fn start_above(signal: Option<Signal>) {
    mark_above(signal);
    start();
}

/// Notes what a copy of `finally` installed over this one has started (see [`start_above`]),
/// without starting the deadline. Async-signal-safe.
#[cfg(unix)]
pub(super) fn mark_above(signal: Option<Signal>) {
    let above = signal.map_or(EXIT, Signal::number);
    let _ = ABOVE.compare_exchange(0, above, SeqCst, SeqCst);
}

/// Whether a copy of `finally` installed over this one acts on a signal.
#[cfg(unix)]
pub(super) fn signal_above() -> bool {
    ABOVE.load(SeqCst) > 0
}

#[cfg(unix)]
pub(super) fn reset_in_child() {
    WATCHER.store(ptr::null_mut(), SeqCst);
    ABOVE.store(0, SeqCst);
    GRACE_ENDS_BY.store(u64::MAX, SeqCst);
}
