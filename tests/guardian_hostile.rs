//! The guardian under pressure: it cannot start, it cannot tell, it is dead or stopped. Each is
//! reported in one line, and the program runs on as it would have, its status its own.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use common::*;

/// What a start failure says, whatever failed.
const NOT_STARTED: &str = "the guardian could not start";
const NOT_COVERED: &str = "kill -9 and crashes will not be cleaned up";

#[test]
fn without_the_option_there_is_no_guardian_and_the_program_is_told_why() {
    // This test's own process asked for none.
    let error = finally::guardian_status().expect_err("no guardian");
    assert_eq!(error.to_string(), "could not reach a guardian");
    let why = std::error::Error::source(&error).expect("why");
    assert!(why.to_string().starts_with("none was asked for"), "{why}");
}

#[test]
fn a_guardian_that_cannot_be_forked_is_reported_and_the_program_runs_on() {
    let Some(user) = OtherUser::new() else {
        return eprintln!(
            "skipped: only root can run the program as another user, with few processes"
        );
    };
    // As a user of its own, allowed 2 processes (root is not held to it): the program, and the
    // intermediate process, whose fork of the guardian then fails.
    let scenario = user.start(env!("CARGO_BIN_EXE_guardian"), &["status"], 2);
    // The program can ask, and is told why.
    let status = scenario.next_line();
    let ended = scenario.wait();
    ended.assert_exit_code(0);
    ended.assert_cleaned_once("main", "Returned");
    assert_reported_once(&ended, &[NOT_STARTED, "second fork", NOT_COVERED]);
    assert!(
        status.starts_with("guardian: could not start the guardian: the second fork: "),
        "{status}"
    );
}

#[test]
fn without_proc_the_guardian_does_not_guess_that_the_program_is_alone() {
    // A tmpfs over `/proc`, in a mount namespace of the program's own.
    if !succeeds(
        "unshare",
        &["--mount", "sh", "-c", "mount -t tmpfs none /proc"],
    ) {
        eprintln!(
            "skipped: cannot make a mount namespace here (`unshare --mount` needs privileges)"
        );
        return;
    }
    let script = r#"mount -t tmpfs none /proc && exec "$0" "$@""#;
    let ended = Scenario::start_guardian_under(
        &["unshare", "--mount", "sh", "-c", script],
        "return",
        |_| {},
    )
    .wait();
    ended.assert_exit_code(0);
    ended.assert_cleaned_once("main", "Returned");
    assert_reported_once(&ended, &[NOT_STARTED, "/proc/self/task", NOT_COVERED]);
}

#[test]
fn a_dead_guardian_is_reported_once_and_never_raises_sigpipe() {
    let mut scenario = Scenario::start_guardian("guard-after-guardian-died", piped_stdin);
    let guardian = Stranger::new(scenario.ready_pid());
    guardian.signal(libc::SIGKILL);
    guardian.wait_until_ended();
    scenario.say("the guardian is dead");
    scenario.expect_line("guardian: could not reach the guardian: it has ended");
    let ended = scenario.wait();
    // The program's own status, and its own cleanup, once.
    ended.assert_exit_code(0);
    // The guard's error says the guardian has ended; the guard ran in the program.
    let refused = ended
        .marker
        .iter()
        .find(|line| line.starts_with("refused: "));
    assert!(
        refused.is_some_and(|line| line.contains("reach the guardian")),
        "{:?}",
        ended.marker
    );
    ended.assert_cleaned_once("guard after the guardian", "Returned");
    ended.assert_cleaned_once("main", "Returned");
    assert_reported_once(&ended, &["the guardian has ended", NOT_COVERED]);
}

#[test]
fn a_stopped_guardian_never_blocks_the_program_nor_cleans_up_twice() {
    let mut scenario = Scenario::start_guardian("guard-while-stopped", piped_stdin);
    let guardian = Stranger::new(scenario.ready_pid());
    guardian.signal(libc::SIGSTOP);
    guardian.wait_until_stopped();
    scenario.say("the guardian is stopped");
    // A thousand states of 4 kB, more than the channel holds: the program waits once, briefly.
    let line = scenario.next_line();
    let took: u64 = line
        .strip_prefix("guarded in ")
        .and_then(|line| line.strip_suffix(" ms"))
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("unexpected line {line:?}"));
    assert!(took < 2000, "making the guards took {took} ms");
    assert_eq!(scenario.wait_for_exit().code(), Some(0));
    // The program has ended, and its `DONE` did not fit: the guardian, let go, must find that
    // the program cleaned up all the same.
    guardian.signal(libc::SIGCONT);
    let ended = scenario.wait();
    ended.assert_cleaned_once("main", "Returned");
    // The guards waited in the program, none refused; past what the shared page holds, said
    // once.
    assert_eq!(ended.count("refused: 0"), 1, "{:?}", ended.marker);
    assert_eq!(
        ended.stderr.lines().collect::<Vec<_>>(),
        ["finally: the guardian is behind by more than 1024 KiB: what the program sends it meanwhile is lost if the program is killed before the guardian takes it"],
    );
}

