//! What the program sends its guardian when the guardian is behind (stopped, or slow on a
//! loaded machine) and the channel is full: the messages wait here, in order, and go as soon as
//! there is room, sent by whichever thread comes next or by a thread of the outbox's own. An
//! arm and the disarm of the same guard that both still wait cancel out, so a burst of guards
//! made and ended costs little once the channel is full.
//!
//! What waits is also written to the shared page's log (`notes.rs`), which the guardian reads
//! once the program has ended, after the channel: so a `kill -9` loses nothing that waits. A
//! guard made while the guardian is behind is armed all the same, and one that ended is not run
//! again. Only past the log's [`LOG`] bytes (a guardian far behind, with
//! guards kept meanwhile) do later messages wait in the program alone, said once on stderr.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::channel::is_full;
use super::notes::{Log, LOG};
use super::wire::disarmed;
use crate::report::report;
use crate::sys::link::{self, End};

/// How long the outbox's thread waits for room before it looks again.
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// The messages waiting, oldest first.
static OUTBOX: Mutex<VecDeque<Waiting>> = Mutex::new(VecDeque::new());
/// Tells the outbox's thread that messages wait.
static MORE: Condvar = Condvar::new();
/// Something waits: while nothing does, a message is sent at once, without the lock.
static WAITING: AtomicBool = AtomicBool::new(false);
/// The outbox's thread was started.
static SENDER: AtomicBool = AtomicBool::new(false);
/// The log was full once (said once).
static OVERFLOWED: AtomicBool = AtomicBool::new(false);

/// A message that waits, and where the log has it, if it does.
struct Waiting {
    message: Message,
    logged: Option<u32>,
}

enum Message {
    /// An arm: the guard's id, and the whole message.
    Armed(u64, Vec<u8>),
    /// A disarm: the guard's id.
    Disarmed(u64),
}

/// The program's end of the channel, and the log of the page it shares with the guardian
/// (mapped for the rest of the process's life).
#[derive(Clone, Copy)]
pub(super) struct Channel {
    pub(super) link: End,
    pub(super) log: Option<&'static Log>,
}

impl Channel {
    /// Sends the arm `parts` of guard `id`, now or once there is room. `Err` only if the
    /// channel is broken: the guardian has ended.
    pub(super) fn arm(&self, id: u64, parts: &[&[u8]]) -> io::Result<()> {
        if !WAITING.load(SeqCst) {
            let sent = link::send(self.link, parts);
            if !is_full(&sent) {
                return sent;
            }
        }
        let outbox = self.flushed()?;
        if outbox.is_empty() {
            let sent = link::send(self.link, parts);
            if !is_full(&sent) {
                return sent;
            }
        }
        self.wait(outbox, Message::Armed(id, parts.concat()));
        Ok(())
    }

    /// Sends the disarm of guard `id`, now or once there is room; if its arm still waits,
    /// neither goes.
    pub(super) fn disarm(&self, id: u64) {
        let message = disarmed(id);
        if !WAITING.load(SeqCst) && !is_full(&link::send(self.link, &[&message])) {
            return;
        }
        let Ok(mut outbox) = self.flushed() else {
            return;
        };
        let armed =
            |waiting: &Waiting| matches!(waiting.message, Message::Armed(armed, _) if armed == id);
        if let Some(at) = outbox.iter().rposition(armed) {
            let cancelled = outbox.remove(at).and_then(|waiting| waiting.logged);
            self.forget(cancelled);
            drop(self.settled(outbox));
            return;
        }
        if outbox.is_empty() && !is_full(&link::send(self.link, &[&message])) {
            return;
        }
        self.wait(outbox, Message::Disarmed(id));
    }

    /// The outbox, locked, with what fits in the channel sent.
    fn flushed(&self) -> io::Result<MutexGuard<'static, VecDeque<Waiting>>> {
        let mut outbox = OUTBOX.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(waiting) = outbox.front() {
            let sent = match &waiting.message {
                Message::Armed(_, message) => link::send(self.link, &[message]),
                Message::Disarmed(id) => link::send(self.link, &[&disarmed(*id)]),
            };
            match sent {
                Ok(()) => {
                    let logged = outbox.pop_front().and_then(|waiting| waiting.logged);
                    self.forget(logged);
                }
                Err(_) if is_full(&sent) => break,
                Err(error) => {
                    outbox.clear();
                    drop(self.settled(outbox));
                    return Err(error);
                }
            }
        }
        Ok(self.settled(outbox))
    }

    /// Puts `message` at the end of the outbox, and of the log, and has it sent once there is
    /// room.
    fn wait(&self, mut outbox: MutexGuard<'_, VecDeque<Waiting>>, message: Message) {
        let logged = self.log.and_then(|log| {
            let parts: [&[u8]; 1] = match &message {
                Message::Armed(_, message) => [message],
                Message::Disarmed(id) => [&disarmed(*id)],
            };
            // SAFETY: the outbox is locked.
            unsafe { log.append(&parts) }
        });
        if logged.is_none() && self.log.is_some() && !OVERFLOWED.swap(true, SeqCst) {
            report(format_args!(
                "the guardian is behind by more than {} KiB: what the program sends it meanwhile is lost if the program is killed before the guardian takes it",
                LOG / 1024
            ));
        }
        outbox.push_back(Waiting { message, logged });
        WAITING.store(true, SeqCst);
        drop(outbox);
        MORE.notify_one();
        if !SENDER.swap(true, SeqCst) {
            let channel = *self;
            let started = std::thread::Builder::new()
                .name("finally-outbox".into())
                .spawn(move || channel.send_forever());
            if started.is_err() {
                // The threads that make and end guards flush it instead.
                SENDER.store(false, SeqCst);
            }
        }
    }

    /// Marks the log's entry at `logged`, if any, as no longer waiting. The outbox is locked.
    fn forget(&self, logged: Option<u32>) {
        if let (Some(log), Some(at)) = (self.log, logged) {
            // SAFETY: the outbox is locked, and `at` is where its message was logged.
            unsafe { log.gone(at) };
        }
    }

    /// The outbox, and, if it is empty, the log emptied and nothing marked as waiting.
    fn settled(
        &self,
        outbox: MutexGuard<'static, VecDeque<Waiting>>,
    ) -> MutexGuard<'static, VecDeque<Waiting>> {
        if outbox.is_empty() {
            WAITING.store(false, SeqCst);
            if let Some(log) = self.log {
                // SAFETY: the outbox is locked.
                unsafe { log.clear() };
            }
        }
        outbox
    }

    /// The outbox's thread: sends what waits whenever there is room, for the rest of the
    /// process (or until the guardian has ended).
    fn send_forever(self) {
        loop {
            let Ok(mut outbox) = self.flushed() else {
                return;
            };
            if outbox.is_empty() {
                while outbox.is_empty() {
                    outbox = MORE.wait(outbox).unwrap_or_else(PoisonError::into_inner);
                }
                continue;
            }
            drop(outbox);
            link::wait_for_room(self.link, LOOK_EVERY);
        }
    }
}
