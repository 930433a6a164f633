//! Guards: cleanups made at run time, with their own state. Each ending runs a guard's cleanup
//! exactly once, in the order of the attribute's cleanups.

mod common;

use common::*;

fn guards(name: &str) -> Scenario {
    Scenario::start_program(env!("CARGO_BIN_EXE_guards").as_ref(), name, |_| {})
}

#[test]
fn a_guard_runs_when_dropped() {
    let ended = guards("return").wait();
    ended.assert_exit_code(0);
    ended.assert_cleaned_once("guard", "Returned");
    assert!(ended.position("end guard Returned") < ended.position("after"));
}

#[test]
fn a_panic_runs_the_guards_told_its_message_then_the_enclosing_cleanup() {
    let ended = guards("panic").wait();
    ended.assert_exit_code(101);
    let reason = r#"Panicked { message: Some("boom") }"#;
    for name in ["inner guard", "main", "outer guard"] {
        ended.assert_cleaned_once(name, reason);
    }
    let end = |name| ended.position(&format!("end {name} {reason}"));
    assert!(end("inner guard") < end("main") && end("main") < end("outer guard"));
}

#[test]
fn a_signal_runs_every_guard_once_in_the_order_of_nested_calls() {
    for signal in [SIGINT, SIGTERM] {
        let ended = guards("signal").signal_when_ready(signal);
        ended.assert_killed_by(signal);
        let reason = signal_reason(signal);
        for name in ["inner guard", "main", "outer guard"] {
            ended.assert_cleaned_once(name, &reason);
        }
        // Made inside the guarded function: before its cleanup. Made before it: after.
        let end = |name| ended.position(&format!("end {name} {reason}"));
        assert!(end("inner guard") < end("main") && end("main") < end("outer guard"));
    }
}

#[test]
fn exit_runs_every_pending_guard_once_and_keeps_the_code() {
    let ended = guards("exit").wait();
    ended.assert_exit_code(3);
    let reason = &exited(3);
    for name in ["inner guard", "main", "outer guard"] {
        ended.assert_cleaned_once(name, reason);
    }
}

#[test]
fn a_dismissed_guard_never_runs() {
    let ended = guards("dismissed").signal_when_ready(SIGTERM);
    ended.assert_killed_by(SIGTERM);
    assert_eq!(ended.count("start dismissed"), 0, "{:?}", ended.marker);
    ended.assert_cleaned_once("kept", &signal_reason(SIGTERM));
}

#[test]
fn a_guard_dropped_inside_another_guard_s_cleanup_runs_once() {
    let ended = guards("dropped-in-a-cleanup").signal_when_ready(SIGTERM);
    ended.assert_killed_by(SIGTERM);
    let reason = signal_reason(SIGTERM);
    ended.assert_cleaned_once("holder", &reason);
    ended.assert_cleaned_once("held", &reason);
}

#[test]
fn a_guard_made_in_a_cleanup_runs_when_that_cleanup_ends() {
    let ended = guards("made-in-a-cleanup").wait();
    ended.assert_exit_code(0);
    ended.assert_cleaned_once("making", "Returned");
    ended.assert_cleaned_once("made in a cleanup", "Returned");
    assert!(ended.position("end made in a cleanup Returned") < ended.position("after"));
}

#[test]
fn each_thread_s_guard_runs_once_with_its_own_value() {
    let ended = guards("threads").signal_when_ready(SIGINT);
    ended.assert_killed_by(SIGINT);
    let reason = signal_reason(SIGINT);
    for thread in 0..4 {
        ended.assert_cleaned_once(&format!("thread with value-{thread}"), &reason);
    }
    ended.assert_cleaned_once("main guard", &reason);
}

#[test]
fn ten_thousand_pending_guards_all_run_once_newest_first() {
    let ended = guards("many").signal_when_ready(SIGTERM);
    ended.assert_killed_by(SIGTERM);
    let line = format!(
        "10000 guards ran, 0 out of order, for {}",
        signal_reason(SIGTERM)
    );
    assert_eq!(ended.count(&line), 1, "{:?}", ended.marker);
}

#[test]
fn a_cleanup_that_fails_is_reported_in_one_line() {
    let ended = guards("failing").wait();
    ended.assert_exit_code(0);
    let lines: Vec<&str> = ended.stderr.lines().collect();
    assert!(
        lines.iter().any(|line| line
            .starts_with("finally: failing_cleanup of returns_with_a_failing_cleanup failed: the scratch directory is busy")),
        "stderr: {}",
        ended.stderr
    );
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("finally: the guard made at ")
                && line.contains(" failed: ")),
        "stderr: {}",
        ended.stderr
    );
    assert_eq!(lines.len(), 2, "stderr: {}", ended.stderr);
}

#[test]
fn a_guard_dropped_on_another_thread_is_not_run_again() {
    let ended = guards("moved").signal_when_ready(SIGTERM);
    ended.assert_killed_by(SIGTERM);
    ended.assert_cleaned_once("moved", "Returned");
}

#[test]
fn a_value_guard_runs_once_with_its_value_on_each_ending() {
    let ended = guards("value").signal_when_ready(SIGTERM);
    ended.assert_killed_by(SIGTERM);
    assert_eq!(
        ended.count("using the value of 9 bytes"),
        1,
        "{:?}",
        ended.marker
    );
    ended.assert_cleaned_once("value the value", &signal_reason(SIGTERM));
}

#[test]
fn a_value_given_back_is_never_cleaned_up() {
    let ended = guards("value-kept").signal_when_ready(SIGTERM);
    ended.assert_killed_by(SIGTERM);
    assert_eq!(ended.count("kept the value"), 1, "{:?}", ended.marker);
    assert_eq!(
        ended.count("start value the value"),
        0,
        "{:?}",
        ended.marker
    );
    ended.assert_cleaned_once("other", &signal_reason(SIGTERM));
}

#[test]
fn a_value_is_read_by_its_thread_and_its_cleanup_at_once() {
    for _ in 0..5 {
        let ended = guards("value-read").signal_when_ready(SIGTERM);
        ended.assert_killed_by(SIGTERM);
        ended.assert_cleaned_once("value the value", &signal_reason(SIGTERM));
        let reads = ended.marker.iter().find(|line| line.starts_with("read "));
        assert!(
            reads.is_some_and(|line| line != "read 0 times before the cleanup"),
            "{:?}",
            ended.marker
        );
    }
}

#[test]
fn a_value_asked_back_while_its_cleanup_runs_is_not_given() {
    let ended = guards("value-taken").signal_when_ready(SIGTERM);
    ended.assert_killed_by(SIGTERM);
    let reason = signal_reason(SIGTERM);
    ended.assert_cleaned_once("value", &reason);
    let asked = ended.position("into_inner gave None");
    assert!(asked < ended.position("answered true; still the value"));
    assert!(asked < ended.position(&format!("end value {reason}")));
}
