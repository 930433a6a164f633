//! Child processes for the guards' tests: `guards NAME`.
//!
//! Each scenario prints `ready` on stdout once it is where the test wants to reach it; the
//! cleanups write to the marker file (see `tests/common/child.rs`): `start NAME`, then
//! `end NAME EXIT`.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::{env, io, process, thread};

use finally::{guard, with_cleanup, Exit, Guard};

#[path = "../common/child.rs"]
mod child;

use child::{main_cleanup, mark, ready, record, wait_forever};

/// A guard that records its cleanup as `name`.
fn recording(name: &'static str) -> Guard {
    guard(move |exit| record(name, exit))
}

#[with_cleanup(main_cleanup)]
fn guarded_wait() {
    let _inner = recording("inner guard");
    ready();
    wait_forever();
}

#[with_cleanup(main_cleanup)]
fn guarded_panic() {
    let _inner = recording("inner guard");
    panic!("boom");
}

#[with_cleanup(main_cleanup)]
fn guarded_exit() {
    let _inner = recording("inner guard");
    process::exit(3);
}

/// A cleanup that makes a guard: it runs when the cleanup ends, as the calls of a cleanup do.
fn cleanup_making_a_guard(exit: &Exit) {
    record("making", exit);
    let _made = recording("made in a cleanup");
}

#[with_cleanup(cleanup_making_a_guard)]
fn returns_then_cleanup_makes_a_guard() {}

/// Values made by each thread, cleaned up by that thread's guard.
fn per_thread(threads: usize) {
    let (entered, all_in) = mpsc::channel();
    for thread in 0..threads {
        let entered = entered.clone();
        thread::spawn(move || {
            let value = format!("value-{thread}");
            let _guard = guard(move |exit| record(&format!("thread with {value}"), exit));
            entered.send(()).unwrap();
            wait_forever();
        });
    }
    for _ in 0..threads {
        all_in.recv().unwrap();
    }
}

static RAN: AtomicUsize = AtomicUsize::new(0);
/// The value of the guard that ran last; guards run newest first, so each below the last.
static LAST: AtomicUsize = AtomicUsize::new(usize::MAX);
static OUT_OF_ORDER: AtomicUsize = AtomicUsize::new(0);

/// Runs last (the enclosing function's): says how many of the many guards ran, and in order.
fn many_cleanup(exit: &Exit) {
    mark(&format!(
        "{} guards ran, {} out of order, for {exit:?}",
        RAN.load(SeqCst),
        OUT_OF_ORDER.load(SeqCst)
    ));
}

#[with_cleanup(many_cleanup)]
fn many(count: usize) {
    let _guards: Vec<Guard> = (0..count)
        .map(|value| {
            guard(move |_| {
                RAN.fetch_add(1, SeqCst);
                if LAST.swap(value, SeqCst) < value {
                    OUT_OF_ORDER.fetch_add(1, SeqCst);
                }
            })
        })
        .collect();
    ready();
    wait_forever();
}

/// A cleanup that fails: `finally` reports it.
fn failing_cleanup() -> io::Result<()> {
    Err(io::Error::other("the scratch directory is busy"))
}

#[with_cleanup(failing_cleanup)]
fn returns_with_a_failing_cleanup() {}

fn main() {
    let scenario = env::args().nth(1).expect("scenario name");
    match scenario.as_str() {
        "return" => {
            {
                let _guard = recording("guard");
            }
            mark("after");
        }
        "panic" => {
            let _outer = recording("outer guard");
            guarded_panic();
        }
        // Guards around and inside a guarded function: stopped by a signal.
        "signal" => {
            let _outer = recording("outer guard");
            guarded_wait();
        }
        "exit" => {
            let _outer = recording("outer guard");
            guarded_exit();
        }
        "dismissed" => {
            let dismissed = recording("dismissed");
            dismissed.dismiss();
            let _kept = recording("kept");
            ready();
            wait_forever();
        }
        // A guard's cleanup drops another guard, which was pending too.
        "dropped-in-a-cleanup" => {
            let held = recording("held");
            let _holder = guard(move |exit| {
                record("holder", exit);
                drop(held);
            });
            ready();
            wait_forever();
        }
        "made-in-a-cleanup" => {
            returns_then_cleanup_makes_a_guard();
            mark("after");
        }
        "threads" => {
            per_thread(4);
            let _main = recording("main guard");
            ready();
            wait_forever();
        }
        "many" => many(10_000),
        "failing" => {
            let _guard = guard(|_| std::fs::remove_dir("/nonexistent/finally-test"));
            returns_with_a_failing_cleanup();
        }
        // A guard moved to another thread and dropped there.
        "moved" => {
            let moved = recording("moved");
            thread::spawn(move || drop(moved)).join().unwrap();
            ready();
            wait_forever();
        }
        other => panic!("unknown scenario {other}"),
    }
}
