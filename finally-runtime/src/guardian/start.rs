//! Starting the guardian: two forks, and what the intermediate process says of the second.

use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::sync::atomic::Ordering::SeqCst;

use super::notes::{Notes, Page};
use super::watch::{self, Watch};
use super::wire::{self, FORK_REPLY};
use super::{failed, Started};
use crate::cleanup::Run;
use crate::sys::process::{self, Forked};
use crate::sys::{self, end, fd, socket};

/// Starts the guardian.
pub(super) fn start<C: Run>(cleanup: C) -> io::Result<Started> {
    match sys::proc::threads() {
        Some(1) => {}
        Some(_) => {
            return Err(io::Error::other(
                "the program already runs several threads; start it first thing in `main`",
            ))
        }
        // Forking a process whose other threads may hold locks would make a guardian that can
        // deadlock in the cleanup, long after the program ended: better none, and said so.
        None => {
            return Err(io::Error::other(
                "/proc/self/task cannot be read to tell whether the program runs a single thread",
            ))
        }
    }
    if !fd::can_close_all() {
        return Err(io::Error::other(
            "neither close_range(2) nor /proc/self/fd can close the program's descriptors in the guardian",
        ));
    }
    let page = Page::new()?;
    let (program, guardian) = socket::pair().map_err(|error| failed("socketpair", error))?;
    // Before the program can send anything: each message then says who sent it.
    socket::pass_credentials(guardian.as_raw_fd()).map_err(|error| failed("SO_PASSCRED", error))?;
    if process::id() == 1 {
        return super::init::start(program, guardian, page, cleanup);
    }
    let (watch, pidfd) = Watch::this_process()?;
    // SAFETY: the process has one thread (checked above), so the child is a complete copy that
    // may run any code.
    let child = match unsafe { process::fork() }.map_err(|error| failed("fork", error))? {
        // SAFETY: in the child just forked, whose descriptors these are.
        Forked::Child => unsafe {
            fork_guardian(
                program.as_raw_fd(),
                guardian.as_raw_fd(),
                watch,
                page.notes(),
                cleanup,
            )
        },
        Forked::Parent(child) => child,
    };
    // With SIGCHLD ignored, the kernel reaps it and this returns once it has ended, which does
    // as well.
    process::reap(child);
    drop((guardian, pidfd));
    // What the intermediate process said, if it could say anything.
    let mut reply = [0u8; FORK_REPLY];
    let length = socket::receive(program.as_raw_fd(), &mut reply).map_or(0, |got| got.length);
    let failure = match wire::parse_fork_reply(&reply, length) {
        Some(Ok(pid)) => {
            return Ok(Started {
                channel: program.into_raw_fd() as sys::link::End,
                guardian: pid,
                notes: page.keep(),
            })
        }
        Some(Err(errno)) => failed("the second fork", io::Error::from_raw_os_error(errno)),
        None => io::Error::other("the process that forks the guardian ended before it could say"),
    };
    // A guardian forked by an intermediate process killed before it could say so must not take
    // the program, which goes on without it, for dead at its end.
    page.notes().completed.store(true, SeqCst);
    Err(failure)
}

/// The intermediate process: forks the guardian, tells the program how that went, and exits,
/// which leaves the guardian to init (or the nearest subreaper) rather than to the program.
///
/// # Safety
///
/// Only in the child forked by [`start`], with its two ends of the channel.
unsafe fn fork_guardian<C: Run>(
    program: RawFd,
    guardian: RawFd,
    watch: Watch,
    notes: &Notes,
    cleanup: C,
) -> ! {
    // SAFETY: this process has one thread, as the program had when it forked it. The guardian
    // is born with these actions: once the program hears of it, Ctrl-C cannot end it.
    let forked = unsafe {
        watch::shrug_off_terminal_signals();
        process::fork()
    };
    let reply = match forked {
        Ok(Forked::Child) => watch::guard(program, guardian, watch, notes, cleanup),
        Ok(Forked::Parent(pid)) => wire::fork_reply(Ok(pid)),
        Err(error) => wire::fork_reply(Err(error.raw_os_error().unwrap_or(0))),
    };
    // The channel is empty: this fits. Lost, it is reported as an early end.
    let _ = socket::send(guardian, &[&reply]);
    // Skipping the program's exit hooks, which are not this process's to run.
    end::exit_now(0)
}
