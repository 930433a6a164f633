//! Two copies of `finally` in one process, as two libraries built against semver-incompatible
//! versions bring: each installs its handler, the later over the earlier, and each would take
//! the other for the application's handler and leave the signal to it. They recognise each
//! other instead, and talk through the handler each replaced.
//!
//! - **Recognised**: a copy installs its handler with the [`fingerprint`] as its mask (the
//!   signals blocked while it runs: two that only a terminal's window or a socket sends, which
//!   then wait some microseconds). An action with `SA_SIGINFO` and exactly that mask is a
//!   copy's ([`is_copy`]).
//! - **Asked**: when a signal comes, a copy whose handler replaced another copy's calls it with
//!   [`ask`]: the copy below looks further down as it would for itself (it chains to the
//!   application's handler, if one was there before it, or asks the copy below it) and answers
//!   whether someone else handles the signal. It also counts the signal, for its
//!   `force_quit_after`, and starts its deadline, and answers the latest its grace periods may
//!   last: the copy above keeps to it too, so that the application's `timeout`, set on one
//!   copy, leaves the cleanups of all their time.
//! - **Handed on**: the copy that acted runs its cleanups and, instead of ending the process,
//!   calls the copy below with [`hand_on`]: that one acts as if the kernel had delivered the
//!   signal to it, its grace periods within what the copy above knew, and so on down to the
//!   first copy installed, which ends the process by the signal. Every copy's cleanups run
//!   once, the last installed's first.
//!
//! - **Requested**: the copy that acts tells the copies below that a stop is requested, before
//!   it requests its own ([`tell_requested`]): their `stop_requested` is true from then on, and
//!   what of theirs returns is told the signal, as the copy's own is.
//! - **Exiting**: the exit hooks of the copies run one after the other, the last installed's
//!   first; its hook tells the copies below that the process is exiting ([`tell_exiting`]), so
//!   that their deadlines count from there too.
//! - **Looked at**: to tell, with no signal arriving, whether someone else's handler takes a
//!   signal (`finally::signal_handling`), a copy asks the copy below it, or the one installed
//!   over it, whether such a handler is at or below that copy ([`look`]); the copy answers from
//!   the action its own handler replaced, asking on down, and calls no handler. A copy that does
//!   not know this call (an earlier one) gives no answer: it returns at once from a call it does
//!   not know.
//!
//! A copy is called so with a signal number whose high bits say what is asked, and the
//! protocol's version; only a copy's handler is ever called with such a number, and `info`
//! then points at a [`Message`]. A later version keeps what version 1 says, so that copies of
//! any two versions understand each other.

use std::ffi::c_void;

use libc::{c_int, siginfo_t};

use crate::sys::signal::{self as sys_signal, Handler};

/// The mask that says "a copy of `finally`".
pub(crate) fn fingerprint() -> libc::sigset_t {
    sys_signal::set_of([libc::SIGURG, libc::SIGWINCH])
}

/// Whether `action` is the handler of a copy of `finally`. Async-signal-safe.
pub(crate) fn is_copy(action: &libc::sigaction) -> bool {
    action.sa_flags & libc::SA_SIGINFO != 0
        && sys_signal::is_handler(action)
        && sys_signal::same_set(&action.sa_mask, &fingerprint())
}

/// The high bits of a signal number that a copy calls another with.
const MARK: c_int = 0x4e00_0000;
const VERSION: c_int = 1;
const ASK: c_int = 1;
const HAND_ON: c_int = 2;
const EXITING: c_int = 3;
const REQUESTED: c_int = 4;
const LOOK: c_int = 5;

/// What a copy says to the copy below, and hears back, through the `info` argument.
#[repr(C)]
struct Message {
    /// The kernel's `info`, for the handlers further down.
    info: *mut siginfo_t,
    /// The answer to [`ask`] and [`look`]: [`SOMEONE_ELSE`] or [`NO_ONE_ELSE`]; 0 until then.
    answer: u32,
    /// The latest grace periods may last, on the monotonic clock (`sys::monotonic_nanos`), or
    /// `u64::MAX`: what the caller knows, and after [`ask`], what the asked copy does.
    grace_ends_by: u64,
    /// For [`tell_exiting`]: the exit code, or `i32::MIN` if unknown.
    code: i32,
}

