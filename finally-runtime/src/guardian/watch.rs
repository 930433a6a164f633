//! The guardian process: it watches the program's process, and cleans up if it died.

use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::atomic::Ordering::SeqCst;

use libc::{c_int, pid_t};

use super::channel::Inbox;
use super::notes::Notes;
use super::{GUARDING, STATE};
use crate::report::report;
use crate::sys::{fd, proc, process, signal};
use crate::{config, registry, Exit, Signal};

/// How often a guardian without a pidfd looks at the program in `/proc`, in milliseconds.
const LOOK_EVERY: c_int = 100;

/// How the guardian sees the program's process end.
#[derive(Clone, Copy)]
pub(super) enum Watch {
    /// A pidfd, readable once the process has ended.
    Pidfd(RawFd),
    /// Where there is no pidfd: the process's pid and start time, looked at every [`LOOK_EVERY`].
    Stat { pid: pid_t, start: u64 },
}

impl Watch {
    /// A watch on this process, taken while it is certainly alive: with its pidfd, if any, which
    /// the caller closes once it has forked.
    pub(super) fn this_process() -> io::Result<(Watch, Option<OwnedFd>)> {
        let pid = process::id();
        let no_pidfd = match process::pidfd(pid) {
            Ok(pidfd) => {
                use std::os::fd::AsRawFd;
                return Ok((Watch::Pidfd(pidfd.as_raw_fd()), Some(pidfd)));
            }
            Err(error) => error,
        };
        match proc::stat(pid) {
            Some((_, start)) => Ok((Watch::Stat { pid, start }, None)),
            None => Err(io::Error::new(
                no_pidfd.kind(),
                format!("pidfd_open: {no_pidfd}, and /proc/self/stat cannot be read either"),
            )),
        }
    }

    /// The descriptor to poll, or -1.
    pub(super) fn fd(self) -> RawFd {
        match self {
            Watch::Pidfd(fd) => fd,
            Watch::Stat { .. } => -1,
        }
    }

    /// How long to wait at most before calling [`ended`](Self::ended) again, for `poll`.
    fn patience(self) -> c_int {
        match self {
            Watch::Pidfd(_) => -1,
            Watch::Stat { .. } => LOOK_EVERY,
        }
    }

    fn ended(self) -> bool {
        match self {
            Watch::Pidfd(fd) => {
                let mut ended = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid `pollfd`.
                unsafe { libc::poll(&mut ended, 1, 0) == 1 }
            }
            // Gone, a zombie, or another process with the same pid.
            Watch::Stat { pid, start } => proc::stat(pid).map_or(true, |(state, now)| {
                matches!(state, b'Z' | b'X') || now != start
            }),
        }
    }
}

/// The guardian process: waits for the program's end, cleans up if it died, exits.
pub(super) fn guard<C: Fn(&Exit)>(
    program: RawFd,
    channel: RawFd,
    watch: Watch,
    notes: &Notes,
    cleanup: C,
) -> ! {
    STATE.store(GUARDING, SeqCst);
    // SAFETY: this process's own descriptors: the program's end of the channel, which it does
    // not use, and every one it inherited but its own end and the watch.
    unsafe {
        libc::close(program);
        fd::close_all_but(&[channel, watch.fd()]);
    }
    process::set_name(c"finally-guardian");
    let mut inbox = Inbox::new(channel);
    while !watch.ended() {
        let mut ready = [inbox.fd, watch.fd()].map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        // SAFETY: two valid `pollfd`s; one with a negative descriptor is left alone.
        unsafe { libc::poll(ready.as_mut_ptr(), 2, watch.patience()) };
        if inbox.receive() {
            signal::exit_flushing(0);
        }
    }
    // What the program sent just before it ended.
    if inbox.receive() || notes.completed.load(SeqCst) {
        signal::exit_flushing(0);
    }
    clean_up(cleanup, notes.crash());
    signal::exit_flushing(0)
}

/// Runs the cleanup of a program that died, by `signal` where known.
pub(super) fn clean_up<C: Fn(&Exit)>(cleanup: C, signal: Option<Signal>) {
    let exit = Exit::Died { signal };
    if registry::call_caught(|| cleanup(&exit)).is_some() {
        report(format_args!("the cleanup panicked in the guardian"));
    }
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
        unsafe { signal::catch(signal, nothing) };
    }
}
