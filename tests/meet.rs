//! Where two features meet: grace periods and the timeout, a stop during a grace period, locks
//! held across guarded calls and guard drops, the programs a cleanup starts, `fork` with guards,
//! an option that cannot start, and a guard kept in a thread-local. See `tests/bin/meet.rs`.

mod common;

use std::thread;
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
fn an_async_main_that_returns_on_the_stop_waits_for_the_end_where_it_is() {
    // Guarded above `#[tokio::main]`: unwinding out of the runtime would drop it, cancelling its
    // tasks, and then wait for its blocking task, for ever.
    let scenario = Scenario::start_bin(env!("CARGO_BIN_EXE_async-main").as_ref(), &[], |_| {});
    let (ended, _) = stop(scenario, SIGTERM);
    ended.assert_killed_by(SIGTERM);
    // The runtime's tasks were not cancelled by `main` leaving it: the stop ran them.
    for name in ["main", "stopping", "waiting"] {
        ended.assert_cleaned_once(name, &signal_reason(SIGTERM));
    }
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

/// Runs of each lock scenario, and the most time they take.
const LOCK_RUNS: usize = 12;
const LOCK_BUDGET: Duration = Duration::from_secs(40);

/// Stops `scenario` by SIGINT after a random delay, `LOCK_RUNS` times: it must end by the
/// signal every time, having run `cleaned` once each.
fn ends_every_time(scenario: &str, cleaned: &[&str]) {
    let mut random = Random::new();
    let seed = random.seed();
    let started = Instant::now();
    for run in 0..LOCK_RUNS {
        if started.elapsed() > LOCK_BUDGET && run >= LOCK_RUNS / 4 {
            eprintln!("stopped after {run} runs: out of time");
            break;
        }
        let child = meet(scenario, &[]);
        child.expect_line("ready");
        let delay = random.below(3000);
        thread::sleep(Duration::from_micros(delay));
        child.signal(SIGINT);
        let ended = child.wait();
        let context = format!("run {run} (seed {seed}, delay {delay} µs)");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&ended.status),
            Some(SIGINT),
            "{context}: {:?}; stderr: {}",
            ended.status,
            ended.stderr
        );
        for name in cleaned {
            ended.assert_cleaned_once(name, &signal_reason(SIGINT));
        }
    }
}

#[test]
fn a_lock_held_across_guarded_calls_does_not_keep_a_cleanup_from_running() {
    ends_every_time("lock-loop", &["locking", "main"]);
}

#[test]
fn a_lock_held_across_a_guarded_call_nested_in_a_stopped_function_is_released() {
    ends_every_time("lock-nested", &["locking", "looper", "main"]);
}

#[test]
fn a_lock_held_around_a_function_that_returns_within_its_grace_is_released() {
    ends_every_time("lock-around-grace", &["graceful", "locking", "main"]);
}

#[test]
fn a_lock_held_while_dropping_another_thread_s_guard_is_released() {
    ends_every_time("lock-guard-drop", &["maker", "main"]);
}

/// The lines the program a cleanup started printed, after `when: `.
fn child_lines(ended: &Ended, when: &str) -> Vec<String> {
    let prefix = format!("{when}: ");
    ended
        .marker
        .iter()
        .filter_map(|line| line.strip_prefix(&prefix).map(str::to_owned))
        .collect()
}

/// A program started by a cleanup got the signal mask and dispositions the program had, and a
/// pipeline in it ended; and the cleanup's own write to a closed pipe failed with EPIPE,
/// whatever the program had SIGPIPE set to.
fn assert_child_as_before(ended: &Ended) {
    let before = child_lines(ended, "before");
    let cleanup = child_lines(ended, "cleanup");
    assert!(before.len() >= 3, "marker: {:?}", ended.marker);
    assert_eq!(cleanup, before, "marker: {:?}", ended.marker);
    assert_eq!(
        ended.count("closed pipe: BrokenPipe"),
        1,
        "marker: {:?}",
        ended.marker
    );
}

/// The scenario whose cleanup starts programs, then (`wait`) stopped by a signal or (`exit`)
/// exiting with 4; with SIGPIPE at its default action, as many programs set it, or not.
fn child_starting(then: &str, sigpipe_default: bool) -> Scenario {
    Scenario::start_bin(
        env!("CARGO_BIN_EXE_meet").as_ref(),
        &["cleanup-starts-a-child", then],
        |command| {
            if sigpipe_default {
                command.env("FINALLY_TEST_SIGPIPE_DEFAULT", "1");
            }
        },
    )
}

