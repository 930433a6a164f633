//! What a program's ending does, told to `tracing`, with the `tracing` feature (without it, every
//! function here is empty and inlined away, and `tracing` is not built).
//!
//! Spans and events have the target `finally`.
//!
//! - A shutdown (a signal, `exit`, `end_by`) is one span, `finally shutdown`, whose fields say
//!   what started it (`by`: `signal`, `exit` or `end_by`), why (`reason`: the [`Exit`] its
//!   cleanups are told) and the `timeout`, if there is one. Its events are the grace period (the
//!   functions with one waited for, then how long and whether they all returned), each cleanup
//!   that runs while it is under way, on whichever thread, and the deadline reached.
//! - Each cleanup is an event: `cleanup` (the function's, or the guard's and where it was made),
//!   `exit` (what it was told), `took`, and `ended`: `returned`, `error` (it returned an `Err`)
//!   or `panicked` (with the `panic` message). In a shutdown they are `INFO` (`WARN` for an error or a panic); outside one,
//!   as a guarded function returns or panics (not the program's ending), they are told only
//!   while the subscribers' level admits `DEBUG`, at `DEBUG` (`WARN`). A cleanup that overruns
//!   the deadline is named by the deadline's event (`running`).
//!
//! Events are emitted where emitting is safe: by a thread of the runtime's own,
//! `finally-trace`, made with the signal thread. Never in a signal handler; never on the thread
//! that runs a cleanup, which may be in `exit` or in its thread-local destructors, where a
//! subscriber's own thread-locals are gone (`tracing-subscriber`'s `fmt` panics there). The
//! others hand it what happened, without a lock, and the shutdown waits for it to tell all
//! before the process ends, as long as it makes progress (100 ms at most without).

use std::any::Any;
use std::fmt::Display;

use crate::exit::Exit;

/// What started a shutdown.
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) enum Start {
    Signal,
    Exit,
    EndBy,
}

