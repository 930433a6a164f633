//! The page the program shares with its guardian.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicI32};
use std::{io, mem, ptr};

use crate::Signal;

/// The page the program shares with its guardian: what must reach the guardian however full
/// the channel is. All zeros is "nothing to say".
#[repr(C)]
pub(super) struct Notes {
    /// `main`'s cleanup has completed.
    pub(super) completed: AtomicBool,
    /// The crash that is ending the program, or 0.
    pub(super) crash: AtomicI32,
}

impl Notes {
    /// The crash that ended the program, if its crash handler noted one.
    pub(super) fn crash(&self) -> Option<Signal> {
        Some(self.crash.load(SeqCst))
            .filter(|&signal| signal != 0)
            .map(Signal::new)
    }
}

/// A page shared with the processes forked from here on; unmapped when dropped.
pub(super) struct Page(ptr::NonNull<Notes>);

impl Page {
    pub(super) fn new() -> io::Result<Page> {
        // SAFETY: a new anonymous mapping, which the kernel fills with zeros: valid `Notes`.
        let page = unsafe {
            libc::mmap(
                ptr::null_mut(),
                mem::size_of::<Notes>(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        match ptr::NonNull::new(page.cast::<Notes>()) {
            Some(notes) if page != libc::MAP_FAILED => Ok(Page(notes)),
            _ => Err(super::failed("mmap", io::Error::last_os_error())),
        }
    }

    pub(super) fn notes(&self) -> &Notes {
        // SAFETY: mapped, and zeros or notes, as long as `self` lives.
        unsafe { self.0.as_ref() }
    }

    /// Keeps the page mapped for the rest of the process's life.
    pub(super) fn keep(self) -> *mut Notes {
        let notes = self.0.as_ptr();
        mem::forget(self);
        notes
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        // SAFETY: our own mapping, which nothing uses any more.
        unsafe { libc::munmap(self.0.as_ptr().cast(), mem::size_of::<Notes>()) };
    }
}
