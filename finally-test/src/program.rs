//! A program to run: which one, with what, and how long to wait for it.

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::child::CHILD_VAR;
use crate::{Ended, Ending, Error, Running};

/// How long the kit waits for each step by default: for the program to be ready, to end, to
/// close its output.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A program to run in a test: a binary target of the package, any executable, or a test
/// function run again as a child process.
///
/// Build it like a [`Command`], then [`start`](Self::start) it (which waits for its ready line)
/// or end it in one line with [`run_until_ready_then`](Self::run_until_ready_then).
///
/// The program starts as it would from a terminal, whatever state the test runner is in:
/// SIGINT, SIGTERM, SIGHUP and SIGQUIT at their default actions, no signal blocked (a
/// background job of a non-interactive shell starts with SIGINT ignored), and no core dumps
/// (SIGQUIT and a crash would leave one). Its stdin is a pipe that the kit writes the
/// [child's protocol](crate#the-childs-side) to, its stdout and stderr are pipes the kit reads.
pub struct Program {
    pub(crate) command: Command,
    pub(crate) ready: Option<String>,
    pub(crate) patience: Duration,
    pub(crate) group: bool,
    pub(crate) terminal: bool,
    pub(crate) child_of_test: bool,
}

impl Program {
    /// The package's binary target `name`, as cargo built it for the integration test.
    ///
    /// Found through `CARGO_BIN_EXE_<name>` in the environment at run time, else beside the
    /// test's own executable (`target/debug/NAME`, the test being `target/debug/deps/…`), as
    /// `assert_cmd` finds it. Cargo sets `CARGO_BIN_EXE_<name>` while it *compiles* an
    /// integration test: [`bin!`](crate::bin!) reads it there, which always finds the right
    /// file.
    ///
    /// # Panics
    ///
    /// If neither place has it: the message says where the kit looked.
    pub fn bin(name: &str) -> Program {
        let from_env = std::env::var_os(format!("CARGO_BIN_EXE_{name}")).map(PathBuf::from);
        let beside = std::env::current_exe().ok().and_then(|test| {
            let deps = test.parent()?;
            let dir = if deps.ends_with("deps") {
                deps.parent()?
            } else {
                deps
            };
            Some(dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX)))
        });
        match from_env.or(beside) {
            Some(path) if path.is_file() => Program::path(path),
            other => panic!(
                "no binary target `{name}`: neither CARGO_BIN_EXE_{name} is set nor is it at {other:?}; \
                 is it a `[[bin]]` of this package, and is this an integration test?"
            ),
        }
    }

    /// The executable at `path` (or found in `PATH`, as [`Command::new`] finds it).
    pub fn path(path: impl AsRef<OsStr>) -> Program {
        let mut command = Command::new(path);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                fresh_start();
                Ok(())
            });
        }
        Program {
            command,
            ready: Some("ready".to_owned()),
            patience: PATIENCE,
            group: false,
            terminal: false,
            child_of_test: false,
        }
    }

    /// The test `name` of the running test executable, run again alone as a child process:
    /// the test calls [`child`](fn@crate::child), which runs its body only there.
    ///
    /// `name` is the test's path as the harness prints it (`module::test_name`; for a test at
    /// the top of an integration test file, its function's name). The child runs
    /// `TEST_EXE NAME --exact --nocapture --quiet --test-threads=1` with `FINALLY_TEST_CHILD=NAME` in
    /// its environment; a test with `harness = false` gets the same arguments and reads `NAME`
    /// from them.
    ///
    /// # Panics
    ///
    /// If the test's own executable cannot be found.
    pub fn current_test(name: &str) -> Program {
        let test = std::env::current_exe().expect("the running test's executable");
        let mut program = Program::path(test);
        program
            .command
            .args([
                name,
                "--exact",
                "--nocapture",
                "--quiet",
                "--test-threads=1",
            ])
            .env(CHILD_VAR, name);
        program.child_of_test = true;
        program
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.command.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Self {
        self.command.args(args);
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    /// Removes an environment variable.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.command.env_remove(key);
        self
    }

    /// Sets the working directory.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.command.current_dir(dir);
        self
    }

    /// The line on stdout that says the program is ready (`ready` unless set): [`start`]
    /// waits for the first line that is exactly this, and skips those before it (a test
    /// harness's own lines, for [`current_test`](Self::current_test)).
    ///
    /// [`start`]: Self::start
    pub fn ready_line(mut self, line: impl Into<String>) -> Self {
        self.ready = Some(line.into());
        self
    }

    /// Do not wait for a ready line: [`start`](Self::start) returns once the program is
    /// started, as [`spawn`](Self::spawn) does.
    pub fn no_ready_line(mut self) -> Self {
        self.ready = None;
        self
    }

    /// How long each wait may take (20 s unless set): for the ready line, for any line, for the
    /// program to end, for its stdout and stderr to close. A wait that runs out is an
    /// [`Error`], and the program is killed.
    pub fn patience(mut self, patience: Duration) -> Self {
        self.patience = patience;
        self
    }

    /// Starts the program in a process group of its own, as a shell starts a job: needed to
    /// signal its group ([`Running::signal_group`], [`Ending::SignalGroup`]), and dropping a
    /// [`Running`] then kills the whole group (a guardian, the programs it started).
    pub fn process_group(mut self) -> Self {
        self.group = true;
        self
    }

    /// Runs the program on a pseudo-terminal of its own: in a new session (so also a process
    /// group of its own) whose controlling terminal it is, with its stderr on that terminal, as
    /// a program started from an interactive shell. [`Running::hang_up`] then closes the
    /// terminal: the kernel sends SIGHUP, and writes to stderr fail with `EIO`.
    /// [`Ended::stderr`] is what the program wrote there before the hang-up.
    pub fn terminal(mut self) -> Self {
        self.terminal = true;
        self
    }

    /// Adjusts the command before it is started: stdio, `pre_exec`, anything [`Command`]
    /// allows. What it sets comes after the kit's own settings (the pipes, the signals' default
    /// actions), and wins; a [terminal](Self::terminal) is set up last.
    pub fn configure(mut self, configure: impl FnOnce(&mut Command)) -> Self {
        configure(&mut self.command);
        self
    }

    /// The program to run, for messages.
    pub(crate) fn name(&self) -> OsString {
        self.command.get_program().to_owned()
    }

    /// Starts the program, and does not wait for anything.
    ///
    /// # Errors
    ///
    /// If it cannot be started (no such file, not executable), or a [`current_test`] child is
    /// asked of a process that is itself such a child.
    ///
    /// [`current_test`]: Self::current_test
    pub fn spawn(self) -> Result<Running, Error> {
        if self.child_of_test && std::env::var_os(CHILD_VAR).is_some() {
            return Err(Error::new(format!(
                "{:?} is already a child run by `Program::current_test`: give `current_test` the \
                 name of the test that calls `finally_test::child`",
                self.name()
            )));
        }
        Running::spawn(self)
    }

    /// Starts the program and waits, for the patience at most, until it says it is ready.
    ///
    /// # Errors
    ///
    /// If it cannot be started, or it ends, closes stdout or takes longer than the patience
    /// before its ready line: the error tells its output; the program is killed.
    pub fn start(self) -> Result<Running, Error> {
        let ready = self.ready.clone();
        let mut running = self.spawn()?;
        if let Some(ready) = ready {
            running.wait_for_line(&ready)?;
        }
        Ok(running)
    }

    /// Starts the program and waits for it to end by itself.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn) and [`Running::wait`].
    pub fn run(self) -> Result<Ended, Error> {
        self.no_ready_line().spawn()?.wait()
    }

    /// The one-liner: starts the program, waits until it is ready, makes `ending` happen to
    /// it, and waits for it to end.
    ///
    /// For [`Ending::SignalGroup`] and [`Ending::CtrlC`] the program gets a process group of
    /// its own, and for [`Ending::HangUp`] a [terminal](Self::terminal).
    ///
    /// ```no_run
    /// use finally_test::{Ending, Program, SIGTERM};
    ///
    /// let ended = Program::bin("app").run_until_ready_then(Ending::Signal(SIGTERM)).unwrap();
    /// ended.assert_signaled(SIGTERM);
    /// ```
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start), [`Running::end`] and [`Running::wait`].
    pub fn run_until_ready_then(mut self, ending: Ending) -> Result<Ended, Error> {
        match ending {
            Ending::SignalGroup(_) | Ending::CtrlC(_) => self.group = true,
            Ending::HangUp => self.terminal = true,
            _ => {}
        }
        let mut running = self.start()?;
        running.end(ending)?;
        running.wait()
    }

    /// Makes the command ready to spawn, after what [`configure`](Self::configure) set: its
    /// own process group, or the session of `terminal`, which it takes as its controlling
    /// terminal and its stderr.
    pub(crate) fn prepare(&mut self, terminal: Option<&std::os::fd::OwnedFd>) -> Result<(), Error> {
        let command = &mut self.command;
        let Some(terminal) = terminal else {
            if self.group {
                command.process_group(0);
            }
            return Ok(());
        };
        let stderr = terminal
            .try_clone()
            .map_err(|error| Error::io("duplicate the terminal", error))?;
        command.stderr(stderr);
        let terminal = std::os::fd::AsRawFd::as_raw_fd(terminal);
        // SAFETY: only async-signal-safe calls between fork and exec; `terminal` stays open
        // until the program is started.
        unsafe {
            command.pre_exec(move || crate::terminal::take_as_controlling(terminal));
        }
        Ok(())
    }
}

/// Starts the calling process as from a terminal: the terminal's signals at their default
/// actions, none blocked, and no core dumps.
///
/// Async-signal-safe: it runs between `fork` and `exec`.
fn fresh_start() {
    // SAFETY: async-signal-safe calls with valid arguments.
    unsafe {
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::signal(signal, libc::SIG_DFL);
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
    }
}
