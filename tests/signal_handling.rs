//! `finally::signal_handling`: which signals `finally` handles in a process, and why not the
//! others, as the process was started and set up. Each case is a child process
//! (`tests/bin/handling.rs`) that prints its report, then is sent real signals: what the report
//! says is what the signals then do.

mod common;

use std::process::Command;

use common::*;

/// The signals the report lists, in its order.
const SIGNALS: [&str; 7] = [
    "SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM",
];

/// What the defaults do: the first four handled, the others left out.
const DEFAULTS: [&str; 7] = [
    "Handled",
    "Handled",
    "Handled",
    "Handled",
    "NotChosen",
    "NotChosen",
    "NotChosen",
];

fn handling(scenario: &str, setup: impl FnOnce(&mut Command)) -> Scenario {
    Scenario::start_bin(env!("CARGO_BIN_EXE_handling").as_ref(), &[scenario], setup)
}

/// The report's lines (`COPY SIGNAL HANDLING`) up to `ready PID`, and that pid.
fn report(scenario: &Scenario) -> (Vec<String>, i32) {
    let mut lines = Vec::new();
    loop {
        let line = scenario.next_line();
        if let Some(pid) = line.strip_prefix("ready ") {
            return (lines, pid.parse().expect("a pid"));
        }
        match line.strip_prefix("report ") {
            Some(report) => lines.push(report.to_owned()),
            None => panic!("unexpected line {line:?}"),
        }
    }
}

/// The lines a report of `copy` has, with `handlings` for [`SIGNALS`].
fn expected(copy: &str, handlings: [&str; 7]) -> Vec<String> {
    SIGNALS
        .iter()
        .zip(handlings)
        .map(|(signal, handling)| format!("{copy} {signal} {handling}"))
        .collect()
}

/// [`DEFAULTS`], with `handling` for the signals named in `changed`.
fn defaults_but(changed: &[&str], handling: &'static str) -> [&'static str; 7] {
    let mut handlings = DEFAULTS;
    for (i, signal) in SIGNALS.iter().enumerate() {
        if changed.contains(signal) {
            handlings[i] = handling;
        }
    }
    handlings
}

/// Sends `signal`: it has its default effect, the process ends by it and no cleanup runs.
fn default_effect(scenario: Scenario, signal: libc::c_int) {
    scenario.signal(signal);
    let ended = scenario.wait();
    ended.assert_killed_by(signal);
    assert!(ended.marker.is_empty(), "{:?}", ended.marker);
}

/// Sends `signal`, which `finally` handles: the process ends by it, after the cleanup told it.
fn handled(scenario: Scenario, signal: libc::c_int) {
    scenario.signal(signal);
    let ended = scenario.wait();
    ended.assert_killed_by(signal);
    ended.assert_cleaned_once("main", &signal_reason(signal));
}

/// Sends SIGINT, which the application's own handler takes: its guarded function returns as it
/// winds down, and it exits with 7.
fn to_the_application(scenario: Scenario) {
    scenario.signal(SIGINT);
    let ended = scenario.wait();
    ended.assert_exit_code(7);
    ended.assert_cleaned_once("main", "Returned");
    assert_eq!(ended.count("app handled"), 1, "{:?}", ended.marker);
}

#[test]
fn a_signal_ignored_when_the_program_starts_is_reported_ignored_and_does_nothing() {
    let scenario = handling("defaults", |command| {
        use std::os::unix::process::CommandExt;
        // SAFETY: `signal` is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_IGN);
                Ok(())
            });
        }
    });
    let (lines, _) = report(&scenario);
    assert_eq!(lines, expected("app", defaults_but(&["SIGINT"], "Ignored")));
    // Ignored, SIGINT is dropped as it is sent: were it handled, the cleanup would be told it
    // (the lower number is delivered first) and the process would end by it.
    scenario.signal(SIGINT);
    handled(scenario, SIGTERM);
}

#[test]
fn a_background_job_of_a_script_reports_sigint_and_sigquit_ignored() {
    // Without job control, a shell starts `prog &` with SIGINT and SIGQUIT ignored.
    let scenario = Scenario::start_bin(
        "sh".as_ref(),
        &[
            "-c",
            r#""$0" "$@" & wait $!"#,
            env!("CARGO_BIN_EXE_handling"),
            "defaults",
        ],
        |_| {},
    );
    let (lines, pid) = report(&scenario);
    let job = Stranger::new(pid);
    assert_eq!(
        lines,
        expected("app", defaults_but(&["SIGINT", "SIGQUIT"], "Ignored"))
    );
    for signal in [SIGINT, SIGQUIT, SIGTERM] {
        assert!(job.signal(signal), "the job ended before {signal}");
    }
    let ended = scenario.wait();
    // The shell's `wait` says how the job ended: by SIGTERM, not by SIGINT (130) nor SIGQUIT.
    ended.assert_exit_code(128 + SIGTERM);
    ended.assert_cleaned_once("main", &signal_reason(SIGTERM));
}

