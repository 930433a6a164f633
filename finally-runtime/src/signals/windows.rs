//! Windows: console control events (Ctrl-C, Ctrl-Break, the console closed, logoff, shutdown).
//!
//! Windows runs the handler on a new thread of its own for each event, not in a signal handler,
//! so the handler runs the shutdown itself, and returns only if the event is not `finally`'s:
//! returning lets the next handler, or Windows' default one, end the process, and after a
//! console is closed Windows ends the process as soon as the handler returns (or after about
//! 5 s). Handlers are called newest first: one the application registers after `finally`'s
//! comes first, and when it returns `TRUE` (as ctrlc's does), `finally`'s is never called.

use std::io;
use std::panic::catch_unwind;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering::SeqCst};

use libc::c_int;
use windows_sys::core::BOOL;
use windows_sys::Win32::Foundation::FALSE;

use crate::config::Options;
use crate::exit::Signal;
use crate::handling::Handling;
use crate::report::report;
use crate::sys::{console, end};
use crate::{registry, shutdown};

/// The events that run the cleanups, a bit each.
static CHOSEN: AtomicU64 = AtomicU64::new(0);
/// The `force_quit_after` option, or 0 for none.
static FORCE_QUIT_AFTER: AtomicU32 = AtomicU32::new(0);
/// Events that came while a shutdown ran.
static MORE: AtomicU32 = AtomicU32::new(0);
/// The event that started the shutdown, or -1.
static FIRST: AtomicI32 = AtomicI32::new(-1);

/// Adds the console control handler, if any event is to run the cleanups.
pub(crate) fn register(options: &Options) -> io::Result<()> {
    let chosen = options
        .signal_numbers()
        .fold(0u64, |set, event| set | 1 << event);
    CHOSEN.store(chosen, SeqCst);
    FORCE_QUIT_AFTER.store(options.force_quit_after.unwrap_or(0), SeqCst);
    if chosen == 0 {
        return Ok(());
    }
    console::add_handler(handler)?;
    ADDED.store(true, SeqCst);
    Ok(())
}

/// Whether the console control handler is added.
static ADDED: AtomicBool = AtomicBool::new(false);

/// Whether the handler takes `event`: `None` if it is not added. Windows tells neither whether
/// a handler added later takes the event first nor whether Ctrl-C is ignored: `Handled` says so.
pub(crate) fn handling(event: c_int) -> Option<Handling> {
    let chosen = (0..64).contains(&event) && CHOSEN.load(SeqCst) & 1 << event != 0;
    (chosen && ADDED.load(SeqCst)).then_some(Handling::Handled)
}

/// Nothing to start: Windows makes a thread for each event.
pub(crate) fn start_thread() -> io::Result<()> {
    Ok(())
}

/// The console control handler.
///
/// - Not one of the events to handle, or no cleanup pending: not `finally`'s; the next handler
///   (the application's, or Windows' default, which ends the process) takes it.
/// - During a shutdown: held back, for good (the shutdown ends the process), or, after
///   `force_quit_after` more, the process ends at once.
/// - Otherwise: runs every pending cleanup, then ends the process as Windows' default handler
///   would have, with `STATUS_CONTROL_C_EXIT`.
unsafe extern "system" fn handler(event: u32) -> BOOL {
    let Ok(number) = c_int::try_from(event) else {
        return FALSE;
    };
    if number >= 64 || CHOSEN.load(SeqCst) & 1 << number == 0 {
        return FALSE;
    }
    if shutdown::kind().is_some() {
        hold_back();
    }
    if !registry::any_pending() {
        return FALSE;
    }
    let _ = FIRST.compare_exchange(-1, number, SeqCst, SeqCst);
    match catch_unwind(|| shutdown::on_signal(Signal::new(number))) {
        Ok(true) => end::die_by(number),
        // The process is already exiting: that shutdown decides how it ends.
        Ok(false) => end::park_for_good(),
        Err(_) => {
            report(format_args!(
                "the shutdown failed; ending the process as Ctrl-C would"
            ));
            end::die_by_now(number)
        }
    }
}

/// An event during a shutdown: waits for the end of the process, unless it is one too many.
fn hold_back() -> ! {
    let more = MORE.fetch_add(1, SeqCst) + 1;
    let count = FORCE_QUIT_AFTER.load(SeqCst);
    if count != 0 && more >= count {
        report(format_args!("forced to quit: the cleanups are cut short"));
        end::die_by_now(FIRST.load(SeqCst));
    }
    end::park_for_good()
}