#[cfg(feature = "tracing")]
mod on {
    use std::cell::Cell;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::ptr;
    use std::sync::atomic::Ordering::{Relaxed, SeqCst};
    use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64};
    use std::thread::{self, Thread};
    use std::time::{Duration, Instant};

    use tracing::field::{debug, Empty};
    use tracing::level_filters::LevelFilter;
    use tracing::{error, info, info_span, warn, Span};

    use super::{Any, Display, Exit, Start};
    use crate::exit::panic_message;
    use crate::{standby, sys};

    /// What happened, as the `finally-trace` thread will tell it.
    enum Told {
        Shutdown {
            by: Start,
            reason: String,
            timeout: Option<Duration>,
        },
        Cleanup {
            name: String,
            exit: String,
            took: Duration,
            ended: Ended,
        },
        GraceBegins(Duration),
        GraceEnds {
            waited: Duration,
            all_returned: bool,
        },
    }

    enum Ended {
        Returned,
        Failed,
        Panicked(String),
    }

    /// What the threads have handed the `finally-trace` thread and it has not taken yet, newest
    /// first: a stack pushed to without a lock (the one thing a forked child may find
    /// half-written is a push, which only leaks).
    static QUEUE: AtomicPtr<Node> = AtomicPtr::new(ptr::null_mut());

    struct Node {
        told: Told,
        next: *mut Node,
    }

    /// The `finally-trace` thread, once made (leaked); null in a forked child until it has its
    /// own.
    static TELLER: AtomicPtr<Thread> = AtomicPtr::new(ptr::null_mut());

    /// How many things were handed over, and how many the thread has told.
    static HANDED: AtomicU64 = AtomicU64::new(0);
    static TOLD: AtomicU64 = AtomicU64::new(0);

    /// A shutdown has begun: from now on every cleanup is told.
    static BEGUN: AtomicBool = AtomicBool::new(false);

    /// The deadline is reached: the thread tells it, reading what still runs itself.
    static DEADLINE: AtomicBool = AtomicBool::new(false);

    thread_local! {
        /// The cleanup this thread runs has reported an error it returned.
        static FAILED: Cell<bool> = const { Cell::new(false) };
    }

    /// Makes the `finally-trace` thread, and publishes it: what is handed over from now on is
    /// told, even before the thread first runs.
    pub(crate) fn start_thread() -> std::io::Result<()> {
        let made = thread::Builder::new()
            .name("finally-trace".into())
            .spawn(tell_all)?;
        TELLER.store(Box::into_raw(Box::new(made.thread().clone())), SeqCst);
        Ok(())
    }

    /// The `finally-trace` thread: tells what it is handed, in order, for good.
    fn tell_all() {
        let mut shutdown = None;
        loop {
            let mut taken = QUEUE.swap(ptr::null_mut(), SeqCst);
            let mut told = Vec::new();
            while !taken.is_null() {
                // SAFETY: pushed by `hand_over` from `Box::into_raw`, taken once (the swap).
                let node = unsafe { Box::from_raw(taken) };
                taken = node.next;
                told.push(node.told);
            }
            let count = told.len() as u64;
            for told in told.into_iter().rev() {
                // A subscriber that panics loses its event, not the ones after it.
                let _ = catch_unwind(AssertUnwindSafe(|| tell(told, &mut shutdown)));
            }
            TOLD.fetch_add(count, SeqCst);
            if DEADLINE.swap(false, SeqCst) {
                let running = standby::running_name();
                let running: &dyn Display = match &running {
                    Some(name) => name,
                    None => &"none",
                };
                let parent = shutdown.as_ref().and_then(Span::id);
                error!(
                    target: "finally", parent: parent, %running,
                    "the deadline is reached: the process ends"
                );
                TOLD.fetch_add(1, SeqCst);
            }
            if count == 0 {
                thread::park();
            }
        }
    }

    /// Tells `told`, in the span of the shutdown once one has begun.
    fn tell(told: Told, shutdown: &mut Option<Span>) {
        let parent = shutdown.as_ref().and_then(Span::id);
        match told {
            Told::Shutdown {
                by,
                reason,
                timeout,
            } => {
                let by = match by {
                    Start::Signal => "signal",
                    Start::Exit => "exit",
                    Start::EndBy => "end_by",
                };
                let span =
                    info_span!(target: "finally", "finally shutdown", by, %reason, timeout = Empty);
                if let Some(timeout) = timeout {
                    span.record("timeout", debug(timeout));
                }
                *shutdown = Some(span);
            }
            Told::Cleanup {
                name,
                exit,
                took,
                ended,
            } => match ended {
                Ended::Panicked(panic) => warn!(
                    target: "finally", parent: parent,
                    cleanup = name, exit, ?took, ended = "panicked", panic,
                    "a cleanup panicked"
                ),
                Ended::Failed => warn!(
                    target: "finally", parent: parent,
                    cleanup = name, exit, ?took, ended = "error",
                    "a cleanup failed"
                ),
                Ended::Returned if shutdown.is_some() => info!(
                    target: "finally", parent: parent,
                    cleanup = name, exit, ?took, ended = "returned",
                    "a cleanup ran"
                ),
                Ended::Returned => tracing::debug!(
                    target: "finally",
                    cleanup = name, exit, ?took, ended = "returned",
                    "a cleanup ran"
                ),
            },
            Told::GraceBegins(up_to) => info!(
                target: "finally", parent: parent, ?up_to,
                "waiting for the functions with a grace period"
            ),
            Told::GraceEnds {
                waited,
                all_returned,
            } => info!(
                target: "finally", parent: parent, ?waited, all_returned,
                "the grace period is over"
            ),
        }
    }

    /// Hands `told` to the `finally-trace` thread; dropped if there is none.
    fn hand_over(told: Told) {
        // SAFETY: leaked, never freed.
        let Some(teller) = (unsafe { TELLER.load(SeqCst).as_ref() }) else {
            return;
        };
        let node = Box::into_raw(Box::new(Node {
            told,
            next: ptr::null_mut(),
        }));
        let mut head = QUEUE.load(SeqCst);
        loop {
            // SAFETY: ours until the exchange publishes it.
            unsafe { (*node).next = head };
            match QUEUE.compare_exchange_weak(head, node, SeqCst, SeqCst) {
                Ok(_) => break,
                Err(now) => head = now,
            }
        }
        HANDED.fetch_add(1, SeqCst);
        teller.unpark();
    }

    /// Waits until the `finally-trace` thread has told all it was handed, as long as it makes
    /// progress: 100 ms at most without.
    fn flush() {
        let mut told = TOLD.load(SeqCst);
        let mut since = Instant::now();
        while TOLD.load(SeqCst) < HANDED.load(SeqCst) && !TELLER.load(SeqCst).is_null() {
            if since.elapsed() > Duration::from_millis(100) {
                return;
            }
            thread::sleep(Duration::from_millis(1));
            let now = TOLD.load(SeqCst);
            if now != told {
                (told, since) = (now, Instant::now());
            }
        }
    }

    /// A shutdown under way, until dropped: then what it did has been told (see [`flush`]).
    pub(crate) struct Shutdown(());

    impl Drop for Shutdown {
        fn drop(&mut self) {
            flush();
        }
    }

    /// The shutdown begins, started `by` that, for `reason`, with `timeout` if any.
    pub(crate) fn shutdown(by: Start, reason: &Exit, timeout: Option<Duration>) -> Shutdown {
        BEGUN.store(true, SeqCst);
        hand_over(Told::Shutdown {
            by,
            reason: reason.to_string(),
            timeout,
        });
        Shutdown(())
    }

    /// What was told is told before the process ends: after cleanups resumed in `exit`.
    pub(crate) fn told() {
        flush();
    }

    /// When a cleanup about to run starts, if it is to be told: in a shutdown, or while the
    /// subscribers' level admits `DEBUG` (a load of an atomic: no subscriber is asked, on a
    /// thread that may be in its thread-local destructors). Only then does the cleanup pay for
    /// reading the clock.
    #[inline(always)]
    pub(crate) fn start() -> Option<Instant> {
        if !BEGUN.load(Relaxed) && LevelFilter::current() < LevelFilter::DEBUG {
            return None;
        }
        told_start()
    }

    /// [`start`] for a cleanup that is told: out of line.
    #[cold]
    #[inline(never)]
    fn told_start() -> Option<Instant> {
        // A flag left by a cleanup that was not told goes now.
        let _ = FAILED.try_with(|failed| failed.set(false));
        Some(Instant::now())
    }

    /// The cleanup this thread runs has returned an error (and reported it).
    pub(crate) fn failed() {
        let _ = FAILED.try_with(|failed| failed.set(true));
    }

    /// The cleanup `name`, told `exit`, which [`start`]ed then, has ended: returned (then
    /// [`failed`] tells if with an error), or `panicked` with that payload. Out of line: a
    /// cleanup that is not told does not pay for it.
    #[cold]
    #[inline(never)]
    pub(crate) fn ran(
        started: Instant,
        name: &dyn Display,
        exit: &Exit,
        panicked: Option<&(dyn Any + Send)>,
    ) {
        let took = started.elapsed();
        let ended = match panicked {
            Some(payload) => Ended::Panicked(
                panic_message(payload)
                    .unwrap_or("a payload that is not a string")
                    .to_owned(),
            ),
            None if FAILED.try_with(|failed| failed.replace(false)) == Ok(true) => Ended::Failed,
            None => Ended::Returned,
        };
        hand_over(Told::Cleanup {
            name: name.to_string(),
            exit: exit.to_string(),
            took,
            ended,
        });
    }

    /// The functions with a grace period under way are waited for, `up_to` that.
    pub(crate) fn grace_begins(up_to: Duration) {
        hand_over(Told::GraceBegins(up_to));
    }

    /// The grace period, begun `since` (on the monotonic clock), is over: they had
    /// `all_returned`, or it ran out.
    pub(crate) fn grace_ends(since: u64, all_returned: bool) {
        let waited = sys::monotonic_nanos().saturating_sub(since);
        hand_over(Told::GraceEnds {
            waited: Duration::from_nanos(waited),
            all_returned,
        });
    }

    /// The deadline is reached: told by the `finally-trace` thread, waited for as by
    /// [`flush`]. Neither allocates nor takes a lock.
    pub(crate) fn deadline_reached() {
        // SAFETY: leaked, never freed.
        if let Some(teller) = unsafe { TELLER.load(SeqCst).as_ref() } {
            HANDED.fetch_add(1, SeqCst);
            DEADLINE.store(true, SeqCst);
            teller.unpark();
            flush();
        }
    }

    /// In a forked child, whose `finally-trace` thread stayed in the parent: nothing is told
    /// until it has its own (made with its signal thread). Async-signal-safe.
    #[cfg(unix)]
    pub(crate) fn reset_in_child() {
        TELLER.store(ptr::null_mut(), SeqCst);
        QUEUE.store(ptr::null_mut(), SeqCst);
        TOLD.store(HANDED.load(SeqCst), SeqCst);
        BEGUN.store(false, SeqCst);
    }
}

