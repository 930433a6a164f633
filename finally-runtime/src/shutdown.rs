//! The shutdown: who runs it, and its sequence from the first signal (or `exit`) to the last
//! cleanup.
//!
//! Exactly one thread runs the shutdown: the signal thread on the first handled signal, or the
//! thread calling `exit` (`std::process::exit`, or the end of `main`), or a panicking thread
//! of a `panic = "abort"` build. It claims the shutdown, starts the flag, and *walks* the
//! registry twice:
//!
//! 1. The first walk takes over every pending cleanup and runs it. Meanwhile the program's
//!    threads go on (`standby.rs` says where an owner waits); a guarded body that starts now is
//!    registered as usual.
//! 2. Just before the first walk leaves its last slot, the shutdown is *closed*: from then on no
//!    guarded body starts, and a thread that reaches a guarded function's entry or exit waits for
//!    the end of the process. The second walk takes over what bodies started during the first.
//!
//! On a signal, the stop is *requested* first (`request.rs`). With guarded functions that have a
//! grace period pending, the flag starts only once they have returned or the longest grace
//! period has passed, so that they can return on their own; without, the flag starts before the
//! request, so that a body that returns as soon as it learns of the stop runs no further.
//!
//! A cleanup that calls `exit` on the shutdown's own thread brings the shutdown back here
//! ([`on_exit`]): it resumes the walks, and the remaining cleanups still run once.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicI32, AtomicIsize, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::flag::SHUTDOWN;
use crate::report::report;
use crate::sys::{self, signal};
use crate::{fence, registry, request, standby, Exit, Signal};

/// What started the shutdown, if anything has.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Signal,
    Exit,
}

/// Who claimed the shutdown: 0, or a [`Kind`] as `1 + kind`.
static CLAIMED: AtomicU8 = AtomicU8::new(0);
/// The thread running the shutdown ([`sys::thread_id`]); set right after the claim.
static RUNNER: AtomicUsize = AtomicUsize::new(0);
/// Why the functions pending at the shutdown ended, for the walks, resumed or not; leaked once
/// per shutdown.
static REASON: AtomicPtr<Exit> = AtomicPtr::new(ptr::null_mut());

/// Becomes the thread that runs the shutdown, unless another one is (or was).
fn claim(kind: Kind) -> bool {
    let claimed = CLAIMED
        .compare_exchange(0, 1 + kind as u8, SeqCst, SeqCst)
        .is_ok();
    if claimed {
        RUNNER.store(sys::thread_id(), SeqCst);
        deadline::start();
    }
    claimed
}

/// What started the shutdown, if anything has. Async-signal-safe.
pub(crate) fn kind() -> Option<Kind> {
    match CLAIMED.load(SeqCst) {
        0 => None,
        1 => Some(Kind::Signal),
        _ => Some(Kind::Exit),
    }
}

/// Whether the calling thread runs the shutdown. Async-signal-safe.
pub(crate) fn is_mine() -> bool {
    kind().is_some() && RUNNER.load(SeqCst) == sys::thread_id()
}

/// Starts the flag: from now on, owners that reach a guarded function's entry or exit meet the
/// shutdown, and their nodes may be taken over.
fn begin(exit: &Exit) {
    REASON.store(Box::into_raw(Box::new(exit.clone())), SeqCst);
    let asymmetric = SHUTDOWN.start();
    fence::heavy(asymmetric);
}

/// The two walks (module docs). A cleanup whose output goes to a closed pipe (a terminal gone,
/// a reader gone) sees EPIPE, as Rust programs do, even if the program set SIGPIPE back to its
/// default: a SIGPIPE must not end the process half-way through its cleanups.
fn walk() {
    // SAFETY: set in `begin` before any walk, never freed.
    let exit = unsafe { &*REASON.load(SeqCst) };
    signal::without_sigpipe(|| {
        registry::walk(exit, || {
            let asymmetric = SHUTDOWN.close();
            fence::heavy(asymmetric);
        });
        registry::walk(exit, || {});
    });
}

/// Handles a signal: requests the stop, waits out the grace period, runs every pending cleanup.
///
/// Returns `false`, doing nothing, if another shutdown is under way (the process is exiting).
pub(crate) fn on_signal(signal: Signal) -> bool {
    if !claim(Kind::Signal) {
        return false;
    }
    let exit = Exit::Signal(signal);
    if GRACEFUL.load(SeqCst) > 0 {
        request::request(signal);
        wait_out_grace();
        begin(&exit);
    } else {
        begin(&exit);
        request::request(signal);
    }
    walk();
    true
}

