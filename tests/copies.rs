//! Two copies of `finally` in one process: every copy's cleanups run once and the process ends
//! by the signal; with nothing pending, the signal has its default effect; the application's own
//! handler still wins; the application's options hold whichever copy acts first. Both orders of
//! installation. See `tests/bin/copies.rs`.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn copies(order: &str, situation: &str) -> Scenario {
    Scenario::start_bin(
        env!("CARGO_BIN_EXE_copies").as_ref(),
        &[order, situation],
        |_| {},
    )
}

const ORDERS: [&str; 2] = ["app-first", "library-first"];

#[test]
fn a_signal_runs_the_cleanups_of_both_copies_once_and_ends_the_process_by_it() {
    for order in ORDERS {
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] {
            let ended = copies(order, "pending").signal_when_ready(signal);
            ended.assert_killed_by(signal);
            let reason = signal_reason(signal);
            ended.assert_cleaned_once("app", &reason);
            ended.assert_cleaned_once("library", &reason);
        }
    }
}

#[test]
fn a_thread_whose_functions_are_of_both_copies_runs_each_cleanup_once() {
    for order in ORDERS {
        for signal in [SIGINT, SIGTERM] {
            let reason = signal_reason(signal);
            let ended = copies(order, "mixed-wait").signal_when_ready(signal);
            ended.assert_killed_by(signal);
            for name in ["outer", "inner", "app"] {
                ended.assert_cleaned_once(name, &reason);
            }
            // The library's function is entered again and again inside the application's: one
            // copy stops the thread, and the other knows why.
            let ended = copies(order, "mixed-loop").signal_when_ready(signal);
            ended.assert_killed_by(signal);
            for name in ["outer", "app"] {
                ended.assert_cleaned_once(name, &reason);
            }
        }
    }
}

#[test]
fn with_nothing_pending_in_either_copy_a_signal_has_its_default_effect() {
    for order in ORDERS {
        let ended = copies(order, "idle").signal_when_ready(SIGTERM);
        ended.assert_killed_by(SIGTERM);
        assert_eq!(ended.marker, Vec::<String>::new());
    }
}

#[test]
fn the_application_s_own_handler_still_wins_over_both_copies() {
    for order in ORDERS {
        for when in ["app-handler-before", "app-handler-after"] {
            let ended = copies(order, when).signal_when_ready(SIGINT);
            // The application returned from `main` on its own: the library's cleanup ran at
            // `exit`, the application's on its return.
            ended.assert_exit_code(0);
            ended.assert_cleaned_once("app", "Returned");
            ended.assert_cleaned_once("library", &exited(0));
        }
    }
}

/// The scenario whose library cleanup takes a minute, stopped by `signal` and then, once that
/// cleanup has started, by `more` of it, spaced (signals of one kind sent at once merge into
/// one): how it ended, and how long after the first signal.
fn stop_slow_library(order: &str, signal: libc::c_int, more: usize) -> (Ended, Duration) {
    let scenario = copies(order, "slow-library");
    scenario.expect_line("ready");
    let signalled = Instant::now();
    scenario.signal(signal);
    scenario.expect_line("cleaning");
    for _ in 0..more {
        std::thread::sleep(Duration::from_millis(50));
        if !scenario.has_ended() {
            scenario.signal(signal);
        }
    }
    let ended = scenario.wait();
    ended.assert_killed_by(signal);
    (ended, signalled.elapsed())
}

#[test]
fn the_application_s_timeout_holds_while_the_library_s_copy_cleans_up() {
    for order in ORDERS {
        let (ended, took) = stop_slow_library(order, SIGTERM, 0);
        assert!(
            ended.stderr.contains("did not finish within 1s"),
            "{}",
            ended.stderr
        );
        // The deadline's second, not the cleanup's minute.
        assert!(took < Duration::from_secs(30), "{order}: {took:?}");
        assert_eq!(ended.count("start slow library"), 1, "{:?}", ended.marker);
        assert_eq!(ended.count("end slow library"), 0, "{:?}", ended.marker);
    }
}

#[test]
fn a_main_that_returns_on_the_stop_does_not_turn_the_signal_into_an_exit() {
    // `main` returns once the stop is requested, while the library's copy runs a cleanup that
    // the deadline cuts: the process ends by the signal, not with `main`'s code.
    for order in ORDERS {
        let scenario = copies(order, "slow-library-returns");
        scenario.expect_line("ready");
        scenario.signal(SIGTERM);
        scenario.expect_line("cleaning");
        let ended = scenario.wait();
        ended.assert_killed_by(SIGTERM);
        assert!(
            ended.stderr.contains("did not finish within 1s"),
            "{}",
            ended.stderr
        );
    }
}

#[test]
fn the_application_s_timeout_holds_while_the_library_s_copy_cleans_up_at_exit() {
    // The library's exit hook runs first when its copy was installed last: the application's
    // deadline counts from the exit all the same.
    for order in ORDERS {
        let scenario = copies(order, "slow-library-exit");
        scenario.expect_line("ready");
        let exited_at = Instant::now();
        scenario.expect_line("cleaning");
        let ended = scenario.wait();
        ended.assert_exit_code(first_exit_code(5));
        assert!(
            ended.stderr.contains("did not finish within 1s"),
            "{}",
            ended.stderr
        );
        let took = exited_at.elapsed();
        assert!(took < Duration::from_secs(30), "{order}: {took:?}");
    }
}

#[test]
fn the_application_s_force_quit_counts_the_signals_that_the_library_s_copy_holds_back() {
    for order in ORDERS {
        let (ended, _) = stop_slow_library(order, SIGINT, 2);
        assert!(ended.stderr.contains("forced to quit"), "{}", ended.stderr);
        assert!(!ended.stderr.contains("did not finish"), "{}", ended.stderr);
    }
}