impl Message {
    /// A message that says nothing yet: no `info`, no answer, no deadline, no exit code.
    fn blank() -> Self {
        Message {
            info: std::ptr::null_mut(),
            answer: 0,
            grace_ends_by: u64::MAX,
            code: i32::MIN,
        }
    }
}

const SOMEONE_ELSE: u32 = 1;
const NO_ONE_ELSE: u32 = 2;

/// A call from the copy above.
pub(crate) enum Call {
    /// Whether someone else handles `signal` below (see [`Asked::answer`]).
    Ask(Asked),
    /// The copies above have run their cleanups: act on the signal now, grace periods ending
    /// by the time given.
    HandOn { signal: c_int, grace_ends_by: u64 },
    /// The process is exiting, with `code` if known. Not from a signal handler: from the exit
    /// hook of the copy above.
    Exiting { code: Option<i32> },
    /// A stop is requested, for the signal. Not from a signal handler: from the shutdown of the
    /// copy above.
    Requested(c_int),
    /// Whether someone else's handler takes the signal below this copy (see [`Looked::answer`]).
    /// Not from a signal handler.
    Look(Looked),
}

/// A question from the copy above.
pub(crate) struct Asked {
    pub(crate) signal: c_int,
    /// The kernel's `info`.
    pub(crate) info: *mut siginfo_t,
    message: *mut Message,
}

impl Asked {
    /// Answers whether someone else handles the signal below this copy, and the latest its
    /// grace periods may last.
    pub(crate) fn answer(self, someone_else: bool, grace_ends_by: u64) {
        let answer = if someone_else {
            SOMEONE_ELSE
        } else {
            NO_ONE_ELSE
        };
        // SAFETY: the asking copy's live message (`read`).
        unsafe {
            (*self.message).answer = answer;
            (*self.message).grace_ends_by = grace_ends_by;
        }
    }
}

/// A question from another copy, with no signal arriving.
pub(crate) struct Looked {
    pub(crate) signal: c_int,
    message: *mut Message,
}

impl Looked {
    /// Answers whether someone else's handler takes the signal below this copy.
    pub(crate) fn answer(self, someone_else: bool) {
        let answer = if someone_else {
            SOMEONE_ELSE
        } else {
            NO_ONE_ELSE
        };
        // SAFETY: the asking copy's live message (`read`).
        unsafe { (*self.message).answer = answer };
    }
}

/// The call from the copy above that `signal` and `info` make, if they make one.
/// Async-signal-safe.
pub(crate) fn read(signal: c_int, info: *mut siginfo_t) -> Option<Call> {
    if signal & 0x7f00_0000 != MARK || (signal >> 16) & 0xff < 1 {
        return None;
    }
    let number = signal & 0xff;
    match (signal >> 8) & 0xff {
        ASK => {
            let message = info.cast::<Message>();
            // SAFETY: only a copy calls with the mark, and then `info` is its message.
            let info = unsafe { (*message).info };
            Some(Call::Ask(Asked {
                signal: number,
                info,
                message,
            }))
        }
        HAND_ON => {
            // SAFETY: only a copy calls with the mark, and then `info` is its message.
            let grace_ends_by = unsafe { (*info.cast::<Message>()).grace_ends_by };
            Some(Call::HandOn {
                signal: number,
                grace_ends_by,
            })
        }
        REQUESTED => Some(Call::Requested(number)),
        LOOK => Some(Call::Look(Looked {
            signal: number,
            message: info.cast::<Message>(),
        })),
        EXITING => {
            // SAFETY: as above.
            let code = unsafe { (*info.cast::<Message>()).code };
            Some(Call::Exiting {
                code: (code != i32::MIN).then_some(code),
            })
        }
        _ => None,
    }
}

