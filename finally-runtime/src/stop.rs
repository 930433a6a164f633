//! The end of the process: the stop request, the grace period, and who runs the cleanups.
//!
//! Exactly one thread becomes the *stopper*: the signal thread on the first handled signal, or
//! the thread calling `exit` (`std::process::exit`, or the end of `main`). On a signal, the stop
//! is *requested* (the flag bodies can watch) and `STOPPING` raised, then the stopper runs what
//! is pending. With guarded functions that have a grace period pending, it raises `STOPPING`
//! only once it has waited it out, so that they can return on their own; without, it raises it
//! first, so that a body that returns as soon as it learns of the stop runs no further.
//! Every other thread that reaches a guarded function's entry or exit while the process is
//! stopping parks for good: the process is about to end, and the code after a guarded function
//! must not run once its cleanup has been taken over.

use std::collections::hash_map::{Entry, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{compiler_fence, fence};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicU8, AtomicUsize};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::protocol::StopFlag;
use crate::{barrier, registry};
use crate::{Exit, Signal};

/// Raised once, by the stopper, before it walks the registry; never lowered.
pub(crate) static STOPPING: Flags = Flags(AtomicU8::new(0));

/// The stop flag, and whether `barrier::heavy` can stand for the owners' fences, in one byte:
/// the owners' check after each of their stores is then one load and one compare.
pub(crate) struct Flags(AtomicU8);

const RAISED: u8 = 1;
const ASYMMETRIC: u8 = 2;

impl Flags {
    /// Raises the flag; returns whether owners may be using compiler-only fences. If not, no
    /// owner can start to without seeing the flag raised: it is the same atomic byte.
    fn raise(&self) -> bool {
        self.0.fetch_or(RAISED, SeqCst) & ASYMMETRIC != 0
    }

    pub(crate) fn is_raised(&self) -> bool {
        self.0.load(SeqCst) & RAISED != 0
    }

    /// `barrier::heavy` now orders the owners' stores: their side needs no fence of its own.
    pub(crate) fn set_asymmetric(&self) {
        self.0.fetch_or(ASYMMETRIC, SeqCst);
    }

    /// The owners' side before `membarrier` is registered (until calls are hot, or for good).
    /// Out of line: where calls are hot, it is not taken.
    #[cold]
    fn raised_after_fence(&self) -> bool {
        fence(SeqCst);
        self.0.load(Relaxed) & RAISED != 0
    }
}

impl StopFlag for Flags {
    #[inline(always)]
    fn raised_after_store(&self) -> bool {
        compiler_fence(SeqCst);
        match self.0.load(Relaxed) {
            ASYMMETRIC => false,
            flags if flags & ASYMMETRIC != 0 => true,
            // Not (yet) asymmetric: this side needs its full fence before the load.
            _ => self.raised_after_fence(),
        }
    }
}

/// Who gets to be the stopper.
static CLAIMED: AtomicBool = AtomicBool::new(false);
/// The stopper's thread; set before `STOPPING` is raised.
static STOPPER: OnceLock<Thread> = OnceLock::new();
/// The signal that requested the stop, or 0.
static REQUESTED: AtomicI32 = AtomicI32::new(0);
/// Guarded calls with a grace period whose cleanup has not finished.
static GRACEFUL: AtomicUsize = AtomicUsize::new(0);
/// The longest grace period of any guarded call so far, in nanoseconds.
static LONGEST_GRACE: AtomicU64 = AtomicU64::new(0);

/// Wakes the threads waiting for the stop request, and the stopper waiting out the grace.
static CHANGED: Condvar = Condvar::new();
/// How many threads block in `wait_for_stop`: the signal thread wakes them only if there are any
/// (a `notify_all` is a system call, on the way from a signal to the first cleanup).
static LOCK: Mutex<usize> = Mutex::new(0);
/// The futures waiting for the stop request, by id.
static WAKERS: Mutex<Option<HashMap<u64, Waker>>> = Mutex::new(None);
/// The next [`StopSignal`]'s id: while it is 0, no future can be waiting, and the signal thread
/// skips the lock on its way to the first cleanup.
static NEXT_WAKER: AtomicU64 = AtomicU64::new(0);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Becomes the stopper, unless another thread is (or was).
fn claim() -> bool {
    !CLAIMED.swap(true, SeqCst)
}

