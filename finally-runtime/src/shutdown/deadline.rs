//! The `timeout` option: a thread made when the handlers are installed, so that no thread
//! has to be made when the shutdown starts (a pids limit may forbid it then). Once the
//! shutdown has published why the process is ending, it sleeps for the time-out, then ends the
//! process so, however far the grace periods and the cleanups have got.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::AtomicPtr;
use std::sync::atomic::Ordering::SeqCst;
use std::thread::{self, Thread};
use std::time::Duration;

use super::exit_code;
use crate::report::report;
use crate::sys::end;
use crate::{reason, standby, Exit};

/// The deadline thread, once made: leaked, so that a forked child can forget it.
static WATCHER: AtomicPtr<Thread> = AtomicPtr::new(ptr::null_mut());

/// Makes the deadline thread for `limit`.
pub(crate) fn arm(limit: Duration) -> std::io::Result<()> {
    let watcher = thread::Builder::new()
        .name("finally-deadline".into())
        .spawn(move || {
            // Woken by `start`, after the reason was published (`reason.rs`).
            let reason = loop {
                match reason::get() {
                    Some(reason) => break reason,
                    None => thread::park(),
                }
            };
            // Nothing here may panic or wait for a lock: it is the last resort.
            let _ = catch_unwind(AssertUnwindSafe(|| thread::sleep(limit)));
            report(format_args!(
                "the cleanups did not finish within {limit:?} (still running: {}); ending the process",
                standby::running_name()
            ));
            match reason {
                Exit::Signal(signal) => end::die_by_now(signal.number()),
                _ => end::exit_now(exit_code()),
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

#[cfg(unix)]
pub(super) fn reset_in_child() {
    WATCHER.store(ptr::null_mut(), SeqCst);
}
