//! `finally` on Windows, each case a child process (`bin/windows-child.rs`) to which the event
//! really happens: Ctrl-C from `GenerateConsoleCtrlEvent`, `exit`, return, panic, and
//! `TerminateProcess` with the guardian (`bin/windows-guardian.rs`), which no other process can
//! reach or stand in for. Run under wine by `.ci/windows`.
//!
//! The test process gives itself a console of its own (under wine, a process started from Linux
//! has none that works), and starts each child in a process group of its own, so that its
//! Ctrl-C reaches that child only.

#![cfg(windows)]

#[path = "../common/ended.rs"]
mod ended;
#[path = "../common/lines.rs"]
mod lines;

use std::io::Read;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::os::windows::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::ptr;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use ended::Ended;
use windows_sys::Win32::Foundation::{
    CloseHandle, DuplicateHandle, ERROR_ACCESS_DENIED, ERROR_PIPE_BUSY, GENERIC_READ,
    INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::Storage::FileSystem::{CreateFileW, OPEN_EXISTING};
use windows_sys::Win32::System::Console::{
    AllocConsole, FreeConsole, GenerateConsoleCtrlEvent, GetConsoleProcessList, GetStdHandle,
    SetStdHandle, CTRL_C_EVENT, STD_ERROR_HANDLE, STD_INPUT_HANDLE, STD_OUTPUT_HANDLE,
};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_SYNCHRONIZE,
};

/// How long any one step may take before the test gives up on the child.
const PATIENCE: Duration = Duration::from_secs(30);
/// What Windows' default console handler, and `finally` after a console event, end with.
const STATUS_CONTROL_C_EXIT: i32 = 0xC000_013A_u32 as i32;
const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;

/// A child that has said `ready`.
struct Scenario {
    child: Child,
    lines: Receiver<String>,
    stderr: Receiver<String>,
    marker: PathBuf,
    _dir: tempfile::TempDir,
    /// Held by a scenario that may get console events.
    _console: Option<MutexGuard<'static, ()>>,
}

impl Scenario {
    fn start(name: &str) -> Scenario {
        let mut command = Command::new(env!("CARGO_BIN_EXE_windows-child"));
        command.arg(name);
        Scenario::spawn(command, Some(console()))
    }

    /// Starts `bin/windows-guardian.rs`, whose `main` has the guardian, with `args`.
    fn start_guardian(args: &[&str]) -> Scenario {
        let mut command = Command::new(env!("CARGO_BIN_EXE_windows-guardian"));
        command.args(args);
        Scenario::spawn(command, Some(console()))
    }

    /// Starts `bin/windows-guardian.rs` in the guardian's mode, told `forged` rather than what a
    /// program hands its guardian. It gets no console event, so it may run beside a scenario
    /// that holds the console.
    fn start_forged_guardian(forged: &str) -> Scenario {
        let mut command = Command::new(env!("CARGO_BIN_EXE_windows-guardian"));
        command.env("FINALLY_GUARDIAN", forged);
        Scenario::spawn(command, None)
    }

    fn spawn(mut command: Command, console: Option<MutexGuard<'static, ()>>) -> Scenario {
        let dir = tempfile::tempdir().expect("temporary folder");
        let marker = dir.path().join("marker");
        let mut child = command
            .env("FINALLY_TEST_MARKER", &marker)
            .env("RUST_BACKTRACE", "0")
            .creation_flags(CREATE_NEW_PROCESS_GROUP)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the child");
        let lines = lines::lines(child.stdout.take().expect("stdout"));
        let mut stderr_pipe = child.stderr.take().expect("stderr");
        let (all, stderr) = mpsc::channel();
        thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr_pipe.read_to_string(&mut text);
            let _ = all.send(text);
        });
        Scenario {
            child,
            lines,
            stderr,
            marker,
            _dir: dir,
            _console: console,
        }
    }

    fn expect_line(&mut self, expected: &str) {
        assert_eq!(self.next_line(expected), expected);
    }

    /// The child's next line, which should be `expected`.
    fn next_line(&mut self, expected: &str) -> String {
        self.lines.recv_timeout(PATIENCE).unwrap_or_else(|error| {
            let _ = self.child.kill();
            panic!("no line {expected:?} from the child: {error}");
        })
    }

    /// Sends Ctrl-C to the child's process group: the child alone.
    fn ctrl_c(&self) {
        // SAFETY: an event to the group of our own child.
        let sent = unsafe { GenerateConsoleCtrlEvent(CTRL_C_EVENT, self.child.id()) };
        assert_ne!(sent, 0, "{}", std::io::Error::last_os_error());
    }

    /// Waits (bounded) for the child to end, and for every process holding its stderr (its
    /// guardian too); reads what they left.
    fn wait(mut self) -> Ended {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the child did not end within {PATIENCE:?}");
            }
            thread::sleep(Duration::from_millis(5));
        };
        let stderr = self
            .stderr
            .recv_timeout(PATIENCE)
            .expect("stderr still open: a process the child started outlives it");
        Ended::read(status, &self.marker, stderr)
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// This test process's own console, which its children share, and the lock that keeps the
/// tests from sending their events at once.
///
/// Under wine with no terminal, a process started from Linux has a pseudo console on which every
/// console call fails; `FreeConsole` and `AllocConsole` give it one that works, headless.
/// `AllocConsole` replaces the standard handles, which are put back, or the harness's own
/// output would go to the console nobody sees.
fn console() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        let mut processes = [0u32; 8];
        // SAFETY: console calls with valid buffers; the handles saved are put back.
        unsafe {
            if GetConsoleProcessList(processes.as_mut_ptr(), 8) != 0 {
                return;
            }
            let standard = [STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE];
            let saved = standard.map(|which| (which, GetStdHandle(which)));
            FreeConsole();
            let allocated = AllocConsole();
            for (which, handle) in saved {
                SetStdHandle(which, handle);
            }
            assert_ne!(allocated, 0, "{}", std::io::Error::last_os_error());
        }
    });
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn ctrl_c_runs_the_cleanup_once_and_ends_the_process_as_ctrl_c_does() {
    let mut scenario = Scenario::start("wait");
    scenario.expect_line("ready");
    scenario.ctrl_c();
    let ended = scenario.wait();
    ended.assert_exit_code(STATUS_CONTROL_C_EXIT);
    ended.assert_cleaned_once("main", "Signal(CTRL_C_EVENT=0)");
}

