//! The example `examples/tempdir.rs`, run as its users run it: stopped with Ctrl-C, `kill`, a
//! panic or `kill -9`, its scratch directory is gone, removed once by its cleanup (by the
//! guardian after `kill -9`), and the removal does not follow symbolic links out of it.

mod common;

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::*;
use finally::Exit;
use tempfile::TempDir;

const SIGKILL: i32 = libc::SIGKILL;

#[test]
fn ctrl_c_removes_the_scratch_directory() {
    stop_by(SIGINT);
}

#[test]
fn kill_removes_the_scratch_directory() {
    stop_by(SIGTERM);
}

#[test]
fn a_panic_removes_the_scratch_directory_and_goes_on() {
    let tmp = TempDir::new().expect("the test's temporary folder");
    let (example, scratch) = start(&tmp, &["--panic-after", "100"]);
    let ended = example.wait();
    ended.assert_exit_code(101);
    let panicked = Exit::panicked(Some("asked to panic")).to_string();
    assert_removed_once(&ended, &scratch, &panicked);
}

#[test]
fn kill_9_the_guardian_removes_the_scratch_directory() {
    let tmp = TempDir::new().expect("the test's temporary folder");
    let (example, scratch) = start(&tmp, &[]);
    fill(&scratch);
    example.signal(SIGKILL);
    let ended = example.wait();
    ended.assert_killed_by(SIGKILL);
    // `wait` returned once the guardian had closed its stderr: its cleanup is done.
    assert_removed_once(&ended, &scratch, &killed());
}

/// CVE-2022-21658's class of bug: a removal that follows a link in the directory deletes what
/// the link points to. Checked for both removals: the program's own, and the guardian's.
#[test]
fn the_removal_does_not_follow_symlinks_out_of_the_directory() {
    for (signal, exit) in [(SIGTERM, stopped_by(SIGTERM)), (SIGKILL, killed())] {
        let tmp = TempDir::new().expect("the test's temporary folder");
        // Outside the scratch directory, beside it in the test's own folder.
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep.txt"), "keep me\n").unwrap();
        fs::create_dir(outside.join("inner")).unwrap();
        fs::write(outside.join("inner").join("keep.txt"), "keep me too\n").unwrap();

        let (example, scratch) = start(&tmp, &[]);
        // Planted once the directory is there, before the stop: a link to a directory (by
        // absolute and by relative path) and one to a file.
        symlink(&outside, scratch.join("to-outside")).unwrap();
        symlink(Path::new("..").join("outside"), scratch.join("relative")).unwrap();
        symlink(outside.join("keep.txt"), scratch.join("to-a-file")).unwrap();
        example.signal(signal);
        let ended = example.wait();
        ended.assert_killed_by(signal);
        assert_removed_once(&ended, &scratch, &exit);

        for kept in [
            outside.join("keep.txt"),
            outside.join("inner").join("keep.txt"),
        ] {
            assert!(
                kept.is_file(),
                "{} was removed through a link (after signal {signal}); stderr: {}",
                kept.display(),
                ended.stderr
            );
        }
    }
}

/// Stops the example with `signal` while it works: it ends by the signal, having removed its
/// scratch directory once.
fn stop_by(signal: libc::c_int) {
    let tmp = TempDir::new().expect("the test's temporary folder");
    let (example, scratch) = start(&tmp, &[]);
    fill(&scratch);
    example.signal(signal);
    let ended = example.wait();
    ended.assert_killed_by(signal);
    assert_removed_once(&ended, &scratch, &stopped_by(signal));
    // `main` noticed the stop and returned before the removal (its grace period), rather than
    // write on into a directory being removed.
    assert!(
        ended.stderr.contains("tempdir: stopping after"),
        "stderr: {}",
        ended.stderr
    );
}

/// Starts the example with its temporary directory in `tmp`, so that whatever a failed run
/// leaves behind goes with `tmp`; waits for its `ready <path>` line and returns the path.
fn start(tmp: &TempDir, args: &[&str]) -> (Scenario, PathBuf) {
    let example = Scenario::start_example("tempdir", args, |command| {
        command.env("TMPDIR", tmp.path());
    });
    let line = example.next_line();
    let scratch = PathBuf::from(
        line.strip_prefix("ready ")
            .unwrap_or_else(|| panic!("expected `ready <path>`, got {line:?}")),
    );
    assert!(
        scratch.starts_with(tmp.path()),
        "the scratch directory {} is not in TMPDIR {}",
        scratch.display(),
        tmp.path().display()
    );
    assert!(scratch.is_dir(), "no directory {}", scratch.display());
    (example, scratch)
}

/// Adds nested directories of the test's own to the example's files: the removal must take
/// them too.
fn fill(scratch: &Path) {
    let deeper = scratch.join("nested").join("deeper");
    fs::create_dir_all(&deeper).unwrap();
    fs::write(deeper.join("file.txt"), "nested\n").unwrap();
}

/// The cleanup ran exactly once, told `exit` (as `Exit`'s `Display` says it), which it says on
/// stderr as `tempdir: EXIT; removed PATH`, and the directory is gone.
fn assert_removed_once(ended: &Ended, scratch: &Path, exit: &str) {
    let removed = format!("; removed {}", scratch.display());
    let told = ended.said_once("tempdir: ", &removed);
    assert_eq!(told, exit, "stderr: {}", ended.stderr);
    assert_gone(scratch, ended);
}

fn assert_gone(scratch: &Path, ended: &Ended) {
    // `symlink_metadata`: the path itself, whatever it is, and not what it may point to.
    let left = fs::symlink_metadata(scratch);
    assert!(
        matches!(&left, Err(error) if error.kind() == ErrorKind::NotFound),
        "{} is still there ({left:?}); stderr: {}",
        scratch.display(),
        ended.stderr
    );
}
