//! On a signal, every pending cleanup of every thread runs, newest first.

mod common;

use common::*;

#[test]
fn nested_functions_clean_up_innermost_first() {
    let ended = Scenario::start("nested", &[]).signal_when_ready(SIGTERM);
    ended.assert_killed_by(SIGTERM);
    let reason = signal_reason(SIGTERM);
    for name in ["inner", "middle", "outer"] {
        ended.assert_cleaned_once(name, &reason);
    }
    let end = |name| ended.position(&format!("end {name} {reason}"));
    assert!(end("inner") < end("middle") && end("middle") < end("outer"));
}

#[test]
fn every_thread_cleans_up_and_main_last() {
    let ended = Scenario::start("threads", &[]).signal_when_ready(SIGINT);
    ended.assert_killed_by(SIGINT);
    let reason = signal_reason(SIGINT);
    assert_eq!(ended.count("start worker"), 4, "marker: {:?}", ended.marker);
    assert_eq!(
        ended.count(&format!("end worker {reason}")),
        4,
        "marker: {:?}",
        ended.marker
    );
    ended.assert_cleaned_once("main", &reason);
    // `main` entered first and encloses the workers: its cleanup runs last.
    assert_eq!(ended.marker.last().unwrap(), &format!("end main {reason}"));
}

#[test]
fn a_panicking_cleanup_is_reported_and_the_others_still_run() {
    let ended = Scenario::start("panicking-cleanup", &[]).signal_when_ready(SIGTERM);
    ended.assert_killed_by(SIGTERM);
    let reason = signal_reason(SIGTERM);
    assert_eq!(ended.count(&format!("start panicking {reason}")), 1);
    ended.assert_cleaned_once("outer", &reason);
    assert!(
        ended
            .stderr
            .contains("finally: a cleanup panicked (cleanup failed on purpose)"),
        "stderr: {}",
        ended.stderr
    );
}

#[test]
fn ten_thousand_nested_pending_cleanups_all_run_once() {
    let ended = Scenario::start("deep", &["10000"]).signal_when_ready(SIGTERM);
    ended.assert_killed_by(SIGTERM);
    assert_eq!(
        ended.marker,
        [format!(
            "cleaned 10000 before the outermost, for {}",
            signal_reason(SIGTERM)
        )]
    );
}
