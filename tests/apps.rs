//! A library's `finally` inside an application that handles its signals itself: the
//! application decides how the process reacts to a signal, and the library's cleanups fit in.
//!
//! Each case is a child process (`tests/bin/apps.rs`) sent a real SIGINT.

mod common;

use common::*;

/// The application's handlers: a signal-hook flag, tokio's `ctrl_c`, ctrlc.
const HANDLERS: [&str; 3] = ["flag", "tokio", "ctrlc"];

fn app(args: &[&str]) -> Scenario {
    Scenario::start_bin(env!("CARGO_BIN_EXE_apps").as_ref(), args, |_| {})
}

/// Runs the application with `args`, sends SIGINT once it is ready, and waits for its end.
fn interrupt(args: &[&str]) -> Ended {
    app(args).signal_when_ready(SIGINT)
}

#[test]
fn without_a_handler_of_the_application_s_finally_handles_sigint() {
    for order in ["before", "after"] {
        // Nothing pending, nothing changed: the default action.
        let ended = interrupt(&["none", order, "idle"]);
        ended.assert_killed_by(SIGINT);
        assert!(ended.marker.is_empty(), "{:?}", ended.marker);

        let ended = interrupt(&["none", order, "pending"]);
        ended.assert_killed_by(SIGINT);
        ended.assert_cleaned_once("library", &signal_reason(SIGINT));
        assert_eq!(ended.marker.len(), 2, "{:?}", ended.marker);
    }
}

#[test]
fn the_application_s_handler_gets_sigint_whether_registered_before_or_after_finally() {
    for handler in HANDLERS {
        for order in ["before", "after"] {
            let case = format!("{handler} registered {order} finally");
            // Nothing pending: the signal is the application's, and `finally` does nothing.
            let ended = interrupt(&[handler, order, "idle"]);
            assert_eq!(ended.status.code(), Some(7), "{case}: {:?}", ended.status);
            assert_eq!(ended.marker, ["app handled SIGINT"], "{case}");

            // A cleanup pending: the application's handler runs, the library's function
            // returns as the application winds down, and its cleanup runs then, once.
            let ended = interrupt(&[handler, order, "pending"]);
            assert_eq!(ended.status.code(), Some(7), "{case}: {:?}", ended.status);
            ended.assert_cleaned_once("library", "Returned");
            assert_eq!(ended.count("app handled SIGINT"), 1, "{case}");
            assert!(
                ended.position("end library Returned") < ended.position("app handled SIGINT"),
                "{case}: {:?}",
                ended.marker
            );
        }
    }
}

#[test]
fn a_signal_the_application_does_not_handle_is_still_finally_s() {
    // The application handles SIGINT only (ctrlc, with its `termination` feature, takes SIGTERM
    // and SIGHUP too).
    for handler in ["flag", "tokio"] {
        let ended = app(&[handler, "after", "pending"]).signal_when_ready(SIGTERM);
        ended.assert_killed_by(SIGTERM);
        ended.assert_cleaned_once("library", &signal_reason(SIGTERM));
        assert_eq!(ended.count("app handled SIGINT"), 0, "{:?}", ended.marker);
    }
}

#[test]
fn an_application_that_exits_from_its_handler_runs_the_pending_cleanups() {
    let ended = interrupt(&["ctrlc-exits"]);
    ended.assert_exit_code(7);
    ended.assert_cleaned_once("library", &exited(7));
    assert_eq!(ended.count("app handled SIGINT"), 1, "{:?}", ended.marker);
}

#[test]
fn an_application_that_ends_by_the_signal_runs_the_pending_cleanups_with_end_by() {
    let ended = interrupt(&["end-by"]);
    ended.assert_killed_by(SIGINT);
    ended.assert_cleaned_once("library", &signal_reason(SIGINT));
    assert!(ended.position("app handled SIGINT") < ended.position("start library"));
}

#[test]
fn an_application_that_leaves_no_signal_to_finally_gets_the_default_action() {
    let ended = interrupt(&["leave-signals"]);
    ended.assert_killed_by(SIGINT);
    assert!(ended.marker.is_empty(), "{:?}", ended.marker);
}

#[test]
fn options_after_a_library_installed_finally_are_refused_and_change_nothing() {
    let ended = interrupt(&["too-late"]);
    let refused = &ended.marker[0];
    assert!(
        refused.starts_with("refused: could not apply the options: finally was installed before"),
        "{:?}",
        ended.marker
    );
    // The defaults stand: SIGINT runs the pending cleanup and ends the process.
    ended.assert_killed_by(SIGINT);
    ended.assert_cleaned_once("library", &signal_reason(SIGINT));
}
