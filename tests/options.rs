//! The process-wide options of `#[with_cleanup]` on `main`: which signals, a deadline for the
//! cleanups, and a force-quit. See `tests/bin/options.rs`:
//! `signals = [SIGINT, SIGTERM], timeout = "2s", force_quit_after = 3`.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn cleanup_lasting(millis: u64) -> impl FnOnce(&mut std::process::Command) {
    move |command| {
        command.env("FINALLY_TEST_CLEANUP_MS", millis.to_string());
    }
}

#[test]
fn a_signal_left_out_has_its_default_effect() {
    // SIGHUP is not in the list: as for a program that reloads on it, finally leaves it alone.
    let ended = Scenario::start_options(cleanup_lasting(0)).signal_when_ready(SIGHUP);
    ended.assert_killed_by(SIGHUP);
    assert_eq!(ended.marker, Vec::<String>::new());
}

#[test]
fn a_listed_signal_runs_the_cleanup() {
    let ended = Scenario::start_options(cleanup_lasting(0)).signal_when_ready(SIGTERM);
    ended.assert_killed_by(SIGTERM);
    ended.assert_cleaned_once("main", &signal_reason(SIGTERM));
}

#[test]
fn cleanups_that_overrun_the_timeout_are_cut_and_the_process_ends_by_the_signal() {
    let scenario = Scenario::start_options(cleanup_lasting(60_000));
    scenario.expect_line("ready");
    let signalled = Instant::now();
    scenario.signal(SIGTERM);
    scenario.expect_line("cleaning");
    let ended = scenario.wait();
    ended.assert_killed_by(SIGTERM);
    // Cut short: started, never ended; and it was the deadline (2 s), not the cleanup (60 s).
    assert_eq!(ended.marker, ["start main"]);
    assert!(
        signalled.elapsed() < Duration::from_secs(30),
        "ended by the cleanup, not the deadline"
    );
    assert!(
        ended.stderr.contains(
            "finally: the cleanups did not finish within 2s (still running: slow_cleanup of main)"
        ),
        "stderr: {}",
        ended.stderr
    );
}

#[test]
fn three_more_signals_during_the_cleanups_end_the_process_at_once() {
    let scenario = Scenario::start_options(cleanup_lasting(60_000));
    scenario.expect_line("ready");
    scenario.signal(SIGINT);
    scenario.expect_line("cleaning");
    // Pressing Ctrl-C again and again, as a person would: spaced, since signals of one kind
    // sent at once merge into one. Three are enough; more may be sent before it ends.
    let pid = scenario.pid();
    for _ in 0..50 {
        // SAFETY: our own child, not yet reaped (an ended one is a zombie until `wait`).
        unsafe { libc::kill(pid, SIGINT) };
        std::thread::sleep(Duration::from_millis(20));
        if std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_or(true, |stat| stat.contains(") Z "))
        {
            break;
        }
    }
    let ended = scenario.wait();
    // By the first signal, before the deadline could act: the message says why.
    ended.assert_killed_by(SIGINT);
    assert_eq!(ended.marker, ["start main"]);
    assert!(
        ended
            .stderr
            .contains("finally: forced to quit: the cleanups are cut short"),
        "stderr: {}",
        ended.stderr
    );
    assert!(
        !ended.stderr.contains("did not finish"),
        "stderr: {}",
        ended.stderr
    );
}

/// Runs of the scenario below, spread over [`AT_ONCE`] threads, and the most time they take.
const RUNS: u64 = 40;
const AT_ONCE: u64 = 4;
const BUDGET: Duration = Duration::from_secs(30);

#[test]
fn fewer_signals_than_that_do_not_cut_the_cleanup_short() {
    // The signal that requested the stop is not one of the "more": the signal thread may make
    // the request before that signal's handler has counted it, so the runs are many.
    let seed = Random::new().seed();
    let started = Instant::now();
    std::thread::scope(|threads| {
        for worker in 0..AT_ONCE {
            threads.spawn(move || {
                let mut random = Random::from_seed(seed.wrapping_add(2 * worker));
                for run in (worker..RUNS).step_by(AT_ONCE as usize) {
                    if started.elapsed() > BUDGET && run >= RUNS / 4 {
                        return eprintln!("stopped at run {run}: out of time");
                    }
                    let scenario = Scenario::start_options(cleanup_lasting(100));
                    scenario.expect_line("ready");
                    scenario.signal(SIGINT);
                    scenario.expect_line("cleaning");
                    // Two more, each after a random pause: none, or up to 20 ms.
                    let pauses = [random.below(20_000), random.below(20_000)];
                    for pause in pauses {
                        std::thread::sleep(Duration::from_micros(pause));
                        scenario.signal(SIGINT);
                    }
                    let ended = scenario.wait();
                    let context = format!("run {run} (seed {seed}, pauses {pauses:?} µs)");
                    assert!(
                        !ended.stderr.contains("forced to quit"),
                        "{context}: {}",
                        ended.stderr
                    );
                    ended.assert_killed_by(SIGINT);
                    ended.assert_cleaned_once("main", &signal_reason(SIGINT));
                }
            });
        }
    });
}
