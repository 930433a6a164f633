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

/// `main` calls `exit(9)` once ready, and its cleanup would take a minute.
fn exit_9_with_a_long_cleanup(command: &mut std::process::Command) {
    cleanup_lasting(60_000)(command);
    command.env("FINALLY_TEST_EXIT", "9");
}

/// The cleanup started, was cut short, and stderr says `why`.
fn assert_cut_short(ended: &Ended, why: &str) {
    assert_eq!(ended.marker, ["start main"]);
    assert!(ended.stderr.contains(why), "stderr: {}", ended.stderr);
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
    assert_cut_short(
        &ended,
        "finally: forced to quit: the cleanups are cut short",
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

#[test]
fn the_timeout_also_bounds_the_cleanups_that_exit_runs() {
    let scenario = Scenario::start_options(exit_9_with_a_long_cleanup);
    scenario.expect_line("ready");
    scenario.expect_line("cleaning");
    let ended = scenario.wait();
    // Cut short by the deadline (2 s), and the code of `exit` kept where known.
    ended.assert_exit_code(first_exit_code(9));
    assert_cut_short(&ended, "finally: the cleanups did not finish within 2s");
}

#[test]
fn signals_during_the_cleanups_that_exit_runs_are_held_back_and_counted() {
    let scenario = Scenario::start_options(exit_9_with_a_long_cleanup);
    scenario.expect_line("ready");
    scenario.expect_line("cleaning");
    // Two are held back: the cleanup goes on.
    for _ in 0..2 {
        scenario.signal(SIGINT);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !scenario.has_ended(),
        "two signals ended the cleanups that exit runs"
    );
    // The third forces the quit, by the signal.
    scenario.signal(SIGINT);
    let ended = scenario.wait();
    ended.assert_killed_by(SIGINT);
    assert_cut_short(
        &ended,
        "finally: forced to quit: the cleanups are cut short",
    );
}

#[test]
fn the_timeout_holds_when_no_thread_can_be_started_at_the_signal() {
    // A pids limit counts the threads of a user, and root is not held to it: the program runs
    // as a user of its own, and once it is ready, other processes of that user take what the
    // limit leaves, so that the program can start no thread when the signal comes.
    let Some(user) = OtherUser::new() else {
        return eprintln!("skipped: running as another user needs root");
    };
    let scenario = user.start_with(
        env!("CARGO_BIN_EXE_options"),
        &[],
        Some(TASKS),
        cleanup_lasting(60_000),
    );
    scenario.expect_line("ready");
    let status = std::fs::read_to_string(format!("/proc/{}/status", scenario.pid())).unwrap();
    let threads: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|count| count.trim().parse().ok())
        .expect("a thread count");
    let fillers: Vec<_> = (threads..TASKS)
        .map(|_| {
            let mut sleep = std::process::Command::new("sleep");
            sleep.arg("60").stdin(std::process::Stdio::null());
            user.run_as(&mut sleep, None);
            KillOnDrop(sleep.spawn().expect("start a filler"))
        })
        .collect();
    scenario.signal(SIGTERM);
    scenario.expect_line("cleaning");
    let ended = scenario.wait();
    drop(fillers);
    ended.assert_killed_by(SIGTERM);
    assert_cut_short(&ended, "finally: the cleanups did not finish within 2s");
}

/// The pids limit of the program that cannot start a thread.
const TASKS: u64 = 16;

/// A process ended with the test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
