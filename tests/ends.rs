//! Each way a guarded function can end runs its cleanup once, and the process ends as it would
//! have without the crate.

mod common;

use common::*;

#[test]
fn return_runs_the_cleanup_once_and_keeps_the_value() {
    let ended = Scenario::start("return", &[]).wait();
    ended.assert_exit_code(0);
    ended.assert_cleaned_once("main", "Returned");
    // The caller got the value, after the cleanup.
    assert!(ended.position("end main Returned") < ended.position("returned 42"));
}

#[test]
fn panic_runs_the_cleanup_once_and_goes_on() {
    let ended = Scenario::start("panic", &[]).wait();
    ended.assert_exit_code(101);
    ended.assert_cleaned_once("main", r#"Panicked { message: Some("boom") }"#);
    assert!(ended.stderr.contains("boom"), "stderr: {}", ended.stderr);
}

#[test]
fn process_exit_runs_every_pending_cleanup_once_and_keeps_the_code() {
    let ended = Scenario::start("exit", &[]).wait();
    ended.assert_exit_code(3);
    ended.assert_cleaned_once("main", "Exited");
    ended.assert_cleaned_once("worker", "Exited");
}

#[test]
fn each_handled_signal_runs_the_cleanup_and_ends_the_process_by_it() {
    for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] {
        let scenario = Scenario::start("wait", &[]);
        scenario.expect_line("ready");
        scenario.signal(signal);
        let ended = scenario.wait();
        ended.assert_killed_by(signal);
        ended.assert_cleaned_once("main", &signal_reason(signal));
    }
}

#[test]
fn a_signal_with_nothing_pending_has_its_default_effect() {
    let scenario = Scenario::start("idle", &[]);
    scenario.expect_line("ready");
    scenario.signal(SIGINT);
    let ended = scenario.wait();
    ended.assert_killed_by(SIGINT);
    // The cleanup ran when its function returned, and not again.
    ended.assert_cleaned_once("main", "Returned");
}

#[test]
fn a_signal_the_process_inherited_as_ignored_stays_ignored() {
    let scenario = Scenario::start_with("wait", &[], |command| {
        use std::os::unix::process::CommandExt;
        // SAFETY: `signal` is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                libc::signal(SIGHUP, libc::SIG_IGN);
                Ok(())
            });
        }
    });
    scenario.expect_line("ready");
    // Had SIGHUP been handled, the process would end by it, cleaning up with its name. An
    // ignored SIGHUP is dropped on sending, so the SIGTERM after it decides.
    scenario.signal(SIGHUP);
    scenario.signal(SIGTERM);
    let ended = scenario.wait();
    ended.assert_killed_by(SIGTERM);
    ended.assert_cleaned_once("main", &signal_reason(SIGTERM));
}
