//! Running a scenario of `tests/bin/scenario.rs` as a child process: a thin layer over the
//! test kit, `finally-test`, which starts it as from a terminal, reads its output, bounds every
//! wait and kills it if the test fails; the layer adds the marker file its cleanups write to.

#![allow(dead_code, unused_imports)] // each test file uses its own part of this module

pub mod ended;
pub mod other_user;
pub mod plan;
pub mod random;

pub use ended::Ended;
pub use other_user::OtherUser;
pub use random::Random;

use std::cell::RefCell;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use finally_test::{Program, Running};

/// How a guardian's cleanup is told of a `kill -9`, read from the program's zombie.
pub const KILLED: &str = "Died { signal: Some(SIGKILL=9) }";

pub use libc::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};

/// How long any one step may take before the test gives up on the child.
const PATIENCE: Duration = finally_test::PATIENCE;

/// A running scenario: the kit's running program, and its marker file in a temporary folder.
pub struct Scenario {
    /// In a cell so that the tests read lines and send signals through a shared reference,
    /// as they did before the kit, whose reads take `&mut`.
    running: RefCell<Running>,
    marker: PathBuf,
    _dir: tempfile::TempDir,
}

/// The kit's answer, or the test fails with its message (the child's stdout and stderr).
fn must<T>(result: Result<T, finally_test::Error>) -> T {
    result.unwrap_or_else(|error| panic!("{error}"))
}

impl Scenario {
    pub fn start(name: &str, args: &[&str]) -> Self {
        Self::start_with(name, args, |_| {})
    }

    /// Starts the scenario after `setup` has adjusted the command.
    pub fn start_with(name: &str, args: &[&str], setup: impl FnOnce(&mut Command)) -> Self {
        Self::start_under(&[], name, args, setup)
    }

    /// Starts the scenario as the command `wrapper` runs it (`wrapper` ends with the program to
    /// run); the pid is the wrapper's.
    pub fn start_under(
        wrapper: &[&str],
        name: &str,
        args: &[&str],
        setup: impl FnOnce(&mut Command),
    ) -> Self {
        let scenario = env!("CARGO_BIN_EXE_scenario");
        let program = match wrapper {
            [] => Program::path(scenario),
            [program, args @ ..] => Program::path(program).args(args).arg(scenario),
        };
        Self::spawn(program.arg(name), args, setup)
    }

    /// Starts a scenario of `tests/bin/guardian.rs`, whose `main` has the guardian.
    pub fn start_guardian(name: &str, setup: impl FnOnce(&mut Command)) -> Self {
        Self::start_program(env!("CARGO_BIN_EXE_guardian").as_ref(), name, setup)
    }

    /// Starts a scenario of `tests/bin/guardian.rs` as the command `wrapper` runs it (`wrapper`
    /// ends with the program to run); the pid is the wrapper's.
    pub fn start_guardian_under(
        wrapper: &[&str],
        name: &str,
        setup: impl FnOnce(&mut Command),
    ) -> Self {
        let (program, args) = wrapper.split_first().expect("a wrapper");
        let program = Program::path(program)
            .args(args)
            .arg(env!("CARGO_BIN_EXE_guardian"))
            .arg(name);
        Self::spawn(program, &[], setup)
    }

    /// Starts `tests/bin/options.rs`, whose `main` sets the process-wide options.
    pub fn start_options(setup: impl FnOnce(&mut Command)) -> Self {
        Self::spawn(Program::path(env!("CARGO_BIN_EXE_options")), &[], setup)
    }

    /// Starts a scenario of one of the scenario programs, built elsewhere.
    pub fn start_program(
        program: &std::path::Path,
        name: &str,
        setup: impl FnOnce(&mut Command),
    ) -> Self {
        Self::spawn(Program::path(program).arg(name), &[], setup)
    }

    /// Starts `program` with `args`, after `setup` has adjusted the command.
    pub fn start_bin(
        program: &std::path::Path,
        args: &[&str],
        setup: impl FnOnce(&mut Command),
    ) -> Self {
        Self::spawn(Program::path(program), args, setup)
    }

    /// Starts the example `name` (`examples/NAME.rs`) with `args`, as `cargo run --example`
    /// would. An example has no test hook and writes no marker: the test reads what it prints,
    /// as its users do ([`Ended::said_once`]).
    pub fn start_example(name: &str, args: &[&str], setup: impl FnOnce(&mut Command)) -> Self {
        Self::spawn(Program::path(example(name)), args, setup)
    }

    /// Starts a scenario of a test with its own harness: the test itself, as
    /// `TEST child NAME ARGS...`.
    pub fn start_self(name: &str, args: &[&str]) -> Self {
        let test = std::env::current_exe().expect("the test's own path");
        Self::spawn(Program::path(test).args(["child", name]), args, |_| {})
    }

