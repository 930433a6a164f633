//! What a hostile writer sends the guardian: messages made as `finally-runtime`'s
//! `guardian/channel.rs` makes them, or near enough to pass for them, written to the program's
//! end of the channel as anyone who can reach it finds it.

use std::fs;
use std::os::fd::RawFd;

/// What starts a message that arms a guard, and one that disarms it.
const ARMED: u8 = 3;
const DISARMED: u8 = 4;

/// The program's end of the guardian's channel: its one socket, in `/proc/self/fd`.
pub fn channel() -> RawFd {
    let sockets: Vec<RawFd> = fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let target = fs::read_link(entry.path()).ok()?;
            target.to_str()?.starts_with("socket:").then_some(())?;
            entry.file_name().to_str()?.parse().ok()
        })
        .collect();
    assert_eq!(sockets.len(), 1, "one socket: the channel");
    sockets[0]
}

/// A message that arms guard `id` with the cleanup registered at `place` and `state`.
fn armed(id: u64, place: u32, state: &[u8]) -> Vec<u8> {
    let mut message = vec![ARMED];
    message.extend_from_slice(&id.to_le_bytes());
    message.extend_from_slice(&place.to_le_bytes());
    message.extend_from_slice(state);
    message
}

/// `text` as a guard's state: its length, then its bytes.
fn encoded(text: &str) -> Vec<u8> {
    let mut state = (text.len() as u64).to_le_bytes().to_vec();
    state.extend_from_slice(text.as_bytes());
    state
}

/// What the guardian must reject, each for its own reason.
pub fn forgeries() -> Vec<Vec<u8>> {
    let run = forged as *const () as usize as u64;
    let mut raw_address = vec![ARMED];
    for word in [1 << 43, run, run] {
        raw_address.extend_from_slice(&word.to_le_bytes());
    }
    raw_address.extend_from_slice(&encoded("forged"));
    let mut disarm = vec![DISARMED];
    disarm.extend_from_slice(&(1u64 << 42).to_le_bytes());
    vec![
        // A cleanup that was never registered.
        armed(1 << 40, 0xffff_fff0, &encoded("forged")),
        // A registered one (the scenarios' first four all take a string) with a state that
        // does not decode: a length beyond its bytes.
        armed(1 << 41, 0, &[0xff; 12]),
        // A function's address, as the channel once carried them.
        raw_address,
        // A kind of message there is not.
        vec![9, 1, 2, 3],
        // The end of a guard that was never armed.
        disarm,
    ]
}

/// A function whose address the forger sends.
fn forged() {}

/// Writes `message` to `channel` as one packet.
pub fn send(channel: RawFd, message: &[u8]) {
    // SAFETY: a live buffer of that length.
    let sent = unsafe {
        libc::send(
            channel,
            message.as_ptr().cast(),
            message.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    assert_eq!(sent, message.len() as isize, "sent");
}

/// Clones a child that keeps `channel` (none of the `fork` handlers run: a raw `clone`), sends
/// on it a message as well made as the program's own, arming guard `1 << 44` with each of the
/// first registered cleanups, and exits; waits for it.
pub fn from_a_child(channel: RawFd) {
    let messages: Vec<Vec<u8>> = (0..4)
        .map(|place| armed((1 << 44) + u64::from(place), place, &encoded("impostor")))
        .collect();
    // SAFETY: `clone` as `fork` does, without its handlers; the child only writes and exits,
    // both async-signal-safe, with what the parent made beforehand.
    let child = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::SIGCHLD,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if child == 0 {
        for message in &messages {
            // SAFETY: live buffers of their lengths.
            unsafe {
                libc::send(
                    channel,
                    message.as_ptr().cast(),
                    message.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
        }
        // SAFETY: ends the child at once, running nothing of the parent's.
        unsafe { libc::_exit(0) };
    }
    assert!(child > 0, "clone: {}", std::io::Error::last_os_error());
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(child as libc::pid_t, &mut status, 0) };
    assert_eq!(status, 0, "the child's status");
}
