//! The stop request: the public, cooperative side of a shutdown by a signal.
//!
//! When a handled signal arrives, the stop is *requested* before (or, with a grace period,
//! while) the runtime takes the pending cleanups over: bodies that look can stop on their own.
//! A shutdown by `exit` requests nothing.

use std::collections::hash_map::{Entry, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicI32, AtomicU64};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::exit::{Exit, Signal};
use crate::flag::SHUTDOWN;

/// The signal that requested the stop, or 0.
static REQUESTED: AtomicI32 = AtomicI32::new(0);

/// Wakes the threads waiting for the stop request.
static CHANGED: Condvar = Condvar::new();
/// How many threads block in `wait_for_stop`: the request wakes them only if there are any (a
/// `notify_all` is a system call, on the way from a signal to the first cleanup).
static LOCK: Mutex<usize> = Mutex::new(0);
/// The futures waiting for the stop request, by id.
static WAKERS: Mutex<Option<HashMap<u64, Waker>>> = Mutex::new(None);
/// The next [`StopSignal`]'s id: while it is 0, no future can be waiting, and the request skips
/// the lock on its way to the first cleanup.
static NEXT_WAKER: AtomicU64 = AtomicU64::new(0);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Requests the stop for `signal`, and wakes whoever waits for the request.
pub(crate) fn request(signal: Signal) {
    {
        let waiting = lock(&LOCK);
        REQUESTED.store(signal.number(), SeqCst);
        // Owners that end a function from now on take their slow path, where `stopped` tells it.
        SHUTDOWN.request();
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
}

/// In a forked child: no stop requested. Async-signal-safe.
#[cfg(unix)]
pub(crate) fn reset_in_child() {
    REQUESTED.store(0, SeqCst);
}

/// The signal that requested the stop, if one has.
pub(crate) fn requested() -> Option<Signal> {
    match REQUESTED.load(SeqCst) {
        0 => None,
        number => Some(Signal::new(number)),
    }
}

/// Whether a handled signal (by default SIGINT, SIGTERM, SIGHUP or SIGQUIT) has arrived: the
/// process is stopping, and a body that checks this can finish early.
///
/// Cheap (one atomic load). Stays `true` once set.
pub fn stop_requested() -> bool {
    REQUESTED.load(Relaxed) != 0
}

/// Blocks until a handled signal arrives, or `timeout` passes (`Duration::MAX`: no time-out);
/// returns the signal, or `None` on time-out. At once if one has arrived.
///
/// For a thread that works between stops, or `main` waiting for one while other threads work
/// (give it a grace period to wind them down):
///
/// ```
/// # use finally_runtime as finally;
/// use std::time::Duration;
///
/// /// Says that the program is alive every `period`, until a stop is requested.
/// fn heartbeat(period: Duration) -> finally::Signal {
///     loop {
///         if let Some(signal) = finally::wait_for_stop(period) {
///             return signal;
///         }
///         println!("alive");
///     }
/// }
///
/// std::thread::spawn(|| {
///     let signal = heartbeat(Duration::from_secs(10));
///     eprintln!("heartbeat stopped by {signal}");
/// });
/// ```
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
/// In a loop, make it once, before the loop, and poll it by `&mut` in each round, as here
/// with `tokio::select!`: a worker that takes jobs until their senders are gone, or a stop is
/// requested.
///
/// ```
/// # use finally_runtime as finally;
/// use tokio::sync::mpsc;
///
/// async fn worker(mut jobs: mpsc::Receiver<String>) {
///     let mut stop = finally::stop_signal();
///     loop {
///         tokio::select! {
///             // Checked first: once a stop is requested, no job more is started.
///             biased;
///             signal = &mut stop => {
///                 eprintln!("worker stopped by {signal}");
///                 break;
///             }
///             job = jobs.recv() => match job {
///                 Some(job) => println!("job {job}"),
///                 None => break,
///             },
///         }
///     }
/// }
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() {
///     let (jobs, receiver) = mpsc::channel(16);
///     let worker = tokio::spawn(worker(receiver));
///     jobs.send("a".to_owned()).await.unwrap();
///     drop(jobs); // no more jobs: the worker ends
///     worker.await.unwrap();
/// }
/// ```
///
/// The repository's `cargo run --example server` is a whole server that stops accepting on the
/// signal and finishes its requests within a grace period.
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

/// The one rule for what a cleanup is told of a function or a guard that ended as `exit` says
/// (`None`: as it says). Once a stop is requested, one that returned, or a guard dropped other
/// than by a panic, ended for the signal: it may have returned because it learned of the stop,
/// and the process ends by that signal. A panic, a cancelled future, and an end during `exit`
/// are told as they are.
///
/// Owners apply it on their slow path, which every owner takes once a stop is requested (the
/// flag's `REQUESTED`), so the fast path of a guarded call decides nothing.
pub(crate) fn stopped(exit: &Exit) -> Option<Exit> {
    match exit {
        Exit::Returned => requested().map(Exit::Signal),
        _ => None,
    }
}
