//! The crash handler: it notes for the guardian which crash ends the program.

use std::ffi::c_void;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::{mem, ptr};

use libc::c_int;

use super::NOTES;

/// The crashes the program reports before it dies of them.
const CRASHES: [c_int; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
];

/// The actions the crash handler replaced, to hand each crash on to (std's, for SIGSEGV).
static mut PREVIOUS: [mem::MaybeUninit<libc::sigaction>; 5] = [mem::MaybeUninit::uninit(); 5];

/// Installs [`on_crash`] for the crashes that are not ignored, keeping the replaced actions.
pub(super) fn install() {
    for (index, &signal) in CRASHES.iter().enumerate() {
        // SAFETY: installing a handler that does only async-signal-safe work; `PREVIOUS` is
        // written here, before the handler for that signal can run, and only read after.
        unsafe {
            let previous = &mut *ptr::addr_of_mut!(PREVIOUS[index]);
            let mut action: libc::sigaction = mem::zeroed();
            action.sa_sigaction = on_crash as *const () as usize;
            // On the alternate stack std sets up, so a stack overflow can be reported too.
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, previous.as_mut_ptr());
            if previous.assume_init_ref().sa_sigaction == libc::SIG_IGN {
                libc::sigaction(signal, previous.as_ptr(), ptr::null_mut());
            }
        }
    }
}

/// Notes for the guardian which crash is ending the program, then hands the crash on to the action
/// it replaced, so the program ends exactly as it would have. Async-signal-safe: atomic loads
/// and stores, `sigaction`, `raise`, and the replaced handler (std's stack-overflow report).
extern "C" fn on_crash(signal: c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    let notes = NOTES.load(Relaxed);
    if !notes.is_null() {
        // SAFETY: the page stays mapped for the rest of the process's life. Noted, not sent:
        // as little as possible runs on the small alternate stack, and the channel may be full.
        unsafe { (*notes).crash.store(signal, SeqCst) };
    }
    let Some(index) = CRASHES.iter().position(|&crash| crash == signal) else {
        return;
    };
    // SAFETY: `PREVIOUS[index]` was written before this handler was installed.
    unsafe {
        let previous = (*ptr::addr_of!(PREVIOUS[index])).assume_init_ref();
        libc::sigaction(signal, previous, ptr::null_mut());
        match previous.sa_sigaction {
            // The default action: raised again, it ends the process once this handler returns
            // (a fault would also recur when the instruction runs again).
            libc::SIG_DFL => {
                let _ = signal_hook::low_level::raise(signal);
            }
            libc::SIG_IGN => {}
            handler if previous.sa_flags & libc::SA_SIGINFO != 0 => {
                let handler: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) =
                    mem::transmute(handler);
                handler(signal, info, context);
            }
            handler => {
                let handler: extern "C" fn(c_int) = mem::transmute(handler);
                handler(signal);
            }
        }
    }
}
