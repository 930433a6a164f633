//! Windows' `ExitProcess`, as the executable calls it: `std::process::exit` ends there, and no
//! hook of Windows or of the C runtime runs before the other threads are ended (the C runtime's
//! `atexit` runs only when `main` returns; the executable's TLS callbacks and DLLs' detach run
//! after every other thread has been ended, with the loader lock held).
//!
//! So the executable's import slots for `ExitProcess` (std's, and any other the executable
//! links) are pointed at a hook, which runs the cleanups first, every thread still running, and
//! then calls `ExitProcess`. A DLL that calls `ExitProcess` itself goes through its own slots,
//! which are left alone.

use std::io;
use std::mem;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
use windows_sys::Win32::System::Memory::{VirtualProtect, PAGE_READWRITE};

/// `ExitProcess` itself, as the slots held it.
static ORIGINAL: AtomicUsize = AtomicUsize::new(0);

/// The signature of `ExitProcess`.
pub(crate) type Hook = unsafe extern "system" fn(u32) -> !;

/// Points every import slot of the executable that holds `ExitProcess` at `hook`; returns how
/// many there were.
///
/// # Safety
///
/// `hook` must end the process, through [`original`] when it is done.
pub(crate) unsafe fn hook(hook: Hook) -> io::Result<usize> {
    let kernel32: Vec<u16> = "kernel32.dll\0".encode_utf16().collect();
    // SAFETY: a module every process has, and a NUL-terminated name.
    let exit_process = unsafe {
        GetProcAddress(
            GetModuleHandleW(kernel32.as_ptr()),
            c"ExitProcess".as_ptr().cast(),
        )
    }
    .ok_or_else(io::Error::last_os_error)? as usize;
    ORIGINAL.store(exit_process, SeqCst);
    let mut hooked = 0;
    // SAFETY: the executable's own import slots, as its headers list them; each is made
    // writable for the moment it is written, one aligned pointer at a time.
    unsafe {
        for slot in import_slots() {
            if *slot != exit_process {
                continue;
            }
            let mut was = 0;
            let size = mem::size_of::<usize>();
            if VirtualProtect(slot.cast(), size, PAGE_READWRITE, &mut was) == 0 {
                return Err(io::Error::last_os_error());
            }
            slot.write_volatile(hook as usize);
            VirtualProtect(slot.cast(), size, was, &mut was);
            hooked += 1;
        }
    }
    Ok(hooked)
}

/// Ends the process with `code`, as the executable's `ExitProcess` did before [`hook`].
pub(crate) fn original(code: u32) -> ! {
    // SAFETY: `ExitProcess` itself, stored before any slot was pointed at the hook.
    let exit_process: Hook = unsafe { mem::transmute(ORIGINAL.load(SeqCst)) };
    // SAFETY: no preconditions.
    unsafe { exit_process(code) }
}

/// The executable's import address table: a slot for each function it imports, as its PE
/// headers list them.
///
/// # Safety
///
/// Reads the headers of the executable's image, which the loader mapped.
unsafe fn import_slots() -> Vec<*mut usize> {
    // SAFETY: the caller vouches for the image; the offsets are the PE format's.
    unsafe {
        let base = GetModuleHandleW(std::ptr::null()).cast::<u8>();
        let at = |offset: usize| base.add(offset);
        let word = |offset: usize| at(offset).cast::<u32>().read_unaligned() as usize;
        // IMAGE_DOS_HEADER.e_lfanew, then past "PE\0\0" and the 20 bytes of the file header.
        let optional = word(0x3c) + 4 + 20;
        // The data directories: after 112 bytes of a PE32+ optional header, 96 of a PE32's.
        let directories = optional
            + if cfg!(target_pointer_width = "64") {
                112
            } else {
                96
            };
        // The second directory: imports.
        let imports = word(directories + 8);
        let mut slots = Vec::new();
        if imports == 0 {
            return slots;
        }
        // IMAGE_IMPORT_DESCRIPTORs of 20 bytes, the last all zeros; FirstThunk at 16.
        let mut descriptor = imports;
        while word(descriptor + 12) != 0 {
            let mut slot = at(word(descriptor + 16)).cast::<usize>();
            while *slot != 0 {
                slots.push(slot);
                slot = slot.add(1);
            }
            descriptor += 20;
        }
        slots
    }
}
