//! The crash handler: it notes for the guardian which crash ends the program, then hands the
//! crash on to the action it replaced (`sys::signal::Replaced`).

use std::ffi::c_void;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};

use libc::c_int;

use super::NOTES;
use crate::sys::signal::{set_of, HowInstalled, Replaced};

/// The crashes the program reports before it dies of them.
const CRASHES: [c_int; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
];

/// The actions the crash handler replaced, to hand each crash on to (std's, for SIGSEGV).
static REPLACED: Replaced = Replaced::new();

/// Installs [`on_crash`] for the crashes that are not ignored, keeping the replaced actions.
pub(super) fn install() {
    let how = HowInstalled {
        // On the alternate stack std sets up, so a stack overflow can be reported too.
        flags: libc::SA_ONSTACK,
        mask: &set_of([]),
    };
    for signal in CRASHES {
        // SAFETY: the handler does only async-signal-safe work. (`sigaction` cannot fail for
        // these signals and this handler.)
        let _ = unsafe { REPLACED.install(signal, on_crash, how) };
    }
}

/// Notes for the guardian which crash is ending the program, then hands the crash on to the
/// action it replaced, so the program ends exactly as it would have. Async-signal-safe: atomic
/// loads and stores, `sigaction`, `raise`, and the replaced handler (std's stack-overflow
/// report).
extern "C" fn on_crash(signal: c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    let notes = NOTES.load(Relaxed);
    if !notes.is_null() {
        // SAFETY: the page stays mapped for the rest of the process's life. Noted, not sent:
        // as little as possible runs on the small alternate stack, and the channel may be full.
        unsafe { (*notes).crash.store(signal, SeqCst) };
    }
    // SAFETY: the kernel's arguments, passed on.
    unsafe { REPLACED.restore_and_hand_on(signal, info, context) };
}
