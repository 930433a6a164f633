//! Handing handles to a process this one starts, on Windows, and what that process can tell of
//! who handed them: inheritable copies, the process a handle is of, the process that started
//! this one, and whether it has ended.

use std::os::windows::io::{FromRawHandle, OwnedHandle};
use std::{io, mem, ptr};

use windows_sys::Wdk::System::Threading::{NtQueryInformationProcess, ProcessBasicInformation};
use windows_sys::Win32::Foundation::{DuplicateHandle, DUPLICATE_SAME_ACCESS, HANDLE};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, GetProcessId, PROCESS_BASIC_INFORMATION,
};

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

/// The id of the process that `handle` is of, where it is a handle of this process to a
/// process, that may query it; `None` for any other handle value.
pub(crate) fn process_id(handle: HANDLE) -> Option<u32> {
    // SAFETY: a handle that is not a process's, or not this process's, fails (0).
    Some(unsafe { GetProcessId(handle) }).filter(|&id| id != 0)
}

/// The id of the process that started this one, and whose handles it inherited.
pub(crate) fn parent_id() -> Option<u32> {
    let mut basic = PROCESS_BASIC_INFORMATION::default();
    // SAFETY: this process's pseudo-handle, and a buffer of the size given.
    let status = unsafe {
        NtQueryInformationProcess(
            GetCurrentProcess(),
            ProcessBasicInformation,
            ptr::from_mut(&mut basic).cast(),
            mem::size_of_val(&basic) as u32,
            ptr::null_mut(),
        )
    };
    let parent = u32::try_from(basic.InheritedFromUniqueProcessId).ok();
    parent.filter(|_| status >= 0)
}

/// A handle of this process: a pseudo-handle, which is not closed, to copy with
/// [`inheritable_copy`].
pub(crate) fn this_process() -> HANDLE {
    // SAFETY: no preconditions.
    unsafe { GetCurrentProcess() }
}

/// Waits up to `patience` milliseconds for the process of `handle` to end: whether it has (or
/// the handle cannot be waited for).
pub(crate) fn has_ended_within(handle: HANDLE, patience: u32) -> bool {
    use windows_sys::Win32::Foundation::WAIT_TIMEOUT;
    use windows_sys::Win32::System::Threading::WaitForSingleObject;
    // SAFETY: a process handle of the caller's.
    unsafe { WaitForSingleObject(handle, patience) != WAIT_TIMEOUT }
}
