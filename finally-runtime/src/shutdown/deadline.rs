//! The `timeout` option: a thread made when the handlers are installed, so that no thread
//! has to be made when the shutdown starts (a pids limit may forbid it then). Once the
//! shutdown has published why the process is ending, it sleeps for the time-out, then ends the
//! process so, however far the grace periods and the cleanups have got.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicI32, AtomicPtr};
use std::thread::{self, Thread};
use std::time::Duration;

use super::exit_code;
use crate::report::report;
use crate::sys::end;
#[cfg(unix)]
use crate::Signal;
use crate::{reason, standby, Exit};

/// The deadline thread, once made: leaked, so that a forked child can forget it.
static WATCHER: AtomicPtr<Thread> = AtomicPtr::new(ptr::null_mut());

/// The signal that a copy of `finally` installed over this one acts on, or 0: the deadline
/// counts from it too, before this copy's own shutdown has a reason.
static ABOVE: AtomicI32 = AtomicI32::new(0);

/// Makes the deadline thread for `limit`.
pub(crate) fn arm(limit: Duration) -> std::io::Result<()> {
    let watcher = thread::Builder::new()
        .name("finally-deadline".into())
        .spawn(move || {
            // Woken by `start`, after the reason was published (`reason.rs`), or by
            // `start_above`.
            while reason::get().is_none() && ABOVE.load(SeqCst) == 0 {
                thread::park();
            }
            // Nothing here may panic or wait for a lock: it is the last resort.
            let _ = catch_unwind(AssertUnwindSafe(|| thread::sleep(limit)));
            report(format_args!(
                "the cleanups did not finish within {limit:?} (still running: {}); ending the process",
                standby::running_name()
            ));
            match reason::get() {
                Some(Exit::Signal(signal)) => end::die_by_now(signal.number()),
                Some(_) => end::exit_now(exit_code()),
                None => end::die_by_now(ABOVE.load(SeqCst)),
            }
        })?;
    let watcher = Box::into_raw(Box::new(watcher.thread().clone()));
    WATCHER.store(watcher, SeqCst);
    Ok(())
}

/// The shutdown has published its reason: the deadline runs from now.
pub(super) fn start() {
    // SAFETY: leaked, never freed.
    if let Some(watcher) = unsafe { WATCHER.load(SeqCst).as_ref() } {
        watcher.unpark();
    }
}

/// A copy of `finally` installed over this one acts on `signal`: the deadline runs from now.
#[cfg(unix)]
pub(super) fn start_above(signal: Signal) {
    ABOVE.store(signal.number(), SeqCst);
    start();
}

#[cfg(unix)]
pub(super) fn reset_in_child() {
    WATCHER.store(ptr::null_mut(), SeqCst);
    ABOVE.store(0, SeqCst);
}
