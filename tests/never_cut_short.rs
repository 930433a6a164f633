//! Signals that arrive while a cleanup runs do not cut it short.

mod common;

use std::thread;
use std::time::Duration;

use common::*;

#[test]
fn a_storm_of_signals_during_a_one_second_cleanup_does_not_stop_it() {
    let scenario = Scenario::start("slow-cleanup", &[]);
    scenario.expect_line("ready");
    scenario.signal(SIGTERM);
    scenario.expect_line("cleaning");
    // Dozens of signals from three threads at once, while the cleanup sleeps for a second.
    let pid = scenario.pid();
    thread::scope(|scope| {
        for signal in [SIGINT, SIGTERM, SIGHUP] {
            scope.spawn(move || {
                for _ in 0..20 {
                    // SAFETY: our own child, not reaped before these threads end.
                    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
                    thread::sleep(Duration::from_millis(10));
                }
            });
        }
    });
    let ended = scenario.wait();
    ended.assert_killed_by(SIGTERM);
    ended.assert_cleaned_once("slow", &signal_reason(SIGTERM));
}

#[test]
fn a_signal_during_a_normal_cleanup_takes_effect_when_it_finishes() {
    let scenario = Scenario::start("signal-during-inner-cleanup", &[]);
    scenario.expect_line("ready");
    // The inner function has returned and its slow cleanup has started.
    scenario.expect_line("cleaning");
    scenario.signal(SIGTERM);
    let ended = scenario.wait();
    ended.assert_killed_by(SIGTERM);
    // The inner cleanup finished as a normal return; the code after the inner function did not
    // run; the outer cleanup ran for the signal, after the inner one.
    ended.assert_cleaned_once("slow", "Returned");
    ended.assert_cleaned_once("outer", &signal_reason(SIGTERM));
    assert_eq!(ended.count("after inner"), 0, "marker: {:?}", ended.marker);
    assert!(ended.position("end slow Returned") < ended.position("start outer"));
}

#[test]
fn a_cleanup_that_calls_guarded_functions_finishes_during_a_stop() {
    let scenario = Scenario::start("cleanup-calls-guarded", &[]);
    scenario.expect_line("ready");
    scenario.expect_line("cleaning");
    scenario.signal(SIGTERM);
    let ended = scenario.wait();
    ended.assert_killed_by(SIGTERM);
    // The guarded function the cleanup called ran, and so did its own cleanup, once; the
    // cleanup ran to its end; the code after the function did not run.
    ended.assert_cleaned_once("calling", "Returned");
    ended.assert_cleaned_once("helper", "Returned");
    assert!(ended.position("end helper Returned") < ended.position("end calling Returned"));
    assert_eq!(ended.count("after"), 0, "marker: {:?}", ended.marker);
}
