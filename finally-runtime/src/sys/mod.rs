//! The system calls the runtime makes, each wrapped once, in one module per kind: the bottom
//! layer. Each function says whether it is async-signal-safe.
//!
//! Architecture invariant: no module outside `sys/` calls the system (it may name libc's
//! constants and types). A rule of the system (what is async-signal-safe, which action a
//! handler replaced, how a wait status reads) is then written once, here.
//!
//! Linux has fast paths (`futex`, `membarrier`); every other Unix, and Linux built with
//! `--cfg finally_portable` (so that CI runs the portable code too), uses only what POSIX has
//! (a self-pipe, `SeqCst` fences). What only Linux can tell (`/proc`, pidfds, a signalfd) is
//! `proc`, `credentials` and the Linux parts of `process` and `signal`. Windows has its own:
//! `console`, `exit_process`, `inherit` and `pipe`, and `end`, `link`, `lock`, `shared` and
//! `stderr` for both.

#[cfg(windows)]
pub(crate) mod console;
#[cfg(target_os = "linux")]
pub(crate) mod credentials;
pub(crate) mod end;
#[cfg(windows)]
pub(crate) mod exit_process;
#[cfg(unix)]
pub(crate) mod fd;
#[cfg(all(target_os = "linux", not(finally_portable)))]
pub(crate) mod futex;
#[cfg(windows)]
pub(crate) mod inherit;
pub(crate) mod link;
pub(crate) mod lock;
#[cfg(all(target_os = "linux", not(finally_portable)))]
pub(crate) mod membarrier;
#[cfg(windows)]
pub(crate) mod pipe;
#[cfg(target_os = "linux")]
pub(crate) mod proc;
#[cfg(unix)]
pub(crate) mod process;
pub(crate) mod shared;
#[cfg(unix)]
pub(crate) mod signal;
#[cfg(unix)]
pub(crate) mod socket;
pub(crate) mod stderr;
#[cfg(unix)]
pub(crate) mod wakeup;

/// The calling thread, as the runtime tells threads apart where thread-locals may be gone
/// (inside `exit`) or are not to be touched (in a forked child). Async-signal-safe.
#[cfg(unix)]
pub(crate) fn thread_id() -> usize {
    // SAFETY: `pthread_self` has no preconditions.
    unsafe { libc::pthread_self() as usize }
}

/// The calling thread, as the runtime tells threads apart where thread-locals may be gone
/// (inside `exit`).
#[cfg(windows)]
pub(crate) fn thread_id() -> usize {
    // SAFETY: no preconditions.
    unsafe { windows_sys::Win32::System::Threading::GetCurrentThreadId() as usize }
}

/// Nanoseconds on the monotonic clock: comparable across the copies of `finally` in the
/// process, and read in a signal handler too. Async-signal-safe on Unix.
#[cfg(unix)]
pub(crate) fn monotonic_nanos() -> u64 {
    // SAFETY: a zeroed `timespec` is a valid out-parameter; the clock always exists.
    let mut now: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    (now.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(now.tv_nsec as u64)
}

/// Nanoseconds on a monotonic clock, from the first time it is read.
#[cfg(windows)]
pub(crate) fn monotonic_nanos() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let elapsed = START.get_or_init(std::time::Instant::now).elapsed();
    u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
}

/// The result of a call that returns -1 and sets `errno` on failure.
#[cfg(unix)]
pub(crate) fn check(result: libc::c_int) -> std::io::Result<libc::c_int> {
    if result < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// `errno` as it was when made, and again when dropped: a signal handler's calls must not
/// change it for the code they interrupted. Async-signal-safe.
#[cfg(unix)]
pub(crate) struct ErrnoKept(errno::Errno);

#[cfg(unix)]
impl ErrnoKept {
    pub(crate) fn new() -> Self {
        ErrnoKept(errno::errno())
    }
}

#[cfg(unix)]
impl Drop for ErrnoKept {
    fn drop(&mut self) {
        errno::set_errno(self.0);
    }
}
