//! The system calls the runtime makes, each wrapped once, in one module per kind: the bottom
//! layer. Each function says whether it is async-signal-safe.
//!
//! Linux has fast paths (`futex`, `membarrier`); every other Unix, and Linux built with
//! `--cfg finally_portable` (so that CI runs the portable code too), uses only what POSIX has
//! (a self-pipe, `SeqCst` fences). What only Linux can tell (`/proc`, pidfds) is `proc` and
//! `process`; the guardian, which needs it, runs on Linux only.

pub(crate) mod fd;
#[cfg(all(target_os = "linux", not(finally_portable)))]
pub(crate) mod futex;
#[cfg(all(target_os = "linux", not(finally_portable)))]
pub(crate) mod membarrier;
#[cfg(target_os = "linux")]
pub(crate) mod proc;
#[cfg(target_os = "linux")]
pub(crate) mod process;
pub(crate) mod signal;
pub(crate) mod socket;
pub(crate) mod wakeup;

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
pub(crate) struct ErrnoKept(errno::Errno);

impl ErrnoKept {
    pub(crate) fn new() -> Self {
        ErrnoKept(errno::errno())
    }
}

impl Drop for ErrnoKept {
    fn drop(&mut self) {
        errno::set_errno(self.0);
    }
}
