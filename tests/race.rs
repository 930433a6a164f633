//! A signal that races the function's return still runs the cleanup exactly once.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::*;

const RUNS: usize = 200;
/// The runs stop early, still passing, if the machine is too slow to do them all in this time.
const BUDGET: Duration = Duration::from_secs(60);
/// Both the body's run time and the delay before the signal are drawn from 0..SPREAD µs, so
/// the signal lands before, during and after the return and the cleanup.
const SPREAD: u64 = 1500;

#[test]
fn a_signal_around_the_return_runs_the_cleanup_exactly_once() {
    let mut random = Random::new();
    let seed = random.seed();
    let started = Instant::now();
    let (mut by_signal, mut returned) = (0, 0);
    for run in 0..RUNS {
        if started.elapsed() > BUDGET && run >= RUNS / 4 {
            eprintln!("stopped after {run} runs: out of time");
            break;
        }
        let body = random.below(SPREAD);
        let delay = random.below(SPREAD);
        let scenario = Scenario::start("race", &[&body.to_string()]);
        scenario.expect_line("ready");
        thread::sleep(Duration::from_micros(delay));
        // The child may already be gone: ESRCH is one of the outcomes.
        // SAFETY: our own child, not yet reaped.
        unsafe { libc::kill(scenario.pid(), SIGTERM) };
        let ended = scenario.wait();
        let context = format!("run {run} (seed {seed}, body {body} µs, delay {delay} µs)");
        let reason = if ended.count("end main Returned") == 1 {
            returned += 1;
            "Returned".to_owned()
        } else {
            by_signal += 1;
            signal_reason(SIGTERM)
        };
        ended.assert_cleaned_once("main", &reason);
        match ended.status.code() {
            // It returned and exited before the signal: the code after the function ran.
            Some(0) => {
                assert_eq!(reason, "Returned", "{context}");
                assert_eq!(ended.count("after"), 1, "{context}");
            }
            Some(code) => panic!("{context}: exit code {code}"),
            None => ended.assert_killed_by(SIGTERM),
        }
        if reason != "Returned" {
            // Cleaned up for the signal: the code after the function must not have run.
            assert_eq!(ended.count("after"), 0, "{context}: {:?}", ended.marker);
        }
    }
    eprintln!("{returned} runs returned first, {by_signal} were stopped by the signal first");
    // Both sides of the race were met, or the timings tested nothing (a signal thread slow to
    // wake, say, would make every run return first).
    assert!(
        returned > 0 && by_signal > 0,
        "the signal never raced the return"
    );
}