/// Makes the calling thread, which claimed the stop, the stopper: from now on, owners that reach
/// a guarded function's entry or exit park, and their nodes are the stopper's to run.
fn begin_stop() {
    let _ = STOPPER.set(thread::current());
    let asymmetric = STOPPING.raise();
    barrier::heavy(asymmetric);
}

/// The cleanup the stopper runs or waits for, for the time-out's report.
static RUNNING: Mutex<&str> = Mutex::new("");

/// The stopper is running, or waiting for, the cleanup `name`.
pub(crate) fn running(name: &'static &'static str) {
    *lock(&RUNNING) = *name;
}

/// Handles a signal: requests the stop, waits out the grace period, runs every pending cleanup.
///
/// Returns `false`, doing nothing, if another stop is under way (the process is exiting).
pub(crate) fn on_signal(signal: Signal) -> bool {
    if !claim() {
        return false;
    }
    if let Some(limit) = crate::signals::config().timeout {
        // The deadline covers the grace period and the cleanups alike.
        let watchdog = thread::Builder::new().name("finally-deadline".into());
        let _ = watchdog.spawn(move || {
            thread::sleep(limit);
            crate::report::report(format_args!(
                "the cleanups did not finish within {limit:?} (still running: {}); ending the process",
                *lock(&RUNNING)
            ));
            crate::signals::die_by(signal.number());
        });
    }
    // Without a grace period to wait out, the stop begins before the bodies learn of it: one
    // that returns as soon as it is woken must not run on as if nothing had happened.
    let graceful = GRACEFUL.load(SeqCst) > 0;
    if !graceful {
        begin_stop();
    }
    {
        let waiting = lock(&LOCK);
        REQUESTED.store(signal.number(), SeqCst);
        if *waiting > 0 {
            CHANGED.notify_all();
        }
    }
    // A future that saw no request under the lock took its id before (both `SeqCst`).
    if NEXT_WAKER.load(SeqCst) > 0 {
        for (_, waker) in lock(&WAKERS).take().into_iter().flatten() {
            waker.wake();
        }
    }
    if graceful {
        wait_out_grace();
        begin_stop();
    }
    registry::run_all_pending(&Exit::Signal(signal));
    true
}

/// Handles the end of the process from within (`exit`, or a panic that will abort): runs every
/// pending cleanup with `exit`, unless a signal's cleanups are running, which ending the
/// process now would cut short.
pub(crate) fn on_end(exit: &Exit) {
    if claim() {
        begin_stop();
        registry::run_all_pending(exit);
    } else if !is_stopper() {
        park_forever();
    }
}

