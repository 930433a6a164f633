//! The cooperative stop: a body can see the stop request, and a grace period lets it return on
//! its own before its cleanup is taken over.

mod common;

use common::*;

#[test]
fn a_body_that_stops_when_asked_cleans_up_on_its_own_thread() {
    let ended = Scenario::start("grace-cooperative", &[]).signal_when_ready(SIGTERM);
    ended.assert_killed_by(SIGTERM);
    ended.assert_cleaned_once("main on main", &signal_reason(SIGTERM));
    assert!(ended.position("body saw the stop") < ended.position("start main on main"));
    // The stop takes effect once it returned: the code after it does not run.
    assert_eq!(ended.count("after"), 0, "marker: {:?}", ended.marker);
}

#[test]
fn a_body_that_ignores_the_stop_is_cleaned_up_after_the_grace_period() {
    let ended = Scenario::start("grace-ignored", &[]).signal_when_ready(SIGTERM);
    ended.assert_killed_by(SIGTERM);
    // Run by the runtime's thread, as the body never returned.
    ended.assert_cleaned_once("main on finally-signals", &signal_reason(SIGTERM));
}

#[test]
fn a_second_signal_does_not_cut_the_grace_period_short() {
    let scenario = Scenario::start("grace-second-signal", &[]);
    scenario.expect_line("ready");
    scenario.signal(SIGTERM);
    scenario.expect_line("stopping on SIGTERM");
    scenario.signal(SIGINT);
    let ended = scenario.wait();
    // The first signal decides; the body finished and cleaned up on its own thread.
    ended.assert_killed_by(SIGTERM);
    ended.assert_cleaned_once("main on main", &signal_reason(SIGTERM));
    assert!(ended.position("body saw the stop") < ended.position("start main on main"));
}

#[test]
fn without_a_grace_period_a_body_returning_on_the_stop_still_ends_for_the_signal() {
    // The body returns as soon as it is told; its cleanup may run on its own thread or on the
    // runtime's, but it is told the signal, and the code after the function never runs.
    for _ in 0..100 {
        let ended = Scenario::start("returns-on-stop", &[]).signal_when_ready(SIGTERM);
        ended.assert_killed_by(SIGTERM);
        ended.assert_cleaned_once("main", &signal_reason(SIGTERM));
        assert_eq!(ended.count("after"), 0, "marker: {:?}", ended.marker);
    }
}
