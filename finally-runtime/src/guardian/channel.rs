//! The channel from the program to its guardian: what the program says, and how the guardian
//! takes it in.

use std::collections::BTreeMap;
use std::io;

use super::notes::Notes;
use crate::cleanup::Run;
use crate::exit::{Exit, Signal};
use crate::registered::{self, Registered};
use crate::report::{self, report};
use crate::sys::link::{self, Link, NONE};
use crate::{durable, registry};

/// What the program sends when `main`'s cleanup has completed.
pub(super) const COMPLETED_MESSAGE: u8 = 0;
/// What starts a message of `arm`: then the guard's id (8 bytes, little-endian), its cleanup's
/// place among those registered (`cleanups.rs`; 4 bytes, little-endian), and its state.
pub(super) const ARMED: u8 = 3;
/// What starts a message of `disarm`: then the guard's id.
pub(super) const DISARMED: u8 = 4;
/// What starts the message that says where the program keeps its durable records: then the
/// directory's path (its bytes on Unix, UTF-8 on Windows).
pub(super) const RECORDS: u8 = 6;
/// The longest state of a guard: a packet must fit in the socket's send buffer (208 KiB by
/// default on Linux), and a few must fit at once.
pub(super) const LONGEST: usize = 64 * 1024;
/// The bytes of an `ARMED` message before the state.
pub(super) const HEADER: usize = 13;
/// How many rejected messages the guardian reports one by one.
const REPORTED: u32 = 8;
/// What the intermediate process sends the program: then the guardian's pid, or the `errno` of
/// its fork (4 bytes, little-endian).
#[cfg(unix)]
pub(super) const FORKED: u8 = 1;
#[cfg(unix)]
pub(super) const NOT_FORKED: u8 = 2;
/// What the guardian sends the program on Windows once it has checked what it was handed, and
/// watches: the one message that goes that way.
#[cfg(windows)]
pub(super) const WATCHING: u8 = 5;

/// The start of an arm of guard `id`, whose cleanup is at `place`: its state follows.
pub(super) fn armed(id: u64, place: u32) -> [u8; HEADER] {
    let mut header = [0u8; HEADER];
    header[0] = ARMED;
    header[1..9].copy_from_slice(&id.to_le_bytes());
    header[9..].copy_from_slice(&place.to_le_bytes());
    header
}

/// The disarm of guard `id`.
pub(super) fn disarmed(id: u64) -> [u8; 9] {
    let mut message = [0u8; 9];
    message[0] = DISARMED;
    message[1..].copy_from_slice(&id.to_le_bytes());
    message
}

/// Whether a send failed because the channel is full.
pub(super) fn is_full(sent: &io::Result<()>) -> bool {
    matches!(sent, Err(error) if error.kind() == io::ErrorKind::WouldBlock)
}

/// A guard whose state reached the guardian: its cleanup, registered, and its state.
struct Armed {
    cleanup: &'static Registered,
    state: Vec<u8>,
}

/// How much the guardian has heard from the program.
#[derive(Clone, Copy, Default)]
pub(super) struct Heard {
    /// How many messages.
    pub(super) messages: u64,
    /// The real user and group ids the last one was sent with, where the system tells.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(super) ids: Option<(u32, u32)>,
}

/// The guardian's end of the channel.
pub(super) struct Inbox {
    /// [`NONE`] once the program's end has closed: at its end, or when it `exec`ed.
    pub(super) link: Link,
    /// The program's pid, where the system tells who sent each message: no one else's are
    /// taken.
    program: Option<u32>,
    packet: Vec<u8>,
    /// The guards armed and not disarmed, by id: in the order they were made.
    armed: BTreeMap<u64, Armed>,
    /// What the program has sent.
    pub(super) heard: Heard,
    /// How many messages were rejected.
    rejected: u32,
    /// Where the program keeps its durable records, if it said.
    records: Option<std::path::PathBuf>,
}

impl Inbox {
    /// The inbox of `link`, from the process `program` where the system tells who sends.
    pub(super) fn new(link: Link, program: Option<u32>) -> Self {
        Inbox {
            link,
            program,
            packet: vec![0; HEADER + LONGEST],
            armed: BTreeMap::new(),
            heard: Heard::default(),
            rejected: 0,
            records: None,
        }
    }

