//! Child processes for the integration tests: `scenario NAME [ARG]`.
//!
//! Each scenario prints `ready` on stdout once it is where the test wants to reach it; its
//! cleanups write to the marker file (see `tests/common/child.rs`).

use std::sync::mpsc;
use std::time::{Duration, Instant};
use std::{env, process, thread};

use finally::{with_cleanup, Exit};

#[path = "../common/child.rs"]
mod child;

use child::{main_cleanup, main_cleanup_where, mark, ready, record, wait_forever};

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

/// A cleanup that calls a guarded function, slowly enough for a signal to arrive meanwhile.
fn cleanup_calling_guarded(exit: &Exit) {
    mark("start calling");
    println!("cleaning");
    thread::sleep(Duration::from_millis(300));
    assert_eq!(guarded_helper(), 7);
    mark(&format!("end calling {exit:?}"));
}

#[with_cleanup(helper_cleanup)]
fn guarded_helper() -> u32 {
    7
}

fn helper_cleanup(exit: &Exit) {
    record("helper", exit);
}

#[with_cleanup(cleanup_calling_guarded)]
fn returns_then_calls_guarded_in_cleanup() {}

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

#[with_cleanup(worker_cleanup)]
fn worker_that_panics() {
    panic!("worker failed");
}

/// A worker thread panics while `main` waits in a guarded function.
#[with_cleanup(main_cleanup)]
fn worker_panics() {
    let worker = thread::spawn(worker_that_panics);
    let _ = worker.join();
    wait_forever();
}

static CLEANED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn count_cleanup() {
    CLEANED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

/// Runs last: says how many of the nested cleanups ran before it.
fn outermost_cleanup(exit: &Exit) {
    let cleaned = CLEANED.load(std::sync::atomic::Ordering::SeqCst);
    mark(&format!(
        "cleaned {cleaned} before the outermost, for {exit:?}"
    ));
}

#[with_cleanup(count_cleanup)]
fn nested(depth: u32) {
    if depth == 0 {
        ready();
        wait_forever();
    }
    nested(depth - 1);
}

/// `depth` nested guarded calls, inside one more.
#[with_cleanup(outermost_cleanup)]
fn deep(depth: u32) {
    nested(depth - 1);
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

/// Stops on its own once a stop is requested, within its grace period.
#[with_cleanup(main_cleanup_where, grace = "10s")]
fn stops_when_asked() {
    ready();
    while finally::wait_for_stop(Duration::from_secs(60)).is_none() {}
    mark("body saw the stop");
}

/// Returns as soon as it learns of the stop, with no grace period.
#[with_cleanup(main_cleanup)]
fn returns_on_stop() {
    ready();
    while finally::wait_for_stop(Duration::from_millis(20)).is_none() {}
}

/// Ignores the stop request: the grace period runs out.
#[with_cleanup(main_cleanup_where, grace = "300ms")]
fn ignores_the_stop() {
    ready();
    wait_forever();
}

/// Takes its time to stop: a second signal arrives during the grace period.
#[with_cleanup(main_cleanup_where, grace = "10s")]
fn stops_slowly() {
    ready();
    let signal = finally::wait_for_stop(Duration::from_secs(60)).expect("a stop");
    println!("stopping on {}", signal.name());
    thread::sleep(Duration::from_millis(300));
    mark("body saw the stop");
}

fn main() {
    let mut args = env::args().skip(1);
    let scenario = args.next().expect("scenario name");
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
        "cleanup-calls-guarded" => {
            ready();
            returns_then_calls_guarded_in_cleanup();
            mark("after");
        }
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
        "grace-cooperative" => {
            stops_when_asked();
            mark("after");
        }
        "grace-ignored" => ignores_the_stop(),
        "returns-on-stop" => {
            returns_on_stop();
            mark("after");
        }
        "worker-panics" => worker_panics(),
        // The nested calls need a deep stack, in a debug build especially.
        "deep" => {
            let depth = arg.expect("depth").parse().unwrap();
            thread::Builder::new()
                .stack_size(1 << 30)
                .spawn(move || deep(depth))
                .unwrap();
            wait_forever();
        }
        "grace-second-signal" => stops_slowly(),
        other => panic!("unknown scenario {other}"),
    }
}
