//! `futex(2)`: a thread sleeps on a word until another, or a signal handler, wakes it.

use std::sync::atomic::AtomicU32;

use libc::c_int;

/// Sleeps while `word` holds `value`, until a [`wake`] (or a spurious wake-up: callers look at
/// `word` again). Returns at once if `word` no longer holds `value`.
pub(crate) fn wait(word: &AtomicU32, value: u32) {
    futex(word, libc::FUTEX_WAIT, value);
}

/// Wakes up to `threads` threads sleeping on `word`. Async-signal-safe: one system call.
pub(crate) fn wake(word: &AtomicU32, threads: u32) {
    futex(word, libc::FUTEX_WAKE, threads);
}

fn futex(word: &AtomicU32, operation: c_int, value: u32) {
    let forever: *const libc::timespec = std::ptr::null();
    // SAFETY: `word` is a live, aligned `u32`; a null time-out waits for ever (WAIT) or is
    // ignored (WAKE).
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            operation | libc::FUTEX_PRIVATE_FLAG,
            value,
            forever,
        )
    };
}
