//! The guardian runs `main`'s cleanup when the program dies without it, and never otherwise.

mod common;

use std::os::unix::process::CommandExt;

use common::*;

const SIGKILL: i32 = libc::SIGKILL;

/// The program cleaned up itself, once; the guardian did nothing; the program's status is its
/// own.
#[test]
fn a_clean_end_is_cleaned_up_once_by_the_program_itself() {
    let scenario = Scenario::start_guardian("status", |_| {});
    scenario.expect_line("guardian: running");
    let ended = scenario.wait();
    ended.assert_exit_code(0);
    ended.assert_cleaned_once("main", "Returned");

    let ended = Scenario::start_guardian("panic", |_| {}).wait();
    ended.assert_exit_code(101);
    ended.assert_cleaned_once("main", r#"Panicked { message: Some("boom") }"#);

    let ended = Scenario::start_guardian("exit", |_| {}).wait();
    ended.assert_exit_code(3);
    ended.assert_cleaned_once("main", &exited(3));

    let ended = Scenario::start_guardian("wait", |_| {}).signal_when_ready(SIGTERM);
    ended.assert_killed_by(SIGTERM);
    ended.assert_cleaned_once("main", &signal_reason(SIGTERM));
}

#[test]
fn a_cleanup_that_panics_has_still_completed() {
    let ended = Scenario::start_guardian("cleanup-panics", |_| {}).wait();
    ended.assert_exit_code(101);
    assert!(
        ended.stderr.contains("the cleanup panics"),
        "stderr: {}",
        ended.stderr
    );
    // `wait` returned once the guardian had ended: it did not run the cleanup again.
    ended.assert_cleaned_once("main", "Returned");
}

#[test]
fn kill_9_is_cleaned_up_by_the_guardian() {
    let ended = Scenario::start_guardian("wait", |_| {}).signal_when_ready(SIGKILL);
    ended.assert_killed_by(SIGKILL);
    ended.assert_cleaned_once("main", KILLED);
}

#[test]
fn the_guardian_finds_what_the_program_named_by_its_pid() {
    // The first example, with `guardian` added: the scratch directory is named by
    // `finally::program_id()`, the program's pid in the guardian too.
    let scenario = Scenario::start_guardian("scratch", |_| {});
    let pid = scenario.ready_pid();
    scenario.signal(SIGKILL);
    let ended = scenario.wait();
    ended.assert_cleaned_once("main", KILLED);
    assert_eq!(
        ended.count(&format!("removed scratch-{pid}: true")),
        1,
        "{:?}",
        ended.marker
    );
}

#[test]
fn a_child_forked_without_exec_leaves_the_guardian_to_its_parent() {
    let ended = Scenario::start_guardian("fork", |_| {}).signal_when_ready(SIGKILL);
    ended.assert_killed_by(SIGKILL);
    // The child ran its own cleanup, and did not tell the parent's guardian it was done.
    assert_eq!(
        ended.count(&format!("forked child cleaned {}", exited(4))),
        1,
        "{:?}",
        ended.marker
    );
    assert_eq!(ended.count("child ended with 4"), 1, "{:?}", ended.marker);
    ended.assert_cleaned_once("main", KILLED);
}

#[test]
fn after_exec_the_guardian_waits_for_the_process_to_end() {
    let scenario = Scenario::start_guardian("exec", |_| {});
    // From `sh`, which took the process over.
    scenario.expect_line("ready");
    let ended = scenario.wait();
    ended.assert_exit_code(0);
    ended.assert_cleaned_once("main", "Died { signal: None }");
    assert!(
        ended.position("exec-ended") < ended.position("start main"),
        "cleaned up while the process still ran: {:?}",
        ended.marker
    );
}

#[test]
fn without_pidfd_the_guardian_still_waits_for_the_process() {
    // `pidfd_open` fails as on a kernel before 5.3: the guardian looks in `/proc` instead.
    let ended = Scenario::start_guardian("exec", without_pidfd).wait();
    ended.assert_exit_code(0);
    ended.assert_cleaned_once("main", "Died { signal: None }");
    assert!(ended.position("exec-ended") < ended.position("start main"));

    let ended = Scenario::start_guardian("wait", without_pidfd).signal_when_ready(SIGKILL);
    ended.assert_killed_by(SIGKILL);
    ended.assert_cleaned_once("main", KILLED);
}

#[test]
fn crashes_are_cleaned_up_by_the_guardian_told_the_signal() {
    for (scenario, signal, reason) in [
        (
            "segfault",
            libc::SIGSEGV,
            "Died { signal: Some(SIGSEGV=11) }",
        ),
        ("abort", libc::SIGABRT, "Died { signal: Some(SIGABRT=6) }"),
        (
            "double-panic",
            libc::SIGABRT,
            "Died { signal: Some(SIGABRT=6) }",
        ),
    ] {
        let ended = Scenario::start_guardian(scenario, no_core_dump).wait();
        ended.assert_killed_by(signal);
        ended.assert_cleaned_once("main", reason);
    }
}

#[test]
fn std_still_reports_a_stack_overflow() {
    let ended = Scenario::start_guardian("stack-overflow", no_core_dump).wait();
    ended.assert_killed_by(libc::SIGABRT);
    assert!(
        ended.stderr.contains("has overflowed its stack"),
        "stderr: {}",
        ended.stderr
    );
    ended.assert_cleaned_once("main", "Died { signal: Some(SIGABRT=6) }");
}

#[test]
fn a_program_the_guardian_s_cleanup_starts_gets_the_signals_default_actions() {
    let ended = Scenario::start_guardian("child-of-cleanup", |_| {}).signal_when_ready(SIGKILL);
    ended.assert_cleaned_once("main", KILLED);
    let line = ended
        .marker
        .iter()
        .find_map(|line| line.strip_prefix("child SigIgn:"))
        .unwrap_or_else(|| panic!("no SigIgn line in the marker: {:?}", ended.marker));
    let ignored = u64::from_str_radix(line.trim(), 16).expect("a hexadecimal mask");
    for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] {
        assert_eq!(
            ignored & (1 << (signal - 1)),
            0,
            "signal {signal} ignored in the cleanup's child: {line}"
        );
    }
}

