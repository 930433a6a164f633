//! A program that says which signals `finally` handles in it, and why not the others:
//! `handling SCENARIO`.
//!
//! It prints `report COPY SIGNAL HANDLING` for each signal `finally::signal_handling` lists
//! (`COPY` is `app`, or `library` for the second copy of `finally`; `HANDLING` the variant's
//! name), then `ready PID`, and waits in a guarded function, whose cleanup is `main`.
//!
//! - `defaults`: a guarded call installs the defaults.
//! - `sigint-only`: `finally::install` with `signals = [SIGINT]`; `leave`: with
//!   `leave_signals_to_me`.
//! - `not-installed`: reports before anything is installed, then installs with
//!   `signals = [SIGTERM]`, and reports again.
//! - `flag-before`, `flag-after`: the application handles SIGINT with a signal-hook flag,
//!   registered before or after `finally` is installed; `ctrlc-before`, `ctrlc-after`: with
//!   ctrlc (SIGINT, SIGTERM and SIGHUP). On SIGINT the application marks `app handled`, its
//!   guarded function returns, and it exits with 7.
//! - `removed`: SIGTERM set back to its default action once `finally` is installed.
//! - `install-failed`: `finally::install` fails (the program can start no thread); it prints
//!   `failed ERROR` and the report's line for SIGTERM.
//! - `copies`, `copies-flag-before`, `copies-flag-after`: the second copy of `finally` installed
//!   first, then this one; with a signal-hook flag on SIGINT before both, or after both.

use std::sync::mpsc;
use std::{env, process};

use finally::{with_cleanup, Options, Signal};

#[path = "../common/app_handler.rs"]
mod app_handler;
#[path = "../common/child.rs"]
mod child;

use child::{main_cleanup, mark};

fn report() {
    for (signal, handling) in finally::signal_handling() {
        println!("report app {} {}", signal.name(), variant(&handling));
    }
}

fn report_library() {
    for (signal, handling) in finally_second::signal_handling() {
        println!("report library {} {}", signal.name(), variant(&handling));
    }
}

/// The variant's name, without what it carries.
fn variant(handling: &impl std::fmt::Debug) -> String {
    let debug = format!("{handling:?}");
    debug.split('(').next().unwrap_or_default().to_owned()
}

/// Installs the defaults, and nothing stays pending.
#[with_cleanup(|| {})]
fn touch() {}

#[with_cleanup(|| {}, crate = "::finally_second")]
fn touch_library() {}

/// Says `ready PID`, and waits until `stop` says so (or for ever).
#[with_cleanup(main_cleanup)]
fn work(stop: &mpsc::Receiver<()>) {
    println!("ready {}", process::id());
    let _ = stop.recv();
}

/// The application's own SIGINT handling, `with` a signal-hook flag or ctrlc.
fn handle_sigint(with: &str, notice: mpsc::Sender<()>) {
    match with {
        "flag" => app_handler::flag(notice),
        "ctrlc" => app_handler::ctrlc(notice),
        other => panic!("unknown handler {other}"),
    }
}

/// The application handles SIGINT `with` its own handler, registered `order` (`before` or
/// `after`) `install` installs `finally`.
fn application(with: &str, order: &str, install: fn(), report: fn()) -> ! {
    let (notice, noticed) = mpsc::channel();
    match order {
        "before" => {
            handle_sigint(with, notice);
            install();
        }
        "after" => {
            install();
            handle_sigint(with, notice);
        }
        other => panic!("unknown order {other}"),
    }
    report();
    work(&noticed);
    mark("app handled");
    process::exit(7);
}

fn both_copies() {
    touch_library();
    touch();
}

fn report_both() {
    report();
    report_library();
}

fn main() {
    let scenario = env::args().nth(1).expect("a scenario");
    let mut report_all: fn() = report;
    match scenario.as_str() {
        "defaults" => touch(),
        "sigint-only" => finally::install(Options::new().signals(&[Signal::SIGINT])).unwrap(),
        "leave" => finally::install(Options::new().leave_signals_to_me()).unwrap(),
        "not-installed" => {
            report();
            finally::install(Options::new().signals(&[Signal::SIGTERM])).unwrap();
        }
        "removed" => {
            touch();
            // SAFETY: the default action, as the program may set it.
            unsafe { libc::signal(libc::SIGTERM, libc::SIG_DFL) };
        }
        "install-failed" => {
            let error = finally::install(Options::new()).expect_err("no thread can start");
            println!("failed {error}");
            let (_, sigterm) = finally::signal_handling()
                .find(|(signal, _)| *signal == Signal::SIGTERM)
                .unwrap();
            println!("says {sigterm}");
        }
        "copies" => {
            both_copies();
            report_all = report_both;
        }
        handler => match handler.split_once('-') {
            Some(("copies", rest)) => match rest.split_once('-') {
                Some((with, order)) => application(with, order, both_copies, report_both),
                None => panic!("unknown scenario {scenario}"),
            },
            Some((with, order)) => application(with, order, touch, report),
            None => panic!("unknown scenario {scenario}"),
        },
    }
    report_all();
    let (_never, stop) = mpsc::channel();
    work(&stop);
}
