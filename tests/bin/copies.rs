//! Two copies of `finally` in one process, as two libraries built against semver-incompatible
//! versions bring: the application's (`finally`) and a library's (`finally_second`, the same
//! sources compiled as another crate). `copies ORDER SITUATION`:
//!
//! - `ORDER`: `app-first` or `library-first`, which copy installs its handlers first;
//! - `SITUATION`: `pending` (each copy has a cleanup pending), `idle` (nothing pending),
//!   `app-handler-before` / `app-handler-after` (the application handles SIGINT and SIGTERM
//!   itself with signal-hook, installed before or after both copies, and returns from `main`
//!   when one arrives), `slow-library` (the application's options are `timeout = 1s` and
//!   `force_quit_after = 2`, and the library's cleanup says `cleaning` and takes a minute; with
//!   `slow-library-exit`, `main` calls `exit(5)` once ready; with `slow-library-returns`, `main`
//!   returns once the stop is requested), or
//!   `mixed-wait` / `mixed-loop` (a thread's application function calls into the library: a
//!   library function that waits, or one that returns at once, called again and again).
//!
//! Each scenario prints `ready` on stdout once it is where the test wants it; the cleanups write
//! to the marker file (see `tests/common/child.rs`).

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use std::{env, thread};

use finally::{with_cleanup, Exit};

#[path = "../common/child.rs"]
mod child;

use child::{ready, record, wait_forever};

fn app_cleanup(exit: &Exit) {
    record("app", exit);
}

/// The library's cleanup is told its own copy's `Exit`.
fn library_cleanup(exit: &finally_second::Exit) {
    child::mark("start library");
    child::mark(&format!("end library {exit:?}"));
}

/// Takes a minute, and says when it has started.
fn slow_library_cleanup(exit: &finally_second::Exit) {
    child::mark("start slow library");
    println!("cleaning");
    thread::sleep(Duration::from_secs(60));
    child::mark(&format!("end slow library {exit:?}"));
}

#[with_cleanup(slow_library_cleanup, crate = "::finally_second")]
fn library_waits_with_a_slow_cleanup(entered: mpsc::Sender<()>) {
    entered.send(()).unwrap();
    wait_forever();
}

fn outer_cleanup(exit: &Exit) {
    record("outer", exit);
}

fn inner_cleanup(exit: &finally_second::Exit) {
    child::mark("start inner");
    child::mark(&format!("end inner {exit:?}"));
}

/// The application's function, which calls into the library: once (`inner` waits), or again
/// and again.
#[with_cleanup(outer_cleanup)]
fn app_calls_the_library(entered: mpsc::Sender<()>, again: bool) {
    if again {
        library_tiny();
        entered.send(()).unwrap();
        loop {
            library_tiny();
        }
    }
    library_waits_inside(entered);
}

#[with_cleanup(inner_cleanup, crate = "::finally_second")]
fn library_waits_inside(entered: mpsc::Sender<()>) {
    entered.send(()).unwrap();
    wait_forever();
}

#[with_cleanup(|| {}, crate = "::finally_second")]
fn library_tiny() {}

#[with_cleanup(|| {})]
fn app_installs() {}

#[with_cleanup(|| {}, crate = "::finally_second")]
fn library_installs() {}

#[with_cleanup(library_cleanup, crate = "::finally_second")]
fn library_waits(entered: mpsc::Sender<()>) {
    entered.send(()).unwrap();
    wait_forever();
}

#[with_cleanup(app_cleanup)]
fn app_waits() {
    ready();
    wait_forever();
}

/// Waits until the application's own handler has seen a signal.
#[with_cleanup(app_cleanup)]
fn app_waits_for_its_handler(stop: Arc<AtomicBool>) {
    ready();
    while !stop.load(SeqCst) {
        thread::sleep(Duration::from_millis(5));
    }
}

/// Starts a thread waiting in the library's guarded function `waits`.
fn start_library_waiter(waits: fn(mpsc::Sender<()>)) {
    let (entered, waiter_in) = mpsc::channel();
    thread::spawn(move || waits(entered));
    waiter_in.recv().unwrap();
}

/// The application's own handling of SIGINT and SIGTERM: a flag.
fn app_handler() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [libc::SIGINT, libc::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).unwrap();
    }
    stop
}

fn main() {
    let mut args = env::args().skip(1);
    let order = args.next().expect("order");
    let situation = args.next().expect("situation");
    let before = (situation == "app-handler-before").then(app_handler);
    if situation.starts_with("slow-library") {
        let options = finally::Options::new()
            .timeout(Duration::from_secs(1))
            .force_quit_after(2);
        finally::install(options).unwrap();
    }
    match order.as_str() {
        "app-first" => {
            app_installs();
            library_installs();
        }
        "library-first" => {
            library_installs();
            app_installs();
        }
        other => panic!("unknown order {other}"),
    }
    let after = (situation == "app-handler-after").then(app_handler);
    match situation.as_str() {
        "pending" => {
            start_library_waiter(library_waits);
            app_waits();
        }
        "mixed-wait" | "mixed-loop" => {
            let again = situation == "mixed-loop";
            start_library_waiter(if again {
                |entered| app_calls_the_library(entered, true)
            } else {
                |entered| app_calls_the_library(entered, false)
            });
            app_waits();
        }
        "slow-library" => {
            start_library_waiter(library_waits_with_a_slow_cleanup);
            app_waits();
        }
        "slow-library-returns" => {
            start_library_waiter(library_waits_with_a_slow_cleanup);
            ready();
            while !finally::stop_requested() {
                thread::sleep(Duration::from_millis(5));
            }
        }
        "slow-library-exit" => {
            start_library_waiter(library_waits_with_a_slow_cleanup);
            ready();
            std::process::exit(5);
        }
        "idle" => {
            ready();
            wait_forever();
        }
        "app-handler-before" | "app-handler-after" => {
            start_library_waiter(library_waits);
            app_waits_for_its_handler(before.or(after).unwrap());
        }
        other => panic!("unknown situation {other}"),
    }
}
