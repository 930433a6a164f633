//! Running a test program as a user of its own: under a limit on that user's processes (which
//! root is not held to), or without root's privileges.
//!
//! The user is an id that nothing else runs as, made for this test process alone: two test runs
//! on one machine, or two tests at once, never share its count of processes. The program runs
//! from a copy in a folder any user can enter, wherever the tests were built: a clone in a
//! private folder (mode 0700, as home folders are) cannot be entered by that user.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};

use super::Scenario;

/// The first of the ids given to the users of this test process: far above the ids of real
/// users, and different for each test process.
fn first_id() -> u32 {
    0x4000_0000 + (std::process::id() % 0x10_0000) * 0x40
}

/// A user and group id of its own, and a folder it can read and run programs from.
pub struct OtherUser {
    id: u32,
    folder: tempfile::TempDir,
}

impl OtherUser {
    /// A new user for this test; `None` unless the tests run as root, who alone can become
    /// another user.
    pub fn new() -> Option<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        // SAFETY: `geteuid` has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        let folder = tempfile::tempdir().expect("temporary folder");
        open_to_all(folder.path(), 0o755);
        let id = first_id() + NEXT.fetch_add(1, SeqCst) % 0x40;
        Some(OtherUser { id, folder })
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// A copy of `program` that this user can run.
    pub fn copy(&self, program: &str) -> PathBuf {
        let program = Path::new(program);
        let copy = self
            .folder
            .path()
            .join(program.file_name().expect("a file"));
        if !copy.exists() {
            std::fs::copy(program, &copy).expect("copy the program");
            open_to_all(&copy, 0o755);
        }
        copy
    }

    /// Makes `command` run as this user, allowed `tasks` processes and threads if given.
    pub fn run_as(&self, command: &mut Command, tasks: Option<u64>) {
        let id = self.id;
        // SAFETY: async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(move || {
                let limit = tasks.map(|tasks| libc::rlimit {
                    rlim_cur: tasks,
                    rlim_max: tasks,
                });
                if limit.is_some_and(|limit| libc::setrlimit(libc::RLIMIT_NPROC, &limit) != 0)
                    || libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(id) != 0
                    || libc::setuid(id) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    /// Starts `program ARGS` (copied for this user) as this user, allowed `tasks` processes and
    /// threads, with its marker where this user can write it.
    pub fn start(&self, program: &str, args: &[&str], tasks: u64) -> Scenario {
        self.start_with(program, args, Some(tasks), |_| {})
    }

    /// As [`start`](Self::start), with `setup` adjusting the command first.
    pub fn start_with(
        &self,
        program: &str,
        args: &[&str],
        tasks: Option<u64>,
        setup: impl FnOnce(&mut Command),
    ) -> Scenario {
        let copy = self.copy(program);
        Scenario::start_bin(&copy, args, |command| {
            open_marker_to_all(command);
            setup(command);
            self.run_as(command, tasks);
        })
    }
}

/// Lets any user write the marker, in the scenario's folder.
pub fn open_marker_to_all(command: &Command) {
    let marker = command
        .get_envs()
        .find_map(|(name, value)| (name == "FINALLY_TEST_MARKER").then_some(value?))
        .expect("the marker's path");
    let folder = Path::new(marker).parent().expect("its folder");
    open_to_all(folder, 0o777);
}

fn open_to_all(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .expect("open the file to all");
}
