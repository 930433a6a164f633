//! Processes: this one's id and name, and a handle on one that tells when it has ended.

use libc::pid_t;

/// This process's id. Async-signal-safe.
pub(crate) fn id() -> pid_t {
    // SAFETY: `getpid` cannot fail.
    unsafe { libc::getpid() }
}

/// A pidfd of process `pid`: readable once it has ended.
pub(crate) fn pidfd(pid: pid_t) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: `pidfd_open` takes no pointers.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    match libc::c_int::try_from(fd) {
        // SAFETY: a new descriptor, ours alone.
        Ok(fd) if fd >= 0 => Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Names this process as `ps` and `top` show it (15 bytes at most).
pub(crate) fn set_name(name: &std::ffi::CStr) {
    // SAFETY: a valid C string, which `prctl` copies.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
}