/// Waits until every guarded call with a grace period has finished, or the longest grace
/// period has passed.
fn wait_out_grace() {
    let deadline = Instant::now() + Duration::from_nanos(LONGEST_GRACE.load(SeqCst));
    let mut lock = lock(&LOCK);
    while GRACEFUL.load(SeqCst) > 0 {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            break;
        };
        lock = CHANGED
            .wait_timeout(lock, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

/// A guarded call with a grace period started.
pub(crate) fn grace_started(grace: Duration) {
    let nanos = u64::try_from(grace.as_nanos()).unwrap_or(u64::MAX);
    LONGEST_GRACE.fetch_max(nanos, SeqCst);
    GRACEFUL.fetch_add(1, SeqCst);
}

/// A guarded call with a grace period finished its cleanup. Once a stop is requested, the
/// code after it must not run: this parks, and the last such call lets the stop go on.
pub(crate) fn grace_finished() {
    let last = GRACEFUL.fetch_sub(1, SeqCst) == 1;
    if stop_requested() {
        if last {
            let _lock = lock(&LOCK);
            CHANGED.notify_all();
        }
        if !is_stopper() {
            park_forever();
        }
    }
}

/// Whether the calling thread is the stopper (its own cleanups may call guarded functions).
pub(crate) fn is_stopper() -> bool {
    STOPPING.is_raised()
        && STOPPER
            .get()
            .is_some_and(|stopper| stopper.id() == thread::current().id())
}

/// A guarded function was entered while the process is stopping.
#[cold]
pub(crate) fn entered_while_stopping() {
    if !is_stopper() {
        park_forever();
    }
}

/// A guarded function's own cleanup finished while the process is stopping: the stopper may be
/// waiting for it, and the code after the function must not run.
#[cold]
pub(crate) fn returned_while_stopping() {
    if !is_stopper() {
        if let Some(stopper) = STOPPER.get() {
            stopper.unpark();
        }
        park_forever();
    }
}

/// Blocks the calling thread until the process ends.
#[cold]
pub(crate) fn park_forever() -> ! {
    loop {
        thread::park();
    }
}

/// The number of the signal that requested the stop, or 0. Async-signal-safe.
pub(crate) fn requested_number() -> libc::c_int {
    REQUESTED.load(SeqCst)
}

/// The signal that requested the stop, if one has.
pub(crate) fn requested() -> Option<Signal> {
    match REQUESTED.load(SeqCst) {
        0 => None,
        number => Some(Signal::new(number)),
    }
}

/// Whether a handled signal (SIGINT, SIGTERM, SIGHUP or SIGQUIT) has arrived: the process is
/// stopping, and a body that checks this can finish early.
///
/// Cheap (one atomic load). Stays `true` once set.
pub fn stop_requested() -> bool {
    REQUESTED.load(Relaxed) != 0
}

/// Blocks until a handled signal arrives, or `timeout` passes (`Duration::MAX`: no time-out);
/// returns the signal, or `None` on time-out.
pub fn wait_for_stop(timeout: Duration) -> Option<Signal> {
    let deadline = Instant::now().checked_add(timeout);
    let mut waiting = lock(&LOCK);
    *waiting += 1;
    let signal = loop {
        if let Some(signal) = requested() {
            break Some(signal);
        }
        let left = match deadline {
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) => left,
                None => break None,
            },
            None => Duration::MAX,
        };
        waiting = CHANGED
            .wait_timeout(waiting, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    };
    *waiting -= 1;
    signal
}

/// A future that resolves to the signal once a handled signal arrives; see [`stop_signal`].
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct StopSignal {
    id: u64,
}

/// Waits for a handled signal without blocking a thread: the returned future resolves to the
/// signal once one arrives (at once if one has). It works with any async runtime.
///
/// ```no_run
/// # use finally_runtime as finally;
/// # async fn example() {
/// let signal = finally::stop_signal().await;
/// eprintln!("stopping on {signal}");
/// # }
/// ```
pub fn stop_signal() -> StopSignal {
    StopSignal {
        id: NEXT_WAKER.fetch_add(1, SeqCst),
    }
}

impl Future for StopSignal {
    type Output = Signal;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Signal> {
        if let Some(signal) = requested() {
            return Poll::Ready(signal);
        }
        let mut wakers = lock(&WAKERS);
        // Checked again under the lock: the signal thread wakes the list after the request.
        if let Some(signal) = requested() {
            return Poll::Ready(signal);
        }
        match wakers.get_or_insert_with(HashMap::new).entry(self.id) {
            Entry::Occupied(mut waker) => waker.get_mut().clone_from(context.waker()),
            Entry::Vacant(entry) => {
                entry.insert(context.waker().clone());
            }
        }
        Poll::Pending
    }
}

impl Drop for StopSignal {
    fn drop(&mut self) {
        if let Some(wakers) = lock(&WAKERS).as_mut() {
            wakers.remove(&self.id);
        }
    }
}
