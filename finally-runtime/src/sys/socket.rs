//! A local channel of packets, whose writes never block nor raise SIGPIPE.

use std::io;
use std::os::fd::RawFd;
use std::{mem, ptr};

/// A new channel, `socketpair(AF_UNIX, SOCK_SEQPACKET)`: each send is one packet, so packets
/// that threads send at once never interleave. Both ends are close-on-exec.
#[cfg(target_os = "linux")]
pub(crate) fn pair() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut ends = [0 as libc::c_int; 2];
    let kind = libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC;
    // SAFETY: `socketpair` fills the two descriptors.
    super::check(unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, ends.as_mut_ptr()) })?;
    // SAFETY: two new descriptors, ours alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) })
}

/// Sends `parts` (at most three) as one packet on `fd`, without waiting and without raising
/// SIGPIPE. Async-signal-safe.
pub(crate) fn send(fd: RawFd, parts: &[&[u8]]) -> io::Result<()> {
    let mut pieces = [libc::iovec {
        iov_base: ptr::null_mut(),
        iov_len: 0,
    }; 3];
    for (piece, part) in pieces.iter_mut().zip(parts) {
        piece.iov_base = part.as_ptr().cast_mut().cast();
        piece.iov_len = part.len();
    }
    // SAFETY: an all-zero `msghdr` is a valid, empty one.
    let mut message: libc::msghdr = unsafe { mem::zeroed() };
    message.msg_iov = pieces.as_mut_ptr();
    // `usize` on Linux, `c_int` on the BSDs: at most 3 either way.
    message.msg_iovlen = parts.len().min(pieces.len()) as _;
    let flags = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;
    loop {
        // SAFETY: the pieces point into live buffers of their lengths, only read.
        if unsafe { libc::sendmsg(fd, &message, flags) } >= 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Receives one packet from `fd` into `buffer`, without waiting: its whole length (longer than
/// the buffer if it was cut), or 0 once the other end has closed.
pub(crate) fn receive(fd: RawFd, buffer: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: receiving into a live buffer of that length.
        let length = unsafe {
            libc::recv(
                fd,
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        match usize::try_from(length) {
            Ok(length) => return Ok(length),
            Err(_) => {
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
        }
    }
}
