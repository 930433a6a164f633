//! The guardian of a program that is PID 1, as in a container without an init: the original
//! process stays as the program's init, hands signals on to it, reaps orphans, cleans up if the
//! program dies, and exits as the program did.

mod common;

use common::*;

/// `unshare` makes the scenario PID 1 of a new PID namespace with its own `/proc`, as a
/// container has, and exits as the scenario does.
const PID_1: [&str; 5] = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"];

#[test]
fn a_crash_is_cleaned_up_and_the_exit_code_names_it() {
    if !pid_namespaces() {
        return;
    }
    let ended = Scenario::start_guardian_under(&PID_1, "segfault", |_| {}).wait();
    ended.assert_exit_code(128 + libc::SIGSEGV);
    ended.assert_cleaned_once("main", "Died { signal: Some(SIGSEGV=11) }");
}

#[test]
fn sigterm_to_pid_1_reaches_the_program_which_cleans_up_itself() {
    if !pid_namespaces() {
        return;
    }
    let scenario = Scenario::start_guardian_under(&PID_1, "wait", |_| {});
    scenario.expect_line("ready");
    // From this (the parent) namespace, as `docker stop` does.
    let init = only_child(scenario.pid());
    // SAFETY: `kill` on our grandchild, kept from being reaped by `unshare` until it ends.
    assert_eq!(unsafe { libc::kill(init, SIGTERM) }, 0);
    let ended = scenario.wait();
    ended.assert_exit_code(128 + SIGTERM);
    ended.assert_cleaned_once("main", &signal_reason(SIGTERM));
}

#[test]
fn a_signal_the_program_does_not_handle_kills_it_and_is_cleaned_up() {
    if !pid_namespaces() {
        return;
    }
    let scenario = Scenario::start_guardian_under(&PID_1, "wait", |_| {});
    scenario.expect_line("ready");
    let init = only_child(scenario.pid());
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(init, libc::SIGUSR1) }, 0);
    let ended = scenario.wait();
    ended.assert_exit_code(128 + libc::SIGUSR1);
    ended.assert_cleaned_once("main", "Died { signal: Some(SIGUSR1=10) }");
}

#[test]
fn kill_9_of_the_program_is_cleaned_up_told_the_signal() {
    if !pid_namespaces() {
        return;
    }
    let scenario = Scenario::start_guardian_under(&PID_1, "wait", |_| {});
    scenario.expect_line("ready");
    let program = only_child(only_child(scenario.pid()));
    // SAFETY: `kill` on a great-grandchild, which its parent, the init, does not reap before.
    assert_eq!(unsafe { libc::kill(program, libc::SIGKILL) }, 0);
    let ended = scenario.wait();
    ended.assert_exit_code(128 + libc::SIGKILL);
    ended.assert_cleaned_once("main", "Died { signal: Some(SIGKILL=9) }");
}

#[test]
fn exit_keeps_its_code() {
    if !pid_namespaces() {
        return;
    }
    let ended = Scenario::start_guardian_under(&PID_1, "exit", |_| {}).wait();
    ended.assert_exit_code(3);
    ended.assert_cleaned_once("main", &exited(3));
}

#[test]
fn orphans_are_reaped() {
    if !pid_namespaces() {
        return;
    }
    let ended = Scenario::start_guardian_under(&PID_1, "orphan", |_| {}).wait();
    ended.assert_exit_code(0);
    ended.assert_cleaned_once("main", "Returned");
    assert_eq!(ended.count("orphan reaped"), 1, "{:?}", ended.marker);
}

/// Whether a PID namespace can be made here; says so when not.
fn pid_namespaces() -> bool {
    let made = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !made {
        eprintln!("skipped: cannot make a PID namespace here (`unshare --pid` needs privileges)");
    }
    made
}

/// The one child of process `pid`, as this namespace numbers it.
fn only_child(pid: i32) -> i32 {
    let children = format!("/proc/{pid}/task/{pid}/children");
    let children = std::fs::read_to_string(children).expect("the children");
    children.trim().parse().expect("one child")
}
