//! A lock on a whole file that the system lets go of when its process ends, however it ends:
//! how a durable record says that its owner is alive.

use std::fs::File;
use std::io;

/// Takes an exclusive lock on `file` without waiting: `Ok(false)` if another open file
/// description holds one (its process is alive). Held until every descriptor of this open file
/// is closed: inherited by a child forked without `exec`, never across `exec` (the runtime
/// opens its files close-on-exec).
#[cfg(unix)]
pub(crate) fn try_lock(file: &File) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid descriptor, owned by `file`.
    match unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } {
        0 => Ok(true),
        _ => match io::Error::last_os_error() {
            error if error.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
            error => Err(error),
        },
    }
}

/// Takes an exclusive lock on `file` without waiting: `Ok(false)` if another handle holds one
/// (its process is alive). Held until the handle is closed.
#[cfg(windows)]
pub(crate) fn try_lock(file: &File) -> io::Result<bool> {
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::Foundation::ERROR_LOCK_VIOLATION;
    use windows_sys::Win32::Storage::FileSystem::{
        LockFileEx, LOCKFILE_EXCLUSIVE_LOCK, LOCKFILE_FAIL_IMMEDIATELY,
    };
    // SAFETY: a zeroed OVERLAPPED asks for the range from offset 0.
    let mut overlapped = unsafe { std::mem::zeroed() };
    let flags = LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY;
    // SAFETY: a valid handle, owned by `file`; the range is the whole of any file.
    let locked = unsafe {
        LockFileEx(
            file.as_raw_handle(),
            flags,
            0,
            u32::MAX,
            u32::MAX,
            &mut overlapped,
        )
    };
    match locked {
        0 => match io::Error::last_os_error() {
            error if error.raw_os_error() == Some(ERROR_LOCK_VIOLATION as i32) => Ok(false),
            error => Err(error),
        },
        _ => Ok(true),
    }
}
