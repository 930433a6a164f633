//! The channel from the program to its guardian: what the program says, and how the guardian
//! takes it in.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use crate::sys::{fd, socket};
use crate::Exit;

/// What the program sends when `main`'s cleanup has completed.
pub(super) const COMPLETED_MESSAGE: u8 = 0;
/// What starts a message of `arm`: then the guard's id, its function in the guardian and its
/// cleanup (8 bytes each, little-endian), and its state.
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
pub(super) const FORKED: u8 = 1;
pub(super) const NOT_FORKED: u8 = 2;

/// [`send`], waiting up to [`PATIENCE`] for room in the channel.
pub(super) fn send_patiently(channel: RawFd, parts: &[&[u8]]) -> io::Result<()> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        fd::wait_for(channel, libc::POLLOUT, left.max(Duration::from_millis(1)));
        let sent = socket::send(channel, parts);
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
    /// -1 once the program's end has closed: at its end, or when it `exec`ed.
    pub(super) fd: RawFd,
    packet: Vec<u8>,
    /// The guards armed and not disarmed, by id: in the order they were made.
    armed: BTreeMap<u64, Armed>,
}

impl Inbox {
    pub(super) fn new(fd: RawFd) -> Self {
        Inbox {
            fd,
            packet: vec![0; HEADER + LONGEST],
            armed: BTreeMap::new(),
        }
    }

    /// Takes in what the program has sent, without waiting: whether it said that `main`'s
    /// cleanup completed.
    pub(super) fn receive(&mut self) -> bool {
        while self.fd >= 0 {
            match socket::receive(self.fd, &mut self.packet) {
                // Longer than any message the program sends: not one of them.
                Ok(length) if length > self.packet.len() => {}
                Ok(0) => self.fd = -1,
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
                Err(_) => self.fd = -1,
            }
        }
        false
    }

    /// Runs the cleanups of the guards still armed, newest first, with `exit`; a panic is
    /// reported and does not stop the others.
    pub(super) fn run_armed(&mut self, exit: &Exit) {
        while let Some((_, armed)) = self.armed.pop_last() {
            // SAFETY: the guardian is a copy of the program: `run` is the address of a function
            // of the same type in the same image, made for this cleanup and state.
            let run: RunInGuardian = unsafe { std::mem::transmute(armed.run) };
            // SAFETY: `run` was made for this cleanup, and decodes the state it was sent.
            let panicked =
                crate::registry::call_caught(|| unsafe { run(armed.cleanup, &armed.state, exit) });
            if panicked.is_some() {
                crate::report::report(format_args!("a guard's cleanup panicked in the guardian"));
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
