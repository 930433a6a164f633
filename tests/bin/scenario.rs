//! Child processes for the integration tests: `scenario NAME MARKER [ARG]`.
//!
//! Each scenario prints `ready` on stdout once it is where the test wants to reach it, and its
//! cleanups append `start NAME` and `end NAME REASON` lines to the marker file, so the test can
//! tell that each ran exactly once and to the end.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};
use std::{env, process, thread};

use finally::{with_cleanup, Exit};

static MARKER: OnceLock<PathBuf> = OnceLock::new();

/// Appends one line to the marker file, in one `write`.
fn mark(line: &str) {
    let path = MARKER.get().expect("marker path");
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open marker");
    file.write_all(format!("{line}\n").as_bytes())
        .expect("write marker");
}

fn ready() {
    println!("ready");
}

fn wait_forever() -> ! {
    loop {
        thread::park();
    }
}

fn record(name: &str, exit: &Exit) {
    mark(&format!("start {name}"));
    mark(&format!("end {name} {exit:?}"));
}

fn main_cleanup(exit: &Exit) {
    record("main", exit);
}
fn inner_cleanup(exit: &Exit) {
    record("inner", exit);
}
fn middle_cleanup(exit: &Exit) {
    record("middle", exit);
}
fn outer_cleanup(exit: &Exit) {
    record("outer", exit);
}

/// A cleanup that takes a while, and says on stdout when it has started.
fn slow_cleanup(exit: &Exit) {
    mark("start slow");
    println!("cleaning");
    thread::sleep(Duration::from_millis(1000));
    mark(&format!("end slow {exit:?}"));
}

fn panicking_cleanup(exit: &Exit) {
    mark(&format!("start panicking {exit:?}"));
    panic!("cleanup failed on purpose");
}

#[with_cleanup(main_cleanup)]
fn returns() -> u32 {
    42
}

#[with_cleanup(main_cleanup)]
fn panics() {
    panic!("boom");
}

#[with_cleanup(main_cleanup)]
fn waits() {
    ready();
    wait_forever();
}

#[with_cleanup(slow_cleanup)]
fn waits_then_cleans_slowly() {
    ready();
    wait_forever();
}

#[with_cleanup(slow_cleanup)]
fn returns_then_cleans_slowly() {}

#[with_cleanup(outer_cleanup)]
fn signal_during_inner_cleanup() {
    ready();
    returns_then_cleans_slowly();
    mark("after inner");
}

#[with_cleanup(inner_cleanup)]
fn nested_inner() {
    ready();
    wait_forever();
}

#[with_cleanup(middle_cleanup)]
fn nested_middle() {
    nested_inner();
}

#[with_cleanup(outer_cleanup)]
fn nested_outer() {
    nested_middle();
}

fn worker_cleanup(exit: &Exit) {
    record("worker", exit);
}

#[with_cleanup(worker_cleanup)]
fn worker(entered: mpsc::Sender<()>) {
    entered.send(()).unwrap();
    wait_forever();
}

#[with_cleanup(main_cleanup)]
fn threads() {
    let (entered, all_in) = mpsc::channel();
    for n in 0..4 {
        let entered = entered.clone();
        thread::Builder::new()
            .name(format!("worker{n}"))
            .spawn(move || worker(entered))
            .unwrap();
    }
    for _ in 0..4 {
        all_in.recv().unwrap();
    }
    ready();
    wait_forever();
}

#[with_cleanup(panicking_cleanup)]
fn panicking_inner() {
    ready();
    wait_forever();
}

#[with_cleanup(outer_cleanup)]
fn panicking_outer() {
    panicking_inner();
}

#[with_cleanup(worker_cleanup)]
fn exits_while_worker_waits(entered: mpsc::Sender<()>) {
    entered.send(()).unwrap();
    wait_forever();
}

#[with_cleanup(main_cleanup)]
fn exits() {
    let (entered, worker_in) = mpsc::channel();
    thread::Builder::new()
        .name("worker".into())
        .spawn(move || exits_while_worker_waits(entered))
        .unwrap();
    worker_in.recv().unwrap();
    process::exit(3);
}

/// Returns after busy-waiting `micros`, so a signal sent around `ready` lands before, during or
/// after the return.
#[with_cleanup(main_cleanup)]
fn returns_after(micros: u64) {
    ready();
    let until = Instant::now() + Duration::from_micros(micros);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

fn main() {
    let mut args = env::args().skip(1);
    let scenario = args.next().expect("scenario name");
    MARKER
        .set(args.next().expect("marker path").into())
        .unwrap();
    let arg = args.next();
    match scenario.as_str() {
        "return" => {
            let value = returns();
            mark(&format!("returned {value}"));
        }
        "panic" => panics(),
        "wait" => waits(),
        "slow-cleanup" => waits_then_cleans_slowly(),
        "signal-during-inner-cleanup" => signal_during_inner_cleanup(),
        "nested" => nested_outer(),
        "threads" => threads(),
        "panicking-cleanup" => panicking_outer(),
        "exit" => exits(),
        "race" => {
            returns_after(arg.expect("micros").parse().unwrap());
            mark("after");
        }
        "idle" => {
            returns();
            ready();
            wait_forever();
        }
        other => panic!("unknown scenario {other}"),
    }
}
