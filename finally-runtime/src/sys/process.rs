//! Processes: this one's id, parent and name; forking, and what is done in a forked child;
//! waiting for children and reading how they ended; a handle on one that tells when it has
//! ended; signals sent to one.

use std::io;

#[cfg(target_os = "linux")]
use libc::{c_int, pid_t};

/// This process's id. Async-signal-safe.
#[cfg(target_os = "linux")]
pub(crate) fn id() -> pid_t {
    // SAFETY: `getpid` cannot fail.
    unsafe { libc::getpid() }
}

/// The id of this process's parent. Async-signal-safe.
#[cfg(target_os = "linux")]
pub(crate) fn parent_id() -> pid_t {
    // SAFETY: `getppid` cannot fail.
    unsafe { libc::getppid() }
}

/// Which side of a [`fork`] returned.
#[cfg(target_os = "linux")]
pub(crate) enum Forked {
    /// The new process.
    Child,
    /// This process, told the child's id.
    Parent(pid_t),
}

/// `fork(2)`.
///
/// # Safety
///
/// In a process with several threads, the child may do only what is async-signal-safe: the
/// callers fork a process known to run one thread.
#[cfg(target_os = "linux")]
pub(crate) unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: the caller vouches for what the child does.
    match super::check(unsafe { libc::fork() })? {
        0 => Ok(Forked::Child),
        child => Ok(Forked::Parent(child)),
    }
}

/// Has `in_child` called in every child forked from here on, before `fork` returns there.
///
/// # Safety
///
/// `in_child` must do only what a forked child of a process with threads may: async-signal-
/// safe work.
pub(crate) unsafe fn at_fork_in_child(in_child: extern "C" fn()) -> io::Result<()> {
    // SAFETY: the caller vouches for the handler.
    match unsafe { libc::pthread_atfork(None, None, Some(in_child)) } {
        0 => Ok(()),
        error => Err(io::Error::from_raw_os_error(error)),
    }
}

/// How a process ended, from its wait status.
#[cfg(target_os = "linux")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// It exited with this code.
    Code(c_int),
    /// This signal killed it.
    Signal(c_int),
}

#[cfg(target_os = "linux")]
impl Ended {
    /// What the wait status `status` says.
    pub(crate) fn from_status(status: c_int) -> Ended {
        if libc::WIFSIGNALED(status) {
            Ended::Signal(libc::WTERMSIG(status))
        } else {
            Ended::Code(libc::WEXITSTATUS(status))
        }
    }
}

/// Waits for the child `child` to end, and reaps it; returns at once if it is no child of
/// this process (any more: with SIGCHLD ignored, the kernel reaps it).
#[cfg(target_os = "linux")]
pub(crate) fn reap(child: pid_t) {
    // SAFETY: waiting for our own child, without a status.
    while unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) } < 0 {
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            break;
        }
    }
}

/// Reaps a child that has ended, if any, without waiting: its id and how it ended.
#[cfg(target_os = "linux")]
pub(crate) fn reap_one_ended() -> Option<(pid_t, Ended)> {
    let mut status = 0;
    // SAFETY: reaping our own children, with a live status.
    match unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } {
        pid if pid <= 0 => None,
        pid => Some((pid, Ended::from_status(status))),
    }
}

/// Whether the child `child` has ended, leaving it a zombie (not reaped), so that what it had
/// when it ended can still be read.
#[cfg(target_os = "linux")]
pub(crate) fn has_ended(child: pid_t) -> bool {
    // SAFETY: a zeroed `siginfo_t` is a valid out-parameter; `WNOWAIT` leaves it a zombie.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(
            libc::P_PID,
            child as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        ) == 0
            && info.si_pid() == child
    }
}

/// Sends `signal` to the process `pid`; a failure is ignored. Async-signal-safe.
///
/// # Safety
///
/// `pid` must be a process the caller may signal without harm: its own child, not reaped yet.
#[cfg(target_os = "linux")]
pub(crate) unsafe fn send_signal(pid: pid_t, signal: c_int) {
    // SAFETY: the caller vouches for the process.
    unsafe { libc::kill(pid, signal) };
}

/// A pidfd of process `pid`: readable once it has ended.
#[cfg(target_os = "linux")]
pub(crate) fn pidfd(pid: pid_t) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: `pidfd_open` takes no pointers.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    match c_int::try_from(fd) {
        // SAFETY: a new descriptor, ours alone.
        Ok(fd) if fd >= 0 => Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Names this process as `ps` and `top` show it (15 bytes at most).
#[cfg(target_os = "linux")]
pub(crate) fn set_name(name: &std::ffi::CStr) {
    // SAFETY: a valid C string, which `prctl` copies.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
}