#[test]
fn more_ctrl_c_do_not_cut_the_cleanup_short() {
    let mut scenario = Scenario::start("slow");
    scenario.expect_line("ready");
    scenario.ctrl_c();
    scenario.expect_line("cleaning");
    for _ in 0..10 {
        scenario.ctrl_c();
    }
    let ended = scenario.wait();
    ended.assert_exit_code(STATUS_CONTROL_C_EXIT);
    ended.assert_cleaned_once("slow", "Signal(CTRL_C_EVENT=0)");
}

#[test]
fn exit_runs_the_cleanup_and_keeps_its_code() {
    let ended = Scenario::start("exit").wait();
    ended.assert_exit_code(3);
    ended.assert_cleaned_once("main", "Exited { code: Some(3) }");

    // From another thread, `main`'s function still running.
    let ended = Scenario::start("exit-on-a-thread").wait();
    ended.assert_exit_code(3);
    ended.assert_cleaned_once("main", "Exited { code: Some(3) }");
}

#[test]
fn return_and_panic_run_the_cleanup_once() {
    let ended = Scenario::start("return").wait();
    ended.assert_exit_code(0);
    ended.assert_cleaned_once("main", "Returned");
    assert_eq!(ended.marker.last().map(String::as_str), Some("after"));

    let ended = Scenario::start("panic").wait();
    ended.assert_exit_code(101);
    ended.assert_cleaned_once("main", r#"Panicked { message: Some("boom") }"#);
}

#[test]
fn ctrl_c_with_nothing_pending_is_windows_default() {
    let mut scenario = Scenario::start("nothing-pending");
    scenario.expect_line("ready");
    scenario.ctrl_c();
    let ended = scenario.wait();
    // Windows' default handler ended it: STATUS_CONTROL_C_EXIT, or 0 under wine before 9.
    let code = ended.status.code();
    assert!(
        code == Some(STATUS_CONTROL_C_EXIT) || code == Some(0),
        "{:?}",
        ended.status
    );
    assert!(ended.marker.is_empty(), "{:?}", ended.marker);
}

#[test]
fn terminate_process_leaves_the_cleanup_to_the_guardian() {
    let mut scenario = Scenario::start_guardian(&[]);
    scenario.expect_line("ready");
    // `TerminateProcess`, as Task Manager and `taskkill /F` do.
    scenario.child.kill().expect("TerminateProcess");
    assert_the_guardian_cleaned_up(&scenario.wait());
}

/// Durable records on Windows: a living owner's file is locked (`LockFileEx`) and left alone; once
/// `TerminateProcess` has ended it, the next start runs its guard, once.
#[test]
fn a_terminated_process_s_durable_guard_runs_at_the_next_start() {
    let records = tempfile::tempdir().expect("a folder for the records");
    let dir = records.path().to_str().expect("a UTF-8 path");
    let recover = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_windows-child"));
        command.args(["recover", dir]);
        let mut recovering = Scenario::spawn(command, None);
        let line = recovering.next_line("recovered N");
        let ended = recovering.wait();
        assert_eq!(ended.status.code(), Some(0), "{}", ended.stderr);
        (line, ended.marker)
    };
    let mut command = Command::new(env!("CARGO_BIN_EXE_windows-child"));
    command.args(["durable", dir]);
    let mut owner = Scenario::spawn(command, None);
    owner.expect_line("ready");
    assert_eq!(
        recover().0,
        "recovered 0",
        "the owner lives: its record is locked"
    );
    owner.child.kill().expect("TerminateProcess");
    let pid = owner.child.id();
    let ended = owner.wait();
    assert!(ended.marker.is_empty(), "{:?}", ended.marker);
    let (line, marker) = recover();
    assert_eq!(line, "recovered 1");
    let told = format!("end durable Recovered {{ owner: {pid} }}");
    assert_eq!(marker, ["start durable", told.as_str(), "recovered 1"]);
    assert_eq!(recover().0, "recovered 0", "once");
}

