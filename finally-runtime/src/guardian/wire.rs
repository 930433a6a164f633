//! The guardian's wire format: every message that goes between the program, the process that
//! forks the guardian and the guardian, encoded and decoded here and nowhere else.
//!
//! A message is one packet (a `SOCK_SEQPACKET` socket, or a pipe in message mode): its first
//! byte says what it is, what follows is little-endian.
//!
//! | first byte | from | then |
//! |---|---|---|
//! | [`COMPLETED`] | program | nothing: `main`'s cleanup has completed |
//! | `FORKED` | intermediate | the guardian's pid (4 bytes) |
//! | `NOT_FORKED` | intermediate | the `errno` of the second fork (4 bytes) |
//! | [`ARMED`] | program | a guard's id (8), its cleanup's place among those registered (`registered.rs`; 4), its state |
//! | [`DISARMED`] | program | a guard's id (8) |
//! | `WATCHING` | guardian, on Windows | nothing: it watches (the one message that goes that way) |
//! | [`RECORDS`] | program | the directory of the durable records (its bytes on Unix, UTF-8 on Windows) |
//!
//! The program and its guardian are one build, so the format has no version. The durable
//! records, which a later start reads, perhaps of a newer build, after a crash in the middle
//! of a write, are another contract: framed, checksummed and versioned by `durable.rs`.

use std::path::{Path, PathBuf};

use crate::registered::{self, Registered};

/// `main`'s cleanup has completed.
pub(super) const COMPLETED: u8 = 0;
/// The intermediate process forked the guardian.
#[cfg(unix)]
const FORKED: u8 = 1;
/// The intermediate process could not fork the guardian.
#[cfg(unix)]
const NOT_FORKED: u8 = 2;
/// A guard is armed.
const ARMED: u8 = 3;
/// A guard has ended.
const DISARMED: u8 = 4;
/// The guardian watches (Windows).
#[cfg(windows)]
pub(super) const WATCHING: u8 = 5;
/// Where the durable records are.
const RECORDS: u8 = 6;

/// The longest state of a guard: a packet must fit in the socket's send buffer (208 KiB by
/// default on Linux), and a few must fit at once.
pub(super) const LONGEST: usize = 64 * 1024;
/// The bytes of an `ARMED` message before the state.
pub(super) const HEADER: usize = 13;
/// The bytes of the intermediate process's message.
#[cfg(unix)]
pub(super) const FORK_REPLY: usize = 5;

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

/// The message that says the durable records are in `dir`; `None` if a path cannot be sent.
pub(super) fn records(dir: &Path) -> Option<Vec<u8>> {
    #[cfg(unix)]
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(dir.as_os_str());
    #[cfg(windows)]
    let bytes = dir.to_str()?.as_bytes();
    (bytes.len() <= LONGEST).then(|| [&[RECORDS], bytes].concat())
}

/// What the intermediate process says of the second fork: the guardian's pid, or the `errno`
/// of the fork that failed.
#[cfg(unix)]
pub(super) fn fork_reply(forked: Result<i32, i32>) -> [u8; FORK_REPLY] {
    let (kind, number) = match forked {
        Ok(pid) => (FORKED, pid),
        Err(errno) => (NOT_FORKED, errno),
    };
    let mut message = [0u8; FORK_REPLY];
    message[0] = kind;
    message[1..].copy_from_slice(&number.to_le_bytes());
    message
}

/// The intermediate process's reply in `packet`, of `length` bytes (a packet's whole length,
/// which may be more than `packet` holds); `None` if it is none.
#[cfg(unix)]
pub(super) fn parse_fork_reply(
    packet: &[u8; FORK_REPLY],
    length: usize,
) -> Option<Result<i32, i32>> {
    let number = i32::from_le_bytes([packet[1], packet[2], packet[3], packet[4]]);
    match (length, packet[0]) {
        (FORK_REPLY, FORKED) => Some(Ok(number)),
        (FORK_REPLY, NOT_FORKED) => Some(Err(number)),
        _ => None,
    }
}

/// A guard whose state reached the guardian: its cleanup, registered, and its state.
pub(super) struct Armed {
    pub(super) cleanup: &'static Registered,
    pub(super) state: Vec<u8>,
}

/// What the program says on the channel.
pub(super) enum Message {
    Completed,
    Armed(u64, Armed),
    Disarmed(u64),
    Records(PathBuf),
}

impl Message {
    /// The message in `packet` (`None`: longer than any message), or why it is none.
    pub(super) fn parse(packet: Option<&[u8]>) -> Result<Message, String> {
        let packet = packet.ok_or("longer than any message")?;
        let word = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(packet.get(at..at + 8)?.try_into().ok()?))
        };
        let cut = || format!("cut short ({} bytes)", packet.len());
        match *packet.first().ok_or("empty")? {
            COMPLETED if packet.len() == 1 => Ok(Message::Completed),
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

/// The path of a `RECORDS` message.
fn path(bytes: &[u8]) -> Option<PathBuf> {
    if bytes.is_empty() {
        return None;
    }
    #[cfg(unix)]
    let path = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(bytes).into();
    #[cfg(windows)]
    let path = std::str::from_utf8(bytes).ok()?.into();
    Some(path)
}

#[cfg(all(test, unix, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_message_reads_back_as_written() {
        let reply = fork_reply(Ok(4242));
        assert_eq!(parse_fork_reply(&reply, FORK_REPLY), Some(Ok(4242)));
        let reply = fork_reply(Err(libc::EAGAIN));
        assert_eq!(
            parse_fork_reply(&reply, FORK_REPLY),
            Some(Err(libc::EAGAIN))
        );
        assert_eq!(parse_fork_reply(&reply, 0), None);
        assert!(matches!(
            Message::parse(Some(&disarmed(7))),
            Ok(Message::Disarmed(7))
        ));
        assert!(matches!(
            Message::parse(Some(&[COMPLETED])),
            Ok(Message::Completed)
        ));
        let message = records(Path::new("/tmp/records")).unwrap();
        assert!(
            matches!(Message::parse(Some(&message)), Ok(Message::Records(dir)) if dir == Path::new("/tmp/records"))
        );
        assert!(Message::parse(Some(&armed(1, u32::MAX))).is_err());
    }
}
