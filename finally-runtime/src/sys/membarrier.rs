//! `membarrier(2)`: a full memory barrier on every running thread of the process, at once.

const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
const REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

fn membarrier(command: libc::c_long) -> bool {
    // SAFETY: `membarrier` takes no pointers.
    unsafe { libc::syscall(libc::SYS_membarrier, command, 0 as libc::c_long) == 0 }
}

/// Registers the process for [`barrier`]; whether that worked. Async-signal-safe. With other
/// threads running, the kernel waits for them: milliseconds.
pub(crate) fn register() -> bool {
    membarrier(REGISTER_PRIVATE_EXPEDITED)
}

/// Runs the barrier on every thread; whether that worked (registered, on a kernel that has
/// it, without a seccomp filter against it).
pub(crate) fn barrier() -> bool {
    membarrier(PRIVATE_EXPEDITED)
}