/// Starts the scenario `burst`: the guardian stopped, a burst of 2000 guards made and ended.
fn after_a_burst() -> (Scenario, Stranger) {
    let mut scenario = Scenario::start_guardian("burst", piped_stdin);
    let guardian = Stranger::new(scenario.ready_pid());
    guardian.signal(libc::SIGSTOP);
    guardian.wait_until_stopped();
    scenario.say("the guardian is stopped");
    assert_eq!(scenario.next_line(), "burst done");
    (scenario, guardian)
}

#[test]
fn after_a_burst_the_next_guard_reaches_the_guardian() {
    for _ in 0..3 {
        let (mut scenario, guardian) = after_a_burst();
        guardian.signal(libc::SIGCONT);
        scenario.say("the guardian runs again");
        let pid = scenario.ready_pid();
        scenario.signal(libc::SIGKILL);
        let ended = scenario.wait();
        ended.assert_killed_by(libc::SIGKILL);
        ended.assert_cleaned_once("guard after the burst", KILLED);
        ended.assert_cleaned_once("main", KILLED);
        assert_eq!(ended.count("refused"), 0, "{:?}", ended.marker);
        let again = ended
            .marker
            .iter()
            .filter(|line| line.starts_with("ran again"));
        assert_eq!(again.count(), 0, "{pid}: {:?}", ended.marker);
    }
}

#[test]
fn what_waited_for_a_stopped_guardian_reaches_it_though_the_program_was_killed() {
    // Killed while the guardian is stopped: the ends of the guards it had been told of, and the
    // arm of the guard made last, wait in the program and die with it; the shared page keeps
    // them.
    for _ in 0..3 {
        let (mut scenario, guardian) = after_a_burst();
        scenario.say("the guardian is still stopped");
        scenario.ready_pid();
        scenario.signal(libc::SIGKILL);
        assert_eq!(scenario.reap().signal(), Some(libc::SIGKILL));
        guardian.signal(libc::SIGCONT);
        let ended = scenario.wait();
        // Killed and reaped while the guardian was stopped: it cannot tell the signal.
        let died = "Died { signal: None }";
        ended.assert_cleaned_once("guard after the burst", died);
        ended.assert_cleaned_once("main", died);
        let again = ended
            .marker
            .iter()
            .filter(|line| line.starts_with("ran again"));
        assert_eq!(again.count(), 0, "{:?}", ended.marker);
    }
}

#[test]
fn a_program_reaped_before_the_guardian_looks_died_by_a_signal_it_cannot_name() {
    // The guardian is not the program's parent: it learns the signal from the program's zombie,
    // which a quick parent reaps first. Here the parent reaps it while the guardian is stopped;
    // the pid may even be another process's by the time it looks.
    let mut scenario = Scenario::start_guardian("ready-guardian", |_| {});
    let guardian = Stranger::new(scenario.ready_pid());
    guardian.signal(libc::SIGSTOP);
    guardian.wait_until_stopped();
    scenario.signal(libc::SIGKILL);
    assert_eq!(scenario.reap().signal(), Some(libc::SIGKILL));
    guardian.signal(libc::SIGCONT);
    let ended = scenario.wait();
    ended.assert_cleaned_once("main", "Died { signal: None }");
}

#[test]
fn what_threads_send_the_guardian_as_main_returns_lands_nowhere_else() {
    let ended = Scenario::start_guardian("guard-while-returning", |_| {}).wait();
    ended.assert_exit_code(0);
    ended.assert_cleaned_once("main", "Returned");
    for line in [
        "descriptors closed since main returned: 0",
        "files with strays: 0",
    ] {
        assert_eq!(ended.count(line), 1, "{:?}", ended.marker);
    }
}

fn piped_stdin(command: &mut Command) {
    command.stdin(Stdio::piped());
}

/// Whether `program args` runs and succeeds here.
fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Asserts that one line of stderr has each of `parts`, and that no other line is about the
/// guardian.
fn assert_reported_once(ended: &Ended, parts: &[&str]) {
    let about: Vec<&str> = ended
        .stderr
        .lines()
        .filter(|line| line.contains("guardian"))
        .collect();
    assert_eq!(about.len(), 1, "stderr: {}", ended.stderr);
    for part in parts {
        assert!(about[0].contains(part), "{part:?} not in {:?}", about[0]);
    }
}
