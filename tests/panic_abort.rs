//! Built with `panic = "abort"`, a panic unwinds nothing: the cleanups run from the panic hook.
//!
//! The scenario programs are built a second time for this, with `panic = "abort"`, in a target
//! folder of their own (so this build does not wait for the one running the tests).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use common::*;

/// Builds the scenario programs with `panic = "abort"`, once; returns their folder.
fn abort_build() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("panic-abort");
        let mut build = Command::new(env!("CARGO"))
            .args([
                "build",
                "--offline",
                "--bin",
                "scenario",
                "--bin",
                "guardian",
            ])
            .args(["--config", "profile.dev.panic=\"abort\""])
            .arg("--target-dir")
            .arg(&target)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start cargo");
        let status = wait_bounded(&mut build, Duration::from_secs(600));
        assert!(status.success(), "the panic = \"abort\" build failed");
        target.join("debug")
    })
}

#[test]
fn the_panic_hook_runs_the_cleanup_and_the_message_still_prints() {
    let ended = Scenario::start_program(&abort_build().join("scenario"), "panic", |_| {}).wait();
    ended.assert_killed_by(libc::SIGABRT);
    ended.assert_cleaned_once("main", r#"Panicked { message: Some("boom") }"#);
    assert!(ended.stderr.contains("boom"), "stderr: {}", ended.stderr);
}

#[test]
fn a_panic_on_one_thread_runs_every_pending_cleanup() {
    let ended =
        Scenario::start_program(&abort_build().join("scenario"), "worker-panics", |_| {}).wait();
    ended.assert_killed_by(libc::SIGABRT);
    let reason = r#"Panicked { message: Some("worker failed") }"#;
    ended.assert_cleaned_once("worker", reason);
    ended.assert_cleaned_once("main", reason);
}

#[test]
fn with_the_guardian_the_program_cleans_up_and_the_guardian_does_not() {
    let ended = Scenario::start_program(&abort_build().join("guardian"), "panic", |_| {}).wait();
    ended.assert_killed_by(libc::SIGABRT);
    ended.assert_cleaned_once("main", r#"Panicked { message: Some("boom") }"#);
}
