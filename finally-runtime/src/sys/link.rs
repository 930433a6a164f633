//! The guardian's channel, end to end: each send is one message, whole or not at all, that
//! never blocks nor raises SIGPIPE. A packet socket (`SOCK_SEQPACKET`) on Unix, a named pipe in
//! message mode on Windows.

use std::io;
use std::time::Duration;

pub(crate) use imp::*;

/// No end: a channel that is closed, or was never opened.
pub(crate) const NONE: End = -1;

/// Who sent a message, as the system tells: its pid, and its real user and group ids.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Sender {
    pub(crate) pid: u32,
    pub(crate) ids: (u32, u32),
}

#[cfg(unix)]
mod imp {
    use super::*;
    use crate::sys::{fd, socket};

    /// An end of the channel: its descriptor.
    pub(crate) type End = isize;

    fn raw(link: End) -> std::os::fd::RawFd {
        link as std::os::fd::RawFd
    }

    /// Sends `parts` (at most three) as one message, without waiting. Async-signal-safe.
    pub(crate) fn send(link: End, parts: &[&[u8]]) -> io::Result<()> {
        socket::send(raw(link), parts)
    }

    /// Receives one message into `buffer`, without waiting: its whole length (longer than the
    /// buffer if it was cut), 0 once the other end has closed, `WouldBlock` if none is there;
    /// and the process that sent it, where the system says (`socket::pass_credentials`).
    pub(crate) fn receive(link: End, buffer: &mut [u8]) -> io::Result<(usize, Option<Sender>)> {
        let received = socket::receive(raw(link), buffer)?;
        let sender = received.sender.and_then(|(pid, uid, gid)| {
            Some(Sender {
                pid: u32::try_from(pid).ok()?,
                ids: (uid, gid),
            })
        });
        Ok((received.length, sender))
    }

    /// Waits up to `patience` for room to send.
    pub(crate) fn wait_for_room(link: End, patience: Duration) {
        fd::wait_for(raw(link), libc::POLLOUT, patience);
    }

    /// Whether the other end has closed.
    pub(crate) fn hung_up(link: End) -> bool {
        fd::hung_up(raw(link))
    }

    /// Closes this end. Async-signal-safe.
    pub(crate) fn close(link: End) {
        // SAFETY: an end of ours, which the caller no longer uses.
        unsafe { libc::close(raw(link)) };
    }
}

#[cfg(windows)]
mod imp {
    use std::ptr;

    use windows_sys::Win32::Foundation::{
        GetLastError, ERROR_BROKEN_PIPE, ERROR_MORE_DATA, ERROR_NO_DATA, ERROR_PIPE_NOT_CONNECTED,
        HANDLE,
    };
    use windows_sys::Win32::Storage::FileSystem::{ReadFile, WriteFile};
    use windows_sys::Win32::System::Pipes::PeekNamedPipe;

    use super::*;

    /// An end of the channel: its handle.
    pub(crate) type End = isize;

    fn handle(link: End) -> HANDLE {
        link as HANDLE
    }

    /// Sends `parts` as one message, without waiting (the pipe is in `PIPE_NOWAIT` mode).
    pub(crate) fn send(link: End, parts: &[&[u8]]) -> io::Result<()> {
        let message = parts.concat();
        let length = u32::try_from(message.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
        let mut written = 0;
        // SAFETY: writing a live buffer of that length; a bad handle fails.
        let ok = unsafe {
            WriteFile(
                handle(link),
                message.as_ptr(),
                length,
                &mut written,
                ptr::null_mut(),
            )
        };
        match (ok, written) {
            (0, _) => Err(io::Error::last_os_error()),
            // No room for the whole message: nothing was written.
            (_, written) if written < length => Err(io::ErrorKind::WouldBlock.into()),
            _ => Ok(()),
        }
    }

    /// Receives one message into `buffer`, without waiting: its length (longer than the buffer
    /// if it was cut), 0 once the other end has closed, `WouldBlock` if none is there. Who sent
    /// it is not told: only the program can hold the other end.
    pub(crate) fn receive(link: End, buffer: &mut [u8]) -> io::Result<(usize, Option<Sender>)> {
        receive_message(link, buffer).map(|length| (length, None))
    }

    fn receive_message(link: End, buffer: &mut [u8]) -> io::Result<usize> {
        let (available, left) = match peek(link) {
            Ok(sizes) => sizes,
            Err(error) => return closed_or(error),
        };
        if available == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let length = u32::try_from(buffer.len()).unwrap_or(u32::MAX);
        let mut read = 0;
        // SAFETY: reading into a live buffer of that length.
        let ok = unsafe {
            ReadFile(
                handle(link),
                buffer.as_mut_ptr(),
                length,
                &mut read,
                ptr::null_mut(),
            )
        };
        // SAFETY: no preconditions.
        match (ok, unsafe { GetLastError() }) {
            (0, ERROR_MORE_DATA) => {
                // Longer than the buffer: the rest is read and dropped, as a cut packet is.
                let mut rest = vec![0u8; left as usize];
                // SAFETY: as above, into the rest's own buffer.
                unsafe {
                    ReadFile(
                        handle(link),
                        rest.as_mut_ptr(),
                        left,
                        &mut read,
                        ptr::null_mut(),
                    )
                };
                Ok(buffer.len() + left as usize)
            }
            (0, _) => closed_or(io::Error::last_os_error()),
            _ => Ok(read as usize),
        }
    }

    /// A pipe whose other end has gone reads as closed.
    fn closed_or(error: io::Error) -> io::Result<usize> {
        let gone = [ERROR_BROKEN_PIPE, ERROR_NO_DATA, ERROR_PIPE_NOT_CONNECTED];
        match error.raw_os_error() {
            Some(code) if gone.contains(&(code as u32)) => Ok(0),
            _ => Err(error),
        }
    }

    /// Waits up to `patience` for room to send: Windows cannot be asked, so a little while.
    pub(crate) fn wait_for_room(_: End, patience: Duration) {
        std::thread::sleep(patience.min(Duration::from_millis(5)));
    }

    /// Whether the other end has closed.
    pub(crate) fn hung_up(link: End) -> bool {
        peek(link).is_err_and(|error| closed_or(error).is_ok())
    }

    /// The bytes waiting in the pipe, and those of them left in its first message.
    fn peek(link: End) -> io::Result<(u32, u32)> {
        let (mut available, mut left) = (0, 0);
        // SAFETY: asking only for the sizes.
        let peeked = unsafe {
            PeekNamedPipe(
                handle(link),
                ptr::null_mut(),
                0,
                ptr::null_mut(),
                &mut available,
                &mut left,
            )
        };
        match peeked {
            0 => Err(io::Error::last_os_error()),
            _ => Ok((available, left)),
        }
    }
}
