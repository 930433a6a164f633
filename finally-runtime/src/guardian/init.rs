//! PID 1: the original process stays as the program's init and guardian.

use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering::SeqCst;

use libc::{c_int, pid_t};

use super::failed;
use super::follow::Follow;
use super::notes::{Notes, Page};
use super::Started;
use crate::cleanup::Run;
use crate::exit::Signal;
use crate::sys::process::{self, Ended, Forked};
use crate::sys::{fd, proc, signal};

/// The signals that PID 1 hands on to the program: those a container runtime, a user or a
/// terminal sends to stop it or poke it. Not the crashes, which are the init's own.
const FORWARDED: [c_int; 8] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGWINCH,
];

/// Starts the guardian of a program that is PID 1 (in a container without an init): the kernel
/// kills every other process of the PID namespace when PID 1 ends, a guardian included. So the
/// process stays as the program's init and guardian (see [`init`]), and the program goes on as
/// its child, with its signal mask and actions as they were.
pub(super) fn start<C: Run>(
    program: OwnedFd,
    guardian: OwnedFd,
    page: Page,
    cleanup: C,
) -> io::Result<Started> {
    let handled = signal::set_of(FORWARDED.into_iter().chain([libc::SIGCHLD]));
    // Blocked from before the fork, so that none sent to PID 1 meanwhile is lost: the init
    // reads them from a signalfd.
    let mask = signal::block(&handled);
    let restore = |error: io::Error| {
        signal::set_mask(&mask);
        error
    };
    let signals = signal::signalfd(&handled).map_err(|error| restore(failed("signalfd", error)))?;
    // SAFETY: the process has one thread, so the child is a complete copy.
    match unsafe { process::fork() }.map_err(|error| restore(failed("fork", error)))? {
        Forked::Child => {
            signal::set_mask(&mask);
            drop((guardian, signals));
            Ok(Started {
                channel: program.into_raw_fd() as crate::sys::link::End,
                guardian: process::parent_id(),
                notes: page.keep(),
            })
        }
        // SAFETY: the process that forked `child`, with its descriptors.
        Forked::Parent(child) => unsafe {
            init(
                child,
                signals.as_raw_fd(),
                &mask,
                guardian.as_raw_fd(),
                program.as_raw_fd(),
                page.notes(),
                cleanup,
            )
        },
    }
}

/// PID 1 as the program's init and guardian: hands the [`FORWARDED`] signals on to the
/// program, reaps every child (orphans come to PID 1), takes in the state of the program's guards, and
/// once the program has ended runs the cleanup unless it completed its own. Being its parent, it
/// knows how the program ended, the signal that killed it too. It then exits with the program's
/// exit code, or `128 +` the signal's number: PID 1 cannot end by a signal.
///
/// # Safety
///
/// Only in the process that forked `program`, with its descriptors: `signals` reads the blocked
/// signals, and `mask` is the signal mask the program had.
unsafe fn init<C: Run>(
    program: pid_t,
    signals: RawFd,
    mask: &libc::sigset_t,
    channel: RawFd,
    program_end: RawFd,
    notes: &Notes,
    cleanup: C,
) -> ! {
    // SAFETY: this process's own descriptors: the program's end of the channel, which it does
    // not use, and every one it inherited but the signals' and its own end.
    let mut inbox =
        unsafe { super::watch::enter(c"finally-init", program, program_end, channel, &[signals]) };
    let mut told = false;
    let mut follow = Follow::new(program, proc::stat(program).map(|stat| stat.start));
    let mut at_the_end = None;
    let status = loop {
        fd::wait_readable([signals, inbox.link as RawFd], follow.patience_with(-1));
        told |= inbox.receive();
        follow.look(inbox.heard);
        notes.looked.fetch_add(1, SeqCst);
        if let Some(status) = forward_and_reap(signals, program, || {
            // Its zombie, before it is reaped: what it had when it ended, exact.
            let follow = std::mem::replace(&mut follow, Follow::new(program, None));
            at_the_end = Some(follow.take_on(inbox.heard));
        }) {
            break status;
        }
    };
    // What the program sent just before it ended.
    told |= inbox.receive();
    let (code, signal) = match status {
        Ended::Signal(signal) => (128 + signal, Some(Signal::new(signal))),
        Ended::Code(code) => (code, notes.crash()),
    };
    if !(told || notes.completed.load(SeqCst)) {
        // As the program had it, for the programs the cleanup starts: nothing is handed on now.
        signal::set_mask(mask);
        match at_the_end.unwrap_or(Ok(())) {
            Ok(()) => inbox.clean_up(cleanup, signal, notes),
            Err(why) => super::watch::refused(&why),
        }
    }
    signal::exit_flushing(code)
}

/// Hands the signals PID 1 received on to `program`, and reaps the children that ended: the
/// program's wait status, once it has ended, after `before_reaping` has looked at its zombie.
fn forward_and_reap(
    signals: RawFd,
    program: pid_t,
    before_reaping: impl FnOnce(),
) -> Option<Ended> {
    signal::read_signals(signals, |signal| {
        if signal != libc::SIGCHLD {
            // SAFETY: our own child, not reaped yet (it is reaped below).
            unsafe { process::send_signal(program, signal) };
        }
    });
    if process::has_ended(program) {
        before_reaping();
    }
    // SIGCHLDs coalesce: every child that ended, whether one was told or not.
    let mut ended = None;
    while let Some((pid, how)) = process::reap_one_ended() {
        if pid == program {
            ended = Some(how);
        }
    }
    ended
}
