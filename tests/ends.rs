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
    ended.assert_cleaned_once("main", &exited(3));
    ended.assert_cleaned_once("worker", &exited(3));
}

#[test]
fn each_handled_signal_runs_the_cleanup_and_ends_the_process_by_it() {
    for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] {
        let ended = Scenario::start("wait", &[]).signal_when_ready(signal);
        ended.assert_killed_by(signal);
        ended.assert_cleaned_once("main", &signal_reason(signal));
    }
}

#[test]
fn a_signal_with_nothing_pending_has_its_default_effect() {
    let ended = Scenario::start("idle", &[]).signal_when_ready(SIGINT);
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

#[test]
fn as_pid_1_where_the_signal_cannot_end_it_the_exit_code_says_which() {
    // A new PID namespace makes the scenario its PID 1, which the kernel does not end by a
    // signal left at its default action. That takes privileges: without them there is no PID 1
    // to test here, and the test says so.
    let probe = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "true"])
        .stderr(std::process::Stdio::null())
        .status();
    if !probe.is_ok_and(|status| status.success()) {
        eprintln!("skipped: cannot make a PID namespace here (`unshare --pid` needs privileges)");
        return;
    }
    let scenario = Scenario::start_under(
        &["unshare", "--pid", "--fork", "--kill-child"],
        "wait",
        &[],
        |_| {},
    );
    scenario.expect_line("ready");
    // The scenario is `unshare`'s only child; signal it from this (the parent) namespace.
    let children = format!("/proc/{0}/task/{0}/children", scenario.pid());
    let children = std::fs::read_to_string(children).expect("children of unshare");
    let pid: i32 = children.trim().parse().expect("one child");
    // SAFETY: `kill` on our grandchild, kept from being reaped by `unshare` until it ends.
    assert_eq!(unsafe { libc::kill(pid, SIGTERM) }, 0);
    let ended = scenario.wait();
    // `unshare` exits as its child did.
    ended.assert_exit_code(128 + SIGTERM);
    ended.assert_cleaned_once("main", &signal_reason(SIGTERM));
}
