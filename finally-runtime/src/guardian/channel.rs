//! The channel from the program to its guardian: what the program says, and how the guardian
//! takes it in.

use std::collections::BTreeMap;
use std::io;
use std::time::{Duration, Instant};

use crate::cleanup::Run;
use crate::report::report;
use crate::sys::link::{self, Link, NONE};
use crate::{registry, Exit, Signal};

/// Where the program's image starts, from which the functions sent to the guardian are offsets:
/// a guardian forked from the program has its image where the program has it, but one started
/// again from its executable (Windows) has it where address-space randomization put it.
pub(super) fn image_base() -> usize {
    #[cfg(windows)]
    // SAFETY: the module of this process's executable.
    return unsafe {
        windows_sys::Win32::System::LibraryLoader::GetModuleHandleW(std::ptr::null()) as usize
    };
    #[allow(unreachable_code)]
    0
}

/// What the program sends when `main`'s cleanup has completed.
pub(super) const COMPLETED_MESSAGE: u8 = 0;
/// What starts a message of `arm`: then the guard's id, its function in the guardian and its
/// cleanup (8 bytes each, little-endian, offsets from [`image_base`]), and its state.
pub(super) const ARMED: u8 = 3;
/// What starts a message of `disarm`: then the guard's id.
pub(super) const DISARMED: u8 = 4;
/// The longest state of a guard: a packet must fit in the socket's send buffer (208 KiB by
/// default on Linux), and a few must fit at once.
pub(super) const LONGEST: usize = 64 * 1024;
/// The bytes of an `ARMED` message before the state.
pub(super) const HEADER: usize = 25;
/// How long `arm` waits, once in the program's life, for a guardian that does not keep up.
const PATIENCE: Duration = Duration::from_millis(100);
/// What the intermediate process sends the program: then the guardian's pid, or the `errno` of
/// its fork (4 bytes, little-endian).
#[cfg(unix)]
pub(super) const FORKED: u8 = 1;
#[cfg(unix)]
pub(super) const NOT_FORKED: u8 = 2;

/// [`send`], waiting up to [`PATIENCE`] for room in the channel.
pub(super) fn send_patiently(channel: Link, parts: &[&[u8]]) -> io::Result<()> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        link::wait_for_room(channel, left.max(Duration::from_millis(1)));
        let sent = link::send(channel, parts);
        if !is_full(&sent) {
            return sent;
        }
    }
}

/// Whether a send failed because the channel is full.
pub(super) fn is_full(sent: &io::Result<()>) -> bool {
    matches!(sent, Err(error) if error.kind() == io::ErrorKind::WouldBlock)
}

/// The guardian's end of the channel.
/// A guard whose state reached the guardian, and what runs it there.
struct Armed {
    /// `guard::run_in_guardian::<T, O>`: decodes the state and calls the cleanup.
    run: usize,
    /// The guard's `fn(&T, &Exit) -> O`.
    cleanup: usize,
    state: Vec<u8>,
}

/// The signature of [`Armed::run`].
pub(crate) type RunInGuardian = unsafe fn(cleanup: usize, state: &[u8], exit: &Exit);

pub(super) struct Inbox {
    /// [`NONE`] once the program's end has closed: at its end, or when it `exec`ed.
    pub(super) link: Link,
    packet: Vec<u8>,
    /// The guards armed and not disarmed, by id: in the order they were made.
    armed: BTreeMap<u64, Armed>,
    /// How many packets the program has sent.
    pub(super) heard: u64,
}

impl Inbox {
    pub(super) fn new(link: Link) -> Self {
        Inbox {
            link,
            packet: vec![0; HEADER + LONGEST],
            armed: BTreeMap::new(),
            heard: 0,
        }
    }

    /// Takes in what the program has sent, without waiting: whether it said that `main`'s
    /// cleanup completed.
    pub(super) fn receive(&mut self) -> bool {
        while self.link != NONE {
            let received = link::receive(self.link, &mut self.packet);
            if matches!(received, Ok(length) if length > 0) {
                self.heard += 1;
            }
            match received {
                // Longer than any message the program sends: not one of them.
                Ok(length) if length > self.packet.len() => {}
                Ok(0) => self.link = NONE,
                Ok(length) => match Message::parse(&self.packet[..length]) {
                    Some(Message::Completed) => return true,
                    Some(Message::Armed(id, armed)) => {
                        self.armed.insert(id, armed);
                    }
                    Some(Message::Disarmed(id)) => {
                        self.armed.remove(&id);
                    }
                    None => {}
                },
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => self.link = NONE,
            }
        }
        false
    }

    /// Runs the cleanups of a program that died, by `signal` where known: its guards' still
    /// armed, newest first, then `main`'s, which encloses them.
    pub(super) fn clean_up<C: Run>(&mut self, cleanup: C, signal: Option<Signal>) {
        let exit = Exit::Died { signal };
        self.run_armed(&exit);
        if registry::call_caught(|| cleanup.run(&exit, "main's cleanup")).is_some() {
            report(format_args!("the cleanup panicked in the guardian"));
        }
    }

    /// Runs the cleanups of the guards still armed, newest first, with `exit`; a panic is
    /// reported and does not stop the others.
    fn run_armed(&mut self, exit: &Exit) {
        while let Some((_, armed)) = self.armed.pop_last() {
            let base = image_base();
            // SAFETY: the guardian runs the program's own executable: `run` is the address of a
            // function of the same type in the same image, made for this cleanup and state, as
            // an offset from the image's base.
            let run: RunInGuardian = unsafe { std::mem::transmute(base + armed.run) };
            let cleanup = base + armed.cleanup;
            // SAFETY: `run` was made for this cleanup, and decodes the state it was sent.
            let panicked = registry::call_caught(|| unsafe { run(cleanup, &armed.state, exit) });
            if panicked.is_some() {
                report(format_args!("a guard's cleanup panicked in the guardian"));
            }
        }
    }
}

/// What the program says on the channel.
enum Message {
    Completed,
    Armed(u64, Armed),
    Disarmed(u64),
}

impl Message {
    /// The message in `packet`, if it is one.
    fn parse(packet: &[u8]) -> Option<Message> {
        let word = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(packet.get(at..at + 8)?.try_into().ok()?))
        };
        match *packet.first()? {
            COMPLETED_MESSAGE => Some(Message::Completed),
            ARMED => {
                let armed = Armed {
                    run: usize::try_from(word(9)?).ok()?,
                    cleanup: usize::try_from(word(17)?).ok()?,
                    state: packet.get(HEADER..)?.to_vec(),
                };
                Some(Message::Armed(word(1)?, armed))
            }
            DISARMED => Some(Message::Disarmed(word(1)?)),
            _ => None,
        }
    }
}
