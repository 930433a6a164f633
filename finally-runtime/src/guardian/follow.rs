//! The guardian follows the program's credentials, so as never to act with more privilege than
//! the program had when it ended.
//!
//! The guardian starts as a copy of the program, with its credentials. A program may give up
//! privileges later: a daemon started as root drops to its user, or `chroot`s. So while the
//! program runs, the guardian looks at it whenever the program says something and, if it was
//! started with privileges to give up, every tenth of a second: it notes the program's
//! credentials, and holds its root and working directories open where they are not its own.
//! When the program has ended, the guardian first reads what only it may (how the program
//! died), then takes on the credentials of the program's zombie, exact, if its parent has not
//! reaped it yet, otherwise those it saw last, and its directories; and only then runs
//! anything. It refuses where what it saw last may be more than the program ended with: a
//! privileged program whose zombie is not (it may have `chroot`ed too), or one reaped having
//! sent something since the guardian last saw it privileged, the last with other real ids than
//! it had then. What remains is a program that gives up privileges and dies, sending nothing,
//! within a look of the last one, and is reaped before the guardian sees its zombie: its
//! cleanups run as it was last seen.
//!
//! It follows the user and group ids, the groups, the capabilities and `no_new_privs`
//! (`sys::credentials`), and the root and working directories. Where it cannot take them on,
//! it refuses: it runs no cleanup, and says why. It does not follow namespaces, resource
//! limits, seccomp filters or security labels.

use std::io;

use libc::{c_int, pid_t};

use super::channel::Heard;
use crate::sys::credentials::{Credentials, Directory};
use crate::sys::proc;

/// How often the guardian looks at a program that could still change its privileges, in
/// milliseconds.
const LOOK_EVERY: c_int = 100;

/// What the guardian saw of the program.
pub(super) struct Follow {
    pid: pid_t,
    /// The program's start time, which tells it (and its zombie) from a later process with its
    /// pid.
    start: Option<u64>,
    /// The program's credentials, last seen.
    seen: Option<Credentials>,
    /// Its root directory, held open, where it is not the guardian's.
    root: Option<Directory>,
    /// Its working directory, held open, where it is not the guardian's.
    cwd: Option<Directory>,
    /// Whether to look every [`LOOK_EVERY`]: while the guardian itself has privileges to give
    /// up, which it keeps until the end.
    often: bool,
    /// How many messages the program had sent when the guardian last saw it alive: if it sent
    /// more, it ran on after that.
    heard: u64,
    /// Why the guardian cannot follow it, if it cannot.
    refused: Option<io::Error>,
}

impl Follow {
    /// Follows the program `pid`, started at `start`, from which this process was forked: its
    /// credentials then are this process's own.
    pub(super) fn new(pid: pid_t, start: Option<u64>) -> Follow {
        let (seen, refused) = match Credentials::own() {
            Ok(own) => (Some(own), None),
            Err(error) => (None, Some(failed("read its own credentials", error))),
        };
        Follow {
            pid,
            start,
            often: seen.as_ref().is_some_and(Credentials::can_change),
            seen,
            root: None,
            cwd: None,
            heard: 0,
            refused,
        }
    }

    /// `poll`'s time-out: the shorter of `other` and how long until the next look (-1: none).
    pub(super) fn patience_with(&self, other: c_int) -> c_int {
        let ours = match self.often && self.refused.is_none() {
            true => LOOK_EVERY,
            false => -1,
        };
        match (ours, other) {
            (-1, other) => other,
            (ours, -1) => ours,
            (ours, other) => ours.min(other),
        }
    }

    /// Looks at the program, alive, having `heard` from it, and notes what it sees.
    pub(super) fn look(&mut self, heard: Heard) {
        if self.refused.is_some() {
            return;
        }
        let Some(seen) = self.credentials(false) else {
            return;
        };
        let directories = Directory::of(self.pid, true)
            .and_then(|root| Ok((root, Directory::of(self.pid, false)?)));
        match directories {
            Ok((root, cwd)) => {
                // Only a change is worth a descriptor: held until the next.
                if root.is_some() || self.root.is_some() {
                    self.root = root;
                }
                self.cwd = cwd;
            }
            // Ending meanwhile (a process lets go of its directories before it is a zombie), or
            // gone: they no longer change, and its end is the guardian's next step.
            Err(error) if error.kind() == io::ErrorKind::NotFound => return,
            // A program that can change its root directory, whose directories the guardian
            // cannot see: it cannot follow it there.
            Err(error) if seen.can_change() => {
                self.refused = Some(failed("see the program's directories", error));
            }
            Err(_) => {}
        }
        self.seen = Some(seen);
        self.heard = heard.messages;
    }

    /// The program has ended, having `heard` from it in all: takes on its credentials (its
    /// zombie's, or those last seen) and directories. Whether the guardian may then run the
    /// cleanups: not if it could not follow the program, and why.
    pub(super) fn take_on(mut self, heard: Heard) -> io::Result<()> {
        if let Some(refused) = self.refused {
            return Err(refused);
        }
        let privileged = self.seen.as_ref().is_some_and(Credentials::can_change);
        match self.credentials(true) {
            // It gave up its privileges after the guardian last looked: it may have changed its
            // root directory then too, which its zombie no longer tells.
            Some(zombie) if privileged && !zombie.can_change() => {
                return Err(io::Error::other(
                    "it gave up its privileges in its last moments, before the guardian could see its root directory",
                ))
            }
            Some(zombie) => self.seen = Some(zombie),
            // Reaped, having run on (it sent more) since the guardian last saw it privileged,
            // and its last message not sent with the real ids it had then (or not known).
            None if privileged && heard.messages > self.heard && !self.still(heard) => {
                return Err(io::Error::other(
                    "it was reaped before the guardian could see what privileges it ended with",
                ))
            }
            None => {}
        }
        if let Some(root) = &self.root {
            root.enter_as_root()
                .map_err(|error| failed("chroot as the program did", error))?;
        }
        if let Some(cwd) = &self.cwd {
            cwd.enter()
                .map_err(|error| failed("enter the program's working directory", error))?;
        }
        let Some(theirs) = &self.seen else {
            return Err(io::Error::other("its credentials were never seen"));
        };
        let ours = Credentials::own()?;
        if ours != *theirs {
            ours.take_on(theirs)?;
        }
        Ok(())
    }

    /// Whether the program's last message was sent with the real user and group ids it had
    /// when last seen, as the kernel tells: a program that gives up a user's privileges gives
    /// up its real ids too, or it can take them back. (One that stays root and gives up only
    /// capabilities is followed by looking alone.)
    fn still(&self, heard: Heard) -> bool {
        let seen = self.seen.as_ref().map(|seen| (seen.uids[0], seen.gids[0]));
        heard.ids.is_some() && heard.ids == seen
    }

    /// The program's credentials, if `/proc` tells them of the program itself: alive, or a
    /// zombie (`ended`), not another process that took its pid.
    fn credentials(&self, ended: bool) -> Option<Credentials> {
        let stat = proc::stat(self.pid)?;
        if Some(stat.start) != self.start || (stat.state == b'Z') != ended {
            return None;
        }
        let credentials = Credentials::of(self.pid)?;
        // Still the same process, read while it was there.
        (proc::stat(self.pid)?.start == stat.start).then_some(credentials)
    }
}

fn failed(what: &str, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("could not {what}: {error}"))
}
