//! A process's credentials, as `/proc/PID/status` tells them, and taking them on: what the
//! guardian does so as never to act with more privilege than its program (Linux).
//!
//! The credentials are the user and group ids (real, effective, saved), the supplementary
//! groups, the capability sets (permitted, effective, inheritable, bounding) and
//! `no_new_privs`. A process that takes on another's can only lower its own: it drops
//! capabilities from its bounding set, sets its groups and ids, keeps across the change of ids
//! only the capabilities the other has, and clears its ambient ones. Where one of these steps
//! fails, it has not got there, and says so.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use libc::{c_int, gid_t, pid_t, uid_t};

use super::check;

/// What a process may do, as far as its credentials say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Credentials {
    /// Real, effective, saved.
    pub(crate) uids: [uid_t; 3],
    pub(crate) gids: [gid_t; 3],
    /// Sorted.
    pub(crate) groups: Vec<gid_t>,
    pub(crate) permitted: u64,
    pub(crate) effective: u64,
    pub(crate) inheritable: u64,
    pub(crate) bounding: u64,
    pub(crate) no_new_privs: bool,
}

impl Credentials {
    /// Process `pid`'s credentials, a zombie's too (until it is reaped); `None` if `/proc`
    /// cannot tell.
    pub(crate) fn of(pid: pid_t) -> Option<Credentials> {
        Credentials::parse(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
    }

    /// This process's credentials, from the kernel itself: also where `/proc` is not there
    /// (after a `chroot`).
    pub(crate) fn own() -> io::Result<Credentials> {
        let (mut uids, mut gids) = ([0; 3], [0; 3]);
        // SAFETY: plain system calls with valid out-parameters.
        unsafe {
            let [real, effective, saved] = &mut uids;
            check(libc::getresuid(real, effective, saved))?;
            let [real, effective, saved] = &mut gids;
            check(libc::getresgid(real, effective, saved))?;
        }
        // SAFETY: as many as there are, into a buffer of that length.
        let mut groups =
            vec![0; check(unsafe { libc::getgroups(0, std::ptr::null_mut()) })? as usize];
        // SAFETY: as above.
        let count = check(unsafe { libc::getgroups(groups.len() as c_int, groups.as_mut_ptr()) })?;
        groups.truncate(count as usize);
        groups.sort_unstable();
        let [effective, permitted, inheritable] = capget()?;
        let bounding = (0..64)
            // SAFETY: a plain query; a capability beyond the kernel's says -1.
            .filter(|&capability| unsafe { libc::prctl(libc::PR_CAPBSET_READ, capability, 0, 0, 0) } == 1)
            .fold(0u64, |set, capability| set | 1 << capability);
        // SAFETY: a plain query.
        let no_new_privs = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) } == 1;
        Ok(Credentials {
            uids,
            gids,
            groups,
            permitted,
            effective,
            inheritable,
            bounding,
            no_new_privs,
        })
    }

    fn parse(status: &str) -> Option<Credentials> {
        let line = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        let ids = |name: &str| -> Option<[u32; 3]> {
            let mut ids = line(name)?.split_whitespace().map(|id| id.parse().ok());
            Some([ids.next()??, ids.next()??, ids.next()??])
        };
        let caps = |name: &str| u64::from_str_radix(line(name)?, 16).ok();
        let mut groups: Vec<gid_t> = line("Groups")?
            .split_whitespace()
            .map(|group| group.parse().ok())
            .collect::<Option<_>>()?;
        groups.sort_unstable();
        Some(Credentials {
            uids: ids("Uid")?,
            gids: ids("Gid")?,
            groups,
            permitted: caps("CapPrm")?,
            effective: caps("CapEff")?,
            inheritable: caps("CapInh")?,
            bounding: caps("CapBnd")?,
            // Since Linux 4.10; before, none could have set it.
            no_new_privs: line("NoNewPrivs").is_some_and(|flag| flag == "1"),
        })
    }

    /// Whether these credentials can change ids or capabilities: root's, or with a capability
    /// permitted.
    pub(crate) fn can_change(&self) -> bool {
        self.uids.contains(&0) || self.permitted != 0
    }

    /// Takes on `target`, from `self`, the calling process's (single-threaded: ids are per
    /// thread for the kernel). Only lowers: a step that would raise a privilege fails.
    ///
    /// # Errors
    ///
    /// The first step that failed, named; the process may then hold some of `target`'s and
    /// some of its own.
    pub(crate) fn take_on(&self, target: &Credentials) -> io::Result<()> {
        let step = |what: &str, result: c_int| {
            check(result)
                .map(drop)
                .map_err(|error| io::Error::new(error.kind(), format!("{what}: {error}")))
        };
        // SAFETY: plain system calls with valid arguments, on this process's own credentials.
        unsafe {
            for capability in 0..64 {
                let bit = 1u64 << capability;
                if self.bounding & bit != 0 && target.bounding & bit == 0 {
                    step(
                        "drop from the bounding set",
                        libc::prctl(libc::PR_CAPBSET_DROP, capability, 0, 0, 0),
                    )
                    .or_else(beyond_the_kernel)?;
                }
            }
            if self.groups != target.groups {
                step(
                    "setgroups",
                    libc::setgroups(target.groups.len(), target.groups.as_ptr()),
                )?;
            }
            if self.gids != target.gids {
                let [real, effective, saved] = target.gids;
                step("setresgid", libc::setresgid(real, effective, saved))?;
            }
            // The capabilities permitted survive the change of ids; `capset` then keeps the
            // target's alone.
            step(
                "keep capabilities",
                libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0),
            )?;
            if self.uids != target.uids {
                let [real, effective, saved] = target.uids;
                step("setresuid", libc::setresuid(real, effective, saved))?;
            }
            step(
                "keep capabilities",
                libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0),
            )?;
            capset(target.permitted, target.effective, target.inheritable)?;
            step(
                "clear the ambient capabilities",
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_CLEAR_ALL,
                    0,
                    0,
                    0,
                ),
            )
            .or_else(beyond_the_kernel)?;
            if target.no_new_privs && !self.no_new_privs {
                step(
                    "no_new_privs",
                    libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
                )?;
            }
        }
        Ok(())
    }
}

