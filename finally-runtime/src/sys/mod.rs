//! The system calls the runtime makes, each wrapped once, in one module per kind: the bottom
//! layer. Each function says whether it is async-signal-safe.

pub(crate) mod fd;
pub(crate) mod futex;
pub(crate) mod membarrier;
pub(crate) mod proc;
pub(crate) mod process;
pub(crate) mod signal;
pub(crate) mod socket;

use std::io;

use libc::c_int;

/// The calling thread, as the runtime tells threads apart where thread-locals may be gone
/// (inside `exit`) or are not to be touched (in a forked child). Async-signal-safe.
pub(crate) fn thread_id() -> usize {
    // SAFETY: `pthread_self` has no preconditions.
    unsafe { libc::pthread_self() as usize }
}

/// The result of a call that returns -1 and sets `errno` on failure.
pub(crate) fn check(result: c_int) -> io::Result<c_int> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// `errno` as it was when made, and again when dropped: a signal handler's calls must not
/// change it for the code they interrupted. Async-signal-safe.
pub(crate) struct ErrnoKept(c_int);

impl ErrnoKept {
    pub(crate) fn new() -> Self {
        // SAFETY: the calling thread's `errno`, always there.
        ErrnoKept(unsafe { *errno() })
    }
}

impl Drop for ErrnoKept {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { *errno() = self.0 };
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn errno() -> *mut c_int {
    // SAFETY: no preconditions.
    unsafe { libc::__errno_location() }
}

#[cfg(any(target_vendor = "apple", target_os = "freebsd"))]
fn errno() -> *mut c_int {
    // SAFETY: no preconditions.
    unsafe { libc::__error() }
}
