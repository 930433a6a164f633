//! The test kit, `finally-test`, against a program with a guardian: each ending it makes
//! happen is the real one, as `finally` sees it and a parent shell does, and `wait` returns
//! once the guardian's cleanup has run.

mod common;

use std::path::Path;

use common::{exited, signal_reason, Ended, KILLED};
use finally_test::{Ending, Program, SIGABRT, SIGHUP, SIGINT, SIGKILL, SIGSEGV, SIGTERM};

/// Runs `tests/bin/kit.rs` until it is ready, makes `ending` happen, and reads its marker.
fn end_kit(ending: Ending) -> Ended {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let marker = dir.path().join("marker");
    let ended = finally_test::bin!("kit")
        .env("FINALLY_TEST_MARKER", &marker)
        .run_until_ready_then(ending)
        .unwrap_or_else(|error| panic!("{ending}: {error}"));
    assert!(
        ended.stderr.contains("working"),
        "{ending}: {}",
        ended.stderr
    );
    Ended::read(ended.status, &marker, ended.stderr)
}

#[test]
fn what_the_program_is_asked_for_ends_it_with_its_cleanup() {
    for (ending, code, reason) in [
        (Ending::Return, 0, "Returned".to_owned()),
        (
            Ending::Panic,
            101,
            r#"Panicked { message: Some("asked to panic") }"#.to_owned(),
        ),
        (Ending::Exit(3), 3, exited(3)),
    ] {
        let ended = end_kit(ending);
        ended.assert_exit_code(code);
        ended.assert_cleaned_once("main", &reason);
    }
}

#[test]
fn each_signal_from_outside_ends_it_by_that_signal_with_its_cleanup() {
    for (ending, signal) in [
        (Ending::Signal(SIGTERM), SIGTERM),
        (Ending::SignalGroup(SIGTERM), SIGTERM),
        (Ending::CtrlC(5), SIGINT),
        (Ending::HangUp, SIGHUP),
    ] {
        let ended = end_kit(ending);
        ended.assert_killed_by(signal);
        // Once, by the program: the guardian, in the same group, saw a clean end.
        ended.assert_cleaned_once("main", &signal_reason(signal));
    }
}

#[test]
fn kill_9_and_crashes_are_cleaned_up_by_the_guardian_before_wait_returns() {
    for (ending, signal, reason) in [
        (Ending::Kill, SIGKILL, KILLED),
        (Ending::Crash, SIGSEGV, "Died { signal: Some(SIGSEGV=11) }"),
        (Ending::Abort, SIGABRT, "Died { signal: Some(SIGABRT=6) }"),
    ] {
        let ended = end_kit(ending);
        ended.assert_killed_by(signal);
        ended.assert_cleaned_once("main", reason);
    }
}

/// `Program::bin` finds the binary at run time, where cargo does not set `CARGO_BIN_EXE_kit`:
/// beside the test's executable.
#[test]
fn a_binary_is_found_at_run_time_too() {
    let found = Program::bin("kit").no_ready_line().spawn().expect("found");
    drop(found);
    let path = Path::new(env!("CARGO_BIN_EXE_kit"));
    assert!(path.is_file());
}

/// Step by step: Ctrl-C pressed while the guardian runs, the guardian's pid read from it, and
/// the time from the signal to the end.
#[test]
fn step_by_step_with_the_time_it_took() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut running = finally_test::bin!("kit")
        .env("FINALLY_TEST_MARKER", dir.path().join("marker"))
        .process_group()
        .start()
        .unwrap();
    running.ctrl_c(2).unwrap();
    let ended = running.wait().unwrap();
    ended.assert_signaled(SIGINT);
    assert!(ended.took < finally_test::PATIENCE, "{:?}", ended.took);
    assert_eq!(ended.stdout, ["ready"]);
}
