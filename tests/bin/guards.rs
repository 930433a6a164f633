//! Child processes for the guards' tests: `guards NAME`.
//!
//! Each scenario prints `ready` on stdout once it is where the test wants to reach it; the
//! cleanups write to the marker file (see `tests/common/child.rs`): `start NAME`, then
//! `end NAME EXIT`.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Mutex};
use std::time::Duration;
use std::{env, io, process, thread};

use finally::{guard, guard_value, with_cleanup, Exit, Guard};

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

/// A thread reads the guard's value (and counts, in the value's mutex) all the time, while a
/// signal's cleanup reads it too.
fn value_read() {
    let value = guard_value(
        (String::from("the value"), Mutex::new(0_u64)),
        |(text, reads), exit| {
            let reads = *reads.lock().unwrap();
            mark(&format!("read {reads} times before the cleanup"));
            record(&format!("value {text}"), exit);
        },
    );
    let (started, running) = mpsc::channel();
    thread::spawn(move || loop {
        let (text, reads) = &*value;
        assert_eq!(text, "the value");
        *reads.lock().unwrap() += 1;
        let _ = started.send(());
    });
    running.recv().unwrap();
    ready();
    wait_forever();
}

/// The guard is made on the main thread and held by another; its cleanup, on the signal
/// thread, asks that thread to take the value back meanwhile, which it cannot.
fn value_taken() {
    let (cleaning, asked) = mpsc::channel::<mpsc::Sender<()>>();
    let value = guard_value(String::from("the value"), move |value, exit| {
        mark("start value");
        let (answered, answer) = mpsc::channel();
        cleaning.send(answered).unwrap();
        let answered = answer.recv_timeout(Duration::from_secs(10)).is_ok();
        mark(&format!("answered {answered}; still {value}"));
        mark(&format!("end value {exit:?}"));
    });
    thread::spawn(move || {
        let answered = asked.recv().unwrap();
        mark(&format!("into_inner gave {:?}", Guard::into_inner(value)));
        answered.send(()).unwrap();
    });
    ready();
    wait_forever();
}

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
        // A guard that holds a value: used through it, cleaned up with it.
        "value" => {
            let value = guard_value(String::from("the value"), |value, exit| {
                record(&format!("value {value}"), exit);
            });
            mark(&format!("using {} of {} bytes", *value, value.len()));
            ready();
            wait_forever();
        }
        // Given back: never cleaned up, on a signal either.
        "value-kept" => {
            let value = guard_value(String::from("the value"), |value, exit| {
                record(&format!("value {value}"), exit);
            });
            let kept = Guard::into_inner(value).expect("no shutdown under way");
            mark(&format!("kept {kept}"));
            let _other = recording("other");
            ready();
            wait_forever();
        }
        // Read by another thread while the signal thread's cleanup reads it too.
        "value-read" => value_read(),
        // Asked back while the signal thread cleans it up.
        "value-taken" => value_taken(),
        other => panic!("unknown scenario {other}"),
    }
}