/// Handles the end of the process from within (`exit`, or a panic that will abort), told why:
/// runs every pending cleanup, unless another thread runs the shutdown, which decides how the
/// process ends: then this thread waits for good. A cleanup of the shutdown that called `exit`
/// resumes the walks instead.
pub(crate) fn on_exit(exit: &Exit) {
    if claim(Kind::Exit) {
        begin(exit);
        walk();
    } else if is_mine() {
        resume();
    } else {
        registry::abandon_mine();
        standby::park_for_good();
    }
}

/// Runs the cleanups still pending, on the thread that runs the shutdown, after one of its
/// cleanups ended it again (`exit`).
pub(crate) fn resume() {
    if !REASON.load(SeqCst).is_null() {
        walk();
    }
}

/// Guarded calls with a grace period whose cleanup has not finished; signed, as a forked child
/// starts counting from 0 whatever its one thread had started.
static GRACEFUL: AtomicIsize = AtomicIsize::new(0);
/// The longest grace period of any guarded call so far, in nanoseconds.
static LONGEST_GRACE: AtomicU64 = AtomicU64::new(0);

/// Waits until every guarded call with a grace period has finished, or the longest grace
/// period has passed.
fn wait_out_grace() {
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

/// In a forked child, with its one thread: no shutdown under way, no grace period pending, no
/// deadline thread yet. Async-signal-safe.
pub(crate) fn reset_in_child() {
    CLAIMED.store(0, SeqCst);
    RUNNER.store(0, SeqCst);
    REASON.store(ptr::null_mut(), SeqCst);
    GRACEFUL.store(0, SeqCst);
    deadline::reset_in_child();
}

/// The code of the first `exit` of the process, once known.
static EXIT_CODE: AtomicI32 = AtomicI32::new(i32::MIN);

/// `exit` was called with `code`; the first one stands. Async-signal-safe.
pub(crate) fn exiting_with(code: i32) {
    let _ = EXIT_CODE.compare_exchange(i32::MIN, code, SeqCst, SeqCst);
}

/// The code of the first `exit`, where the platform tells it (glibc does); else 1.
pub(crate) fn exit_code() -> i32 {
    match EXIT_CODE.load(SeqCst) {
        i32::MIN => 1,
        code => code,
    }
}

pub(crate) use deadline::arm as arm_deadline;

mod deadline {
    //! The `timeout` option: a thread made when the handlers are installed, so that no thread
    //! has to be made when the shutdown starts (a pids limit may forbid it then). Once the
    //! shutdown starts, it sleeps for the time-out, then ends the process however far the
    //! cleanups have got.

    use super::*;

    /// The deadline thread, once made: leaked, so that a forked child can forget it.
    static WATCHER: AtomicPtr<Thread> = AtomicPtr::new(ptr::null_mut());

    /// Makes the deadline thread for `limit`.
    pub(crate) fn arm(limit: Duration) -> std::io::Result<()> {
        let watcher = thread::Builder::new()
            .name("finally-deadline".into())
            .spawn(move || {
                while kind().is_none() {
                    thread::park();
                }
                // Nothing here may panic or wait for a lock: it is the last resort.
                let _ = catch_unwind(AssertUnwindSafe(|| thread::sleep(limit)));
                report(format_args!(
                    "the cleanups did not finish within {limit:?} (still running: {}); ending the process",
                    standby::running_name()
                ));
                // SAFETY: set before the deadline starts counting, never freed.
                match unsafe { REASON.load(SeqCst).as_ref() }.and_then(Exit::signal) {
                    Some(signal) => signal::die_by_now(signal.number()),
                    None => signal::exit_now(exit_code()),
                }
            })?;
        let watcher = Box::into_raw(Box::new(watcher.thread().clone()));
        WATCHER.store(watcher, SeqCst);
        Ok(())
    }

    /// The shutdown has started: the deadline runs from now.
    pub(super) fn start() {
        // SAFETY: leaked, never freed.
        if let Some(watcher) = unsafe { WATCHER.load(SeqCst).as_ref() } {
            watcher.unpark();
        }
    }

    pub(super) fn reset_in_child() {
        WATCHER.store(ptr::null_mut(), SeqCst);
    }
}
