//! The guardian process: it watches the program's process, and cleans up if it died.

use std::ffi::CStr;
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::atomic::Ordering::SeqCst;

use libc::{c_int, pid_t};

use super::channel::Inbox;
use super::follow::Follow;
use super::notes::Notes;
use crate::cleanup::Run;
use crate::config;
use crate::exit::Signal;
use crate::report::report;
use crate::sys::process::{self, Ended};
use crate::sys::{fd, link, proc, signal};

/// How often a guardian without a pidfd looks at the program in `/proc`, in milliseconds.
const LOOK_EVERY: c_int = 100;

/// How the guardian sees the program's process end, and learns how it ended.
#[derive(Clone, Copy)]
pub(super) struct Watch {
    /// A pidfd, readable once the process has ended; -1 where there is none, and the guardian
    /// looks at the process in `/proc` every [`LOOK_EVERY`].
    pidfd: RawFd,
    pid: pid_t,
    /// The process's start time, which tells it from a later one with the same pid; unknown
    /// where `/proc` cannot tell (then a pidfd is needed).
    start: Option<u64>,
}

impl Watch {
    /// A watch on this process, taken while it is certainly alive: with its pidfd, if any, which
    /// the caller closes once it has forked.
    pub(super) fn this_process() -> io::Result<(Watch, Option<OwnedFd>)> {
        use std::os::fd::AsRawFd;
        let pid = process::id();
        let start = proc::stat(pid).map(|stat| stat.start);
        let pidfd = process::pidfd(pid);
        let watch = |pidfd| Watch { pidfd, pid, start };
        match (pidfd, start) {
            (Ok(pidfd), _) => Ok((watch(pidfd.as_raw_fd()), Some(pidfd))),
            (Err(_), Some(_)) => Ok((watch(-1), None)),
            (Err(no_pidfd), None) => Err(io::Error::new(
                no_pidfd.kind(),
                format!("pidfd_open: {no_pidfd}, and /proc/self/stat cannot be read either"),
            )),
        }
    }

    /// The descriptor to poll, or -1.
    pub(super) fn fd(self) -> RawFd {
        self.pidfd
    }

    /// How long to wait at most before calling [`ended`](Self::ended) again, for `poll`.
    fn patience(self) -> c_int {
        if self.pidfd >= 0 {
            -1
        } else {
            LOOK_EVERY
        }
    }

    fn ended(self) -> bool {
        if self.pidfd >= 0 {
            return fd::wait_readable([self.pidfd], 0) == 1;
        }
        // Gone, a zombie, or another process with the same pid.
        proc::stat(self.pid).map_or(true, |now| {
            matches!(now.state, b'Z' | b'X') || Some(now.start) != self.start
        })
    }

    /// The signal that ended the process, read from its zombie while its parent has not reaped
    /// it yet (the guardian is not its parent, so it cannot wait for it): `None` once reaped, or
    /// where it ended with an exit code.
    fn killed_by(self) -> Option<Signal> {
        let zombie = proc::stat(self.pid)?;
        let status = zombie.exit_code?;
        match Ended::from_status(status) {
            Ended::Signal(signal) if zombie.state == b'Z' && Some(zombie.start) == self.start => {
                Some(Signal::new(signal))
            }
            _ => None,
        }
    }
}

/// Makes this process a guardian named `name` (PID 1's or not) of the program `program` (its
/// pid): closes `program_end` (the program's end of the channel) and every descriptor it
/// inherited but `channel` and `keep`, and returns the inbox of `channel`.
///
/// # Safety
///
/// Nothing in this process may use the descriptors it closes.
pub(super) unsafe fn enter(
    name: &CStr,
    program: pid_t,
    program_end: RawFd,
    channel: RawFd,
    keep: &[RawFd],
) -> Inbox {
    super::guarding(program);
    let mut kept = keep.to_vec();
    kept.push(channel);
    // The program's end of the channel, which this process does not use.
    link::close(program_end as link::End);
    // SAFETY: the caller vouches for them.
    unsafe { fd::close_all_but(&kept) };
    process::set_name(name);
    // The system tells who sent each message (`start` asked): the program alone is heard.
    Inbox::new(
        channel as crate::sys::link::End,
        u32::try_from(program).ok(),
    )
}

/// The guardian process: waits for the program's end, cleans up if it died, exits.
pub(super) fn guard<C: Run>(
    program: RawFd,
    channel: RawFd,
    watch: Watch,
    notes: &Notes,
    cleanup: C,
) -> ! {
    // SAFETY: this process's own descriptors: the program's end of the channel, which it does
    // not use, and every one it inherited but its own end and the watch.
    let mut inbox = unsafe {
        enter(
            c"finally-guardian",
            watch.pid,
            program,
            channel,
            &[watch.fd()],
        )
    };
    let mut follow = Follow::new(watch.pid, watch.start);
    while !watch.ended() {
        let patience = follow.patience_with(watch.patience());
        fd::wait_readable([inbox.link as RawFd, watch.fd()], patience);
        if inbox.receive() {
            signal::exit_flushing(0);
        }
        follow.look(inbox.heard);
        notes.looked.fetch_add(1, SeqCst);
    }
    // What the program sent just before it ended.
    if inbox.receive() || notes.completed.load(SeqCst) {
        signal::exit_flushing(0);
    }
    // Read while the guardian may still inspect the program's zombie.
    let signal = notes.crash().or_else(|| watch.killed_by());
    match follow.take_on(inbox.heard) {
        Ok(()) => inbox.clean_up(cleanup, signal, notes),
        Err(why) => refused(&why),
    }
    signal::exit_flushing(0)
}

/// Says that the guardian runs no cleanup, and why: it could not follow the program's
/// credentials.
pub(super) fn refused(why: &io::Error) {
    report(format_args!(
        "the guardian ran no cleanup: it could not act with the program's credentials ({why})"
    ));
}

/// Catches SIGINT, SIGTERM, SIGHUP and SIGQUIT with a handler that does nothing, so that
/// Ctrl-C or a `kill` of the whole process group does not end the guardian before it can act.
///
/// Caught, not ignored: `exec` resets a caught signal to its default action but keeps an ignored
/// one ignored, and a program that a cleanup starts must not find Ctrl-C ignored. A signal the
/// program was started with ignored (`nohup`) stays ignored, as it would for the program's own
/// children.
///
/// # Safety
///
/// Replaces these signals' actions for the whole process.
pub(super) unsafe fn shrug_off_terminal_signals() {
    extern "C" fn nothing(_: c_int) {}
    for signal in config::HANDLED
        .into_iter()
        .filter(|&signal| !signal::is_ignored(signal))
    {
        // SAFETY: a handler that does nothing, which is async-signal-safe; the caller accepts
        // the change.
        unsafe { signal::catch_plain(signal, nothing) };
    }
}
