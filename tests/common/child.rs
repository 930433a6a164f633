//! The child side of a scenario: the marker file and the `ready` line.
//!
//! Cleanups append `start NAME` and `end NAME REASON` lines to the marker file, so the test can
//! tell that each ran exactly once and to the end.

#![allow(dead_code)] // each scenario program uses its own part of this module

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::{env, thread};

use finally::Exit;

/// The marker file's path, from the environment: a guardian, a copy of the program made when
/// `main` starts, finds it there too.
fn marker() -> &'static PathBuf {
    static MARKER: OnceLock<PathBuf> = OnceLock::new();
    MARKER.get_or_init(|| {
        env::var_os("FINALLY_TEST_MARKER")
            .expect("FINALLY_TEST_MARKER")
            .into()
    })
}

/// Appends one line to the marker file, in one `write`.
pub fn mark(line: &str) {
    let path = marker();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open marker");
    file.write_all(format!("{line}\n").as_bytes())
        .expect("write marker");
}

/// Tells the test that the scenario is where it wants it.
pub fn ready() {
    println!("ready");
}

pub fn wait_forever() -> ! {
    loop {
        thread::park();
    }
}

/// Records a cleanup named `name` that was told `exit`.
pub fn record(name: &str, exit: &Exit) {
    mark(&format!("start {name}"));
    mark(&format!("end {name} {exit:?}"));
}

pub fn main_cleanup(exit: &Exit) {
    record("main", exit);
}

/// Records also the thread the cleanup ran on: it is named `main on THREAD`.
pub fn main_cleanup_where(exit: &Exit) {
    let thread = thread::current();
    record(&format!("main on {}", thread.name().unwrap_or("?")), exit);
}
