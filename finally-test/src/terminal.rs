//! A pseudo-terminal for the program: its controlling terminal and its stderr, which the kit
//! reads until it hangs the terminal up.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use crate::output::Text;

/// A new pseudo-terminal: the kit's end (the master) and the program's (the terminal).
pub(crate) struct Terminal {
    master: OwnedFd,
    pub(crate) terminal: OwnedFd,
}

/// The kit's side of a terminal the program runs on: dropping `hang_up` hangs it up.
pub(crate) struct Hold {
    hang_up: Option<UnixStream>,
}

impl Terminal {
    /// Both ends close on `exec`, so that the programs that other tests start meanwhile do not
    /// keep the terminal from hanging up.
    pub(crate) fn open() -> io::Result<Self> {
        let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
        // SAFETY: plain libc calls; each descriptor is checked, then owned.
        unsafe {
            let master = libc::posix_openpt(flags);
            if master < 0 {
                return Err(io::Error::last_os_error());
            }
            let master = OwnedFd::from_raw_fd(master);
            let fd = master.as_raw_fd();
            if libc::grantpt(fd) != 0 || libc::unlockpt(fd) != 0 {
                return Err(io::Error::last_os_error());
            }
            let name = terminal_name(fd)?;
            let terminal = libc::open(name.as_ptr(), flags);
            if terminal < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Terminal {
                master,
                terminal: OwnedFd::from_raw_fd(terminal),
            })
        }
    }

    /// Reads what the program writes to the terminal, until it hangs up or every process
    /// holding the terminal has closed it: the program's stderr.
    pub(crate) fn read(self) -> io::Result<(Hold, Text)> {
        let (hang_up, heard) = UnixStream::pair()?;
        let master = self.master;
        let text = Text::read_by(Some(move || read_until_hung_up(master, heard)));
        Ok((
            Hold {
                hang_up: Some(hang_up),
            },
            text,
        ))
    }
}

impl Hold {
    /// Asks the reading thread to close the kit's end of the terminal, once it has read what
    /// the program wrote so far.
    pub(crate) fn hang_up(&mut self) {
        self.hang_up = None;
    }
}

/// The terminal's path, as `ptsname` tells it.
#[cfg(target_os = "linux")]
fn terminal_name(master: RawFd) -> io::Result<std::ffi::CString> {
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: a buffer of the length given.
    if unsafe { libc::ptsname_r(master, name.as_mut_ptr(), name.len()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `ptsname_r` wrote a terminated string.
    Ok(unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }.to_owned())
}

/// The terminal's path, as `ptsname` tells it (its buffer is copied at once; `ptsname_r` is not
/// everywhere).
#[cfg(not(target_os = "linux"))]
fn terminal_name(master: RawFd) -> io::Result<std::ffi::CString> {
    // SAFETY: `ptsname` returns a static buffer or null.
    let name = unsafe { libc::ptsname(master) };
    if name.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a terminated string, copied before anything else could call `ptsname`.
    Ok(unsafe { std::ffi::CStr::from_ptr(name) }.to_owned())
}

/// Makes `terminal` the controlling terminal of a new session that the calling process leads.
///
/// # Safety
///
/// Only async-signal-safe calls: for between `fork` and `exec`.
pub(crate) unsafe fn take_as_controlling(terminal: RawFd) -> io::Result<()> {
    // SAFETY: async-signal-safe calls on a descriptor the caller vouches for.
    unsafe {
        if libc::setsid() < 0 || libc::ioctl(terminal, libc::TIOCSCTTY as _, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// What comes out of `master` until `heard` says to hang up (the other end is dropped) and all
/// that was written is read, or the terminal has no other end any more; `master` is closed
/// then: that is the hang-up.
fn read_until_hung_up(master: OwnedFd, heard: UnixStream) -> String {
    let mut bytes = Vec::new();
    loop {
        let mut ready = [master.as_raw_fd(), heard.as_raw_fd()].map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        // SAFETY: two valid `pollfd`s.
        let polled = unsafe { libc::poll(ready.as_mut_ptr(), 2, -1) };
        if polled < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        // What the program wrote before the hang-up is read first.
        if ready[0].revents == 0 {
            break;
        }
        let mut buffer = [0u8; 4096];
        // SAFETY: a buffer of the length given.
        let read = unsafe { libc::read(master.as_raw_fd(), buffer.as_mut_ptr().cast(), 4096) };
        if read <= 0 {
            // EIO: no process holds the terminal any more.
            break;
        }
        bytes.extend_from_slice(&buffer[..read as usize]);
    }
    drop(master);
    // The terminal turns each `\n` into `\r\n`.
    String::from_utf8_lossy(&bytes).replace("\r\n", "\n")
}
