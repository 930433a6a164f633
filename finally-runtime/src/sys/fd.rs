//! Descriptors: waiting for one, and closing them in bulk.

use std::os::fd::RawFd;
use std::time::Duration;

use libc::c_int;
#[cfg(target_os = "linux")]
use libc::c_uint;

/// Whether [`close_all_but`] can close every descriptor: `close_range(2)` (Linux 5.9) works,
/// or `/proc/self/fd` lists them. Where neither can, closing "up to some number" could leave
/// one open: better to say so. Closes nothing.
#[cfg(target_os = "linux")]
pub(crate) fn can_close_all() -> bool {
    // The highest descriptor there can be, which no process has: a range that closes nothing.
    close_range(c_uint::MAX, c_uint::MAX) || super::proc::open_descriptors().is_some()
}

/// Closes every descriptor above stderr but those in `keep` (negative ones stand for none),
/// where [`can_close_all`].
///
/// # Safety
///
/// No descriptor above stderr but those in `keep` may be in use.
#[cfg(target_os = "linux")]
pub(crate) unsafe fn close_all_but(keep: &[RawFd]) {
    let mut keep: Vec<c_uint> = keep
        .iter()
        .filter_map(|&fd| c_uint::try_from(fd).ok())
        .filter(|&fd| fd > 2)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut first: c_uint = 3;
    let mut ranges = Vec::new();
    for fd in keep.iter().copied() {
        if fd > first {
            ranges.push((first, fd - 1));
        }
        first = fd + 1;
    }
    ranges.push((first, c_uint::MAX));
    if ranges.iter().all(|&(first, last)| close_range(first, last)) {
        return;
    }
    // Before Linux 5.9: one by one, as `/proc` lists them.
    let open = super::proc::open_descriptors().unwrap_or_default();
    for fd in open.into_iter().filter(|fd| *fd > 2 && !keep.contains(fd)) {
        // SAFETY: the caller vouches that nothing uses them; the directory's own descriptor is
        // closed already, so it fails harmlessly.
        unsafe { libc::close(fd as c_int) };
    }
}

/// `close_range(first, last, 0)`: whether it worked.
#[cfg(target_os = "linux")]
fn close_range(first: c_uint, last: c_uint) -> bool {
    // SAFETY: `close_range` takes no pointers; the callers vouch for the descriptors.
    unsafe { libc::syscall(libc::SYS_close_range, first, last, 0 as c_uint) == 0 }
}

/// Waits up to `patience` for `fd` to be ready for `events` (`POLLIN`, `POLLOUT`); whether it
/// became so.
pub(crate) fn wait_for(fd: RawFd, events: libc::c_short, patience: Duration) -> bool {
    let mut ready = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let wait = c_int::try_from(patience.as_millis()).unwrap_or(c_int::MAX);
    // SAFETY: one valid `pollfd`.
    unsafe { libc::poll(&mut ready, 1, wait) == 1 && ready.revents & events != 0 }
}

#[cfg(target_os = "linux")]
/// Waits up to `patience` milliseconds (-1: with no limit, as `poll` takes it) for one of `fds`
/// to be readable (a negative one is left alone); how many have something to say (readable, or
/// hung up, or in error). Interrupted, 0.
pub(crate) fn wait_readable<const N: usize>(fds: [RawFd; N], patience: c_int) -> usize {
    let mut ready = fds.map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    // SAFETY: valid `pollfd`s, as many as said.
    let ready = unsafe { libc::poll(ready.as_mut_ptr(), ready.len() as libc::nfds_t, patience) };
    usize::try_from(ready).unwrap_or(0)
}

/// Whether the other end of the channel `fd` has closed.
pub(crate) fn hung_up(fd: RawFd) -> bool {
    let mut channel = libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid `pollfd`; with no time-out, it only looks.
    let looked = unsafe { libc::poll(&mut channel, 1, 0) };
    looked != 0 && channel.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
}