#[test]
fn a_forged_finally_guardian_guards_nothing() {
    let mut program = Scenario::start_guardian(&[]);
    program.expect_line("ready");
    let (program_id, parent) = (program.child.id(), std::process::id());
    // Open while the forged guardians start, which inherit it.
    let handle_of_this_process = inheritable_handle_of_this_process();
    let this_process = handle_of_this_process.as_raw_handle() as usize;
    for (forged, why) in [
        // A live program, which did not start it, and values of handles it was not handed.
        (
            format!("{program_id} 4 8 12"),
            format!("process {program_id} did not start this one"),
        ),
        // Its parent, with values of handles it does not have, or not of those kinds.
        (
            format!("{parent} 4 8 12"),
            format!("handle 4 is not one of process {parent}"),
        ),
        (
            format!("{parent} 65532 65528 65524"),
            format!("handle 65532 is not one of process {parent}"),
        ),
        // Its parent, and a handle of it, but no pipe of it.
        (
            format!("{parent} {this_process} 8 12"),
            format!("handle 8 is not the client end of a pipe of process {parent}"),
        ),
        (
            "garbage".to_owned(),
            "not `PID PROCESS PIPE PAGE`".to_owned(),
        ),
    ] {
        let ended = Scenario::start_forged_guardian(&forged).wait();
        ended.assert_exit_code(0);
        assert!(ended.marker.is_empty(), "{forged:?}: {:?}", ended.marker);
        assert!(
            ended
                .stderr
                .contains(&format!("{why}: this process guards nothing")),
            "{forged:?}: {}",
            ended.stderr
        );
    }
    drop(handle_of_this_process);
    // The program's own guardian is untouched, and alone to clean up.
    program.child.kill().expect("TerminateProcess");
    assert_the_guardian_cleaned_up(&program.wait());
}

/// A handle of this process, that may wait for it and tell its id, which the processes it starts
/// inherit while it is open.
fn inheritable_handle_of_this_process() -> OwnedHandle {
    let mut handle = ptr::null_mut();
    // SAFETY: this process's pseudo-handle, duplicated into a new handle of its own.
    let copied = unsafe {
        let this = GetCurrentProcess();
        let access = PROCESS_SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION;
        DuplicateHandle(this, this, this, &mut handle, access, 1, 0)
    };
    assert_ne!(copied, 0, "{}", std::io::Error::last_os_error());
    // SAFETY: a new handle, ours alone.
    unsafe { OwnedHandle::from_raw_handle(handle) }
}

/// Windows lists the pipes' names to anyone (wine cannot: `\\.\pipe\*` is not a folder
/// there), so the program tells the test its channel's name, and the test cannot open it.
#[test]
fn no_other_process_can_open_the_channel() {
    let mut scenario = Scenario::start_guardian(&["channel"]);
    let line = scenario.next_line("channel NAME");
    let name = line.strip_prefix("channel ").expect(&line);
    assert!(name.starts_with(r"\finally-guardian-"), "{name}");
    scenario.expect_line("ready");
    let path: Vec<u16> = format!(r"\\.\pipe{name}")
        .encode_utf16()
        .chain([0])
        .collect();
    // SAFETY: a NUL-terminated name; a handle opened is closed at once.
    let opened = unsafe {
        CreateFileW(
            path.as_ptr(),
            GENERIC_READ,
            0,
            ptr::null(),
            OPEN_EXISTING,
            0,
            ptr::null_mut(),
        )
    };
    let error = std::io::Error::last_os_error();
    if opened != INVALID_HANDLE_VALUE {
        // SAFETY: the handle just opened.
        unsafe { CloseHandle(opened) };
        panic!("another process opened the channel {name}");
    }
    // The program took the pipe's one instance itself; another user is refused even before.
    let refused = [ERROR_PIPE_BUSY, ERROR_ACCESS_DENIED].map(|code| Some(code as i32));
    assert!(refused.contains(&error.raw_os_error()), "{name}: {error}");
    scenario.child.kill().expect("TerminateProcess");
    assert_the_guardian_cleaned_up(&scenario.wait());
}

/// Asserts that the guardian ran the cleanups of `bin/windows-guardian.rs`, killed: its guard's,
/// then `main`'s, once each.
fn assert_the_guardian_cleaned_up(ended: &Ended) {
    assert!(
        !ended
            .marker
            .iter()
            .any(|line| line.starts_with("no guardian")),
        "{:?}; stderr: {}",
        ended.marker,
        ended.stderr
    );
    let id = ended
        .marker
        .iter()
        .find_map(|line| line.strip_prefix("start guard "))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("the guard's cleanup did not run: {:?}", ended.marker));
    ended.assert_cleaned_once(&format!("guard {id}"), "Died { signal: None }");
    ended.assert_cleaned_once("main", "Died { signal: None }");
    assert!(
        ended.marker.iter().position(|l| l.starts_with("end guard"))
            < ended.marker.iter().position(|l| l.starts_with("end main")),
        "{:?}",
        ended.marker
    );
}
