//! Handing handles to a process this one starts, on Windows: inheritable copies.

use std::os::windows::io::{FromRawHandle, OwnedHandle};
use std::{io, ptr};

use windows_sys::Win32::Foundation::{DuplicateHandle, DUPLICATE_SAME_ACCESS, HANDLE};
use windows_sys::Win32::System::Threading::GetCurrentProcess;

/// An inheritable copy of `handle`, with `access`, or `handle`'s own where `None`. A process
/// started while it is open inherits it, under the same value: close it as soon as the one
/// process meant to has started, since any other process started meanwhile (by another thread)
/// inherits it too.
pub(crate) fn inheritable_copy(handle: HANDLE, access: Option<u32>) -> io::Result<OwnedHandle> {
    // SAFETY: no preconditions; a pseudo-handle, which is not closed.
    let this = unsafe { GetCurrentProcess() };
    let mut copy = ptr::null_mut();
    let (access, options) = match access {
        Some(access) => (access, 0),
        None => (0, DUPLICATE_SAME_ACCESS),
    };
    // SAFETY: duplicating, within this process, a handle of this process (or its pseudo-handle);
    // `copy` receives a new handle.
    let copied = unsafe { DuplicateHandle(this, handle, this, &mut copy, access, 1, options) };
    if copied == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new handle, ours alone.
    Ok(unsafe { OwnedHandle::from_raw_handle(copy) })
}
