//! The channel from the program to its guardian: what the program says, and how the guardian
//! takes it in.

use std::ffi::OsString;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use crate::memo;
use crate::sys::{fd, socket};

/// What the program sends when `main`'s cleanup has completed.
pub(super) const COMPLETED_MESSAGE: u8 = 0;
/// What starts a message of `tell`: then the key's length (4 bytes, little-endian), the key and
/// the value.
pub(super) const REMEMBERED: u8 = 255;
/// The longest key and value of `tell`, together: a packet must fit in the socket's send buffer
/// (208 KiB by default on Linux), and a few must fit at once.
pub(super) const LONGEST: usize = 64 * 1024;
/// The bytes of a memo before its key.
const HEADER: usize = 5;
/// How long `tell` waits, once in the program's life, for a guardian that does not keep up.
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
pub(super) struct Inbox {
    /// -1 once the program's end has closed: at its end, or when it `exec`ed.
    pub(super) fd: RawFd,
    packet: Vec<u8>,
}

impl Inbox {
    pub(super) fn new(fd: RawFd) -> Self {
        Inbox {
            fd,
            packet: vec![0; HEADER + LONGEST],
        }
    }

    /// Takes in what the program has sent, without waiting: whether it said `DONE`.
    pub(super) fn receive(&mut self) -> bool {
        while self.fd >= 0 {
            match socket::receive(self.fd, &mut self.packet) {
                // Longer than any message the program sends: not one of them.
                Ok(length) if length > self.packet.len() => {}
                Ok(0) => self.fd = -1,
                Ok(length) => match Message::parse(&self.packet[..length]) {
                    Some(Message::Completed) => return true,
                    Some(Message::Remembered(key, value)) => memo::keep(key, value),
                    None => {}
                },
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => self.fd = -1,
            }
        }
        false
    }
}

/// What the program says on the channel.
enum Message {
    Completed,
    Remembered(String, OsString),
}

impl Message {
    /// The message in `packet`, if it is one.
    fn parse(packet: &[u8]) -> Option<Message> {
        match *packet.first()? {
            COMPLETED_MESSAGE => Some(Message::Completed),
            REMEMBERED => {
                let length = u32::from_le_bytes(packet.get(1..5)?.try_into().ok()?);
                let body = packet.get(HEADER..)?;
                let length = usize::try_from(length).ok().filter(|&l| l <= body.len())?;
                let (key, value) = body.split_at(length);
                let key = String::from_utf8_lossy(key).into_owned();
                Some(Message::Remembered(
                    key,
                    std::ffi::OsStr::from_bytes(value).to_owned(),
                ))
            }
            _ => None,
        }
    }
}
