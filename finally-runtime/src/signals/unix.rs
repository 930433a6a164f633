//! The signal handler and the signal thread.
//!
//! The handler is installed with `sigaction`, and chains to the action it replaced. It decides,
//! at each signal, whether the signal is `finally`'s to act on: not when someone else handles
//! it too, the application or a library, whether they installed their handler before ours (it
//! is the action ours replaced) or after (theirs is installed now, and calls ours, as
//! signal-hook's and so tokio's do): the signal is then theirs, and the cleanups run when the
//! application ends. When it is `finally`'s, the handler only records the first signal's number
//! in an atomic and wakes the `finally-signals` thread (`sys::wakeup`), both async-signal-safe.
//! All the work happens on that thread.
//!
//! `finally` does not register through signal-hook's registry: once a signal has a slot there,
//! a later registration (tokio's) changes nothing that can be seen, and `finally` could not know
//! that the application now handles the signal.

use std::ffi::c_void;
use std::io;
use std::panic::catch_unwind;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering::SeqCst};
use std::thread;

use libc::{c_int, siginfo_t};

use crate::config::Options;
use crate::flag::SHUTDOWN;
use crate::report::report;
use crate::sys::{end, signal as sys_signal, wakeup, ErrnoKept};
use crate::{registry, shutdown, Signal};

/// Installs the handler for each of `options`' signals that is not ignored: one `sigaction`
/// to look, one to install.
pub(crate) fn register(options: &Options) -> io::Result<()> {
    FORCE_QUIT_AFTER.store(options.force_quit_after.unwrap_or(0), SeqCst);
    for signal in options.signal_numbers() {
        let before = sys_signal::action(signal).ok_or_else(io::Error::last_os_error)?;
        if before.sa_sigaction == libc::SIG_IGN {
            continue;
        }
        // Known before ours is installed, so that a signal right after finds it; replaced if
        // another thread changed it meanwhile.
        let slot = &REPLACED[signal as usize];
        slot.store(Box::into_raw(Box::new(before)), SeqCst);
        // SAFETY: the handler is async-signal-safe (below); the options ask for it.
        let replaced = unsafe { sys_signal::install(signal, handler) }?;
        if replaced.sa_sigaction != before.sa_sigaction || replaced.sa_flags != before.sa_flags {
            slot.store(Box::into_raw(Box::new(replaced)), SeqCst);
        }
    }
    Ok(())
}

/// For each signal, the action the handler replaced, to chain to; null until it is installed.
/// Leaked: a handler may read it at any time.
static REPLACED: [AtomicPtr<libc::sigaction>; 64] = [const { AtomicPtr::new(ptr::null_mut()) }; 64];

/// The handler: chains to the action it replaced, then, if the signal is `finally`'s, records
/// it. Only atomics and async-signal-safe system calls.
extern "C" fn handler(signal: c_int, info: *mut siginfo_t, context: *mut c_void) {
    let _errno = ErrnoKept::new();
    let replaced = REPLACED
        .get(signal as usize)
        .map_or(ptr::null_mut(), |slot| slot.load(SeqCst));
    // SAFETY: leaked, never freed once stored.
    let replaced = unsafe { replaced.as_ref() };
    if let Some(replaced) = replaced {
        // SAFETY: the kernel's own arguments, passed on.
        unsafe { sys_signal::chain(replaced, signal, info, context) };
    }
    let handled_before = replaced.is_some_and(sys_signal::is_handler);
    // Someone installed a handler over ours, and calls ours: they handle the signal.
    let handled_after = !sys_signal::is_installed(signal, handler);
    if handled_before || handled_after {
        return;
    }
    arrived(signal);
    match FORCE_QUIT_AFTER.load(SeqCst) {
        0 => {}
        count => force_quit(count),
    }
}

/// The `force_quit_after` option, or 0 for none.
static FORCE_QUIT_AFTER: AtomicU32 = AtomicU32::new(0);

/// Starts the `finally-signals` thread: it waits for the first handled signal, runs the
/// shutdown, and ends the process by the signal. Nothing unwinds out of it before then.
pub(crate) fn start_thread() -> io::Result<()> {
    wakeup::prepare()?;
    thread::Builder::new()
        .name("finally-signals".into())
        .spawn(|| {
            let signal = first_signal();
            match catch_unwind(|| shutdown::on_signal(Signal::new(signal))) {
                Ok(true) => end::die_by(signal),
                // The process is already exiting: that shutdown decides how it ends, and later
                // signals change nothing.
                Ok(false) => {}
                Err(_) => {
                    report(format_args!(
                        "the shutdown failed; ending the process by the signal"
                    ));
                    end::die_by_now(signal)
                }
            }
        })
        .map(drop)
}

/// The number of the first handled signal, or 0: only the first matters, since it starts the
/// shutdown, and a shutdown is never started twice.
///
/// It is also the word the signal thread sleeps on (`sys::wakeup`): on Linux a futex, whose wake
/// is the least the kernel can do to wake a thread (as `ctrlc` does, through `sem_post`), less
/// than writing to a pipe.
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
        end::die_by_now(signal);
    }
    wakeup::wake(&ARRIVED);
}

/// The number of the first handled signal, or 0. Async-signal-safe.
fn first_signal_number() -> c_int {
    ARRIVED.load(SeqCst) as c_int
}

/// In a forked child: no signal has arrived. Async-signal-safe.
pub(crate) fn reset_in_child() {
    ARRIVED.store(0, SeqCst);
    SEEN.store(0, SeqCst);
    wakeup::reset_in_child();
}

/// Sleeps until a handled signal arrives, and returns its number.
fn first_signal() -> c_int {
    loop {
        match ARRIVED.load(SeqCst) {
            // Sleeps only while it still holds 0: a signal between the load and the wait makes
            // the kernel return at once, as does any wake-up; each ends in the load again.
            0 => wakeup::wait(&ARRIVED, 0),
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
    end::die_by_now(first_signal_number());
}
