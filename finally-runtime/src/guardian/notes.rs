//! The page the program shares with its guardian.

use std::cell::UnsafeCell;
use std::sync::atomic::Ordering::{Acquire, Release, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU8};
use std::{io, mem, ptr};

use crate::sys::shared::Shared;

/// How many bytes of messages waiting in the program the page holds (`outbox.rs`). Pages that
/// are never written are never allocated.
pub(super) const LOG: usize = 1 << 20;

/// The page the program shares with its guardian: what must reach the guardian however full
/// the channel is. All zeros is "nothing to say".
#[repr(C)]
pub(super) struct Notes {
    /// `main`'s cleanup has completed.
    pub(super) completed: AtomicBool,
    /// The crash that is ending the program, or 0.
    pub(super) crash: AtomicI32,
    /// How many times the guardian has looked at the program (`follow.rs`): the tests wait for
    /// it to have seen what they changed.
    pub(super) looked: AtomicU32,
    /// The messages that wait in the program for room in the channel.
    pub(super) log: Log,
}

/// The messages that wait in the program for room in the channel, as they wait (`outbox.rs`),
/// so that the guardian has them though the program dies before they are sent. The program
/// writes it under the outbox's lock; the guardian reads it once the program has ended, as it
/// reads the channel: what it finds is checked as a message is.
#[repr(C)]
pub(super) struct Log {
    /// How many bytes of `entries` are written.
    used: AtomicU32,
    /// The entries, one after another: a byte, 1 while the message waits and 0 once it was sent
    /// or cancelled; the message's length (4 bytes, little-endian); the message.
    entries: UnsafeCell<[u8; LOG]>,
}

// SAFETY: one process writes the entries, one thread at a time (under the outbox's lock); the
// guardian reads them only once that process has ended.
unsafe impl Sync for Log {}

/// The bytes of an entry before its message.
const ENTRY: usize = 5;

impl Log {
    /// Writes the message made of `parts` at the end, if it fits: where, for [`Log::gone`].
    ///
    /// # Safety
    ///
    /// The caller holds the outbox's lock.
    pub(super) unsafe fn append(&self, parts: &[&[u8]]) -> Option<u32> {
        let length: usize = parts.iter().map(|part| part.len()).sum();
        let at = self.used.load(SeqCst) as usize;
        let end = at.checked_add(ENTRY + length).filter(|&end| end <= LOG)?;
        let entries = self.entries.get().cast::<u8>();
        let mut next = at + ENTRY;
        // SAFETY: within the entries, which this thread alone writes (the caller holds the
        // lock), past anything the guardian may take as written.
        unsafe {
            ptr::copy_nonoverlapping(
                (length as u32).to_le_bytes().as_ptr(),
                entries.add(at + 1),
                4,
            );
            for part in parts {
                ptr::copy_nonoverlapping(part.as_ptr(), entries.add(next), part.len());
                next += part.len();
            }
            AtomicU8::from_ptr(entries.add(at)).store(1, Release);
        }
        self.used.store(end as u32, Release);
        Some(at as u32)
    }

    /// Marks the entry at `at` as no longer waiting: sent, or cancelled.
    ///
    /// # Safety
    ///
    /// The caller holds the outbox's lock, and `at` is where [`Log::append`] wrote an entry
    /// since the last [`Log::clear`].
    pub(super) unsafe fn gone(&self, at: u32) {
        // SAFETY: an entry's first byte, as the caller vouches.
        unsafe { AtomicU8::from_ptr(self.entries.get().cast::<u8>().add(at as usize)) }
            .store(0, Release);
    }

    /// Forgets every entry: nothing waits.
    ///
    /// # Safety
    ///
    /// The caller holds the outbox's lock.
    pub(super) unsafe fn clear(&self) {
        self.used.store(0, Release);
    }

    /// In the guardian, once the program has ended: the messages that still wait, oldest first.
    /// A log the program left torn or wrong ends where it stops making sense.
    pub(super) fn waiting(&self) -> Vec<&[u8]> {
        let used = (self.used.load(Acquire) as usize).min(LOG);
        // SAFETY: the program that writes the entries has ended.
        let entries = unsafe { &*self.entries.get() };
        let mut waiting = Vec::new();
        let mut at = 0;
        while let Some(header) = entries[..used].get(at..at + ENTRY) {
            let length = u32::from_le_bytes([header[1], header[2], header[3], header[4]]) as usize;
            let rest = &entries[at + ENTRY..used];
            let Some(message) = rest.get(..length) else {
                break;
            };
            if header[0] == 1 {
                waiting.push(message);
            }
            at += ENTRY + length;
        }
        waiting
    }
}

impl Notes {
    /// The crash that ended the program, if its crash handler (Unix) noted one.
    #[cfg(unix)]
    pub(super) fn crash(&self) -> Option<crate::exit::Signal> {
        Some(self.crash.load(SeqCst))
            .filter(|&signal| signal != 0)
            .map(crate::exit::Signal::new)
    }
}

/// The page shared with the guardian: forked from here on (Unix), or inherited by handle, which
/// has no name, so that no other process can open it (Windows). Unmapped when dropped.
pub(super) struct Page(Shared);

impl Page {
    /// A new page, zeros: no notes.
    pub(super) fn new() -> io::Result<Page> {
        Shared::new(mem::size_of::<Notes>()).map(Page)
    }

    /// The program's page, from the handle of its mapping that the guardian inherited; the
    /// handle is closed with the page.
    #[cfg(windows)]
    pub(super) fn open(mapping: windows_sys::Win32::Foundation::HANDLE) -> io::Result<Page> {
        Shared::open(mapping, mem::size_of::<Notes>(), "the program's page").map(Page)
    }

    /// The handle of the page's mapping, for the guardian to inherit a copy of.
    #[cfg(windows)]
    pub(super) fn mapping(&self) -> windows_sys::Win32::Foundation::HANDLE {
        self.0.mapping()
    }
}

impl Page {
    pub(super) fn notes(&self) -> &Notes {
        // SAFETY: mapped, as long as `self` lives, and as big as `Notes`; zeros (valid `Notes`)
        // or notes.
        unsafe { self.0.at().cast::<Notes>().as_ref() }
    }

    /// Keeps the page mapped for the rest of the process's life.
    pub(super) fn keep(self) -> *mut Notes {
        self.0.keep().cast::<Notes>().as_ptr()
    }
}
