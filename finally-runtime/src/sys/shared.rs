//! Memory shared with other processes: on Unix an anonymous shared mapping, which the processes
//! forked from here on share; on Windows an unnamed mapping of the paging file, whose handle a
//! process started from here inherits. Zeros when made.

use std::io;
use std::ptr::NonNull;

/// Shared memory of `len` bytes; unmapped when dropped, unless kept.
pub(crate) struct Shared {
    at: NonNull<u8>,
    len: usize,
    #[cfg(windows)]
    mapping: windows_sys::Win32::Foundation::HANDLE,
}

#[cfg(unix)]
impl Shared {
    /// `len` new bytes, zeros, shared with the processes forked from here on. An error names
    /// the call that failed.
    pub(crate) fn new(len: usize) -> io::Result<Shared> {
        // SAFETY: a new anonymous mapping.
        let at = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        match NonNull::new(at.cast::<u8>()) {
            Some(at) if at.as_ptr().cast() != libc::MAP_FAILED => Ok(Shared { at, len }),
            _ => Err(called("mmap", io::Error::last_os_error())),
        }
    }
}

#[cfg(windows)]
impl Shared {
    /// `len` new bytes, zeros, whose mapping's handle ([`Shared::mapping`]) a process started
    /// from here may inherit. An error names the call that failed.
    pub(crate) fn new(len: usize) -> io::Result<Shared> {
        use windows_sys::Win32::Foundation::INVALID_HANDLE_VALUE;
        use windows_sys::Win32::System::Memory::{CreateFileMappingW, PAGE_READWRITE};
        // SAFETY: a new mapping of the paging file, without a name, not inheritable.
        let mapping = unsafe {
            CreateFileMappingW(
                INVALID_HANDLE_VALUE,
                std::ptr::null(),
                PAGE_READWRITE,
                0,
                len as u32,
                std::ptr::null(),
            )
        };
        Shared::view(mapping, len, "CreateFileMappingW")
    }

    /// The first `len` bytes of the mapping `mapping` (a handle inherited from the process that
    /// made it, `what`); the handle is closed with it.
    pub(crate) fn open(
        mapping: windows_sys::Win32::Foundation::HANDLE,
        len: usize,
        what: &'static str,
    ) -> io::Result<Shared> {
        Shared::view(mapping, len, what)
    }

    /// The handle of the mapping, for a process started from here to inherit a copy of.
    pub(crate) fn mapping(&self) -> windows_sys::Win32::Foundation::HANDLE {
        self.mapping
    }

    fn view(
        mapping: windows_sys::Win32::Foundation::HANDLE,
        len: usize,
        what: &'static str,
    ) -> io::Result<Shared> {
        use windows_sys::Win32::Foundation::CloseHandle;
        use windows_sys::Win32::System::Memory::{MapViewOfFile, FILE_MAP_ALL_ACCESS};
        if mapping.is_null() {
            return Err(called(what, io::Error::last_os_error()));
        }
        // SAFETY: a view of the mapping's first `len` bytes, which fails where it is smaller.
        let view = unsafe { MapViewOfFile(mapping, FILE_MAP_ALL_ACCESS, 0, 0, len) };
        match NonNull::new(view.Value.cast::<u8>()) {
            Some(at) => Ok(Shared { at, len, mapping }),
            None => {
                let error = io::Error::last_os_error();
                // SAFETY: the mapping's handle, ours alone.
                unsafe { CloseHandle(mapping) };
                Err(called("MapViewOfFile", error))
            }
        }
    }
}

impl Shared {
    /// Where the bytes are.
    pub(crate) fn at(&self) -> NonNull<u8> {
        self.at
    }

    /// Keeps the memory mapped for the rest of the process's life: where it is.
    pub(crate) fn keep(self) -> NonNull<u8> {
        let at = self.at;
        std::mem::forget(self);
        at
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: our own mapping, which nothing uses any more.
        #[cfg(unix)]
        unsafe {
            libc::munmap(self.at.as_ptr().cast(), self.len)
        };
        #[cfg(windows)]
        {
            use windows_sys::Win32::Foundation::CloseHandle;
            use windows_sys::Win32::System::Memory::{UnmapViewOfFile, MEMORY_MAPPED_VIEW_ADDRESS};
            let _ = self.len;
            // SAFETY: our own view and handle, which nothing uses any more.
            unsafe {
                UnmapViewOfFile(MEMORY_MAPPED_VIEW_ADDRESS {
                    Value: self.at.as_ptr().cast(),
                });
                CloseHandle(self.mapping);
            }
        }
    }
}

/// `error`, said to come from the call `call`.
fn called(call: &str, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{call}: {error}"))
}
