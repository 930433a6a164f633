//! Hostile endings: the process always ends, and no cleanup runs twice, when its stderr is
//! broken, when a cleanup calls `exit`, when `exit` is entered again, and when the program
//! forks. (A thread holding a lock that a cleanup needs: `tests/meet.rs`.)

mod common;

use std::fs::File;
use std::process::Command;

use common::*;

fn hostile(name: &str, setup: impl FnOnce(&mut Command)) -> Scenario {
    Scenario::start_program(env!("CARGO_BIN_EXE_hostile").as_ref(), name, setup)
}

/// A scenario that forks: started, and its child's pid, from the child's `child-ready` line.
fn forking(args: &[&str]) -> (Scenario, i32) {
    let scenario = Scenario::start_bin(env!("CARGO_BIN_EXE_hostile").as_ref(), args, |_| {});
    let child = scenario.forked_pid();
    (scenario, child)
}

/// Sends `signal` to a forked child of a scenario.
fn signal_child(child: i32, signal: libc::c_int) {
    // SAFETY: `kill` of our grandchild, which its parent reaps only once it has ended.
    assert_eq!(
        unsafe { libc::kill(child, signal) },
        0,
        "kill({child}, {signal})"
    );
}

/// The report scenario, stopped by `signal`: the inner cleanup panicked and the runtime said so
/// on a stderr that could not take it; the outer one still ran, once, and the process ended by
/// the signal.
fn assert_every_cleanup_ran(ended: &Ended, signal: libc::c_int) {
    ended.assert_killed_by(signal);
    let reason = signal_reason(signal);
    assert_eq!(
        ended.count(&format!("start panicking {reason}")),
        1,
        "marker: {:?}",
        ended.marker
    );
    ended.assert_cleaned_once("outer", &reason);
}

/// On a terminal of its own, as its stderr and controlling terminal, which the kit hangs up:
/// the kernel sends SIGHUP, and each write to stderr fails with `EIO`.
#[test]
fn a_terminal_that_hangs_up_still_gets_every_cleanup_and_ends_by_sighup() {
    let program = finally_test::Program::path(env!("CARGO_BIN_EXE_hostile"))
        .arg("report")
        .terminal();
    let scenario = Scenario::start_kit(program, |_| {});
    scenario.expect_line("ready");
    scenario.hang_up();
    let ended = scenario.wait();
    assert_every_cleanup_ran(&ended, SIGHUP);
}

#[test]
fn stderr_a_closed_pipe_does_not_stop_the_cleanups_nor_raise_sigpipe() {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    let scenario = hostile("report", |command| {
        command
            .stderr(writer)
            .env("FINALLY_TEST_SIGPIPE_DEFAULT", "1");
    });
    scenario.expect_line("ready");
    drop(reader);
    scenario.signal(SIGTERM);
    assert_every_cleanup_ran(&scenario.wait(), SIGTERM);
}

#[test]
fn stderr_on_a_full_disk_does_not_stop_the_cleanups() {
    let full = File::options()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let ended = hostile("report", |command| {
        command.stderr(full);
    })
    .signal_when_ready(SIGINT);
    assert_every_cleanup_ran(&ended, SIGINT);
}

#[test]
fn a_cleanup_that_calls_exit_on_return_ends_the_process_with_its_code() {
    let ended = hostile("cleanup-exits-on-return", |_| {}).wait();
    ended.assert_exit_code(7);
    assert_eq!(ended.count("start exits Returned"), 1, "{:?}", ended.marker);
    ended.assert_cleaned_once("worker", &exited(7));
    assert_eq!(ended.count("after"), 0, "{:?}", ended.marker);
}

