//! The test kit, `finally-test`: each ending it makes happen to a child process (a test of this
//! file run again, whose cleanup, a `finally` guard, writes a line to stdout and to a marker
//! file), and its bounds: a program never ready, one that does not end, one dropped.

use std::path::PathBuf;
use std::time::Duration;

use finally_test::{Ending, Program, SIGHUP, SIGINT, SIGKILL, SIGQUIT, SIGSEGV, SIGTERM};

/// The program under test: a guard whose cleanup says how it ended, on stdout and in the file
/// `MARKER` names; then it waits for the test to end it.
#[test]
fn worker() {
    finally_test::child(|| {
        let marker = PathBuf::from(std::env::var_os("MARKER").expect("MARKER"));
        let _cleanup = finally::guard(move |exit: &finally::Exit| {
            println!("cleanup: {exit}");
            let _ = std::fs::write(&marker, format!("{exit:?}"));
        });
        println!("starting");
        finally_test::ready();
        finally_test::wait_for_ending();
    });
}

/// Runs `worker` until it is ready, then `ending`: how it ended, and what its cleanup wrote.
fn end_worker(ending: Ending) -> (finally_test::Ended, String) {
    let dir = std::env::temp_dir().join(format!(
        "finally-kit-child-{}-{}",
        std::process::id(),
        ending.to_string().replace(' ', "-")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("marker");
    let ended = Program::current_test("worker")
        .env("MARKER", &marker)
        .run_until_ready_then(ending)
        .unwrap();
    let told = std::fs::read_to_string(&marker).unwrap_or_default();
    std::fs::remove_dir_all(&dir).unwrap();
    (ended, told)
}

/// Ends `worker` with `ending`: it ends by `signal`, its cleanup told `told` (nothing: it did
/// not run).
fn assert_ends_by(ending: Ending, signal: i32, told: &str) {
    let (ended, marker) = end_worker(ending);
    ended.assert_signaled(signal);
    assert_eq!(marker, told, "{ending}");
}

#[test]
fn return_is_asked_on_stdin() {
    let (ended, told) = end_worker(Ending::Return);
    ended
        .assert_success()
        .assert_stdout_line("cleanup: returned");
    assert_eq!(told, "Returned");
    // The harness's own lines and the worker's, in order, the ready line among them.
    let ready = ended
        .stdout
        .iter()
        .position(|line| line == "ready")
        .unwrap();
    assert_eq!(ended.stdout[ready - 1], "starting", "{:?}", ended.stdout);
}

#[test]
fn panic_is_asked_on_stdin() {
    let (ended, told) = end_worker(Ending::Panic);
    // The harness reports the failed test and exits with 101.
    ended
        .assert_code(101)
        .assert_stderr_contains("asked to panic");
    assert_eq!(told, r#"Panicked { message: Some("asked to panic") }"#);
}

#[test]
fn exit_is_asked_on_stdin() {
    let (ended, told) = end_worker(Ending::Exit(3));
    ended.assert_code(3);
    assert!(told.starts_with("Exited"), "{told}");
}

#[test]
fn each_handled_signal_to_the_process() {
    for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] {
        let (ended, told) = end_worker(Ending::Signal(signal));
        ended.assert_signaled(signal);
        assert!(told.starts_with("Signal("), "{told}");
        assert!(ended.took < finally_test::PATIENCE);
    }
}

#[test]
fn a_signal_to_the_group() {
    assert_ends_by(Ending::SignalGroup(SIGTERM), SIGTERM, "Signal(SIGTERM=15)");
}

#[test]
fn ctrl_c_pressed_again_and_again() {
    assert_ends_by(Ending::CtrlC(5), SIGINT, "Signal(SIGINT=2)");
}

#[test]
fn the_terminal_hangs_up() {
    assert_ends_by(Ending::HangUp, SIGHUP, "Signal(SIGHUP=1)");
}

#[test]
fn kill_9_runs_nothing_without_a_guardian() {
    assert_ends_by(Ending::Kill, SIGKILL, "");
}

#[test]
fn a_crash_runs_nothing_without_a_guardian() {
    let (ended, told) = end_worker(Ending::Crash);
    ended.assert_signaled(SIGSEGV);
    assert!(
        !ended.status.to_string().contains("core dumped"),
        "{}",
        ended.status
    );
    assert_eq!(told, "");
}

#[test]
fn abort_runs_nothing_without_a_guardian() {
    assert_ends_by(Ending::Abort, finally_test::SIGABRT, "");
}

/// Lines are read one by one while the program runs, and the one asked for can be found among
/// others.
#[test]
fn lines_are_read_as_they_come() {
    let mut running = Program::path("/bin/sh")
        .args([
            "-c",
            "echo one; echo ready; read line; echo \"got $line\"; exit 4",
        ])
        .start()
        .unwrap();
    running.say("hello").unwrap();
    assert_eq!(running.next_line().unwrap(), "got hello");
    let ended = running.wait().unwrap();
    ended.assert_code(4);
    assert_eq!(ended.stdout, ["one", "ready", "got hello"]);
}

/// `sh -c script`, waited for with `patience`.
fn shell(script: &str, patience: Duration) -> Program {
    Program::path("/bin/sh")
        .args(["-c", script])
        .patience(patience)
}

/// What `start` says of `script`, which never prints `ready`.
fn not_ready(script: &str, patience: Duration) -> String {
    let error = shell(script, patience).start().expect_err("not ready");
    error.to_string()
}

/// A program that never says it is ready fails the test within the patience, telling what it
/// wrote, and is killed.
#[test]
fn a_program_that_is_never_ready_is_an_error_within_the_patience() {
    let started = std::time::Instant::now();
    let script = "echo starting; echo oops >&2; exec sleep 60";
    let message = not_ready(script, Duration::from_millis(300));
    assert!(started.elapsed() < Duration::from_secs(10));
    for said in ["\"ready\"", "not within 300ms", "starting", "oops"] {
        assert!(message.contains(said), "{message}");
    }
}

/// A program that ends before it is ready is an error at once, with its stderr.
#[test]
fn a_program_that_ends_before_it_is_ready_is_an_error() {
    let message = not_ready("echo no way >&2; exit 2", finally_test::PATIENCE);
    for said in ["stdout closed first", "no way"] {
        assert!(message.contains(said), "{message}");
    }
}

/// A program that does not end in time is killed, and the error says so.
#[test]
fn a_program_that_does_not_end_is_an_error_within_the_patience() {
    let script = "trap '' TERM; echo ready; while :; do sleep 1; done";
    let mut running = shell(script, Duration::from_millis(300)).start().unwrap();
    let pid = running.pid() as i32;
    running.signal(SIGTERM).unwrap();
    let message = running.wait().expect_err("did not end").to_string();
    assert!(message.contains("did not end within"), "{message}");
    // Killed and reaped: the pid is gone.
    // SAFETY: `kill` with signal 0 only asks whether the process exists.
    assert_ne!(unsafe { libc::kill(pid, 0) }, 0);
}

/// Dropping a running program, as a failing test does, kills and reaps it.
#[test]
fn a_dropped_program_is_killed_and_reaped() {
    let running = shell("echo ready; exec sleep 60", finally_test::PATIENCE)
        .start()
        .unwrap();
    let pid = running.pid() as i32;
    drop(running);
    // SAFETY: `kill` with signal 0 only asks whether the process exists.
    assert_ne!(unsafe { libc::kill(pid, 0) }, 0);
}

/// A test's child that asks for itself again is refused: it would start itself for ever.
#[test]
fn a_child_cannot_start_another_child() {
    finally_test::child(|| {
        assert!(Program::current_test("worker").start().is_err());
        finally_test::ready();
    });
}

#[test]
fn the_child_guard_is_checked_in_a_child() {
    Program::current_test("a_child_cannot_start_another_child")
        .run()
        .unwrap()
        .assert_success()
        .assert_stdout_line("ready");
}