    /// Takes in what the program has sent, without waiting: whether it said that `main`'s
    /// cleanup completed. What is not a message of the program's is rejected, and reported.
    pub(super) fn receive(&mut self) -> bool {
        while self.link != NONE {
            let (length, sender) = match link::receive(self.link, &mut self.packet) {
                Ok((0, _)) => {
                    self.link = NONE;
                    break;
                }
                Ok(received) => received,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.link = NONE;
                    break;
                }
            };
            let pid = sender.map(|sender| sender.pid);
            if let Some(program) = self.program.filter(|&program| pid != Some(program)) {
                let sender =
                    pid.map_or("an unknown process".into(), |pid| format!("process {pid}"));
                self.reject(format_args!("from {sender}, not the program ({program})"));
                continue;
            }
            self.heard = Heard {
                messages: self.heard.messages + 1,
                ids: sender.map(|sender| sender.ids),
            };
            let message = Message::parse(self.packet.get(..length));
            if self.take(message, false) {
                return true;
            }
        }
        false
    }

    /// Takes in `message`, from the channel or from the log of what waited in the program
    /// (`logged`): whether it said that `main`'s cleanup completed. The last message the
    /// program sent may also be in the log, if it died before it could strike it out there: a
    /// logged arm or disarm that changes nothing is that one.
    fn take(&mut self, message: Result<Message, String>, logged: bool) -> bool {
        match message {
            Ok(Message::Completed) if logged => self.reject(format_args!("a completion, logged")),
            Ok(Message::Completed) => return true,
            Ok(Message::Armed(id, armed)) => {
                if self.armed.insert(id, armed).is_some() && !logged {
                    self.reject(format_args!("it arms guard {id} again"));
                }
            }
            Ok(Message::Records(dir)) => self.records = Some(dir),
            Ok(Message::Disarmed(id)) => {
                if self.armed.remove(&id).is_none() && !logged {
                    self.reject(format_args!("it disarms guard {id}, which is not armed"));
                }
            }
            Err(why) => self.reject(format_args!("{why}")),
        }
        false
    }

    /// Reports a message rejected, and why: the first few, then that there are more.
    fn reject(&mut self, why: std::fmt::Arguments) {
        self.rejected += 1;
        match self.rejected {
            ..=REPORTED => report(format_args!("the guardian rejected a message: {why}")),
            n if n == REPORTED + 1 => report(format_args!(
                "the guardian rejected more messages, and says no more of them"
            )),
            _ => {}
        }
    }

    /// Runs the cleanups of a program that died, by `signal` where known: its guards' still
    /// armed, newest first, then those of its durable records (which the guardian removes, as a
    /// recovery would), then `main`'s, which encloses them. What still waited in the program,
    /// in `notes`'s log, counts as received, after the channel.
    pub(super) fn clean_up<C: Run>(&mut self, cleanup: C, signal: Option<Signal>, notes: &Notes) {
        for message in notes.log.waiting() {
            self.take(Message::parse(Some(message)), true);
        }
        let exit = Exit::Died { signal };
        self.run_armed(&exit);
        if let Some(dir) = &self.records {
            durable::recover_owned(dir, super::program_id(), &exit);
        }
        let name = "main's cleanup, in the guardian";
        if let Some(payload) = registry::call_caught(|| cleanup.run(&exit, &name)) {
            report::panicked(&name, &*payload);
        }
    }

    /// Runs the cleanups of the guards still armed, newest first, with `exit`; a panic is
    /// reported and does not stop the others.
    fn run_armed(&mut self, exit: &Exit) {
        while let Some((_, armed)) = self.armed.pop_last() {
            let name = "a guard's cleanup, in the guardian";
            if let Some(payload) =
                registry::call_caught(|| armed.cleanup.run(&armed.state, exit, name))
            {
                report::panicked(&name, &*payload);
            }
        }
    }
}

/// What the program says on the channel.
enum Message {
    Completed,
    Armed(u64, Armed),
    Disarmed(u64),
    Records(std::path::PathBuf),
}

impl Message {
    /// The message in `packet` (`None`: longer than any message), or why it is none.
    fn parse(packet: Option<&[u8]>) -> Result<Message, String> {
        let packet = packet.ok_or("longer than any message")?;
        let word = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(packet.get(at..at + 8)?.try_into().ok()?))
        };
        let cut = || format!("cut short ({} bytes)", packet.len());
        match *packet.first().ok_or("empty")? {
            COMPLETED_MESSAGE if packet.len() == 1 => Ok(Message::Completed),
            ARMED => {
                let id = word(1).ok_or_else(cut)?;
                let place = packet.get(9..HEADER).ok_or_else(cut)?;
                let place = u32::from_le_bytes(place.try_into().map_err(|_| cut())?);
                let cleanup = registered::at(place).ok_or_else(|| {
                    format!("guard {id}'s cleanup, number {place}, was never registered")
                })?;
                let state = &packet[HEADER..];
                if !cleanup.decodes(state) {
                    return Err(format!("guard {id}'s state is not one its cleanup takes"));
                }
                let state = state.to_vec();
                Ok(Message::Armed(id, Armed { cleanup, state }))
            }
            DISARMED if packet.len() == 9 => Ok(Message::Disarmed(word(1).ok_or_else(cut)?)),
            RECORDS => path(&packet[1..])
                .map(Message::Records)
                .ok_or_else(|| "a directory of records that is no path".to_owned()),
            kind => Err(format!(
                "unknown ({} bytes, starting with {kind})",
                packet.len()
            )),
        }
    }
}

/// The message that says the durable records are in `dir`; `None` if a path cannot be sent.
pub(super) fn records(dir: &std::path::Path) -> Option<Vec<u8>> {
    #[cfg(unix)]
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(dir.as_os_str());
    #[cfg(windows)]
    let bytes = dir.to_str()?.as_bytes();
    (bytes.len() <= LONGEST).then(|| [&[RECORDS], bytes].concat())
}

/// The path of a `RECORDS` message.
fn path(bytes: &[u8]) -> Option<std::path::PathBuf> {
    if bytes.is_empty() {
        return None;
    }
    #[cfg(unix)]
    let path = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(bytes).into();
    #[cfg(windows)]
    let path = std::str::from_utf8(bytes).ok()?.into();
    Some(path)
}