#[test]
fn a_cleanup_that_calls_exit_on_a_signal_ends_the_process_with_its_code() {
    let ended = hostile("cleanup-exits-on-signal", |_| {}).signal_when_ready(SIGTERM);
    ended.assert_exit_code(7);
    let reason = signal_reason(SIGTERM);
    assert_eq!(
        ended.count(&format!("start exits {reason}")),
        1,
        "{:?}",
        ended.marker
    );
    // The worker's ran before it, main's after it: the shutdown went on.
    ended.assert_cleaned_once("worker", &reason);
    ended.assert_cleaned_once("main", &reason);
}

#[test]
fn exit_entered_again_by_a_cleanup_does_not_abort_and_the_first_code_stands() {
    assert_exit_in_exit_keeps("exit-reentered", 3);
}

#[test]
fn exit_entered_by_a_cleanup_after_main_returned_keeps_main_s_code() {
    assert_exit_in_exit_keeps("return-then-exit", 0);
}

/// Runs `scenario`, in which a cleanup calls `exit(5)` while the process exits with `code`, and
/// asserts that `code` stands and that the other cleanup still ran once.
fn assert_exit_in_exit_keeps(scenario: &str, code: i32) {
    let ended = hostile(scenario, |_| {}).wait();
    ended.assert_exit_code(first_exit_code(code));
    let reason = exited(code);
    assert_eq!(
        ended.count(&format!("start exits-5 {reason}")),
        1,
        "{:?}",
        ended.marker
    );
    ended.assert_cleaned_once("worker", &reason);
}

#[test]
fn a_forked_child_ends_by_the_signal_with_its_own_cleanups_only() {
    let (scenario, child) = forking(&["fork", "wait"]);
    signal_child(child, SIGTERM);
    scenario.expect_line("child ended by signal 15");
    let ended = scenario.signal_when_ready(SIGTERM);
    ended.assert_killed_by(SIGTERM);
    let reason = signal_reason(SIGTERM);
    // The child ran the cleanup of the function it forked in, not the other thread's, which
    // is not in the child; the parent ran both.
    ended.assert_cleaned_once("main@child", &reason);
    assert_eq!(ended.count("start worker@child"), 0, "{:?}", ended.marker);
    ended.assert_cleaned_once("worker@parent", &reason);
    ended.assert_cleaned_once("main@parent", &reason);
}

#[test]
fn a_forked_child_that_exits_runs_its_own_cleanups_only() {
    let (scenario, _) = forking(&["fork", "exit"]);
    scenario.expect_line("child ended with 4");
    let ended = scenario.signal_when_ready(SIGINT);
    ended.assert_killed_by(SIGINT);
    ended.assert_cleaned_once("main@child", &exited(4));
    assert_eq!(ended.count("start worker@child"), 0, "{:?}", ended.marker);
    let reason = signal_reason(SIGINT);
    ended.assert_cleaned_once("worker@parent", &reason);
    ended.assert_cleaned_once("main@parent", &reason);
}

#[test]
fn a_forked_child_that_enters_a_guarded_function_later_is_covered() {
    let (scenario, child) = forking(&["fork-outside", "guard"]);
    scenario.expect_line("child-guarded");
    signal_child(child, SIGTERM);
    scenario.expect_line("child ended by signal 15");
    let ended = scenario.signal_when_ready(SIGTERM);
    let reason = signal_reason(SIGTERM);
    ended.assert_cleaned_once("guard@child", &reason);
    assert_eq!(ended.count("start worker@child"), 0, "{:?}", ended.marker);
    ended.assert_cleaned_once("worker@parent", &reason);
}

#[test]
fn a_signal_to_a_forked_child_with_nothing_pending_has_its_default_effect() {
    let (scenario, child) = forking(&["fork-outside", "wait"]);
    signal_child(child, SIGINT);
    scenario.expect_line("child ended by signal 2");
    let ended = scenario.signal_when_ready(SIGTERM);
    assert_eq!(ended.count("start worker@child"), 0, "{:?}", ended.marker);
    ended.assert_cleaned_once("worker@parent", &signal_reason(SIGTERM));
}
