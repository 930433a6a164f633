//! The guardian's trust: it never acts with more privilege than the program had when it ended.
//! See `tests/bin/guardian.rs`: the programs start as root and give it up once the guardian
//! runs, as daemons do.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::other_user::open_marker_to_all;
use common::*;

/// The marker's path, from the command's environment.
fn marker(command: &Command) -> PathBuf {
    command
        .get_envs()
        .find_map(|(name, value)| (name == "FINALLY_TEST_MARKER").then_some(value?))
        .expect("the marker's path")
        .into()
}

/// Starts `scenario` as root, to give root up for `user` once the guardian runs: the marker
/// made beforehand, writable by that user.
fn dropping(scenario: &str, user: &OtherUser, setup: impl FnOnce(&mut Command, &Path)) -> Scenario {
    Scenario::start_guardian(scenario, |command| {
        open_marker_to_all(command);
        let marker = marker(command);
        std::fs::write(&marker, "").unwrap();
        std::fs::set_permissions(&marker, std::fs::Permissions::from_mode(0o666)).unwrap();
        command.env("FINALLY_TEST_DROP_TO", user.id().to_string());
        setup(command, marker.parent().unwrap());
    })
}

/// A folder in `folder` that only root may remove a file from, with such a file.
fn root_folder(folder: &Path) {
    let locked = folder.join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(locked.join("file"), "root's").unwrap();
}

#[test]
fn a_program_that_gives_up_root_has_its_guardian_give_it_up_too() {
    let Some(user) = OtherUser::new() else {
        return eprintln!("skipped: starting a program as root to give it up needs root");
    };
    let scenario = dropping("drops-privileges", &user, |_, folder| root_folder(folder));
    scenario.ready_pid();
    scenario.signal(libc::SIGKILL);
    let ended = scenario.wait();
    ended.assert_killed_by(libc::SIGKILL);
    // The guard's cleanup ran in the guardian as the user, and could not remove root's file.
    let line = format!("locked removed as {}: false, {KILLED}", user.id());
    assert_eq!(ended.count(&line), 1, "{:?}", ended.marker);
    ended.assert_cleaned_once("main", KILLED);
}

#[test]
fn a_program_that_goes_into_a_jail_has_its_guardian_follow_it() {
    let Some(user) = OtherUser::new() else {
        return eprintln!("skipped: starting a program as root to give it up needs root");
    };
    // The jail is the marker's folder: in it, the marker is `/marker`.
    let scenario = dropping("drops-into-a-jail", &user, |_, _| {});
    scenario.ready_pid();
    scenario.signal(libc::SIGKILL);
    let ended = scenario.wait();
    ended.assert_killed_by(libc::SIGKILL);
    let uid = user.id();
    for line in [
        format!("guard as {uid}: marker at the root true, {KILLED}"),
        format!("main as {uid}: {KILLED}"),
    ] {
        assert_eq!(ended.count(&line), 1, "{:?}", ended.marker);
    }
}

#[test]
fn a_program_that_gives_up_root_as_it_dies_never_has_its_cleanup_run_as_root() {
    // Killed at once, the guardian may not have looked since: then it refuses, and says why.
    // Either way, nothing runs as root.
    let Some(user) = OtherUser::new() else {
        return eprintln!("skipped: starting a program as root to give it up needs root");
    };
    let (mut ran, mut refused) = (0, 0);
    for _ in 0..10 {
        let scenario = dropping("drops-privileges", &user, |command, folder| {
            command.env("FINALLY_TEST_NO_WAIT", "1");
            root_folder(folder);
        });
        scenario.ready_pid();
        scenario.signal(libc::SIGKILL);
        let ended = scenario.wait();
        let as_the_user = format!("locked removed as {}: false, {KILLED}", user.id());
        if ended.count(&as_the_user) == 1 {
            ran += 1;
        } else {
            assert!(
                ended.marker.is_empty()
                    && ended.stderr.contains("the guardian ran no cleanup")
                    && ["in its last moments", "reaped before"]
                        .iter()
                        .any(|why| ended.stderr.contains(why)),
                "marker: {:?}; stderr: {}",
                ended.marker,
                ended.stderr
            );
            refused += 1;
        }
    }
    eprintln!("ran as the user {ran} times, refused {refused} times");
}

#[test]
fn the_guardian_rejects_what_the_program_did_not_send_as_it_sends() {
    let scenario = Scenario::start_guardian("forged", |_| {});
    let pid = scenario.ready_pid();
    scenario.signal(libc::SIGKILL);
    let ended = scenario.wait();
    ended.assert_killed_by(libc::SIGKILL);
    // The real guard and `main`'s cleanup ran, once each; nothing forged did.
    ended.assert_cleaned_once(&format!("guard run-{pid}"), KILLED);
    ended.assert_cleaned_once("main", KILLED);
    assert_eq!(ended.marker.len(), 4, "{:?}", ended.marker);
    for why in [
        "guard 1099511627776's cleanup, number 4294967280, was never registered",
        "guard 2199023255552's state is not one its cleanup takes",
        "guard 8796093022208's",
        "unknown (4 bytes, starting with 9)",
        "it disarms guard 4398046511104, which is not armed",
    ] {
        let line = format!("finally: the guardian rejected a message: {why}");
        assert!(ended.stderr.contains(&line), "{line:?} in {}", ended.stderr);
    }
}

#[test]
fn the_guardian_hears_the_program_alone() {
    let scenario = Scenario::start_guardian("impostor", |_| {});
    let pid = scenario.ready_pid();
    scenario.signal(libc::SIGKILL);
    let ended = scenario.wait();
    ended.assert_cleaned_once(&format!("guard run-{pid}"), KILLED);
    ended.assert_cleaned_once("main", KILLED);
    assert_eq!(ended.count("start guard impostor"), 0, "{:?}", ended.marker);
    assert_eq!(ended.marker.len(), 4, "{:?}", ended.marker);
    assert_eq!(
        ended
            .stderr
            .matches(&format!(", not the program ({pid})"))
            .count(),
        4,
        "{}",
        ended.stderr
    );
}

#[test]
fn a_guard_whose_cleanup_is_not_registered_says_so_and_the_guardian_has_not_got_it() {
    let scenario = Scenario::start_guardian("unregistered", |_| {});
    scenario.ready_pid();
    scenario.signal(libc::SIGKILL);
    let ended = scenario.wait();
    ended.assert_cleaned_once("main", KILLED);
    assert_eq!(
        ended.count("start unregistered guard"),
        0,
        "{:?}",
        ended.marker
    );
    let refused = "::unregistered` is not registered: mark it `#[finally::guardian_cleanup]`";
    let told = ended
        .marker
        .iter()
        .filter(|line| line.starts_with("refused: `") && line.ends_with(refused));
    assert_eq!(told.count(), 1, "{:?}", ended.marker);
    // Said once on stderr, for two guards.
    assert_eq!(
        ended.stderr.matches("is not registered").count(),
        1,
        "{}",
        ended.stderr
    );
}