    /// Starts the kit's `program` as a scenario (a program on a terminal of its own, say),
    /// after `setup` has adjusted the command.
    pub fn start_kit(program: Program, setup: impl FnOnce(&mut Command)) -> Self {
        Self::spawn(program, &[], setup)
    }

    /// Starts `program` with `args` and the marker's path, stdin empty unless `setup` makes it
    /// a pipe; the kit gives it the signals' default actions and no core dumps.
    fn spawn(program: Program, args: &[&str], setup: impl FnOnce(&mut Command)) -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let marker = dir.path().join("marker");
        let program = program
            .args(args)
            .env("FINALLY_TEST_MARKER", &marker)
            .env("RUST_BACKTRACE", "0")
            .patience(PATIENCE)
            .configure(|command| {
                command.stdin(Stdio::null());
                setup(command);
            });
        Scenario {
            running: RefCell::new(must(program.spawn())),
            marker,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> i32 {
        self.running.borrow().pid() as i32
    }

    /// Waits for the child's next line on stdout.
    pub fn next_line(&self) -> String {
        must(self.running.borrow_mut().next_line())
    }

    /// Waits for the child to print `expected` as its next line on stdout.
    pub fn expect_line(&self, expected: &str) {
        assert_eq!(self.next_line(), expected, "unexpected line from the child");
    }

    /// Whether the child has ended (without reaping it).
    pub fn has_ended(&self) -> bool {
        self.running.borrow_mut().has_ended()
    }

    /// Waits for the child's next line, `ready PID`, and returns the pid.
    pub fn ready_pid(&self) -> i32 {
        let line = self.next_line();
        line.strip_prefix("ready ")
            .and_then(|pid| pid.parse().ok())
            .unwrap_or_else(|| panic!("unexpected line {line:?}"))
    }

    /// Waits for the line `child-ready PID`, from a process the scenario forked, and returns
    /// that pid.
    pub fn forked_pid(&self) -> i32 {
        let line = self.next_line();
        line.strip_prefix("child-ready ")
            .and_then(|pid| pid.parse().ok())
            .unwrap_or_else(|| panic!("unexpected line {line:?}"))
    }

    /// Writes `line` to the child's stdin, which `setup` made a pipe.
    pub fn say(&mut self, line: &str) {
        must(self.running.get_mut().say(line));
    }

    /// Waits (bounded) for the child itself to end, leaving it a zombie; [`wait`](Self::wait)
    /// then collects what it and the processes it started left, and reaps it.
    pub fn wait_for_exit(&mut self) -> ExitStatus {
        must(self.running.get_mut().wait_for_exit())
    }

    /// Waits (bounded) for the child itself to end, and reaps it at once, as a parent quick to
    /// wait would.
    pub fn reap(&mut self) -> ExitStatus {
        must(self.running.get_mut().reap())
    }

    /// Sends `signal` to the child.
    pub fn signal(&self, signal: libc::c_int) {
        must(self.running.borrow_mut().signal(signal));
    }

    /// Hangs up the terminal of a child started on one ([`Program::terminal`]).
    pub fn hang_up(&self) {
        must(self.running.borrow_mut().hang_up());
    }

    /// Sends `signal` once the child says `ready`, and waits for the child to end.
    pub fn signal_when_ready(self, signal: libc::c_int) -> Ended {
        self.expect_line("ready");
        self.signal(signal);
        self.wait()
    }

    /// Waits (bounded) for the child to end, and reads what it left.
    ///
    /// The child is reaped last, once every process holding its stdout and stderr (a guardian
    /// too) has closed them: until then it stays a zombie, as under a parent that is slow to
    /// wait for it, and a guardian can read from it how it ended.
    pub fn wait(self) -> Ended {
        let ended = must(self.running.into_inner().wait());
        Ended::read(ended.status, &self.marker, ended.stderr)
    }
}

/// The example `name`'s binary, built by cargo for the test.
///
/// Cargo tells integration tests where the package's binaries are (`CARGO_BIN_EXE_<name>`), but
/// not its examples, and it builds the examples for a plain `cargo test` only, not for
/// `cargo test --test NAME`. So the test asks cargo to build the example, as `cargo run
/// --example` would, and runs the file cargo names: up to date however the test was started,
/// and it is the example itself that is tested, not a copy of its code. (Cargo releases its
/// build lock before it runs the tests, so this build does not wait for the one that started
/// the test; when the example is up to date it takes a fraction of a second.)
pub fn example(name: &str) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--quiet", "--example", name])
        .args(["--message-format", "json"])
        .arg("--manifest-path")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .stdin(Stdio::null());
    if !cfg!(debug_assertions) {
        command.arg("--release");
    }
    let output = command.output().expect("run cargo to build the example");
    assert!(
        output.status.success(),
        "`cargo build --example {name}` failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // One JSON message per line; the example's is the one artifact with a file to run.
    let messages = String::from_utf8_lossy(&output.stdout);
    let executable = messages
        .lines()
        .filter(|message| message.contains(r#""kind":["example"]"#))
        .find_map(|message| message.split(r#""executable":""#).nth(1)?.split('"').next())
        .expect("cargo names the example's executable");
    assert!(
        !executable.contains('\\'),
        "an escaped path in cargo's message: {executable}"
    );
    PathBuf::from(executable)
}

/// What a cleanup is told of `exit(code)`: the code where the C library tells it (glibc's
/// `on_exit`); not under the portable backend (`--cfg finally_portable`), as on macOS and the
/// BSDs.
pub fn exited(code: i32) -> String {
    if cfg!(finally_portable) {
        "Exited { code: None }".to_owned()
    } else {
        format!("Exited {{ code: Some({code}) }}")
    }
}

/// The code a process ends with where `finally` has to end an `exit` itself (a deadline, `exit`
/// entered again): the first `exit`'s, where the C library tells it; else 1.
pub fn first_exit_code(code: i32) -> i32 {
    if cfg!(finally_portable) {
        1
    } else {
        code
    }
}

/// Waits for `child` to end, for `patience` at most: then kills it and fails the test.
pub fn wait_bounded(child: &mut Child, patience: Duration) -> ExitStatus {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child did not end within {patience:?}");
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// The Unix side of how a scenario ended.
impl Ended {
    pub fn assert_killed_by(&self, signal: libc::c_int) {
        assert_eq!(
            self.status.signal(),
            Some(signal),
            "expected the child to end by signal {signal}, got {:?}; stderr: {}",
            self.status,
            self.stderr
        );
    }
}

/// The name `Exit`'s `Debug` gives a signal, as in `Signal(SIGTERM=15)`.
pub fn signal_reason(signal: libc::c_int) -> String {
    let name = match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        SIGQUIT => "SIGQUIT",
        _ => unreachable!("not a handled signal"),
    };
    format!("Signal({name}={signal})")
}

/// What a cleanup is told of a stop by the handled `signal`, as its `Display` says it:
/// `stopped by SIGTERM (15)`.
pub fn stopped_by(signal: libc::c_int) -> String {
    let signal = finally::Signal::try_from(signal).expect("a signal");
    finally::Exit::Signal(signal).to_string()
}

/// What a guardian's cleanup is told of a `kill -9`, as its `Display` says it (`KILLED` is its
/// `Debug`).
pub fn killed() -> String {
    finally::Exit::died(Some(finally::Signal::SIGKILL)).to_string()
}

/// A process that is not the test's child (a guardian), held by a pidfd: a signal never reaches
/// another process that took its pid, and it is killed when dropped, should the test fail.
pub struct Stranger {
    pid: i32,
    pidfd: std::os::fd::OwnedFd,
}

impl Stranger {
    pub fn new(pid: i32) -> Self {
        use std::os::fd::FromRawFd;
        // SAFETY: `pidfd_open` takes no pointers.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        assert!(
            fd >= 0,
            "pidfd_open({pid}): {}",
            std::io::Error::last_os_error()
        );
        Stranger {
            pid,
            // SAFETY: a new descriptor, ours alone.
            pidfd: unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as libc::c_int) },
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Sends `signal`; false if the process has ended.
    pub fn signal(&self, signal: libc::c_int) -> bool {
        use std::os::fd::AsRawFd;
        // SAFETY: `pidfd_send_signal` on our pidfd, with no `siginfo`.
        let sent = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        sent == 0
    }

    /// Whether the process has ended (a zombie has).
    pub fn ended(&self) -> bool {
        use std::os::fd::AsRawFd;
        let mut ready = libc::pollfd {
            fd: self.pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid `pollfd`.
        unsafe { libc::poll(&mut ready, 1, 0) == 1 }
    }

    /// Waits (bounded) until the process has ended.
    pub fn wait_until_ended(&self) {
        wait_until(|| self.ended(), &format!("process {} to end", self.pid));
    }

    /// Waits (bounded) until the process is stopped (by SIGSTOP).
    pub fn wait_until_stopped(&self) {
        let stat = format!("/proc/{}/stat", self.pid);
        let stopped = || {
            let stat = std::fs::read_to_string(&stat).unwrap_or_default();
            stat.rsplit_once(") ")
                .is_some_and(|(_, fields)| fields.starts_with('T'))
        };
        wait_until(stopped, &format!("process {} to stop", self.pid));
    }
}

impl Drop for Stranger {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
    }
}

/// Waits until `done`, looking every millisecond, for [`PATIENCE`] at most.
pub fn wait_until(mut done: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "waited {PATIENCE:?} for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}
