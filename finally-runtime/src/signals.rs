//! The signal handler and the signal thread.
//!
//! The handler, registered through signal-hook (which chains it with any other), only records
//! the first signal's number in an atomic and wakes the `finally-signals` thread with a futex,
//! both async-signal-safe. All the work happens on that thread.

use std::io;
use std::panic::catch_unwind;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::thread;

use libc::c_int;

use crate::config::Config;
use crate::flag::SHUTDOWN;
use crate::report::report;
use crate::sys::{futex, signal as sys_signal};
use crate::{registry, shutdown, Signal};

/// Registers the handler for each of `options`' signals that is not ignored.
pub(crate) fn register(options: &Config) -> io::Result<()> {
    let force_quit_after = options.force_quit_after;
    for &signal in options
        .signals
        .iter()
        .filter(|&&signal| !sys_signal::is_ignored(signal))
    {
        // In the signal handler: only atomics and system calls that are async-signal-safe.
        let action = move || {
            arrived(signal);
            if let Some(count) = force_quit_after {
                force_quit(count);
            }
        };
        // SAFETY: the action is async-signal-safe (above).
        unsafe { signal_hook::low_level::register(signal, action) }?;
    }
    Ok(())
}

/// Starts the `finally-signals` thread: it waits for the first handled signal, runs the
/// shutdown, and ends the process by the signal. Nothing unwinds out of it before then.
pub(crate) fn start_thread() -> io::Result<()> {
    thread::Builder::new()
        .name("finally-signals".into())
        .spawn(|| {
            let signal = first_signal();
            match catch_unwind(|| shutdown::on_signal(Signal::new(signal))) {
                Ok(true) => sys_signal::die_by(signal),
                // The process is already exiting: that shutdown decides how it ends, and later
                // signals change nothing.
                Ok(false) => {}
                Err(_) => {
                    report(format_args!(
                        "the shutdown failed; ending the process by the signal"
                    ));
                    sys_signal::die_by_now(signal)
                }
            }
        })
        .map(drop)
}

/// The number of the first handled signal, or 0: only the first matters, since it starts the
/// shutdown, and a shutdown is never started twice.
///
/// It is also the futex the signal thread sleeps on. A futex wake is the least the kernel can do
/// to wake a thread (as `ctrlc` does, through `sem_post`), less than writing to a pipe.
static ARRIVED: AtomicU32 = AtomicU32::new(0);

/// How many handled signals have arrived, the first included.
static SEEN: AtomicU32 = AtomicU32::new(0);

/// Counts `signal`, records it unless one came first, and wakes the signal thread.
/// Async-signal-safe.
fn arrived(signal: c_int) {
    SEEN.fetch_add(1, SeqCst);
    let _ = ARRIVED.compare_exchange(0, signal as u32, SeqCst, SeqCst);
    if SHUTDOWN.has_no_thread() && !registry::has_pending() {
        // A forked child with nothing pending and no signal thread yet: the signal has its
        // default effect, as if `finally` were not there.
        sys_signal::die_by_now(signal);
    }
    futex::wake(&ARRIVED, 1);
}

/// The number of the first handled signal, or 0. Async-signal-safe.
fn first_signal_number() -> c_int {
    ARRIVED.load(SeqCst) as c_int
}

/// In a forked child: no signal has arrived. Async-signal-safe.
pub(crate) fn reset_in_child() {
    ARRIVED.store(0, SeqCst);
    SEEN.store(0, SeqCst);
}

/// Sleeps until a handled signal arrives, and returns its number.
fn first_signal() -> c_int {
    loop {
        match ARRIVED.load(SeqCst) {
            // Sleeps only while it still holds 0: a signal between the load and the wait makes
            // the kernel return at once, as does any wake-up; each ends in the load again.
            0 => futex::wait(&ARRIVED, 0),
            signal => return signal as c_int,
        }
    }
}

/// Ends the process at once, by the first signal, once `count` more signals have arrived
/// during a shutdown: the habit of pressing Ctrl-C three times. Async-signal-safe.
///
/// In a shutdown by a signal, the first signal requested it, and the "more" are the ones after
/// it (counting from the request itself would also count that first signal whenever the signal
/// thread made the request before this handler got here). In a shutdown by `exit`, every
/// signal is one more: each was held back.
fn force_quit(count: u32) {
    let more = match shutdown::kind() {
        None => return,
        Some(shutdown::Kind::Signal) => SEEN.load(SeqCst) - 1,
        Some(shutdown::Kind::Exit) => SEEN.load(SeqCst),
    };
    if more < count {
        return;
    }
    let message = b"finally: forced to quit: the cleanups are cut short\n";
    // SAFETY: async-signal-safe calls with valid arguments.
    unsafe { libc::write(2, message.as_ptr().cast(), message.len()) };
    sys_signal::die_by_now(first_signal_number());
}
