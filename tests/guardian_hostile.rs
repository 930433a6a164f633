//! The guardian under pressure: it cannot start, it cannot tell, it is dead or stopped. Each is
//! reported in one line, and the program runs on as it would have, its status its own.

mod common;

use std::process::{Command, Stdio};

use common::*;

/// What a start failure says, whatever failed.
const NOT_STARTED: &str = "the guardian could not start";
const NOT_COVERED: &str = "kill -9 and crashes will not be cleaned up";

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
