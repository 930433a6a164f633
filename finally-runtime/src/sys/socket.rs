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

/// Has the kernel tell, with each packet received on `fd`, which process sent it (see
/// [`receive`]). Only where the kernel can: Linux.
#[cfg(target_os = "linux")]
pub(crate) fn pass_credentials(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid option of the right size.
    super::check(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PASSCRED,
            ptr::addr_of!(on).cast(),
            mem::size_of_val(&on) as libc::socklen_t,
        )
    })
    .map(drop)
}

/// A packet received: its whole length (longer than the buffer if it was cut; 0 once the other
/// end has closed), and the process that sent it (its pid, real user and group ids), where the
/// kernel said (`pass_credentials`).
pub(crate) struct Received {
    pub(crate) length: usize,
    pub(crate) sender: Option<(libc::pid_t, libc::uid_t, libc::gid_t)>,
}

/// Receives one packet from `fd` into `buffer`, without waiting.
pub(crate) fn receive(fd: RawFd, buffer: &mut [u8]) -> io::Result<Received> {
    let mut piece = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    // Room for one control message, aligned for its header.
    let mut control = [0u64; 8];
    // SAFETY: an all-zero `msghdr` is a valid, empty one.
    let mut message: libc::msghdr = unsafe { mem::zeroed() };
    message.msg_iov = &mut piece;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = mem::size_of_val(&control) as _;
    loop {
        // SAFETY: receiving into live buffers of their lengths.
        let length = unsafe {
            libc::recvmsg(
                fd,
                &mut message,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC | CLOEXEC,
            )
        };
        match usize::try_from(length) {
            Ok(length) => {
                return Ok(Received {
                    length,
                    sender: sender(&message),
                })
            }
            Err(_) => {
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
        }
    }
}

/// Descriptors that a sender passes are received close-on-exec, where the system can.
#[cfg(target_os = "linux")]
const CLOEXEC: libc::c_int = libc::MSG_CMSG_CLOEXEC;
#[cfg(not(target_os = "linux"))]
const CLOEXEC: libc::c_int = 0;

/// The sender in the control messages of `message`, if the kernel put it there. The
/// descriptors a sender passed, which nothing asked for, are closed.
#[cfg(target_os = "linux")]
fn sender(message: &libc::msghdr) -> Option<(libc::pid_t, libc::uid_t, libc::gid_t)> {
    let mut sender = None;
    // SAFETY: walking the control messages the kernel wrote into the buffer `message` names.
    let mut header = unsafe { libc::CMSG_FIRSTHDR(message) };
    while !header.is_null() {
        // SAFETY: a header within the buffer, as `CMSG_FIRSTHDR`/`CMSG_NXTHDR` found it.
        let control = unsafe { &*header };
        // SAFETY: the data of that header.
        let data = unsafe { libc::CMSG_DATA(header) };
        let length = control.cmsg_len as usize - (data as usize - header as usize);
        match (control.cmsg_level, control.cmsg_type) {
            (libc::SOL_SOCKET, libc::SCM_CREDENTIALS) => {
                // SAFETY: an `SCM_CREDENTIALS` message holds a `ucred`, perhaps unaligned.
                let sent: libc::ucred = unsafe { ptr::read_unaligned(data.cast()) };
                sender = Some((sent.pid, sent.uid, sent.gid));
            }
            (libc::SOL_SOCKET, libc::SCM_RIGHTS) => {
                for at in (0..length / 4).map(|index| index * 4) {
                    // SAFETY: an `SCM_RIGHTS` message holds descriptors, now ours.
                    unsafe { libc::close(ptr::read_unaligned(data.add(at).cast())) };
                }
            }
            _ => {}
        }
        // SAFETY: as above.
        header = unsafe { libc::CMSG_NXTHDR(message, header) };
    }
    sender
}

#[cfg(not(target_os = "linux"))]
fn sender(_: &libc::msghdr) -> Option<(libc::pid_t, libc::uid_t, libc::gid_t)> {
    None
}