/// A capability beyond what this kernel knows, or ambient capabilities before Linux 4.3: there
/// is nothing of it to drop.
fn beyond_the_kernel(error: io::Error) -> io::Result<()> {
    match error.raw_os_error() {
        Some(libc::EINVAL) => Ok(()),
        _ => Err(error),
    }
}

/// `capget`'s and `capset`'s header.
#[repr(C)]
struct Header {
    version: u32,
    pid: c_int,
}

/// Half of each set: `capget`'s and `capset`'s data, two of them.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// 64 capabilities, in two [`Data`].
const VERSION_3: u32 = 0x2008_0522;

/// This process's effective, permitted and inheritable capabilities.
fn capget() -> io::Result<[u64; 3]> {
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: a version 3 header and room for its two data words.
    let got = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    check(got as c_int)?;
    let whole =
        |half: fn(&Data) -> u32| u64::from(half(&data[0])) | u64::from(half(&data[1])) << 32;
    Ok([
        whole(|data| data.effective),
        whole(|data| data.permitted),
        whole(|data| data.inheritable),
    ])
}

/// Sets this process's capabilities, which must be among those permitted.
fn capset(permitted: u64, effective: u64, inheritable: u64) -> io::Result<()> {
    let header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let half = |set: u64, upper: bool| (if upper { set >> 32 } else { set }) as u32;
    let data = [false, true].map(|upper| Data {
        effective: half(effective, upper),
        permitted: half(permitted, upper),
        inheritable: half(inheritable, upper),
    });
    // SAFETY: a version 3 header and its two data words.
    let set = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    check(set as c_int)
        .map(drop)
        .map_err(|error| io::Error::new(error.kind(), format!("capset: {error}")))
}

/// A directory of another process's: its root or its working directory, held open.
pub(crate) struct Directory(OwnedFd);

impl Directory {
    /// Process `pid`'s root directory (`root`) or working directory, if it is not this
    /// process's own; `Ok(None)` if it is. Reading another's takes the right to inspect it.
    pub(crate) fn of(pid: pid_t, root: bool) -> io::Result<Option<Directory>> {
        let name = if root { "root" } else { "cwd" };
        let theirs = std::fs::metadata(format!("/proc/{pid}/{name}"))?;
        let ours = std::fs::metadata(if root { "/" } else { "." })?;
        use std::os::unix::fs::MetadataExt;
        if (theirs.dev(), theirs.ino()) == (ours.dev(), ours.ino()) {
            return Ok(None);
        }
        let path = std::ffi::CString::new(format!("/proc/{pid}/{name}")).expect("no NUL");
        // SAFETY: a NUL-terminated path; the descriptor, if any, is ours alone.
        let fd = check(unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: just opened.
        Ok(Some(Directory(unsafe { OwnedFd::from_raw_fd(fd) })))
    }

    /// Makes it this process's working directory.
    pub(crate) fn enter(&self) -> io::Result<()> {
        // SAFETY: a directory of ours.
        check(unsafe { libc::fchdir(self.0.as_raw_fd()) }).map(drop)
    }

    /// Makes it this process's root directory (and working directory), as `chroot` does. Takes
    /// the privilege to.
    pub(crate) fn enter_as_root(&self) -> io::Result<()> {
        self.enter()?;
        // SAFETY: a NUL-terminated path.
        check(unsafe { libc::chroot(c".".as_ptr()) }).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_proc_says() {
        let status = "Name:\tx\nUid:\t1000\t1001\t1002\t1001\nGid:\t5\t6\t7\t6\nGroups:\t27 4 \nCapInh:\t0000000000000000\nCapPrm:\t00000000a80425fb\nCapEff:\t0000000000000400\nCapBnd:\t000001ffffffffff\nNoNewPrivs:\t1\n";
        let credentials = Credentials::parse(status).expect("parsed");
        assert_eq!(credentials.uids, [1000, 1001, 1002]);
        assert_eq!(credentials.gids, [5, 6, 7]);
        assert_eq!(credentials.groups, [4, 27]);
        assert_eq!(credentials.permitted, 0xa804_25fb);
        assert_eq!(credentials.effective, 0x400);
        assert_eq!(credentials.bounding, 0x1ff_ffff_ffff);
        assert!(credentials.no_new_privs);
        assert!(credentials.can_change());
    }

    #[test]
    fn its_own_from_the_kernel_are_what_proc_says() {
        let own = Credentials::own().expect("our own");
        // SAFETY: `geteuid` has no preconditions.
        assert_eq!(own.uids[1], unsafe { libc::geteuid() });
        assert_eq!(Credentials::of(std::process::id() as pid_t), Some(own));
    }
}