#[cfg(not(feature = "tracing"))]
mod on {
    use std::time::Duration;

    use super::{Any, Display, Exit, Start};

    pub(crate) struct Shutdown;

    #[inline(always)]
    pub(crate) fn start_thread() -> std::io::Result<()> {
        Ok(())
    }
    #[inline(always)]
    pub(crate) fn shutdown(_: Start, _: &Exit, _: Option<Duration>) -> Shutdown {
        Shutdown
    }
    #[inline(always)]
    pub(crate) fn told() {}
    #[inline(always)]
    pub(crate) fn start() -> Option<()> {
        None
    }
    #[inline(always)]
    pub(crate) fn failed() {}
    #[inline(always)]
    pub(crate) fn ran(_: (), _: &dyn Display, _: &Exit, _: Option<&(dyn Any + Send)>) {}
    #[inline(always)]
    pub(crate) fn grace_begins(_: Duration) {}
    #[inline(always)]
    pub(crate) fn grace_ends(_: u64, _: bool) {}
    #[inline(always)]
    pub(crate) fn deadline_reached() {}
    #[cfg(unix)]
    #[inline(always)]
    pub(crate) fn reset_in_child() {}
}

#[cfg(unix)]
pub(crate) use on::reset_in_child;
pub(crate) use on::{
    deadline_reached, failed, grace_begins, grace_ends, ran, shutdown, start, start_thread, told,
    Shutdown,
};