/// Asks the copy whose handler is `below` whether someone else handles `signal` below it;
/// returns that, and the latest its grace periods may last (`u64::MAX`: no deadline known).
/// Async-signal-safe, as far as the handlers below are.
///
/// # Safety
///
/// `below` must be a copy's action ([`is_copy`]); `info` and `context` what the kernel passed.
pub(crate) unsafe fn ask(
    below: &libc::sigaction,
    signal: c_int,
    info: *mut siginfo_t,
    context: *mut c_void,
) -> (bool, u64) {
    let mut message = Message {
        info,
        ..Message::blank()
    };
    // SAFETY: the caller vouches for all.
    unsafe { send(below, ASK, signal, &mut message, context) };
    // No answer: not a copy after all, but a handler of someone's that ran.
    (message.answer != NO_ONE_ELSE, message.grace_ends_by)
}

/// Asks the copy whose handler is `action` whether someone else's handler takes `signal` at
/// or below it, calling none; `None` if it does not answer (an earlier copy, which does not
/// know the call). Not from a signal handler.
///
/// # Safety
///
/// `action` must be a copy's action ([`is_copy`]).
pub(crate) unsafe fn look(action: &libc::sigaction, signal: c_int) -> Option<bool> {
    let mut message = Message::blank();
    // SAFETY: the caller vouches for the action.
    unsafe { send(action, LOOK, signal, &mut message, std::ptr::null_mut()) };
    match message.answer {
        SOMEONE_ELSE => Some(true),
        NO_ONE_ELSE => Some(false),
        _ => None,
    }
}

/// Hands `signal` on to the copy whose handler is `below`, its grace periods to end by
/// `grace_ends_by`: it runs its cleanups, then ends the process (or hands it on further).
///
/// # Safety
///
/// `below` must be a copy's action ([`is_copy`]).
pub(crate) unsafe fn hand_on(below: &libc::sigaction, signal: c_int, grace_ends_by: u64) {
    let mut message = Message {
        grace_ends_by,
        ..Message::blank()
    };
    // SAFETY: the caller vouches for the action.
    unsafe { send(below, HAND_ON, signal, &mut message, std::ptr::null_mut()) };
}

/// Tells the copy whose handler is `below` that a stop is requested for `signal`. Not from a
/// signal handler.
///
/// # Safety
///
/// `below` must be a copy's action ([`is_copy`]).
pub(crate) unsafe fn tell_requested(below: &libc::sigaction, signal: c_int) {
    let call = MARK | VERSION << 16 | REQUESTED << 8 | signal;
    // SAFETY: a copy's handler, which reads nothing more for this call.
    unsafe { handler(below)(call, std::ptr::null_mut(), std::ptr::null_mut()) };
}

/// Tells the copy whose handler (for `signal`) is `below` that the process is exiting, with
/// `code` if known. From an exit hook, not a signal handler.
///
/// # Safety
///
/// `below` must be a copy's action ([`is_copy`]).
pub(crate) unsafe fn tell_exiting(below: &libc::sigaction, signal: c_int, code: Option<i32>) {
    let mut message = Message {
        code: code.unwrap_or(i32::MIN),
        ..Message::blank()
    };
    // SAFETY: the caller vouches for the action.
    unsafe { send(below, EXITING, signal, &mut message, std::ptr::null_mut()) };
}

/// Calls the copy whose handler is `action` with the call `kind` for `signal`, and `message`.
/// Async-signal-safe, as far as that handler is for `kind`.
///
/// # Safety
///
/// `action` must be a copy's action ([`is_copy`]); `context` null, or what the kernel passed.
unsafe fn send(
    action: &libc::sigaction,
    kind: c_int,
    signal: c_int,
    message: &mut Message,
    context: *mut c_void,
) {
    let call = MARK | VERSION << 16 | kind << 8 | signal;
    // SAFETY: a copy's handler, which reads the message for a marked call; the caller vouches
    // for the rest.
    unsafe { handler(action)(call, (message as *mut Message).cast(), context) };
}

/// The function of a copy's action.
///
/// # Safety
///
/// `action` must be a copy's.
unsafe fn handler(action: &libc::sigaction) -> Handler {
    // SAFETY: a copy installs an `SA_SIGINFO` handler.
    unsafe { std::mem::transmute::<usize, Handler>(action.sa_sigaction) }
}
