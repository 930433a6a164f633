//! Where two features meet: grace periods and the timeout, a stop during a grace period, locks
//! held across guarded calls and guard drops, the programs a cleanup starts, `fork` with guards,
//! an option that cannot start, and a guard kept in a thread-local. See `tests/bin/meet.rs`.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn meet(name: &str, args: &[&str]) -> Scenario {
    let mut all = vec![name];
    all.extend_from_slice(args);
    Scenario::start_bin(env!("CARGO_BIN_EXE_meet").as_ref(), &all, |_| {})
}

/// Sends `signal` once the scenario is ready, and returns how it ended and how long it took
/// from the signal.
fn stop(scenario: Scenario, signal: libc::c_int) -> (Ended, Duration) {
    scenario.expect_line("ready");
    let signalled = Instant::now();
    scenario.signal(signal);
    let ended = scenario.wait();
    (ended, signalled.elapsed())
}

#[test]
fn a_grace_longer_than_the_timeout_is_cut_so_that_the_cleanups_run_before_the_deadline() {
    // `timeout = 1s`, a stuck function with `grace = 10s`.
    let (ended, took) = stop(meet("grace-over-timeout", &[]), SIGTERM);
    ended.assert_killed_by(SIGTERM);
    let reason = signal_reason(SIGTERM);
    ended.assert_cleaned_once("stuck", &reason);
    ended.assert_cleaned_once("main", &reason);
    assert!(
        !ended.stderr.contains("did not finish"),
        "stderr: {}",
        ended.stderr
    );
    // Not the grace (10 s): near the deadline (1 s), with room for a loaded machine.
    assert!(took < Duration::from_secs(8), "took {took:?}");
}

#[test]
fn the_grace_waited_is_that_of_the_functions_pending_at_the_signal() {
    // A function with `grace = 10s` returned before the signal; the stuck one has 1 s.
    let (ended, took) = stop(meet("whose-grace", &[]), SIGTERM);
    ended.assert_killed_by(SIGTERM);
    ended.assert_cleaned_once("quick", "Returned");
    ended.assert_cleaned_once("stuck", &signal_reason(SIGTERM));
    assert!(took < Duration::from_secs(8), "waited {took:?}");
}

#[test]
fn during_a_grace_period_whatever_returns_on_the_stop_is_told_the_signal() {
    let (ended, _) = stop(meet("returns-during-grace", &[]), SIGTERM);
    ended.assert_killed_by(SIGTERM);
    let reason = signal_reason(SIGTERM);
    // The function without a grace period of its own, the guard inside it, and main: each
    // returned (or was dropped) because of the stop, and is told so, by one rule.
    for name in ["guard", "inner", "main"] {
        ended.assert_cleaned_once(name, &reason);
    }
}