#[test]
fn a_program_a_cleanup_starts_on_a_signal_has_the_program_s_signal_mask() {
    for sigpipe_default in [false, true] {
        let ended = child_starting("wait", sigpipe_default).signal_when_ready(SIGTERM);
        ended.assert_killed_by(SIGTERM);
        ended.assert_cleaned_once("child-starting", &signal_reason(SIGTERM));
        assert_child_as_before(&ended);
    }
}

#[test]
fn a_program_a_cleanup_starts_on_exit_has_the_program_s_signal_mask() {
    for sigpipe_default in [false, true] {
        let ended = child_starting("exit", sigpipe_default).wait();
        ended.assert_exit_code(4);
        ended.assert_cleaned_once("child-starting", &exited(4));
        assert_child_as_before(&ended);
    }
}

/// A forking scenario, started, and its child's pid from the `child-ready` line.
fn forking(name: &str) -> (Scenario, i32) {
    let scenario = meet(name, &[]);
    let child = scenario.forked_pid();
    (scenario, child)
}

#[test]
fn a_guard_made_in_a_forked_child_runs_on_the_child_s_signal() {
    let (scenario, child) = forking("fork-then-guard");
    scenario.expect_line("child-guarded");
    // SAFETY: `kill` of our grandchild, which its parent reaps only once it has ended.
    assert_eq!(unsafe { libc::kill(child, SIGTERM) }, 0);
    scenario.expect_line("child ended by signal 15");
    let ended = scenario.signal_when_ready(SIGTERM);
    ended.assert_killed_by(SIGTERM);
    ended.assert_cleaned_once("guard@child", &signal_reason(SIGTERM));
    ended.assert_cleaned_once("main", "Returned");
}

#[test]
fn a_guard_made_before_a_fork_runs_in_the_parent_only() {
    // One held by another thread at the fork, which the child's exit must not run; one held by
    // the forking thread, which the child drops.
    let (scenario, _) = forking("fork-with-guards");
    scenario.expect_line("child ended with 0");
    let ended = scenario.signal_when_ready(SIGTERM);
    ended.assert_killed_by(SIGTERM);
    for guard in ["held", "mine"] {
        assert_eq!(
            ended.count(&format!("start {guard}@child")),
            0,
            "{:?}",
            ended.marker
        );
        ended.assert_cleaned_once(&format!("{guard}@parent"), "Returned");
    }
}

#[test]
fn a_deadline_thread_that_cannot_start_is_said_and_the_signals_still_run_the_cleanups() {
    let Some(user) = OtherUser::new() else {
        return eprintln!("skipped: running as another user needs root");
    };
    let no_deadline = "could not start the deadline thread: the cleanups have no deadline, \
                       everything else is installed";
    for how in ["explicit", "implicit"] {
        // The main thread and the signal thread: no room for the deadline's.
        let meet = env!("CARGO_BIN_EXE_meet");
        let scenario = user.start(meet, &["timeout-without-threads", how], 2);
        if how == "explicit" {
            // `install` returned it: the program says it, not the runtime.
            let said = scenario.next_line();
            assert!(
                said.starts_with(&format!("install: {no_deadline}")),
                "{said}"
            );
        }
        let ended = scenario.signal_when_ready(SIGTERM);
        ended.assert_killed_by(SIGTERM);
        ended.assert_cleaned_once("main", &signal_reason(SIGTERM));
        let reported = ended.stderr.contains(&format!("finally: {no_deadline} ("));
        assert_eq!(reported, how == "implicit", "stderr: {}", ended.stderr);
    }
}

#[test]
fn a_guard_kept_for_good_is_told_the_exit_and_one_in_a_thread_local_was_dropped_before() {
    let ended = meet("kept-guards", &[]).wait();
    ended.assert_exit_code(6);
    // Never dropped: `exit` runs it.
    ended.assert_cleaned_once("static", &exited(6));
    // glibc drops the main thread's thread-locals before any exit hook runs, and tells no one
    // that it is exiting: the guard's drop is an ordinary one (the documented limitation).
    ended.assert_cleaned_once("thread-local", "Returned");
    assert!(ended.position("end thread-local Returned") < ended.position("start static"));
}