#[test]
fn ctrl_c_to_the_whole_process_group_does_not_kill_the_guardian_first() {
    let scenario = Scenario::start_guardian("wait", |command| {
        command.process_group(0);
    });
    scenario.expect_line("ready");
    // As a terminal does: to the group, the guardian included.
    // SAFETY: our own child's process group.
    assert_eq!(unsafe { libc::kill(-scenario.pid(), SIGINT) }, 0);
    let ended = scenario.wait();
    ended.assert_killed_by(SIGINT);
    // Cleaned up by the program; the guardian saw the clean end and did not clean up again.
    ended.assert_cleaned_once("main", &signal_reason(SIGINT));
}

#[test]
fn the_terminal_s_signals_sent_to_the_guardian_itself_do_not_end_it() {
    let scenario = Scenario::start_guardian("ready-guardian", |_| {});
    let guardian = Stranger::new(scenario.ready_pid());
    for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] {
        assert!(
            guardian.signal(signal),
            "the guardian ended before {signal}"
        );
    }
    // Pending, they are handled before the guardian can see the program end.
    scenario.signal(SIGKILL);
    let ended = scenario.wait();
    ended.assert_cleaned_once("main", KILLED);
}

#[test]
fn a_child_that_outlives_the_program_does_not_keep_the_guardian_waiting() {
    let scenario = Scenario::start_guardian("spawn", |_| {});
    let line = scenario.next_line();
    let sleeper: i32 = line
        .strip_prefix("ready ")
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("unexpected line {line:?}"));
    scenario.signal(SIGKILL);
    let ended = scenario.wait();
    // `wait` returned once the guardian had closed stderr, that is after its cleanup, while the
    // program's own child was still running.
    let sleeper_alive = std::path::Path::new(&format!("/proc/{sleeper}")).exists();
    // SAFETY: the `sleep` the scenario started; it is not ours to reap, only to end.
    unsafe { libc::kill(sleeper, SIGKILL) };
    assert!(
        sleeper_alive,
        "the guardian waited for the program's child to end"
    );
    ended.assert_killed_by(SIGKILL);
    ended.assert_cleaned_once("main", KILLED);
}

#[test]
fn a_guard_s_state_reaches_the_guardian_and_runs_before_main_s_cleanup() {
    let scenario = Scenario::start_guardian("guard-with", |_| {});
    let line = scenario.next_line();
    let pid = line.strip_prefix("ready ").expect("a ready line");
    scenario.signal(SIGKILL);
    let ended = scenario.wait();
    let guard = format!("guard run-{pid}");
    ended.assert_cleaned_once(&guard, KILLED);
    ended.assert_cleaned_once("main", KILLED);
    assert!(ended.position(&format!("end {guard} {KILLED}")) < ended.position("start main"));
    // The guard dropped before the kill ran once, in the program, and was disarmed.
    ended.assert_cleaned_once("guard ran", "Returned");
    // The state too long for the channel: the error says so, and nothing is printed.
    let refused = ended
        .marker
        .iter()
        .find(|line| line.starts_with("refused: "));
    assert!(
        refused.is_some_and(|line| line.contains("more than the 65536")),
        "{:?}",
        ended.marker
    );
    assert_eq!(ended.count("start guard xxx"), 0, "{:?}", ended.marker);
    assert!(!ended.stderr.contains("guard"), "stderr: {}", ended.stderr);
}

#[test]
fn main_entered_again_still_has_one_guardian() {
    // Two guardians would each clean up after the kill.
    let ended = Scenario::start_guardian("reenter", |_| {}).signal_when_ready(SIGKILL);
    ended.assert_cleaned_once("main", KILLED);
    // Nor did it try to start a second one (which, with threads running, it could not).
    assert!(
        !ended.stderr.contains("guardian"),
        "stderr: {}",
        ended.stderr
    );
}

#[test]
fn threads_started_after_the_guardian_are_fine() {
    let ended = Scenario::start_guardian("threads", |_| {}).signal_when_ready(SIGKILL);
    assert_eq!(ended.count("thread ran"), 1);
    ended.assert_cleaned_once("main", KILLED);
}

/// Makes `pidfd_open` fail with ENOSYS in the child, with a seccomp filter.
fn without_pidfd(command: &mut std::process::Command) {
    const fn statement(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
        libc::sock_filter {
            code: code as u16,
            jt,
            jf,
            k,
        }
    }
    // The system call's number is the first field of the filter's data.
    static FILTER: [libc::sock_filter; 4] = [
        statement(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, 0),
        statement(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            libc::SYS_pidfd_open as u32,
            0,
            1,
        ),
        statement(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
            0,
            0,
        ),
        statement(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW, 0, 0),
    ];
    // SAFETY: `prctl` is async-signal-safe; the filter is a static.
    unsafe {
        command.pre_exec(|| {
            let program = libc::sock_fprog {
                len: FILTER.len() as u16,
                filter: FILTER.as_ptr().cast_mut(),
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &program as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Crashes dump core by default: not into the test's folders.
fn no_core_dump(command: &mut std::process::Command) {
    // SAFETY: `setrlimit` is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            let none = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &none);
            Ok(())
        });
    }
}