#[test]
fn signals_the_options_leave_out_are_reported_not_chosen_and_have_their_default_effect() {
    let scenario = handling("sigint-only", |_| {});
    let (lines, _) = report(&scenario);
    let mut only_sigint = ["NotChosen"; 7];
    only_sigint[0] = "Handled";
    assert_eq!(lines, expected("app", only_sigint));
    default_effect(scenario, SIGTERM);

    let scenario = handling("leave", |_| {});
    let (lines, _) = report(&scenario);
    assert_eq!(lines, expected("app", ["NotChosen"; 7]));
    default_effect(scenario, SIGINT);
}

#[test]
fn before_anything_is_installed_no_signal_is_handled_yet_and_asking_leaves_the_options_free() {
    let scenario = handling("not-installed", |_| {});
    let (lines, _) = report(&scenario);
    let (before, after) = lines.split_at(SIGNALS.len());
    assert_eq!(before, expected("app", ["NotInstalled"; 7]));
    // Installed since, with options of its own: asking did not fix the defaults.
    let mut only_sigterm = ["NotChosen"; 7];
    only_sigterm[1] = "Handled";
    assert_eq!(after, expected("app", only_sigterm));
    handled(scenario, SIGTERM);
}

#[test]
fn a_handler_of_the_application_s_is_reported_whether_installed_before_or_after_finally() {
    for (with, signals) in [
        ("flag", &["SIGINT"][..]),
        // ctrlc, with its `termination` feature, takes SIGTERM and SIGHUP too.
        ("ctrlc", &["SIGINT", "SIGTERM", "SIGHUP"][..]),
    ] {
        for (order, reason) in [("before", "HandlerBefore"), ("after", "HandlerAfter")] {
            let case = format!("{with} registered {order} finally");
            let scenario = handling(&format!("{with}-{order}"), |_| {});
            let (lines, _) = report(&scenario);
            assert_eq!(
                lines,
                expected("app", defaults_but(signals, reason)),
                "{case}"
            );
            to_the_application(scenario);
        }
    }
}

#[test]
fn a_handler_set_back_to_the_default_action_is_reported_removed() {
    let scenario = handling("removed", |_| {});
    let (lines, _) = report(&scenario);
    assert_eq!(
        lines,
        expected("app", defaults_but(&["SIGTERM"], "Removed"))
    );
    default_effect(scenario, SIGTERM);
}

#[test]
fn an_install_that_failed_is_reported_with_its_error() {
    // Allowed one task, the program can start no thread: root is not held to the limit, so the
    // program runs as a user of its own.
    let Some(user) = OtherUser::new() else {
        return eprintln!("skipped: running as another user needs root");
    };
    let scenario = user.start(env!("CARGO_BIN_EXE_handling"), &["install-failed"], 1);
    scenario.expect_line("failed could not start the signal thread");
    let says = scenario.next_line();
    assert!(
        says.starts_with("says not handled: finally could not start the signal thread (")
            && says.ends_with("): only return, panic and exit run the cleanups"),
        "{says}"
    );
    let (lines, _) = report(&scenario);
    let mut failed = ["InstallFailed"; 7];
    failed[4..].fill("NotChosen");
    assert_eq!(lines, expected("app", failed));
    default_effect(scenario, SIGTERM);
}

#[test]
fn two_copies_of_finally_report_the_signals_they_share_and_the_application_s_handler() {
    let scenario = handling("copies", |_| {});
    let (lines, _) = report(&scenario);
    assert_eq!(
        lines,
        [expected("app", DEFAULTS), expected("library", DEFAULTS)].concat()
    );
    handled(scenario, SIGTERM);

    // The application's handler, below the first copy or over the second: each copy asks the
    // other what is below it.
    for (order, reason) in [("before", "HandlerBefore"), ("after", "HandlerAfter")] {
        let scenario = handling(&format!("copies-flag-{order}"), |_| {});
        let (lines, _) = report(&scenario);
        let handlings = defaults_but(&["SIGINT"], reason);
        assert_eq!(
            lines,
            [expected("app", handlings), expected("library", handlings)].concat(),
            "flag {order}"
        );
        to_the_application(scenario);
    }
}
