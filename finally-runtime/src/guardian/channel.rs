//! The guardian's end of the channel from the program: the messages taken in (`wire.rs` reads
//! them), checked as they come, and the armed guards the guardian keeps.

use std::collections::BTreeMap;
use std::io;

use super::notes::Notes;
use super::wire::{Armed, Message, HEADER, LONGEST};
use crate::cleanup::Run;
use crate::exit::{Exit, Signal};
use crate::report::{self, report};
use crate::sys::link::{self, End, NONE};
use crate::{durable, registry};

/// How many rejected messages the guardian reports one by one.
const REPORTED: u32 = 8;

/// Whether a send failed because the channel is full.
pub(super) fn is_full(sent: &io::Result<()>) -> bool {
    matches!(sent, Err(error) if error.kind() == io::ErrorKind::WouldBlock)
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
    pub(super) link: End,
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
    pub(super) fn new(link: End, program: Option<u32>) -> Self {
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
        if let Some(payload) = registry::call_caught(&name, &exit, || cleanup.run(&exit, &name)) {
            report::panicked(&name, &*payload);
        }
    }

    /// Runs the cleanups of the guards still armed, newest first, with `exit`; a panic is
    /// reported and does not stop the others.
    fn run_armed(&mut self, exit: &Exit) {
        while let Some((_, armed)) = self.armed.pop_last() {
            let name = "a guard's cleanup, in the guardian";
            if let Some(payload) = registry::call_caught(&name, exit, || {
                armed.cleanup.run(&armed.state, exit, name);
            }) {
                report::panicked(&name, &*payload);
            }
        }
    }
}
